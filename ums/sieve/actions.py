"""What a Sieve run decides for one message: the :class:`Verdict`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Notification:
    """An ``enotify`` ``notify`` action: tell someone about the message."""

    method: str  # e.g. mailto:owner@example.com, tel:+8210..., or fax:...
    message: str | None = None
    importance: str = "2"
    sender: str | None = None
    #: ``:options`` strings, ``name=value`` (RFC 5435 §3.7), e.g. ``ums-content=fax`` (:mod:`ums.sieve.delivery`)
    options: tuple[str, ...] = ()


@dataclass
class Verdict:
    """The actions a script run took. ``folders`` maps each folder the message
    is filed into to its flags (``keep`` files into INBOX)."""

    folders: dict[str, list[str]] = field(default_factory=dict)
    redirects: list[str] = field(default_factory=list)
    reject: str | None = None
    discarded: bool = False
    #: True when no action cancelled the implicit keep (the message went to INBOX by default)
    implicit_keep: bool = False
    notifications: list[Notification] = field(default_factory=list)
    #: the rules' names or line numbers that fired, for ``ums rules test``
    trace: list[str] = field(default_factory=list)

    def describe(self) -> list[str]:
        """One line per action, as ``ums rules test`` prints them."""
        lines = []
        for folder, flags in self.folders.items():
            verb = "keep" if folder == "INBOX" else f"fileinto {folder!r}"
            lines.append(verb + (f" flags {' '.join(flags)}" if flags else ""))
        lines += [f"redirect {address}" for address in self.redirects]
        if self.reject is not None:
            lines.append(f"reject {self.reject!r}")
        if self.discarded and not self.folders:
            lines.append("discard")
        for note in self.notifications:
            lines.append(f"notify {note.method}" + (f" {note.message!r}" if note.message else ""))
        return lines
