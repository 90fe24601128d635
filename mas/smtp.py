"""aiosmtpd's SMTP protocol with connection limits, envelope checks, a clean
end to a failed transaction, and a fast path for plain envelope addresses.

At most ``[mas] max_connections`` connections are open at once, and at most
``[mas] max_connections_per_client`` from one client address
(:class:`ConnectionLimits`): a connection beyond either is greeted with
``421 4.7.0`` and closed before any SMTP session starts, so one client (or a
flood of them) cannot take every session the server has; a well-behaved
client retries later.

MAIL and RCPT arguments pass :func:`mas.envelope.argument_reply` before
aiosmtpd reads them (raw non-UTF-8 bytes: 553 5.1.3; control characters:
501), so no such address reaches the handler. A DATA that ends in an error
still ends its transaction: the envelope is reset, so the next MAIL on the
same connection starts afresh and its message reaches only its own
recipients.

A DATA section is read in chunks (:mod:`mas.datasection`), not a line at
a time, with the replies aiosmtpd gives; the content is kept as bytes (MAS
never sets ``decode_data``).

aiosmtpd reads every MAIL FROM and RCPT TO address through the full RFC 5322
header grammar of the standard library, which costs more than the rest of a
small message's handling. The common ``<local@domain>`` form (a dot-atom on
both sides) is read here with one regular expression giving exactly what the
full parser gives; anything else (quoted local parts, source routes, the null
sender ``<>``, comments) still goes through aiosmtpd's own parser.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter

from aiosmtpd.smtp import MISSING, SMTP, syntax

from .datasection import DataSection
from .envelope import argument_reply

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
PLAIN_ANGLE_ADDRESS = re.compile(rf"<({_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*)>(.*)", re.DOTALL)


log = logging.getLogger("ums.mas")

#: at most this many bytes are taken from the connection at once while a DATA section is read
#: (more than the connection ever holds, so each read empties it)
READ_SIZE = 1 << 20


class ConnectionLimits:
    """How many SMTP connections are open, in all and per client address."""

    TOTAL_REPLY = b"421 4.7.0 Too many connections to this server, try again later\r\n"
    CLIENT_REPLY = b"421 4.7.0 Too many connections from your address, try again later\r\n"

    def __init__(self, total: int, per_client: int):
        self.total, self.per_client = total, per_client
        self.open: Counter[str] = Counter()
        self.count = 0

    def admit(self, client: str) -> bytes | None:
        """Count a new connection from ``client``; the 421 greeting instead when it is one too many."""
        if self.count >= self.total:
            return self.TOTAL_REPLY
        if self.open[client] >= self.per_client:
            return self.CLIENT_REPLY
        self.open[client] += 1
        self.count += 1
        return None

    def release(self, client: str) -> None:
        self.count -= 1
        self.open[client] -= 1
        if self.open[client] <= 0:
            del self.open[client]


class InboundSMTP(SMTP):
    def __init__(self, *args, limits: ConnectionLimits | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.limits = limits
        #: the client address this connection is counted under (None: not counted, or refused)
        self._counted: str | None = None
        self._turned_away = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.limits is not None and self.transport is None:  # not the STARTTLS re-entry
            peer = transport.get_extra_info("peername")
            client = peer[0] if isinstance(peer, tuple) else str(peer)
            refused = self.limits.admit(client)
            if refused:
                self._turned_away = True
                log.warning("connection refused: too many connections", extra={"client": client})
                transport.write(refused)
                transport.close()
                return
            self._counted = client
        super().connection_made(transport)

    def connection_lost(self, error) -> None:
        if self._turned_away:
            return
        if self._counted is not None:
            self.limits.release(self._counted)
            self._counted = None
        super().connection_lost(error)

    def eof_received(self):
        if self._turned_away:
            return False
        return super().eof_received()

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg):
        refused = argument_reply(arg)
        if refused:
            await self.push(refused)
            return
        await super().smtp_MAIL(arg)

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg):
        refused = argument_reply(arg)
        if refused:
            await self.push(refused)
            return
        await super().smtp_RCPT(arg)

    @syntax("DATA")
    async def smtp_DATA(self, arg):
        try:
            await self._data(arg)
        except Exception:
            self._set_post_data_state()  # the failed transaction is over (aiosmtpd answers the error)
            raise

    async def _data(self, arg: str) -> None:
        """aiosmtpd's DATA, with the section read in chunks (:mod:`mas.datasection`)."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        section = DataSection(self.data_size_limit, self.line_length_limit)
        rest = b""
        try:
            while not section.complete:
                chunk = await self._reader.read(READ_SIZE)
                if not chunk:  # the client went away mid-section
                    log.info("Connection lost during DATA")
                    self._writer.close()
                    return
                rest = section.add(chunk)
        except asyncio.CancelledError:
            log.info("Connection lost during DATA")
            self._writer.close()
            raise
        if rest and not self._reader.at_eof():
            self._reader.feed_data(rest)  # the buffer is empty: the next commands are read first
        if section.fault is not None:
            await self.push(section.fault.value)
            self._set_post_data_state()
            return
        self.envelope.content = self.envelope.original_content = section.content()  # bytes (no decode_data)
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    def _getaddr(self, arg: str):
        match = PLAIN_ANGLE_ADDRESS.fullmatch(arg.lstrip())
        rest = match.group(2).lstrip(" \t\r\n") if match else ""
        if match is None or rest.startswith("("):  # a comment after the address: the full parser
            return super()._getaddr(arg)
        address = match.group(1)
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest
