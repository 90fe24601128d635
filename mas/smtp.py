"""aiosmtpd's SMTP protocol with a fast path for plain envelope addresses.

aiosmtpd reads every MAIL FROM and RCPT TO address through the full RFC 5322
header grammar of the standard library, which costs more than the rest of a
small message's handling. The common ``<local@domain>`` form (a dot-atom on
both sides) is read here with one regular expression giving exactly what the
full parser gives; anything else (quoted local parts, source routes, the null
sender ``<>``, comments) still goes through aiosmtpd's own parser.
"""

from __future__ import annotations

import re

from aiosmtpd.smtp import SMTP

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
PLAIN_ANGLE_ADDRESS = re.compile(rf"<({_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*)>(.*)", re.DOTALL)


class InboundSMTP(SMTP):
    def _getaddr(self, arg: str):
        match = PLAIN_ANGLE_ADDRESS.fullmatch(arg.lstrip())
        rest = match.group(2).lstrip(" \t\r\n") if match else ""
        if match is None or rest.startswith("("):  # a comment after the address: the full parser
            return super()._getaddr(arg)
        address = match.group(1)
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest
