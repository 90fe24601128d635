"""Guard: a DATA section read in chunks (:mod:`mas.datasection`) gives what
aiosmtpd's line-at-a-time reading gives — the same message, the same fault
(500 or 552), the same bytes left for the next commands — however the bytes
are split as they arrive."""

from hypothesis import given, settings, strategies as st

from mas.datasection import DataSection, Fault

LINE_LIMIT = 1001


def line_at_a_time(stream: bytes, size_limit: int):
    """aiosmtpd's reading of a section (``smtp_DATA``), a line at a time."""
    lines, size, fault, position = [], 0, None, 0
    while True:
        end = stream.find(b"\r\n", position)
        if end < 0:
            return None  # the section never ends
        line, position = stream[position:end + 2], end + 2
        if line == b".\r\n":
            break
        if fault is None and len(line) - 2 > LINE_LIMIT:
            fault = Fault.TOO_LONG
        size += len(line)
        if fault is None and size_limit and size > size_limit:
            fault = Fault.TOO_MUCH
        if fault is None and len(line) > LINE_LIMIT:
            fault = Fault.TOO_LONG
        if fault is None:
            lines.append(line[1:] if line.startswith(b".") else line)
    return (None if fault else b"".join(lines)), fault, stream[position:]


def in_chunks(stream: bytes, cuts: list[int], size_limit: int):
    section, rest, start = DataSection(size_limit, LINE_LIMIT), b"", 0
    for cut in sorted(set(cuts)) + [len(stream)]:
        if section.complete:
            rest += stream[start:cut]
        elif cut > start:
            rest = section.add(stream[start:cut])
        start = max(start, cut)
    if not section.complete:
        return None
    return (None if section.fault else section.content()), section.fault, rest


LINES = st.sampled_from([b"hello", b"", b".", b"..", b".leading", b"...three", b"\xc7\xd1\xb1\xdb", b"bare\rcr",
                         b"bare\nlf", b"x" * 998, b"x" * 999, b"x" * 1000, b"y" * 1001, b"w" * 1002, b"z" * 1500, b"QUIT"])


@settings(max_examples=3000, deadline=None)
@given(st.lists(LINES, max_size=12), st.lists(LINES, max_size=3), st.lists(st.integers(0, 6000), max_size=12),
       st.sampled_from([0, 50, 1200, 4000]))
def test_chunks_read_as_lines_are(section_lines, after, cuts, size_limit):
    stream = b"".join(line + b"\r\n" for line in section_lines) + b".\r\n" + b"".join(l + b"\r\n" for l in after)
    assert in_chunks(stream, cuts, size_limit) == line_at_a_time(stream, size_limit)


def test_a_closing_dot_split_across_chunks_ends_the_section():
    stream = b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n"
    for cut in range(1, len(stream)):
        assert in_chunks(stream, [cut], 0) == (b"Subject: x\r\n\r\nbody\r\n", None, b"QUIT\r\n")


def test_an_over_long_line_is_refused_once_the_section_is_over_and_nothing_kept():
    section = DataSection(0, LINE_LIMIT)
    assert section.add(b"a" * 5000) == b""
    assert section.fault is Fault.TOO_LONG and len(section.partial) <= 2 and not section.chunks
    assert section.add(b"\r\nmore\r\n.\r\nRSET\r\n") == b"RSET\r\n" and section.complete


def test_the_closing_dot_after_an_over_long_line_ends_the_section_however_it_is_split():
    stream = b"hello\r\n" + b"x" * 1000 + b"\r\nQUIT\r\n.\r\nRSET\r\n"
    for cut in range(len(stream) - 14, len(stream)):
        assert in_chunks(stream, [cut], 0) == (None, Fault.TOO_LONG, b"RSET\r\n"), cut
