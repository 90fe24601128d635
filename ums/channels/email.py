"""The email channel: aiosmtplib over a pool of persistent relay connections.

Configured in ``[email]``: the relay (a smart host), STARTTLS and AUTH when
set, and how many connections to keep open. Every message carries its
delivery's stable Message-ID, ``List-Unsubscribe`` (mailto and one-click URL
with the delivery's token) and ``List-Unsubscribe-Post`` (RFC 8058); the
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
from datetime import datetime, timezone

import aiosmtplib

from ..store import mailbox as mailbox_store
from ..templates import Attachment, EmailSkeleton, TemplateRenderError
from . import ANSWERED, FAILED, NO_ANSWER, PERMANENT, SENT, TEMPORARY, Channel, Delivery, Outcome

log = logging.getLogger("ums.channels.email")


def bounce_domain(config) -> str:
    domains = config.get("mas", "local_domains")
    return domains[0] if domains else "ums.local"


def envelope_sender(token: str, domain: str) -> str:
    return f"bounce+{token}@{domain}"


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


class RelayPool:
    """Persistent connections to one relay, handed out one at a time."""

    def __init__(self, config: dict, size: int):
        self.options = config
        self.idle: asyncio.Queue[aiosmtplib.SMTP | None] = asyncio.Queue()
        for _ in range(size):
            self.idle.put_nowait(None)  # a slot; connected on first use

    def _client(self) -> aiosmtplib.SMTP:
        options = self.options
        return aiosmtplib.SMTP(
            hostname=options["relay_host"], port=options["relay_port"], timeout=options["timeout"],
            start_tls=bool(options["starttls"]), validate_certs=options.get("validate_certs", True),
            local_hostname=options.get("helo") or None,
        )

    async def acquire(self) -> aiosmtplib.SMTP:
        client = await self.idle.get()
        try:
            if client is None or not client.is_connected:
                client = self._client()
                await client.connect()
                if self.options.get("username"):
                    await client.login(self.options["username"], self.options["password"])
                if client.is_ehlo_or_helo_needed:
                    try:
                        await client.ehlo()
                    except aiosmtplib.SMTPHeloError:
                        await client.helo()
        except BaseException:
            self.idle.put_nowait(None)
            raise
        return client

    def release(self, client: aiosmtplib.SMTP | None) -> None:
        self.idle.put_nowait(client)

    async def discard(self, client: aiosmtplib.SMTP) -> None:
        try:
            client.close()
        except Exception:
            pass
        self.idle.put_nowait(None)

    async def close(self) -> None:
        while not self.idle.empty():
            client = self.idle.get_nowait()
            if client is not None and client.is_connected:
                try:
                    await asyncio.wait_for(client.quit(), 2)
                except Exception:
                    client.close()


class EmailChannel(Channel):
    name = "email"

    def __init__(self, ctx):
        super().__init__(ctx)
        config = ctx.config
        self.options = config.section("email")
        self.domain = config.get("pass", "message_id_domain") or bounce_domain(config)
        self.public_url = config.get("was", "public_url").rstrip("/")
        self.pool = RelayPool(self.options, self.options["connections"])
        self.skeletons: dict[tuple, EmailSkeleton] = {}
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

    def message_bytes(self, delivery: Delivery, attachments: list[Attachment] | tuple = ()) -> bytes:
        variables = {**(delivery.contact or {}), **(delivery.variables or {})}
        replying_to = variables.get("in_reply_to")
        return self.skeleton(delivery).build(
            delivery.message_id, delivery.recipient, variables,
            unsubscribe_mailto=f"unsubscribe+{delivery.token}@{self.domain}",
            unsubscribe_url=f"{self.public_url}/unsubscribe/{delivery.token}",
            attachments=attachments,
            extra_headers={"In-Reply-To": replying_to, "References": replying_to} if replying_to else None,
        )

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
        started = datetime.now(timezone.utc)
        if not delivery.template:
            return self._outcome(PERMANENT, "554", "no email template for this delivery", started)
        try:
            data = self.message_bytes(delivery, await self.attachments(delivery))
        except (TemplateRenderError, LookupError, ValueError) as exc:
            return self._outcome(PERMANENT, "554", str(exc), started)
        sender = envelope_sender(delivery.token, self.domain)
        try:
            client = await self.pool.acquire()
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
            return self._outcome(TEMPORARY, "421", f"relay {self.relay} unreachable: {exc}", started)
        try:
            reply = await self._transmit(client, sender, delivery.recipient, data)
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

    async def _transmit(self, client: aiosmtplib.SMTP, sender: str, recipient: str, data: bytes) -> str:
        """MAIL, RCPT, DATA for one recipient; the reply text of the accepted message.

        Our envelope addresses are already plain ``local@domain`` (the sender is
        built here, recipients are normalised when queued), so the commands go
        out as they are instead of through ``sendmail``'s address parsing, which
        costs more than building the message. Non-ASCII addresses (SMTPUTF8)
        take the ``sendmail`` path."""
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

    async def _reset(self, client: aiosmtplib.SMTP) -> None:
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
            ended_at=datetime.now(timezone.utc), bytes=size, dstchannel=self.relay,
        )
