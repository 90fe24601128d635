"""Read it to me: how a mailbox user wants new messages brought to them in
another medium, kept as a Sieve script with their rules (RFC 5435 ``notify``,
so it is the same thing a user may write by hand).

A UMS ``:options`` string, ``ums-content=MEDIA``, turns a notice into a
conversion of the message itself, for new messages of that medium (``fax``,
``email`` or ``any``); the method's scheme says what it becomes::

    require "enotify";
    notify :options ["ums-content=fax"] "tel:+821012345678";     # read new faxes to my phone
    notify :options ["ums-content=email"] "fax:+8221234567";     # a fax copy of each new email
    notify :options ["ums-content=fax"] "mailto:me@example.com"; # new faxes mailed with their pages and text

A ``tel:`` call reads the message's text (espeak-ng, Korean when the text is
Korean); a ``fax:`` is the email's text as a fax; a ``mailto:`` carries the
fax's pages and its text. MAS queues each as a delivery (:mod:`mas.notify`).
Without the option a ``notify`` stays a short notice. WAS's rules page writes
this script (the mailbox's rule :data:`RULE_NAME`) from a form.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import compile_script, evaluate
from .actions import Notification
from .parser import SieveError

RULE_NAME = "read-to-me"
OPTION = "ums-content"
MEDIA = ("fax", "email", "any")
#: method scheme → the channel the conversion is sent on
SCHEMES = {"tel": "voice", "fax": "fax", "mailto": "email"}


@dataclass(frozen=True)
class Conversion:
    """New messages of ``media`` brought to ``method`` (``tel:…``, ``fax:…``, ``mailto:…``)."""

    media: str
    method: str

    @property
    def channel(self) -> str:
        return SCHEMES[self.method.partition(":")[0].lower()]

    @property
    def target(self) -> str:
        return self.method.partition(":")[2]


def content_of(note: Notification) -> str | None:
    """The medium a ``notify`` converts (its ``ums-content`` option), None for a plain notice."""
    for option in note.options:
        name, _, value = option.partition("=")
        if name.strip().lower() == OPTION:
            return value.strip().lower()
    return None


def converts(note: Notification, media: str) -> bool:
    """Whether ``note`` asks for a new message of ``media`` to be converted."""
    wanted = content_of(note)
    return wanted is not None and wanted in (media, "any")


def script(conversions: list[Conversion]) -> str:
    """The Sieve script of these choices (empty when there are none)."""
    if not conversions:
        return ""
    lines = ['require "enotify";']
    for conversion in conversions:
        if conversion.media not in MEDIA:
            raise SieveError(line=0, column=0, reason=f"unknown medium {conversion.media!r} (fax, email or any)")
        if conversion.method.partition(":")[0].lower() not in SCHEMES or '"' in conversion.method:
            raise SieveError(line=0, column=0, reason=f"not a tel:, fax: or mailto: target: {conversion.method!r}")
        lines.append(f'notify :options ["{OPTION}={conversion.media}"] "{conversion.method}";')
    return "\n".join(lines) + "\n"


def conversions_of(text: str) -> list[Conversion]:
    """The conversions a script asks for whatever the message (its unconditional ``notify`` actions)."""
    if not text.strip():
        return []
    verdict = evaluate([compile_script(text, RULE_NAME)], _AnyMessage(), "")
    return [Conversion(content_of(note), note.method) for note in verdict.notifications
            if content_of(note) in MEDIA and note.method.partition(":")[0].lower() in SCHEMES]


class _AnyMessage:
    """A message without headers: what unconditional actions see."""

    size = 0
    envelope_from = ""

    def header_values(self, name: str) -> list[str]:
        return []

    def folded_header_values(self, name: str) -> list[str]:
        return []

    def addresses(self, name: str) -> list[str]:
        return []
