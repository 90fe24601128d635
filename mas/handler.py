"""The aiosmtpd handler: who may receive, and what happens to each message.

Every accepted message is committed (stored, suppression and delivery marks
applied) before the 250 reply; a fault that may pass (database unreachable)
answers 451 so the sender retries. Nothing is ever silently dropped: a
message is stored, rejected with a reason, or deferred.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection

from ums import refusal
from ums.config import PROJECT_DIR
from ums.store import contacts, mailbox as mailboxes, rules as rule_store

from . import feedback, notify
from .classify import Classification, classify, parse_keywords
from .message import InboundMessage
from .sieve import Script, Verdict, compile_script, evaluate

log = logging.getLogger("ums.mas")

RULES_TTL = 2.0  # seconds a mailbox's compiled scripts are reused before re-reading the database


@dataclass
class Settings:
    local_domains: tuple[str, ...]
    auto_create: bool
    bounce_threshold: int
    keywords: list[str]
    refusal_lines: int
    site_script: Script | None

    @classmethod
    def from_config(cls, config) -> "Settings":
        cfg = config.section("mas")
        return cls(
            local_domains=tuple(d.lower() for d in cfg["local_domains"]),
            auto_create=cfg["auto_create_mailboxes"],
            bounce_threshold=cfg["bounce_threshold"],
            keywords=parse_keywords(cfg["refusal_keywords"]),
            refusal_lines=cfg["refusal_lines"],
            site_script=load_site_script(cfg["site_script"]),
        )


def load_site_script(path_text: str) -> Script | None:
    """The site-wide script file (relative paths are from the installation)."""
    if not path_text.strip():
        return None
    path = Path(path_text)
    if not path.is_absolute():
        path = PROJECT_DIR / path
    return compile_script(path.read_text(encoding="utf-8"), name=f"site:{path.name}")


def mailbox_address(recipient: str) -> str:
    """``user+detail@domain`` files into ``user@domain``."""
    local, _, domain = recipient.rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}".lower()


class InboundHandler:
    """aiosmtpd handler hooks (RCPT, DATA) for MAS."""

    def __init__(self, ctx, settings: Settings):
        self.ctx = ctx
        self.settings = settings
        self._scripts: dict[int, tuple[float, list[Script]]] = {}
        self.accepted = 0
        self.deferred = 0

    # --- SMTP hooks -------------------------------------------------------------------

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        domain = address.rpartition("@")[2].lower()
        if not address.count("@") or domain not in self.settings.local_domains:
            return "550 5.7.1 Relaying denied: this server accepts mail for its own domains only"
        if not self.settings.auto_create:
            try:
                async with self.ctx.db.connect() as conn:
                    known = await mailboxes.by_address(conn, mailbox_address(address))
            except Exception as exc:
                log.warning("mailbox lookup failed", extra={"error": str(exc)})
                return "451 4.3.0 Temporary failure, please try again later"
            if known is None:
                return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        message = InboundMessage(raw, envelope.mail_from or "", list(envelope.rcpt_tos))
        if not message.message.keys():
            return "550 5.6.0 Message refused: it has no header fields"
        try:
            async with self.ctx.db.begin() as conn:
                reply = await self.receive(conn, message)
        except Exception as exc:
            self.deferred += 1
            log.warning("message deferred", extra={"error": f"{type(exc).__name__}: {exc}"[:300]})
            return "451 4.3.0 Temporary failure storing the message, please try again later"
        self.accepted += 1
        return reply

    # --- processing -------------------------------------------------------------------

    async def receive(self, conn: AsyncConnection, message: InboundMessage) -> str:
        """Store and act on one message for each of its recipients, in one transaction."""
        now = self.ctx.clock()
        defects = "\n".join(message.defects()) or None
        rejected = []
        for recipient in message.recipients:
            reason = await self.receive_for(conn, message, recipient, defects, now)
            if reason is not None:
                rejected.append(reason)
        if rejected and len(rejected) == len(message.recipients):
            return f"550 5.7.1 Message rejected: {rejected[0][:200]}".replace("\r", " ").replace("\n", " ")
        return "250 2.0.0 Message accepted"

    async def receive_for(
        self, conn: AsyncConnection, message: InboundMessage, recipient: str, defects, now,
    ) -> str | None:
        """Returns the reject reason if the rules rejected the message for this recipient."""
        kind = self.classify(message, recipient)
        box = await mailboxes.ensure(conn, mailbox_address(recipient), now)
        delivery = await self.act_on(conn, message, kind, now)
        verdict = evaluate(await self.scripts_for(conn, box["id"]), message, recipient)
        if verdict.reject is not None:
            return verdict.reject
        contact = await contacts.by_email(conn, message.sender) if message.sender else None
        contact_id = (contact or {}).get("id") or (delivery or {}).get("contact_id")
        row = {
            "mailbox_id": box["id"], "media": kind.media.kind if kind.media else "email",
            "classification": kind.kind, "sender": message.sender[:320], "recipient": recipient[:320],
            "subject": message.subject, "message_id": message.message_id or None, "size": message.size,
            "raw": message.raw, "contact_id": contact_id, "delivery_id": (delivery or {}).get("id"),
            "pages": kind.media.pages if kind.media else None,
            "duration": kind.media.duration if kind.media else None,
            "received_at": now, "defects": defects,
        }
        stored = []
        for folder, flags in self.folders(verdict, kind).items():
            stored.append(await mailboxes.store_message(conn, folder=folder, flags=flags, **row))
        if stored:
            await notify.new_message(conn, box, verdict, row, stored[0], now)
        return None

    def classify(self, message: InboundMessage, recipient: str) -> Classification:
        try:
            return classify(message, recipient, self.settings.keywords, self.settings.refusal_lines)
        except Exception as exc:  # a malformed message must still be stored
            log.warning("cannot classify message", extra={"error": str(exc)[:300]})
            return Classification("reply")

    async def act_on(self, conn: AsyncConnection, message: InboundMessage, kind: Classification, now):
        """Bounce and refusal handling; returns the outbound delivery the message concerns."""
        if kind.kind == "bounce":
            return await feedback.apply_bounce(conn, kind.bounce, kind.token, now, self.settings.bounce_threshold)
        if kind.kind == "unsubscribe":
            result = await refusal.refuse_by_token(
                conn, kind.token, now, source="mas:list-unsubscribe", reason="unsubscribe",
                detail=message.sender or None,
            )
            return {"id": result.delivery_id} if result else None
        delivery = await self.answered_delivery(conn, message)
        if kind.kind == "refusal" and message.sender:
            await refusal.refuse_address(
                conn, "email", message.sender, now, source="mas:reply", reason="refusal",
                detail=f"keyword {kind.keyword!r}", delivery_id=(delivery or {}).get("id"),
            )
        return delivery

    async def answered_delivery(self, conn: AsyncConnection, message: InboundMessage) -> dict | None:
        """The delivery a reply answers, by In-Reply-To or References."""
        ids = " ".join(message.header_values("in-reply-to") + message.header_values("references")).split()
        for message_id in ids[:10]:
            delivery = await feedback.store.delivery_by_message_id(conn, message_id)
            if delivery:
                return delivery
        return None

    def folders(self, verdict: Verdict, kind: Classification) -> dict[str, list[str]]:
        """Where to file: the rules' folders; an implicit keep goes to the kind's folder."""
        folders = dict(verdict.folders)
        if verdict.implicit_keep and kind.folder != "INBOX":
            folders[kind.folder] = folders.pop("INBOX", [])
        return folders

    async def scripts_for(self, conn: AsyncConnection, mailbox_id: int) -> list[Script]:
        cached = self._scripts.get(mailbox_id)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        scripts = [self.settings.site_script] if self.settings.site_script else []
        for name, text in await rule_store.active_scripts(conn, mailbox_id):
            try:
                scripts.append(compile_script(text, name=name))
            except Exception as exc:  # stored scripts are checked on save; never stop mail for one
                log.error("stored rule does not compile", extra={"rule": name, "error": str(exc)})
        self._scripts[mailbox_id] = (time.monotonic() + RULES_TTL, scripts)
        return scripts
