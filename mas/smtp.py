"""aiosmtpd's SMTP protocol with envelope checks, a clean end to a failed
transaction, and a fast path for plain envelope addresses.

MAIL and RCPT arguments pass :func:`mas.envelope.argument_reply` before
aiosmtpd reads them (raw non-UTF-8 bytes: 553 5.1.3; control characters:
501), so no such address reaches the handler. A DATA that ends in an error
still ends its transaction: the envelope is reset, so the next MAIL on the
same connection starts afresh and its message reaches only its own
recipients.

aiosmtpd reads every MAIL FROM and RCPT TO address through the full RFC 5322
header grammar of the standard library, which costs more than the rest of a
small message's handling. The common ``<local@domain>`` form (a dot-atom on
both sides) is read here with one regular expression giving exactly what the
full parser gives; anything else (quoted local parts, source routes, the null
sender ``<>``, comments) still goes through aiosmtpd's own parser.
"""

from __future__ import annotations

import re

from aiosmtpd.smtp import SMTP, syntax

from .envelope import argument_reply

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
PLAIN_ANGLE_ADDRESS = re.compile(rf"<({_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*)>(.*)", re.DOTALL)


class InboundSMTP(SMTP):
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
            await super().smtp_DATA(arg)
        except Exception:
            self._set_post_data_state()  # the failed transaction is over (aiosmtpd answers the error)
            raise

    def _getaddr(self, arg: str):
        match = PLAIN_ANGLE_ADDRESS.fullmatch(arg.lstrip())
        rest = match.group(2).lstrip(" \t\r\n") if match else ""
        if match is None or rest.startswith("("):  # a comment after the address: the full parser
            return super()._getaddr(arg)
        address = match.group(1)
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest
