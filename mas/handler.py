"""The aiosmtpd handler: who may send and receive, and what happens to each message.

Every accepted message is committed (stored, suppression and delivery marks
applied) before the 250 reply; a fault that may pass (database unreachable)
answers 451 so the sender retries; what the message itself causes (MIME
nested too deep, content MAS cannot process) answers 5xx, as retrying would
never help. Nothing is ever silently dropped: a message is stored, rejected
with a reason, or deferred.

The envelope follows RFC 5321 (:mod:`mas.envelope`): UTF-8 addresses only
with SMTPUTF8, ``Postmaster`` always accepted, at most ``[mas]
max_recipients`` distinct recipients (452 beyond), a repeated RCPT stored
once, and mail to an ``unsubscribe+<token>`` address whose token names no
delivery refused at RCPT (nobody is unsubscribed by it).

A message is stored once however many recipients file it (one
``message_bodies`` row, one small entry per mailbox folder: see
:mod:`ums.store.mailbox`). One heavy message never stalls other senders:
what needs no database (parsing, classifying, hashing, the DMARC check of a
refusal) is done before the message waits for the writer, in a thread for a
big message (:data:`OFFLOAD_SIZE`); the writer's transaction reads what the
batch needs in a few bulk queries (mailboxes, scripts) and writes its bodies
and its entries (each matched to its sender's customer in the statement) in
two statements (:mod:`mas.batch`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy.exc import DataError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from ums import mailindex, refusal
from ums.config import PROJECT_DIR
from ums.store import bounces, contacts, mailbox as mailboxes, rules as rule_store

from . import envelope as envelope_rules, feedback, notify
from .batch import GroupCommitter
from .authenticity import Authenticity
from .classify import BOUNCE_PREFIX, UNSUBSCRIBE_PREFIX, Classification, Keywords, classify, token_of
from ums.inbound import BadMessage, InboundMessage, storable
from ums.sieve import Chain, Script, Verdict, compile_script, evaluate

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
    keywords: Keywords
    refusal_lines: int
    site_script: Script | None
    max_recipients: int = 100
    max_mime_depth: int = 100
    bounce_stale_after: timedelta = timedelta(days=7)
    #: an upstream whose ``Authentication-Results`` (its topmost one) MAS believes
    trusted_authserv_id: str = ""

    @classmethod
    def from_config(cls, config) -> "Settings":
        cfg = config.section("mas")
        return cls(
            local_domains=tuple(d.lower() for d in cfg["local_domains"]),
            auto_create=cfg["auto_create_mailboxes"],
            bounce_threshold=cfg["bounce_threshold"],
            keywords=Keywords.from_text(cfg["refusal_keywords"], cfg["refusal_bare_keywords"]),
            refusal_lines=cfg["refusal_lines"],
            site_script=load_site_script(cfg["site_script"]),
            max_recipients=cfg["max_recipients"],
            max_mime_depth=cfg["max_mime_depth"],
            bounce_stale_after=timedelta(days=cfg["bounce_stale_after"]),
            trusted_authserv_id=cfg["trusted_authserv_id"].strip(),
        )


DEFERRED_REPLY = "451 4.3.0 Temporary failure storing the message, please try again later"
UNPROCESSABLE_REPLY = "554 5.6.0 Message refused: its content cannot be processed"
UNKNOWN_UNSUBSCRIBE_REPLY = ("550 5.1.1 Unknown unsubscribe address: it names no message we sent, "
                             "so nobody was unsubscribed")


def clears(error: BaseException) -> bool:
    """Whether a failure may pass by itself (the database or the network away),
    rather than being the message's own doing (content the database refuses,
    MIME nested past what the parser can read, a message MAS cannot process)."""
    if isinstance(error, (BadMessage, DataError, RecursionError)):
        return False
    sqlstate = str(getattr(getattr(error, "orig", None), "sqlstate", None) or "")
    if sqlstate.startswith("22"):  # PostgreSQL's "data exception" class (a NUL in text, say)
        return False
    if isinstance(error, (SQLAlchemyError, OSError, TimeoutError)):
        return True
    return type(error).__module__.split(".")[0] in ("asyncpg", "aiosqlite", "sqlite3")


def failure_reply(error: BaseException) -> str:
    """The SMTP reply for a message that could not be stored: 451 when trying
    again later can succeed, 5xx when it never will."""
    if isinstance(error, BadMessage):
        return error.reply
    return DEFERRED_REPLY if clears(error) else UNPROCESSABLE_REPLY


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


#: seconds the DMARC check of a refusal may take (DNS) before it counts as not authenticated
AUTHENTICITY_SECONDS = 8.0
#: messages at least this big are read (parsed, classified, hashed) in a thread, so the
#: loop keeps answering other senders meanwhile
OFFLOAD_SIZE = 64 * 1024


async def off_the_loop(size: int, function, *args):
    """``function(*args)``, in a thread when the message is big."""
    if size >= OFFLOAD_SIZE:
        return await asyncio.to_thread(function, *args)
    return function(*args)


def classification_key(recipient: str) -> tuple:
    """What of a recipient address changes how a message is classified: its
    ``bounce+``/``unsubscribe+`` token (every other recipient shares one classification)."""
    return token_of(recipient, BOUNCE_PREFIX), token_of(recipient, UNSUBSCRIBE_PREFIX)


@dataclass
class Arrival:
    """A message read and classified before it waits for the writer."""

    message: InboundMessage
    #: classification by :func:`classification_key`
    kinds: dict
    defects: str | None
    #: the key its bytes are stored under (:func:`ums.store.mailbox.body_digest`)
    digest: str
    #: what the inbox search reads of it (:func:`ums.mailindex.searchable_text`)
    search_text: str | None = None
    #: what files it in a conversation (:func:`ums.mailindex.thread_headers`)
    thread_headers: mailindex.ThreadHeaders | None = None
    #: whether it carries a document whose text is read after it is stored (:mod:`ums.ocr`)
    has_documents: bool = False
    #: why its From domain is authenticated (DMARC), when it is a refusal and it is
    authenticated: str | None = None

    @property
    def is_refusal(self) -> bool:
        return any(kind.kind == "refusal" for kind in self.kinds.values())


class InboundHandler:
    """aiosmtpd handler hooks (RCPT, DATA) for MAS."""

    def __init__(self, ctx, settings: Settings):
        self.ctx = ctx
        self.settings = settings
        self._scripts = TtlCache()
        self._mailboxes = TtlCache()
        self._contacts = TtlCache()
        self.accepted = 0
        #: mailboxes read or created by the transaction being written: cached once it commits
        self._mailboxes_now: dict[str, dict] = {}
        self.committer = GroupCommitter(ctx.db, self.receive, mailboxes.store_messages, self.prepare_batch,
                                        committed=self.committed)
        self.deferred = 0
        self.refused = 0
        #: called when a commit stored messages whose documents are to be read (:mod:`ums.ocr`)
        self.documents_stored = None
        self.confirmations = feedback.Confirmations()
        self.authenticity = Authenticity(settings.trusted_authserv_id)

    # --- SMTP hooks -------------------------------------------------------------------

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        refused = envelope_rules.utf8_reply(address, envelope.smtp_utf8)
        if refused:
            return refused
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        settings = self.settings
        refused = envelope_rules.utf8_reply(address, envelope.smtp_utf8)
        if refused:
            return refused
        address = envelope_rules.canonical_recipient(address, settings.local_domains)
        if envelope_rules.is_duplicate(address, envelope.rcpt_tos):
            return envelope_rules.DUPLICATE_REPLY
        refused = envelope_rules.recipient_limit_reply(envelope.rcpt_tos, settings.max_recipients)
        if refused:
            return refused
        domain = address.rpartition("@")[2].lower()
        if not address.count("@") or domain not in settings.local_domains:
            return "550 5.7.1 Relaying denied: this server accepts mail for its own domains only"
        refused = await self.unknown_recipient_reply(address)
        if refused:
            return refused
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def unknown_recipient_reply(self, address: str) -> str | None:
        """550 for an ``unsubscribe+<token>`` address naming no delivery, and (without
        ``auto_create_mailboxes``) for a mailbox that does not exist; postmaster always exists."""
        token = token_of(address, UNSUBSCRIBE_PREFIX)
        check_mailbox = not (self.settings.auto_create or token
                             or envelope_rules.is_postmaster(address, self.settings.local_domains))
        if not (token or check_mailbox):
            return None
        try:
            async with self.ctx.db.connect() as conn:
                if token:
                    known = await bounces.delivery_by_token(conn, token) is not None
                else:
                    known = await mailboxes.by_address(conn, mailbox_address(address)) is not None
        except Exception as exc:
            log.warning("recipient lookup failed", extra={"error": str(exc)})
            return "451 4.3.0 Temporary failure, please try again later"
        if known:
            return None
        if token:
            log.info("unsubscribe address names no delivery: refused, nobody unsubscribed",
                     extra={"recipient": address})
            return UNKNOWN_UNSUBSCRIBE_REPLY
        return "550 5.1.1 No such mailbox here"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        peer = session.peer[0] if isinstance(session.peer, tuple) else ""
        try:
            arrival = await off_the_loop(len(raw), self.read, raw, envelope.mail_from or "", list(envelope.rcpt_tos))
        except Exception as exc:  # MIME nested too deep (BadMessage), or anything else the parser trips on
            return self.refuse(exc)
        if not arrival.message.message.keys():
            return "550 5.6.0 Message refused: it has no header fields"
        if arrival.is_refusal:
            arrival.authenticated = await self.authenticated(raw, arrival, peer, envelope.mail_from or "",
                                                             session.host_name or "")
        try:
            reply = await self.committer.submit(arrival)
        except Exception as exc:
            if not clears(exc):
                return self.refuse(exc)
            self.deferred += 1
            log.warning("message deferred", extra={"error": f"{type(exc).__name__}: {exc}"[:300]})
            return failure_reply(exc)
        self.accepted += 1
        return reply

    async def authenticated(self, raw: bytes, arrival: "Arrival", peer: str, mail_from: str, helo: str):
        """The DMARC evidence for a refusal's From domain (:mod:`mas.authenticity`), looked
        up in a thread (DNS blocks) within :data:`AUTHENTICITY_SECONDS`; None when it fails
        or takes longer (the refusal is then confirmed by asking the address)."""
        try:
            return await asyncio.wait_for(asyncio.to_thread(
                self.authenticity.evidence, raw, arrival.message, peer, mail_from, helo), AUTHENTICITY_SECONDS)
        except asyncio.TimeoutError:
            log.info("DMARC check took too long: refusal not authenticated", extra={"from": arrival.message.sender})
            return None

    def read(self, raw: bytes, mail_from: str, recipients: list[str]) -> "Arrival":
        """Everything about a message that needs neither the database nor DNS: parsed,
        classified for each recipient, its defects and its storage key. CPU work, done
        before the message waits for the writer (in a thread for a big message)."""
        message = InboundMessage(raw, mail_from, recipients, max_depth=self.settings.max_mime_depth)
        kinds: dict[tuple, Classification] = {}
        for recipient in recipients:
            key = classification_key(recipient)
            if key not in kinds:
                kinds[key] = self.classify(message, recipient)
        text, documents = mailindex.extract(message.message)
        return Arrival(message, kinds, storable("\n".join(message.defects()) or None), mailboxes.body_digest(raw),
                       search_text=text, thread_headers=mailindex.thread_headers(message.message),
                       has_documents=documents)

    async def handle_exception(self, error: Exception) -> str:
        """What aiosmtpd answers when a command fails unexpectedly (never its
        ``500 Error: (…)``, which names the exception to the client)."""
        log.error("SMTP command failed", exc_info=error)
        return "451 4.3.0 Temporary failure, please try again later" if clears(error) else \
            "554 5.3.0 Transaction failed: the command could not be processed"

    def refuse(self, error: BaseException) -> str:
        """5xx for a message that can never be stored as it is (logged with the reason)."""
        self.refused += 1
        reply = failure_reply(error)
        if isinstance(error, BadMessage):
            log.info("message refused", extra={"reason": str(error)})
        else:
            log.error("message refused: processing it failed", exc_info=error)
        return reply

    # --- processing -------------------------------------------------------------------

    async def receive(self, conn: AsyncConnection, arrival: "Arrival", rows: list) -> str:
        """Act on one message for each of its recipients; rows to store are appended to
        ``rows`` (stored at once when a notice must name them), all in the caller's
        transaction. The message's bytes are stored once however many rows refer to them."""
        now = self.ctx.clock()
        message = arrival.message
        acted: dict = {}  # the delivery acted on, by classification key (once per message, not per recipient)
        rejected = []
        for recipient in message.recipients:
            reason = await self.receive_for(conn, arrival, acted, recipient, now, rows)
            if reason is not None:
                rejected.append(reason)
        if rejected and len(rejected) == len(message.recipients):
            return f"550 5.7.1 Message rejected: {rejected[0][:200]}".replace("\r", " ").replace("\n", " ")
        return "250 2.0.0 Message accepted"

    async def receive_for(
        self, conn: AsyncConnection, arrival: "Arrival", acted: dict, recipient: str, now, rows: list,
    ) -> str | None:
        """Returns the reject reason if the rules rejected the message for this recipient."""
        message = arrival.message
        key = classification_key(recipient)
        kind = arrival.kinds[key]
        box = await self.mailbox_for(conn, recipient, now)
        # only a refusal needs the sender's customer now; the stored entry is matched to it in SQL
        sender_contact = await self.contact_id_for(conn, message.sender) if kind.kind == "refusal" else None
        if key not in acted:  # once per message (and per token), however many recipients
            acted[key] = await self.act_on(conn, arrival, kind, sender_contact, now)
        delivery = acted[key]
        verdict = evaluate(await self.scripts_for(conn, box["id"]), message, recipient)
        if verdict.reject is not None:
            return verdict.reject
        contact_id = (delivery or {}).get("contact_id")
        row = {
            "mailbox_id": box["id"], "media": kind.media.kind if kind.media else "email",
            "classification": kind.kind, "sender": message.sender[:320], "recipient": recipient[:320],
            "subject": message.subject, "message_id": message.message_id or None, "size": message.size,
            "raw": message.raw, "digest": arrival.digest, "search_text": arrival.search_text,
            "thread_headers": arrival.thread_headers, "has_documents": arrival.has_documents,
            "contact_id": contact_id, "match_contact": message.sender or None,
            "delivery_id": (delivery or {}).get("id"),
            "pages": kind.media.pages if kind.media else None,
            "duration": kind.media.duration if kind.media else None,
            "received_at": now, "defects": arrival.defects,
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

    async def act_on(
        self, conn: AsyncConnection, arrival: "Arrival", kind: Classification, sender_contact, now,
    ):
        """Bounce and refusal handling; returns the outbound delivery the message concerns."""
        message = arrival.message
        if kind.kind == "bounce":
            return await feedback.apply_bounce(conn, kind.bounce, kind.token, now, self.settings.bounce_threshold,
                                               self.settings.bounce_stale_after)
        if kind.kind == "unsubscribe":
            result = await refusal.refuse_by_token(
                conn, kind.token, now, source="mas:list-unsubscribe", reason="unsubscribe",
                detail=message.sender or None,
            )
            if result is None:
                log.warning("unsubscribe address names no delivery: nobody unsubscribed",
                            extra={"from": message.sender})
            return {"id": result.delivery_id} if result else None
        if kind.kind == "refusal":
            proven = await feedback.apply_refusal(
                conn, message, kind.keyword, now, sender_contact, self.confirmations,
                authenticated=arrival.authenticated)
            return proven or await feedback.delivery_answered(conn, message)
        return await feedback.delivery_answered(conn, message)

    def folders(self, verdict: Verdict, kind: Classification) -> dict[str, list[str]]:
        """Where to file: the rules' folders; an implicit keep goes to the kind's folder."""
        folders = dict(verdict.folders)
        if verdict.implicit_keep and kind.folder != "INBOX":
            folders[kind.folder] = folders.pop("INBOX", [])
        return folders

    async def mailbox_for(self, conn: AsyncConnection, recipient: str, now) -> dict:
        """The recipient's mailbox (created on first use). A mailbox this transaction
        created is cached only once it commits: after a rollback it does not exist."""
        address = mailbox_address(recipient)
        found = self._mailboxes.get(address) or self._mailboxes_now.get(address)
        if found is None:
            found = self._mailboxes_now[address] = await mailboxes.ensure(conn, address, now)
        return found

    def committed(self, arrivals: list) -> None:
        for address, box in self._mailboxes_now.items():
            self._mailboxes.put(address, box)
        self._mailboxes_now.clear()
        if self.documents_stored is not None and any(arrival.has_documents for arrival in arrivals):
            self.documents_stored()

    async def prepare_batch(self, conn: AsyncConnection, arrivals: list) -> None:
        """A transaction starts: nothing it creates is cached yet. What the batch needs
        from the database is read in a few queries for all its messages at once: every
        recipient's mailbox (created if new) and its scripts — not a query per recipient
        while the writer is held. (Senders are matched to customers as the entries are
        inserted, :func:`ums.store.mailbox.store_messages`.)"""
        self._mailboxes_now.clear()
        messages = [arrival.message for arrival in arrivals]
        addresses = {mailbox_address(r) for m in messages for r in m.recipients}
        unknown = {address for address in addresses if self._mailboxes.get(address) is None}
        self._mailboxes_now.update(await mailboxes.ensure_many(conn, unknown, self.ctx.clock()))
        boxes = [self._mailboxes.get(address) or self._mailboxes_now.get(address) for address in addresses]
        uncompiled = {box["id"] for box in boxes if box and self._scripts.get(box["id"]) is None}
        for mailbox_id, scripts in (await rule_store.active_scripts_by_mailbox(conn, uncompiled)).items():
            self._scripts.put(mailbox_id, self.compile_chain(scripts))

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
        return self._scripts.put(mailbox_id, self.compile_chain(await rule_store.active_scripts(conn, mailbox_id)))

    def compile_chain(self, stored: list[tuple[str, str]]) -> Chain:
        """The site script file, then the stored scripts (name, text) compiled, in order."""
        scripts = [self.settings.site_script] if self.settings.site_script else []
        for name, text in stored:
            try:
                scripts.append(compile_script(text, name=name))
            except Exception as exc:  # stored scripts are checked on save; never stop mail for one
                log.error("stored rule does not compile", extra={"rule": name, "error": str(exc)})
        return Chain(scripts)
