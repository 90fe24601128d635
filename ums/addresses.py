"""Channel addresses: checking them per channel, and normalising them so
suppression and matching compare like with like.

The contract (:func:`problem`, :func:`check`, :func:`is_valid`):

* ``email`` — exactly one RFC 5321/5322 addr-spec, ``local@domain``: a
  dot-atom local part of at most 64 octets (UTF-8 allowed, as SMTPUTF8
  does), a domain of dot-separated labels (letters, digits, inner hyphens;
  UTF-8 allowed for IDNs) with at least two labels, at most 254 octets in
  all. No display name, no angle brackets, no quoted local part, no domain
  literal, no comma- or semicolon-separated list, no whitespace and no
  control character anywhere — so a recipient can never smuggle a header
  (``a@x.example\\r\\nBcc: …``) or a second address.
* ``fax`` and ``voice`` — an E.164-style number: an optional leading ``+``
  then 3 to 15 digits, which may be grouped by spaces, hyphens, dots or
  parentheses (``+82 2 555 0100``, ``02-555-0100``). No letters, no other
  characters. (A ``sip:`` URI is not a recipient a client may give: the SIP
  driver calls ``[voice] sip_uri`` with the number, so calls go only where
  the operator configured.)

Surrounding spaces are ignored; control characters (CR, LF, NUL, …) are
refused wherever they are.
"""

from __future__ import annotations

import re

from .errors import UmsError

CHANNELS = ("email", "fax", "voice")

#: RFC 5322 atext, plus any non-ASCII character (RFC 6531 UTF8-non-ascii)
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]+"
_LOCAL = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9\-\u0080-\U0010ffff]{1,63}(?<!-)$")
_NUMBER = re.compile(r"^\+?[0-9 ().\-]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MIN_DIGITS, MAX_DIGITS = 3, 15


class BadAddress(UmsError):
    """{address!r} is not a valid {channel} address: {reason}."""


def _email_problem(address: str) -> str | None:
    if re.search(r"\s", address):
        return "it holds a space"
    if address.count("@") != 1:
        return "it must be one address of the form name@domain"
    local, domain = address.split("@")
    if not local or not _LOCAL.match(local):
        return "the part before @ is not a plain mailbox name"
    if len(local.encode("utf-8")) > 64:
        return "the part before @ is longer than 64 bytes"
    if len(address.encode("utf-8")) > 254:
        return "it is longer than 254 bytes"
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return "the domain is not a host name such as example.com"
    return None


def _number_problem(address: str) -> str | None:
    if not _NUMBER.match(address) or "+" in address[1:]:
        return "a number has only digits, an optional leading +, and spaces, hyphens, dots or parentheses"
    digits = len(re.sub(r"\D", "", address))
    if not MIN_DIGITS <= digits <= MAX_DIGITS:
        return f"a number has {MIN_DIGITS} to {MAX_DIGITS} digits, not {digits}"
    return None


def problem(channel: str, address) -> str | None:
    """Why ``address`` is no good for ``channel`` (None when it is fine)."""
    if channel not in CHANNELS:
        return f"unknown channel {channel!r} (email, fax or voice)"
    if not isinstance(address, str):
        return "it is not text"
    if _CONTROL.search(address):
        return "it holds a control character (such as a line break)"
    address = address.strip()
    if not address:
        return "it is empty"
    return _email_problem(address) if channel == "email" else _number_problem(address)


def check(channel: str, address) -> str:
    """``address`` without surrounding spaces, or :class:`BadAddress` saying why not."""
    reason = problem(channel, address)
    if reason is not None:
        raise BadAddress(address=address if isinstance(address, str) else str(address)[:80],
                         channel=channel, reason=reason)
    return address.strip()


def is_valid(channel: str, address: str) -> bool:
    return problem(channel, address) is None


def normalize(channel: str, address: str) -> str:
    """Lower-case email addresses; keep only digits (and a leading +) of numbers."""
    address = address.strip()
    if channel == "email":
        return address.lower()
    digits = re.sub(r"[^\d+]", "", address)
    return digits[:1] + digits[1:].replace("+", "")
