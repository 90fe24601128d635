"""The SMTP envelope by RFC 5321 (and RFC 6531 for UTF-8 addresses), judged
at the command that carries it: a sender learns at MAIL FROM or RCPT TO, not
at the end of DATA, what can never be delivered.

Each rule is a small function that returns the SMTP reply refusing the
command, or None when the command passes:

* :func:`argument_reply` (MAIL and RCPT, before the address is parsed): raw
  bytes that are not UTF-8 (an EUC-KR address, say) → ``553 5.1.3``; NUL or
  another control character → ``501 5.5.2``.
* :func:`utf8_reply`: an address with non-ASCII characters needs the
  ``SMTPUTF8`` parameter on MAIL FROM (MAS advertises it) → else ``553 5.6.7``.
* :func:`recipient_limit_reply`: more than ``[mas] max_recipients`` distinct
  recipients in one transaction → ``452 4.5.3 Too many recipients`` (RFC 5321
  4.5.3.1.8: the client sends the rest in another transaction).

Recipients are named by :func:`canonical_recipient`: the bare ``Postmaster``
(any case, no domain; RFC 5321 4.5.1) is the postmaster of the first local
domain, and :func:`is_duplicate` says when an RCPT repeats one already
accepted — it is answered 250 and the message is stored once for it.
"""

from __future__ import annotations

import re

#: a character no envelope argument may carry: C0 controls but TAB, DEL, C1 controls
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
#: raw bytes that were not UTF-8: aiosmtpd decodes arguments with ``surrogateescape``
_NOT_UTF8 = re.compile("[\udc80-\udcff]")

NOT_UTF8_REPLY = "553 5.1.3 Address refused: it holds bytes that are not UTF-8"
CONTROL_REPLY = "501 5.5.2 Syntax error: control characters are not allowed in an address"
NEEDS_SMTPUTF8_REPLY = "553 5.6.7 Address refused: non-ASCII addresses need the SMTPUTF8 parameter on MAIL FROM"
TOO_MANY_REPLY = "452 4.5.3 Too many recipients"
DUPLICATE_REPLY = "250 2.1.5 OK (already a recipient: delivered once)"


def argument_reply(arg: str | None) -> str | None:
    """A MAIL or RCPT argument (as aiosmtpd decoded it) that no address can come out of."""
    if not arg:
        return None
    if _NOT_UTF8.search(arg):
        return NOT_UTF8_REPLY
    if _CONTROL.search(arg):
        return CONTROL_REPLY
    return None


def utf8_reply(address: str, smtputf8: bool) -> str | None:
    """RFC 6531 3.5: a non-ASCII address only in a transaction that asked for SMTPUTF8."""
    if smtputf8 or address.isascii():
        return None
    return NEEDS_SMTPUTF8_REPLY


def canonical_recipient(address: str, local_domains: tuple[str, ...]) -> str:
    """The address a recipient is delivered to: ``Postmaster`` without a domain
    (any case) is ``postmaster@<first local domain>``; anything else as given."""
    if "@" not in address and address.casefold() == "postmaster" and local_domains:
        return f"postmaster@{local_domains[0]}"
    return address


def is_postmaster(address: str, local_domains: tuple[str, ...]) -> bool:
    """``postmaster@<a local domain>``, which RFC 5321 4.5.1 says must always be accepted."""
    local, _, domain = address.rpartition("@")
    return local.casefold() == "postmaster" and domain.lower() in local_domains


def is_duplicate(address: str, accepted: list[str]) -> bool:
    """Whether ``address`` repeats a recipient already accepted (compared case-insensitively,
    as mailboxes are)."""
    folded = address.casefold()
    return any(folded == other.casefold() for other in accepted)


def recipient_limit_reply(accepted: list[str], limit: int) -> str | None:
    if len(accepted) >= limit:
        return TOO_MANY_REPLY
    return None
