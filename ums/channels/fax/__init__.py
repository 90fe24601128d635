"""The fax channel: render the delivery's template (or an uploaded PDF) into a
TIFF Class F document and hand it to the configured driver — ``t37`` (Internet
fax over SMTP, the default) or ``hylafax`` (a HylaFAX server).

Outcomes: a bad number or a template that cannot be rendered fails at once
(PERMANENT); an unreachable gateway, a busy line or no answer is TEMPORARY so
PASS retries with backoff. ``pages`` and ``bytes`` describe the document sent.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ... import advertising, ocr
from ...errors import UmsError
from ...media import BadNumber, fill, international, run_attempt
from .. import FAILED, PERMANENT, TEMPORARY, Channel, Delivery, Outcome
from .hylafax import HylafaxServer
from .render import FaxDocument, Layout, RenderError, advertising_header, pdf_to_fax, render_template
from .t37 import T37Gateway

log = logging.getLogger("ums.channels.fax")


class FaxChannel(Channel):
    """Fax deliveries through a T.37 gateway or a HylaFAX server (``[fax] driver``)."""

    name = "fax"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.settings = ctx.config.section("fax")
        self.driver = self.settings["driver"]
        self.gateway = T37Gateway.from_config(self.settings)
        self.hylafax = HylafaxServer.from_config(self.settings)

    def destination(self, delivery: Delivery) -> str:
        return self.gateway.domain if self.driver == "t37" else self.hylafax.server

    async def send(self, delivery: Delivery) -> Outcome:
        outcome = await run_attempt(self.ctx, delivery, self._attempt, self.ctx.config.var_dir / "spool" / "fax", log)
        outcome.dstchannel = outcome.dstchannel or self.destination(delivery)
        return outcome

    async def _attempt(self, delivery: Delivery, workdir: Path) -> Outcome:
        try:
            number = international(delivery.recipient, self.settings["country_code"])
        except BadNumber as error:
            return Outcome(PERMANENT, "invalid number", str(error), disposition=FAILED)
        try:
            document = await self.render(delivery, workdir)
        except RenderError as error:
            return Outcome(PERMANENT, "render", str(error), disposition=FAILED)
        except UmsError as error:  # a missing tool: the site can fix it, so retry later
            return Outcome(TEMPORARY, "render", str(error), disposition=FAILED)
        ocr.recognise_sent_fax(self.ctx, delivery.id, document.path)  # its text, in the background
        if self.driver == "hylafax":
            return await self.hylafax.send(number, document)
        subject = self.subject(delivery)
        if delivery.kind == advertising.ADVERTISING:
            subject = advertising.label_subject(subject)
        return await self.gateway.send(number, document, delivery.message_id, subject)

    @staticmethod
    def variables(delivery: Delivery) -> dict:
        return {**(delivery.contact or {}), **delivery.variables}

    def subject(self, delivery: Delivery) -> str:
        """The template's subject with the recipient's fields filled in."""
        return fill((delivery.template or {}).get("subject"), self.variables(delivery)).strip()

    async def render(self, delivery: Delivery, workdir: Path) -> FaxDocument:
        """The delivery's fax document: its uploaded PDF, or its template filled in."""
        compression, timeout = self.settings["compression"], self.settings["render_timeout"]
        uploaded = delivery.variables.get("document")
        if uploaded:
            return await pdf_to_fax(Path(uploaded), workdir / "document.tif", compression, timeout)
        if not delivery.template:
            raise RenderError(reason="no fax template and no document")
        return await render_template(delivery.template, self.variables(delivery), self.layout(delivery), workdir,
                                     compression, timeout)

    def layout(self, delivery: Delivery) -> Layout:
        template = delivery.template or {}
        options = template.get("options") or {}
        header = ""
        if delivery.kind == advertising.ADVERTISING:
            refusal = options.get("refusal_number") or self.settings["refusal_number"]
            header = advertising_header(template, refusal)
        cover = None
        if options.get("cover"):
            cover = {"title": self.subject(delivery) or "FAX", "to": delivery.recipient,
                     "from": template.get("sender_name"), "note": options.get("cover_note")}
        return Layout(self.settings["font"], self.settings["bold_font"], header, cover)
