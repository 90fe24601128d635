"""The voice channel: the template's text is spoken (espeak-ng, then sox to
8 kHz telephony audio) and played in a call — a SIP call placed by baresip
(``[voice] driver = sip``) or an Asterisk call file (``asterisk``).

Advertising calls say ``(광고)`` first and end with the sender and the free
refusal number. A "read it to me" call (``read_entry`` among the variables,
:mod:`.readout`) speaks a new message's text, looked up when it is placed.
Outcomes carry the CDR disposition (ANSWERED, NO ANSWER, BUSY,
FAILED), the answer and end times and billsec; busy, no answer and connection
trouble are TEMPORARY, a rejected or invalid number PERMANENT.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ... import advertising
from ...errors import UmsError
from ...media import BadNumber, fill, international, run_attempt
from ...templates import TemplateRenderError
from .. import FAILED, PERMANENT, TEMPORARY, Channel, Delivery, Outcome
from . import sip
from .. import readout
from .asterisk import AsteriskSpool
from .tts import Audio, synthesize

log = logging.getLogger("ums.channels.voice")


def script_for(delivery: Delivery, refusal_number: str) -> str:
    """The words to speak: the filled template, labelled for advertising."""
    template = delivery.template or {}
    variables = {**(delivery.contact or {}), **delivery.variables}
    text = fill(template.get("body_text") or template.get("subject"), variables).strip()
    if delivery.kind != advertising.ADVERTISING:
        return text
    sender = template.get("sender_name") or ""
    return f"{advertising.label_text(text)} {sender} {advertising.FREE_REFUSAL} {refusal_number}".strip()


class VoiceChannel(Channel):
    """Voice notices by SIP (baresip) or Asterisk call files (``[voice] driver``)."""

    name = "voice"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.settings = ctx.config.section("voice")
        self.sip = sip.SipSettings.from_config(self.settings)
        self.asterisk = AsteriskSpool.from_config(self.settings)

    def destination(self, delivery: Delivery) -> str:
        if self.settings["driver"] == "asterisk":
            return "asterisk"
        if self.sip.proxy:
            return self.sip.proxy
        return _host_of(self.sip_uri(delivery.recipient))

    def sip_uri(self, recipient: str) -> str:
        """A ``sip:`` recipient as given; a number through the ``sip_uri`` pattern."""
        if recipient.strip().lower().startswith(("sip:", "sips:")):
            return recipient.strip()
        international(recipient, "82")  # raises BadNumber for something undiallable
        return self.settings["sip_uri"].format(number=re.sub(r"[^\d+]", "", recipient))

    async def send(self, delivery: Delivery) -> Outcome:
        return await run_attempt(self.ctx, delivery, self._attempt, self.ctx.config.var_dir / "spool" / "voice", log)

    async def _attempt(self, delivery: Delivery, workdir: Path) -> Outcome:
        driver = self.settings["driver"]
        try:
            target = (international(delivery.recipient, "82") if driver == "asterisk"
                      else self.sip_uri(delivery.recipient))
        except BadNumber as error:
            return Outcome(PERMANENT, "invalid number", str(error), disposition=FAILED)
        if delivery.variables.get("read_entry"):
            delivery = await readout.with_text(self.ctx.db, delivery)
            if delivery is None:
                return Outcome(TEMPORARY, "text pending", "the message's text is not recognised yet",
                               disposition=FAILED)
        try:
            text = script_for(delivery, self.settings["refusal_number"])
        except TemplateRenderError as error:
            return Outcome(PERMANENT, "template", str(error), disposition=FAILED)
        if not text:
            return Outcome(PERMANENT, "template", "no voice template text", disposition=FAILED)
        try:
            audio = await self.speak(text, workdir / "notice.wav")
        except UmsError as error:
            return Outcome(TEMPORARY, "tts", str(error), disposition=FAILED)
        if driver == "asterisk":
            outcome = await self.asterisk.call(target.lstrip("+"), audio.path, audio.seconds, delivery.id,
                                               delivery.attempt, self.ctx.clock)
        else:
            call = await sip.place_call(target, audio.path, self.sip, workdir / "ua", self.ctx.clock)
            outcome = sip.outcome(call, target)
        outcome.extra["audio_seconds"] = round(audio.seconds, 2)
        outcome.bytes = audio.path.stat().st_size
        return outcome

    async def speak(self, text: str, wav: Path) -> Audio:
        return await synthesize(text, wav, self.settings["language"], self.settings["speed"],
                                self.settings["tts_timeout"])


def _host_of(uri: str) -> str:
    return uri.split("@", 1)[-1].split(";", 1)[0]
