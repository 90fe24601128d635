"""What the mailbox indexes of a message: its searchable text and its thread."""

from __future__ import annotations

from email.message import EmailMessage

from ums import mailindex


def test_the_text_of_plain_or_html_bodies_in_any_charset():
    message = EmailMessage()
    message["From"], message["Subject"] = "=?euc-kr?b?yKux5rW/?= <Hong@Example.com>", "Card"
    message.set_content("연회비 환불을 요청합니다", charset="euc-kr")
    # sender and subject first, decoded, then the body; all case-folded
    assert mailindex.searchable_text(message.as_bytes()) == "홍길동 <hong@example.com> card 연회비 환불을 요청합니다"
    html_only = EmailMessage()
    html_only.set_content("")
    html_only.add_alternative("<p>Card <B>FEE</B></p><script>secret()</script><style>p{}</style>", subtype="html")
    assert mailindex.searchable_text(html_only.as_bytes()) == "card fee"


def test_attachments_are_not_searched_and_broken_bytes_are_no_error():
    message = EmailMessage()
    message.set_content("body")
    message.add_attachment(b"attached words", maintype="text", subtype="plain", filename="a.txt")
    assert mailindex.searchable_text(message.as_bytes()) == "body"
    assert not mailindex.has_documents(message.as_bytes())
    # an unknown charset falls back (here to cp949); bytes that are no message are their own text
    assert mailindex.searchable_text(b"Content-Type: text/plain; charset=x-unknown\r\n\r\n\xb0\xa1 ok") == "가 ok"
    assert mailindex.searchable_text(b"\xff\xfe\x00garbage") == "ÿþ garbage"  # a NUL is white space


def test_thread_keys_follow_references_then_in_reply_to():
    root = mailindex.thread_headers(b"Message-ID: <a@x>\r\n\r\n")
    assert mailindex.thread_key(root, {}) == "<a@x>"
    answer = mailindex.thread_headers(b"Message-ID: <c@x>\r\nIn-Reply-To: <b@x>\r\n\r\n")
    assert mailindex.thread_key(answer, {"<b@x>": "<a@x>"}) == "<a@x>"
    assert mailindex.thread_key(answer, {}) == "<b@x>"
    referring = mailindex.thread_headers(b"Message-ID: <d@x>\r\nIn-Reply-To: <c@x>\r\nReferences: <a@x>\r\n <b@x> <c@x>\r\n\r\n")
    assert mailindex.thread_key(referring, {}) == "<a@x>"
    assert mailindex.thread_key(mailindex.thread_headers(b"Subject: none\r\n\r\n"), {}) is None


def test_a_pdf_or_tiff_attachment_is_a_document_read_later():
    message = EmailMessage()
    message.set_content("see the attached form")
    message.add_attachment(b"%PDF-1.4 ...", maintype="application", subtype="pdf", filename="form.pdf")
    assert mailindex.extract(message.as_bytes()) == ("see the attached form", True)
    fax = EmailMessage()
    fax.set_content("fax")
    fax.add_attachment(b"II*\x00", maintype="application", subtype="octet-stream", filename="FAX.TIF")
    assert mailindex.has_documents(fax.as_bytes())
    assert mailindex.with_documents("fax", ["첫째  페이지\n", "둘째 PAGE"]) == "fax 첫째 페이지 둘째 page"


def test_a_query_is_read_as_words_and_matches_are_marked_in_escaped_html():
    assert mailindex.search_words("  환불  Card card\t") == ["환불", "card"]
    assert mailindex.search_words(None) == []
    assert mailindex.highlight("<b>환불을</b> 요청 card", ["환불", "card"]) == (
        "&lt;b&gt;<mark>환불</mark>을&lt;/b&gt; 요청 <mark>card</mark>")
    # the longer of two overlapping words wins; no words, nothing marked
    assert mailindex.highlight("환불신청서", ["환불", "환불신청서"]) == "<mark>환불신청서</mark>"
    assert mailindex.highlight("a<b", []) == "a&lt;b"
