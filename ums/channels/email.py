"""The email channel: aiosmtplib over a pool of persistent relay connections.

Configured in ``[email]``: the relay (a smart host), STARTTLS and AUTH when
set, and how many connections to keep open. Every message carries its
delivery's stable Message-ID, ``List-Unsubscribe`` (mailto and one-click URL
with the delivery's token) and ``List-Unsubscribe-Post`` (RFC 8058) — except
one-to-one mail written in WAS (a reply or forward), which is From and
Reply-To the mailbox whose Sent folder holds it and carries In-Reply-To and
References instead; the
envelope sender is ``bounce+<token>@<first local domain>`` so MAS can match a
bounce to its delivery. Message bytes come from a per-template
:class:`~ums.templates.EmailSkeleton` built once.

SMTP 4xx replies and connection problems are temporary outcomes (PASS
retries); 5xx replies are permanent.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import re
import time
from collections import deque
from datetime import datetime

import aiosmtplib

from .. import tracking
from ..queue import lanes
from ..store import mailbox as mailbox_store
from ..store import tracking as tracking_store
from ..templates import Attachment, EmailSkeleton, TemplateRenderError
from ..tracking import Tracker
from . import ANSWERED, FAILED, NO_ANSWER, PERMANENT, SENT, TEMPORARY, Channel, Delivery, Outcome, readout

log = logging.getLogger("ums.channels.email")
#: seconds a read of which campaigns track is used (turning tracking on reaches PASS within this)
TRACKED_FRESH = 2.0
#: at most this much of a fax's recognised text goes under its pages in a mailed copy
MAILED_TEXT_CHARS = 20_000


def bounce_domain(config) -> str:
    domains = config.get("mas", "local_domains")
    return domains[0] if domains else "ums.local"


def message_domain(config) -> str:
    """The domain of Message-IDs and of the return and unsubscribe addresses."""
    return config.get("pass", "message_id_domain") or bounce_domain(config)


def envelope_sender(token: str, domain: str) -> str:
    return f"bounce+{token}@{domain}"


def unsubscribe_mailto(domain: str, token: str) -> str:
    return f"unsubscribe+{token}@{domain}"


def unsubscribe_url(public_url: str, token: str) -> str:
    """The one-click refusal page of a delivery (List-Unsubscribe and the 무료수신거부 footer)."""
    return f"{public_url.rstrip('/')}/unsubscribe/{token}"


def template_variables(delivery: Delivery) -> dict:
    """The fields a delivery's template is rendered with: the contact's, then the request's own."""
    return {**(delivery.contact or {}), **(delivery.variables or {})}


_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\b")


def outcome_for_reply(code: int, message: str) -> tuple[str, str]:
    """(status, code) for an SMTP reply: 4xx temporary, 5xx permanent; the code
    keeps the enhanced status (``550 5.1.1``) when the server gave one."""
    enhanced = _ENHANCED.match(message or "")
    text = f"{code} {enhanced.group(1)}" if enhanced else str(code)
    return (TEMPORARY if 400 <= code < 500 else PERMANENT), text


