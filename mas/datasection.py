"""The DATA section of an SMTP transaction read in chunks, to the result
aiosmtpd's line-by-line reading gives.

aiosmtpd reads a section one line at a time (an await, a log call and a few
list operations per line), which costs more than the rest of reading a small
message. :class:`DataSection` takes whatever bytes have arrived and finds the
lines, the closing ``CRLF . CRLF`` and the limits with a few searches over
the chunk, falling back to a line at a time only for a chunk in which a limit
is crossed, so the reply is the one aiosmtpd would give:

- lines end at CRLF only (a bare CR or LF is part of its line);
- the section ends at the first line that is a lone dot;
- a line longer than ``[mas]``'s line limit (CRLF included) makes the
  section "too long" (500), more bytes than the size limit "too much" (552),
  whichever comes first, and the rest of the section is read and discarded;
- the first dot of every line is removed (RFC 5321 4.5.2);
- bytes after the closing dot are the next commands, handed back unread.
"""

from __future__ import annotations

import enum

CRLF = b"\r\n"
END = b"\r\n.\r\n"


class Fault(enum.Enum):
    TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"
    TOO_MUCH = "552 Error: Too much mail data"


class DataSection:
    def __init__(self, size_limit: int | None, line_limit: int):
        self.size_limit = size_limit or 0
        self.line_limit = line_limit
        self.fault: Fault | None = None
        #: complete lines received so far (CRLF included), in chunks
        self.chunks: list[bytes] = []
        #: bytes of a line whose CRLF has not arrived (a stand-in for an over-long one)
        self.partial = b""
        #: bytes of complete lines counted against the size limit
        self.size = 0
        self.complete = False

    def add(self, chunk: bytes) -> bytes:
        """Take the bytes that arrived; returns those after the closing dot (once
        :attr:`complete`, the next commands), else ``b""``."""
        data = self.partial + chunk if self.partial else chunk
        last = data.rfind(CRLF)
        if last < 0:
            self._keep_partial(data)
            return b""
        lines, self.partial = data[:last + 2], data[last + 2:]
        if lines.startswith(b".\r\n"):  # a partial line starts a line (a stand-in never a dot)
            end = 0
        else:
            found = lines.find(END)
            end = found + 2 if found >= 0 else -1
        if end >= 0:
            self.complete = True
            rest = lines[end + 3:] + self.partial
            self.partial = b""
            self._take(lines[:end])
            return rest
        self._take(lines)
        self._keep_partial(self.partial)
        return b""

    def content(self) -> bytes:
        """The message: the section's lines with each line's first dot removed."""
        joined = b"".join(self.chunks)
        if b"\r\n." not in joined and not joined.startswith(b"."):
            return joined
        return (CRLF + joined).replace(b"\r\n.", CRLF)[2:]

    def _take(self, lines: bytes) -> None:
        if not lines or self.fault is not None:
            return
        over_size = self.size_limit and self.size + len(lines) > self.size_limit
        if over_size or (len(lines) > self.line_limit and self._longest(lines) > self.line_limit):
            self._take_line_by_line(lines)
        else:
            self.size += len(lines)
            self.chunks.append(lines)

    def _take_line_by_line(self, lines: bytes) -> None:
        """As aiosmtpd decides: a line whose text alone is over the limit is too
        long before it counts; otherwise it counts (too much?), then its length with CRLF."""
        for text in lines[:-2].split(CRLF):
            if len(text) > self.line_limit:
                self._fail(Fault.TOO_LONG)
                return
            self.size += len(text) + 2
            if self.size_limit and self.size > self.size_limit:
                self._fail(Fault.TOO_MUCH)
                return
            if len(text) + 2 > self.line_limit:
                self._fail(Fault.TOO_LONG)
                return
            self.chunks.append(text + CRLF)

    def _keep_partial(self, partial: bytes) -> None:
        """Keep the start of a line whose CRLF has not arrived; one longer than the line
        limit is too long, and only a stand-in for its tail is kept: no line start (so
        never the closing dot), ending in what may begin the CRLF in the next chunk."""
        if len(partial) <= self.line_limit:
            self.partial = partial
            return
        if self.fault is None:
            self._fail(Fault.TOO_LONG)
        self.partial = b"x" + partial[-1:]

    def _fail(self, fault: Fault) -> None:
        self.fault = fault
        self.chunks = []

    @staticmethod
    def _longest(lines: bytes) -> int:
        return max(map(len, lines.split(CRLF))) + 2
