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
from .batch import GroupCommitter
from .classify import Classification, classify, parse_keywords
from .message import InboundMessage
from .sieve import Chain, Script, Verdict, compile_script, evaluate

log = logging.getLogger("ums.mas")

#: seconds a mailbox's settings, its compiled scripts and a sender's customer match are
#: reused before the database is asked again (changes take effect within this time)
CACHE_TTL = 2.0


class TtlCache:
    """A small time-limited memo, so a busy MAS does not re-read what rarely changes."""

    def __init__(self, ttl: float = CACHE_TTL, size: int = 10000):
        self.ttl, self.size = ttl, size
        self.entries: dict = {}

    def get(self, key, default=None):
        entry = self.entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return default
        return entry[1]

    def put(self, key, value):
        if len(self.entries) >= self.size:
            self.entries.clear()
        self.entries[key] = (time.monotonic() + self.ttl, value)
        return value


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
        self._scripts = TtlCache()
        self._mailboxes = TtlCache()
        self._contacts = TtlCache()
        self.accepted = 0
        self.committer = GroupCommitter(ctx.db, self.receive, mailboxes.store_messages, self.prefetch_contacts)
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
            reply = await self.committer.submit(message)
        except Exception as exc:
            self.deferred += 1
            log.warning("message deferred", extra={"error": f"{type(exc).__name__}: {exc}"[:300]})
            return "451 4.3.0 Temporary failure storing the message, please try again later"
        self.accepted += 1
        return reply

    # --- processing -------------------------------------------------------------------

    async def receive(self, conn: AsyncConnection, message: InboundMessage, rows: list) -> str:
        """Act on one message for each of its recipients; rows to store are appended to
        ``rows`` (stored at once when a notice must name them), all in the caller's transaction."""
        now = self.ctx.clock()
        defects = "\n".join(message.defects()) or None
        rejected = []
        for recipient in message.recipients:
            reason = await self.receive_for(conn, message, recipient, defects, now, rows)
            if reason is not None:
                rejected.append(reason)
        if rejected and len(rejected) == len(message.recipients):
            return f"550 5.7.1 Message rejected: {rejected[0][:200]}".replace("\r", " ").replace("\n", " ")
        return "250 2.0.0 Message accepted"

    async def receive_for(
        self, conn: AsyncConnection, message: InboundMessage, recipient: str, defects, now, rows: list,
    ) -> str | None:
        """Returns the reject reason if the rules rejected the message for this recipient."""
        kind = self.classify(message, recipient)
        box = await self.mailbox_for(conn, recipient, now)
        delivery = await self.act_on(conn, message, kind, now)
        verdict = evaluate(await self.scripts_for(conn, box["id"]), message, recipient)
        if verdict.reject is not None:
            return verdict.reject
        contact_id = await self.contact_id_for(conn, message.sender) or (delivery or {}).get("contact_id")
        row = {
            "mailbox_id": box["id"], "media": kind.media.kind if kind.media else "email",
            "classification": kind.kind, "sender": message.sender[:320], "recipient": recipient[:320],
            "subject": message.subject, "message_id": message.message_id or None, "size": message.size,
            "raw": message.raw, "contact_id": contact_id, "delivery_id": (delivery or {}).get("id"),
            "pages": kind.media.pages if kind.media else None,
            "duration": kind.media.duration if kind.media else None,
            "received_at": now, "defects": defects,
        }
        filed = [{**row, "folder": folder, "flags": flags} for folder, flags in self.folders(verdict, kind).items()]
        if filed and notify.wanted(box, verdict):
            stored_id = await mailboxes.store_message(conn, **filed[0])
            await notify.new_message(conn, box, verdict, row, stored_id, now)
            filed = filed[1:]
        rows.extend(filed)
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

    async def mailbox_for(self, conn: AsyncConnection, recipient: str, now) -> dict:
        address = mailbox_address(recipient)
        return self._mailboxes.get(address) or self._mailboxes.put(
            address, await mailboxes.ensure(conn, address, now))

    async def prefetch_contacts(self, conn: AsyncConnection, messages: list[InboundMessage]) -> None:
        """Match every sender of a batch to a customer in one query."""
        missing = object()
        senders = {m.sender for m in messages if m.sender and self._contacts.get(m.sender, missing) is missing}
        found = await mailboxes.contact_ids_by_email(conn, senders)
        for sender in senders:
            self._contacts.put(sender, found.get(sender))

    async def contact_id_for(self, conn: AsyncConnection, sender: str) -> int | None:
        if not sender:
            return None
        missing = object()
        cached = self._contacts.get(sender, missing)
        if cached is not missing:
            return cached
        contact = await contacts.by_email(conn, sender)
        return self._contacts.put(sender, contact["id"] if contact else None)

    async def scripts_for(self, conn: AsyncConnection, mailbox_id: int) -> Chain:
        cached = self._scripts.get(mailbox_id)
        if cached is not None:
            return cached
        scripts = [self.settings.site_script] if self.settings.site_script else []
        for name, text in await rule_store.active_scripts(conn, mailbox_id):
            try:
                scripts.append(compile_script(text, name=name))
            except Exception as exc:  # stored scripts are checked on save; never stop mail for one
                log.error("stored rule does not compile", extra={"rule": name, "error": str(exc)})
        return self._scripts.put(mailbox_id, Chain(scripts))