def attachments_of(raw: bytes) -> list[Attachment]:
    """The attached files of a stored message (fax TIFF/PDF, voice WAV…)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    parts = list(message.iter_attachments()) if message.is_multipart() else (
        [message] if message.get_content_maintype() not in ("text", "multipart") else []
    )
    return [
        Attachment(part.get_content_type(), part.get_payload(decode=True) or b"", part.get_filename())
        for part in parts
    ]


def _rfc822_name(subject: str | None) -> str:
    stem = "".join(c for c in (subject or "message") if c.isalnum() or c in " -_.")[:60].strip()
    return f"{stem or 'message'}.eml"


class PipelinedSession(asyncio.Protocol):
    """The message phase of an SMTP connection that aiosmtplib opened (greeting,
    EHLO, STARTTLS, AUTH), with RFC 2920 PIPELINING: MAIL, RCPT and DATA go out
    in one write and their replies are matched in order, then the message —
    two round trips a message instead of four. It takes the connection's
    transport over with ``set_protocol``; replies are parsed as they arrive,
    whichever way the network splits them.

    ``[email] timeout`` bounds each message's exchange. One watchdog timer per
    session enforces it (re-armed only when it fires), not a timer per message."""

    def __init__(self, transport: asyncio.Transport, timeout: float | None, smtputf8: bool):
        self.transport = transport
        self.timeout = timeout
        self.smtputf8 = smtputf8
        self.buffer = bytearray()
        self.replies: deque[aiosmtplib.SMTPResponse] = deque()
        self.waiters: deque[asyncio.Future] = deque()
        self.lost: BaseException | None = None
        self.loop = asyncio.get_running_loop()
        #: loop time by which the message being sent must be done (None: idle)
        self.deadline: float | None = None
        self.watchdog: asyncio.TimerHandle | None = None
        transport.set_protocol(self)

    @property
    def is_connected(self) -> bool:
        return self.lost is None and not self.transport.is_closing()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (reply := self._next_reply()) is not None:
            waiter = self.waiters.popleft() if self.waiters else None
            if waiter is None:
                self.replies.append(reply)
            elif not waiter.done():
                waiter.set_result(reply)

    def _next_reply(self) -> aiosmtplib.SMTPResponse | None:
        offset, lines = 0, []
        while (end := self.buffer.find(b"\n", offset)) != -1:
            line = bytes(self.buffer[offset:end + 1])
            offset = end + 1
            lines.append(line[4:].strip().decode("utf-8", "replace"))
            if line[3:4] != b"-":
                del self.buffer[:offset]
                try:
                    code = int(line[:3])
                except ValueError:
                    code = 421  # a garbled reply: treat the connection as failing
                return aiosmtplib.SMTPResponse(code, "\n".join(lines))
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
        if self.lost is None:
            self.lost = aiosmtplib.SMTPServerDisconnected(f"connection lost: {exc or 'closed by the relay'}")
        self._fail_waiters()

    def _fail_waiters(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(self.lost)

    def eof_received(self) -> bool:
        return False

    async def reply(self) -> aiosmtplib.SMTPResponse:
        if self.replies:
            return self.replies.popleft()
        if self.lost is not None:
            raise self.lost
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        return await waiter

    async def transmit(self, sender: str, recipient: str, data: bytes) -> str:
        """Send one message; SMTP refusals raise aiosmtplib's exceptions, and no
        reply within ``[email] timeout`` raises ``asyncio.TimeoutError``."""
        self._arm()
        try:
            return await self._transmit(sender, recipient, data)
        finally:
            self.deadline = None

    def _arm(self) -> None:
        if self.timeout is None:
            return
        self.deadline = self.loop.time() + self.timeout
        if self.watchdog is None:
            self.watchdog = self.loop.call_at(self.deadline, self._watch)

    def _watch(self) -> None:
        self.watchdog = None
        if self.deadline is None:
            return
        if self.loop.time() < self.deadline:   # a later message moved it on
            self.watchdog = self.loop.call_at(self.deadline, self._watch)
            return
        # replies can no longer be matched to commands: give the connection up
        self.lost = asyncio.TimeoutError(f"no reply from the relay within {self.timeout} s")
        self._fail_waiters()
        self.close()

    async def _transmit(self, sender: str, recipient: str, data: bytes) -> str:
        if _UNSAFE_ADDRESS.search(recipient) or _UNSAFE_ADDRESS.search(sender):
            raise aiosmtplib.SMTPRecipientRefused(553, "5.1.3 address with control or bracket characters", recipient)
        mail_from = b"MAIL FROM:<%s>" % sender.encode("utf-8")
        if not (sender.isascii() and recipient.isascii()):
            if not self.smtputf8:
                raise aiosmtplib.SMTPRecipientRefused(553, "5.6.7 the relay does not take non-ASCII addresses",
                                                      recipient)
            mail_from += b" SMTPUTF8"
        self.transport.write(b"%s\r\nRCPT TO:<%s>\r\nDATA\r\n" % (mail_from, recipient.encode("utf-8")))
        mail, rcpt, start = await self.reply(), await self.reply(), await self.reply()
        if start.code == 354 and (mail.code != 250 or rcpt.code not in (250, 251)):
            self.transport.write(b".\r\n")   # a DATA some relays accept anyway: end it empty
            await self.reply()
        if mail.code != 250:
            raise aiosmtplib.SMTPSenderRefused(mail.code, mail.message, sender)
        if rcpt.code not in (250, 251):
            raise aiosmtplib.SMTPRecipientRefused(rcpt.code, rcpt.message, recipient)
        if start.code != 354:
            raise aiosmtplib.SMTPDataError(start.code, start.message)
        self.transport.write(_dot_stuffed(data))
        done = await self.reply()
        if done.code != 250:
            raise aiosmtplib.SMTPDataError(done.code, done.message)
        return done.message

    async def rset(self) -> None:
        self.transport.write(b"RSET\r\n")
        if (await self.reply()).code != 250:
            raise aiosmtplib.SMTPResponseException(421, "RSET refused")

    async def quit(self) -> None:
        self.transport.write(b"QUIT\r\n")
        await self.reply()
        self.close()

    def close(self) -> None:
        self.transport.close()


_UNSAFE_ADDRESS = re.compile(r"[\x00-\x1f\x7f<>]")


def _dot_stuffed(data: bytes) -> bytes:
    """The DATA payload: CRLF line ends (as built), leading dots doubled, the end marker."""
    data = data.replace(b"\r\n.", b"\r\n..")
    if data.startswith(b"."):
        data = b"." + data
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


class LockstepSession:
    """A relay without PIPELINING: one command at a time through aiosmtplib.
    Our envelope addresses are already plain ``local@domain`` (the sender is
    built here, recipients are normalised when queued), so the commands go out
    as they are instead of through ``sendmail``'s address parsing; non-ASCII
    addresses (SMTPUTF8) take the ``sendmail`` path."""

    def __init__(self, client: aiosmtplib.SMTP):
        self.client = client

    @property
    def is_connected(self) -> bool:
        return self.client.is_connected

    async def transmit(self, sender: str, recipient: str, data: bytes) -> str:
        client = self.client
        if not (sender.isascii() and recipient.isascii()):
            errors, reply = await client.sendmail(sender, [recipient], data)
            return reply
        reply = await client.execute_command(b"MAIL", b"FROM:<%s>" % sender.encode("ascii"))
        if reply.code != 250:
            raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, sender)
        reply = await client.execute_command(b"RCPT", b"TO:<%s>" % recipient.encode("ascii"))
        if reply.code not in (250, 251):
            raise aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, recipient)
        return (await client.data(data)).message

    async def rset(self) -> None:
        await self.client.rset()

    async def quit(self) -> None:
        await self.client.quit()

    def close(self) -> None:
        self.client.close()


Session = PipelinedSession | LockstepSession


class RelayPool:
    """Persistent connections to one relay, handed out one at a time: a freed
    connection goes to the waiting sender of the highest lane (oldest first
    within a lane), so an alert never queues for a connection behind the
    campaign senders already waiting for one; and ``reserved`` of them (at most
    all but one) only ever go to urgent and notice senders, so an alert does not
    wait for a campaign's send to end either (``[email] reserved_connections``)."""

    def __init__(self, config: dict, size: int, reserved: int = 0):
        self.options = config
        #: free connection slots (None: connected on first use); only while no one waits
        self.free: list[Session | None] = [None] * size
        self.reserved = min(reserved, max(size - 1, 0))
        #: senders waiting for a connection, a line per lane (``lanes.ORDER``, then unknown)
        self.waiting: list[deque[asyncio.Future]] = [deque() for _ in range(len(lanes.ORDER) + 1)]

    def _client(self) -> aiosmtplib.SMTP:
        options = self.options
        return aiosmtplib.SMTP(
            hostname=options["relay_host"], port=options["relay_port"], timeout=options["timeout"],
            start_tls=bool(options["starttls"]), validate_certs=options.get("validate_certs", True),
            local_hostname=options.get("helo") or None,
        )

    async def _open(self) -> Session:
        client = self._client()
        await client.connect()
        if self.options.get("username"):
            await client.login(self.options["username"], self.options["password"])
        if client.is_ehlo_or_helo_needed:
            try:
                await client.ehlo()
            except aiosmtplib.SMTPHeloError:
                await client.helo()
        if client.supports_extension("pipelining"):
            return PipelinedSession(client.protocol.transport, self.options["timeout"],
                                    client.supports_extension("smtputf8"))
        return LockstepSession(client)

    async def acquire(self, lane: str | None = None) -> Session:
        """A connection for a sender of ``lane`` (connected if it is not)."""
        session = await self._slot(lanes.rank(lane))
        try:
            if session is None or not session.is_connected:
                session = await self._open()
        except BaseException:
            self.release(None)
            raise
        return session

    async def _slot(self, rank: int) -> Session | None:
        if self.free and (rank <= lanes.PRIORITY_RANK or len(self.free) > self.reserved):
            return self.free.pop()
        line = self.waiting[rank]
        handed = asyncio.get_running_loop().create_future()
        line.append(handed)
        try:
            return await handed
        except asyncio.CancelledError:
            if handed.done() and not handed.cancelled():
                self.release(handed.result())   # handed over as it was cancelled: pass it on
            elif handed in line:
                line.remove(handed)
            raise

    def release(self, session: Session | None) -> None:
        """Give ``session`` (None: a slot to connect again) to the first waiter of the
        highest lane; to a marketing sender only while the reserved ones are free."""
        for rank, line in enumerate(self.waiting):
            if rank > lanes.PRIORITY_RANK and len(self.free) < self.reserved:
                break
            while line:
                handed = line.popleft()
                if not handed.done():
                    handed.set_result(session)
                    return
        self.free.append(session)

    async def discard(self, session: Session) -> None:
        try:
            session.close()
        except Exception:
            pass
        self.release(None)

    async def close(self) -> None:
        while self.free:
            session = self.free.pop()
            if session is not None and session.is_connected:
                try:
                    await asyncio.wait_for(session.quit(), 2)
                except Exception:
                    session.close()


