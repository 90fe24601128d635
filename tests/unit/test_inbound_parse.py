"""Guard: MAS's fast reading of a one-part message (only its header through the
parser) gives exactly the message the standard library's full parse gives —
the same headers, unix-from line, payload and defects — for plain mail, and
declines (so the full parse runs) for anything it cannot read alike."""

import email
from email.policy import compat32

from hypothesis import given, settings, strategies as st

from ums.inbound import InboundMessage, _single_part

from tests.unit.mas import mas_samples as samples


def full_parse(raw: bytes):
    return email.message_from_bytes(raw, policy=compat32)


def described(message):
    return (message._headers, message.get_unixfrom(), message.is_multipart(), message.get_payload(),
            message.preamble, message.epilogue, message.get_default_type(), message.get_charset(),
            [type(defect).__name__ for defect in message.defects])


def assert_read_alike(raw: bytes) -> bool:
    """Whether the fast reading applied; when it did, it equals the full parse."""
    fast = _single_part(raw)
    if fast is not None:
        assert described(fast) == described(full_parse(raw))
    return fast is not None


def test_plain_korean_mail_is_read_fast_and_alike():
    for charset in ("utf-8", "euc-kr", "cp949"):
        raw = samples.text_message("김 <kim@customer.example>", "sales@ums.local", "대출 상담 문의",
                                   "안녕하세요.\n수신거부합니다.\n", charset=charset)
        assert assert_read_alike(raw)
        assert assert_read_alike(raw.replace(b"\r\n", b"\n"))


def test_what_the_fast_reading_declines():
    declined = [
        b"\r\nno header at all\r\n",
        b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n",
        b"Subject: x\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nbody\r\n",
        b"Subject: x\r\nnot a header line\r\n\r\nbody\r\n",       # the parser ends the header early
        b"Subject: x\nFrom: y\r\n\r\nbody\r\n",                  # line endings mixed in the header
        b" continued first\r\nSubject: x\r\n\r\nbody\r\n",        # a defect in the header
        b"Subject: x\r\nFrom someone\r\n\r\nbody\r\n",            # an envelope line last: body, to the parser
        b"Subject: no body and no empty line\r\n",
    ]
    for raw in declined:
        assert not assert_read_alike(raw), raw


def test_an_inbound_message_read_fast_is_the_same_message():
    raw = samples.text_message("Kim <kim@customer.example>", "sales@ums.local", "수신거부", "그만 보내세요\n",
                               charset="euc-kr")
    message = InboundMessage(raw, "kim@customer.example", ["sales@ums.local"])
    assert message.subject == "수신거부"
    assert message.text_lines(5) == ["그만 보내세요"]
    assert message.message.as_bytes() == full_parse(raw).as_bytes()


HEADER_LINES = st.sampled_from([
    "Subject: hello", "From: Kim <kim@customer.example>", "To: sales@ums.local", " folded continuation",
    "\tfolded with a tab", "X-Empty:", ": no name", "no colon at all", "From unix-from line",
    "Content-Type: text/plain; charset=euc-kr", "Content-Type: multipart/alternative; boundary=zz",
    "Content-Type: message/delivery-status", "Subject: =?euc-kr?b?vPa9xbDFus4=?=", "X-8bit: \udcb0\udca1",
    "X-Control: a\x0cb", "X-Bare-CR: a\rb", "",
])
BODY_LINES = st.sampled_from(["hello", "", ">quoted", "--zz", "--zz--", "From the body", "\udcc7\udcd1",
                              "line\x0cfeed", ".", "Subject: looks like a header"])
ENDINGS = st.sampled_from(["\r\n", "\n", "\r"])


@settings(max_examples=600, deadline=None)
@given(st.lists(HEADER_LINES, max_size=8), st.lists(BODY_LINES, max_size=6), st.lists(ENDINGS, min_size=1),
       st.booleans())
def test_any_message_is_read_alike_or_declined(headers, body, endings, separated):
    lines = headers + ([""] if separated else []) + body
    text = "".join(line + endings[n % len(endings)] for n, line in enumerate(lines))
    assert_read_alike(text.encode("ascii", "surrogateescape"))


def test_header_look_ups_follow_every_change_to_the_headers():
    message = InboundMessage(b"Subject: first\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n").message
    assert message["subject"] == "first" and message.get_content_charset() == "utf-8"
    message.replace_header("Subject", "replaced")
    assert message["subject"] == "replaced"
    del message["subject"]
    assert message["subject"] is None
    message["Subject"] = "added"
    assert message.get("SUBJECT") == "added"
    message.set_param("charset", "euc-kr")
    assert message.get_content_charset() == "euc-kr"
    message.set_type("text/html")
    assert message.get_content_type() == "text/html"


@settings(max_examples=600, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from(list("Fa:-x \t\x0c.From=?\udcb0")), max_size=12), max_size=6),
       st.sampled_from(["\r\n", "\n"]), st.text(alphabet=st.sampled_from(list("ab\r\n.:")), max_size=20))
def test_any_header_text_is_read_alike_or_declined(lines, eol, body):
    raw = (eol.join(lines) + eol + eol + body).encode("ascii", "surrogateescape")
    assert_read_alike(raw)


@settings(max_examples=600, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('text/plain;charset="UTF-8 EUC-KR*\'=()\r\n\t,')), max_size=40))
def test_the_charset_read_directly_is_the_one_the_standard_library_reads(content_type):
    from ums.mime import content_charset

    message = email.message_from_string(f"Subject: x\nContent-Type: text/plain; {content_type}\n\nbody\n",
                                        policy=compat32)
    assert content_charset(message) == message.get_content_charset()
    message.replace_header("Content-Type", f"text/plain; charset={content_type}")
    assert content_charset(message) == message.get_content_charset()