class EmailChannel(Channel):
    name = "email"

    def __init__(self, ctx):
        super().__init__(ctx)
        config = ctx.config
        self.options = config.section("email")
        self.domain = message_domain(config)
        self.public_url = config.get("was", "public_url").rstrip("/")
        self.pool = RelayPool(self.options, self.options["connections"], self.options["reserved_connections"])
        self.skeletons: dict[tuple, EmailSkeleton] = {}
        #: name → id of the campaigns that track, and when that was read (monotonic)
        self.tracked: dict[str, int] = {}
        self.tracked_read = -1e9
        self.tracking_key: str | None = None
        self.relay = f"{self.options['relay_host']}:{self.options['relay_port']}"

    async def stop(self) -> None:
        await self.pool.close()

    def destination(self, delivery: Delivery) -> str:
        return delivery.recipient.rpartition("@")[2].lower()

    def skeleton(self, delivery: Delivery) -> EmailSkeleton:
        template = delivery.template or {}
        key = (template.get("id"), template.get("version"), delivery.kind)
        found = self.skeletons.get(key)
        if found is None:
            if len(self.skeletons) > 1000:
                self.skeletons.clear()
            found = self.skeletons[key] = EmailSkeleton(
                template, delivery.kind, self.options["from_name"], self.options["from_address"]
            )
        return found

    def message_bytes(self, delivery: Delivery, attachments: list[Attachment] | tuple = (),
                      mailbox: str | None = None, tracker: "Tracker | None" = None) -> bytes:
        """The message for ``delivery``; one from a ``mailbox`` (:meth:`mailbox_of`)
        is From and Reply-To that mailbox."""
        variables = template_variables(delivery)
        replying_to = variables.get("in_reply_to")
        headers = {}
        if replying_to:
            headers.update({"In-Reply-To": replying_to, "References": variables.get("references") or replying_to})
        if mailbox:
            headers["Reply-To"] = mailbox
        return self.skeleton(delivery).build(
            delivery.message_id, delivery.recipient, variables,
            unsubscribe_mailto=unsubscribe_mailto(self.domain, delivery.token),
            unsubscribe_url=unsubscribe_url(self.public_url, delivery.token),
            attachments=attachments, extra_headers=headers or None,
            sender=(self.options["from_name"], mailbox) if mailbox else None,
            # one-to-one mail (a reply, a forward, a message written in WAS) is no list;
            # advertising carries the headers whatever it says (EmailSkeleton.build)
            list_headers=not variables.get("personal"),
            tracker=tracker, date=self.ctx.clock(),
        )

    async def mailbox_of(self, delivery: Delivery) -> str | None:
        """The mailbox a one-to-one message goes out from: the one whose Sent folder
        filed it when WAS queued it. Its variables alone never choose a From."""
        if not (delivery.variables or {}).get("personal"):
            return None
        async with self.ctx.db.connect() as conn:
            return await mailbox_store.sent_from(conn, delivery.id)

    async def tracker(self, delivery: Delivery) -> "Tracker | None":
        """The :class:`~ums.tracking.Tracker` of an advertising delivery whose
        campaign tracks (found by its name, the delivery's ``source``; a test
        send carries its campaign in ``variables["campaign_test"]``), or of a
        tracked journey's email (campaign 0 in its links), else None.
        Which campaigns track is read at most every :data:`TRACKED_FRESH` seconds."""
        if delivery.kind != "advertising":
            return None  # notices are never tracked
        campaign_id = (delivery.variables or {}).get("campaign_test")
        clock = time.monotonic()
        if campaign_id is None and delivery.source:
            if clock - self.tracked_read >= TRACKED_FRESH:
                async with self.ctx.db.connect() as conn:
                    self.tracked = await tracking_store.tracked_campaigns(conn)
                self.tracked_read = clock
            campaign_id = self.tracked.get(delivery.source)
        elif campaign_id is not None and not await self._tracks(campaign_id):
            campaign_id = None
        if campaign_id is None and (delivery.variables or {}).get(tracking.JOURNEY_VARIABLE):
            campaign_id = tracking.JOURNEY_MESSAGES
        if campaign_id is None:
            return None
        if self.tracking_key is None:
            async with self.ctx.db.begin() as conn:
                self.tracking_key = await tracking.site_key(conn, self.ctx.clock())
        return tracking.Tracker.of(self.public_url, self.tracking_key, campaign_id, delivery.id)

    async def _tracks(self, campaign_id: int) -> bool:
        async with self.ctx.db.connect() as conn:
            return campaign_id in (await tracking_store.tracked_campaigns(conn)).values()

    async def attachments(self, delivery: Delivery) -> list[Attachment]:
        """What ``variables["attach_mailbox_message"]`` asks to carry along: a
        fax's or voice mail's attachments (document, recording), or for an
        email the whole original as ``message/rfc822`` (a forward)."""
        message_id = (delivery.variables or {}).get("attach_mailbox_message")
        if not message_id:
            return []
        async with self.ctx.db.connect() as conn:
            original = await mailbox_store.message(conn, int(message_id))
        if original is None:
            raise LookupError(f"mailbox message {message_id} to attach no longer exists")
        raw = bytes(original["raw"])
        if original["media"] != "email":
            found = attachments_of(raw)
            if found:
                return found
        return [Attachment("message/rfc822", raw, _rfc822_name(original.get("subject")))]

    async def send(self, delivery: Delivery) -> Outcome:
        started = self.ctx.clock()
        if not delivery.template:
            return self._outcome(PERMANENT, "554", "no email template for this delivery", started)
        if delivery.variables.get("attach_mailbox_message") and delivery.variables.get("read_entry"):
            delivery = await readout.with_text(self.ctx.db, delivery, limit=MAILED_TEXT_CHARS)
            if delivery is None:   # a fax mailed with its text: the text is still being recognised
                return self._outcome(TEMPORARY, "451", "the fax's text is not recognised yet", started)
        try:
            data = self.message_bytes(delivery, await self.attachments(delivery), await self.mailbox_of(delivery),
                                      await self.tracker(delivery))
        except (TemplateRenderError, LookupError, ValueError) as exc:
            return self._outcome(PERMANENT, "554", str(exc), started)
        sender = envelope_sender(delivery.token, self.domain)
        try:
            client = await self.pool.acquire(delivery.lane)
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            outcome = self._outcome(TEMPORARY, "421", f"relay {self.relay} unreachable: {exc}", started)
            outcome.unreachable = True
            return outcome
        try:
            reply = await client.transmit(sender, delivery.recipient, data)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0]
            await self._reset(client)
            status, code = outcome_for_reply(refused.code, refused.message)
            return self._outcome(status, code, f"{refused.code} {refused.message}"[:200], started, len(data))
        except aiosmtplib.SMTPResponseException as exc:
            await self._reset(client)
            status, code = outcome_for_reply(exc.code, exc.message)
            return self._outcome(status, code, f"{exc.code} {exc.message}"[:200], started, len(data))
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            await self.pool.discard(client)
            return self._outcome(TEMPORARY, "421", f"connection lost: {exc}"[:200], started, len(data))
        except BaseException:
            await self.pool.discard(client)
            raise
        self.pool.release(client)
        return self._outcome(SENT, "250", reply[:200], started, len(data))

    async def _reset(self, client: Session) -> None:
        """After a refusal, RSET and keep the connection; drop it if that fails."""
        try:
            await client.rset()
        except Exception:
            await self.pool.discard(client)
        else:
            self.pool.release(client)

    def _outcome(self, status: str, code: str, detail: str, started: datetime, size: int | None = None) -> Outcome:
        disposition = ANSWERED if status == SENT else (NO_ANSWER if status == TEMPORARY else FAILED)
        return Outcome(
            status=status, code=code[:16], detail=detail, disposition=disposition, started_at=started,
            ended_at=self.ctx.clock(), bytes=size, dstchannel=self.relay,
        )
