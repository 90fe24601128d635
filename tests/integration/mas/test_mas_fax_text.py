"""Fax text (issue #19, must-show 1 at the store, on SQLite and PostgreSQL): a
3-page Korean fax rendered by UMS's own fax path arrives at MAS over SMTP as a
fax gateway sends it; MAS answers 250 before reading it, Tesseract recognises
it page by page afterwards, each page's text is kept in order, and the inbox
search finds the fax by a word of its second page only — ranked and
highlighted. A message stored while MAS was down is read when MAS starts;
the text layer of an email's PDF attachment is read and found too."""

from __future__ import annotations

import time

from tests import korean_fax
from tests.conftest import make_config
from tests.helpers import eventually
from ums.clock import utcnow
from ums.db import connect
from ums.store import mailbox as mailbox_store
from ums.store import web


async def entries_of(db, address: str) -> list[dict]:
    async with db.connect() as conn:
        box = await mailbox_store.by_address(conn, address)
        return await mailbox_store.messages(conn, box["id"]) if box else []


async def pages_of(db, entry_id: int) -> list[str]:
    async with db.connect() as conn:
        return await mailbox_store.fax_text(conn, entry_id)


async def search(db, query: str, user_id=None) -> list[dict]:
    async with db.connect() as conn:
        rows, _ = await web.inbox_page(conn, user_id, web.InboxQuery(search=query, sort=web.RELEVANCE))
        return rows


async def test_a_korean_fax_is_read_after_its_250_and_found_by_a_word_of_its_second_page(mas, smtp_client, tmp_path):
    tiff = await korean_fax.render(tmp_path / "render")
    started = time.monotonic()
    async with smtp_client() as client:
        errors, reply = await client.sendmail("fax-gateway@fax.bank.example", ["fax@bank.example"],
                                              korean_fax.gateway_mail("fax@bank.example", tiff))
    answered = time.monotonic() - started
    assert errors == {} and reply.startswith("2.0.0"), reply
    [entry] = await entries_of(mas.ctx.db, "fax@bank.example")
    assert (entry["media"], entry["pages"]) == ("fax", 3)
    # the 250 came before any page was read: recognising three pages takes seconds
    assert await pages_of(mas.ctx.db, entry["id"]) == [], f"answered after {answered:.2f}s with the text read"

    pages = await eventually(lambda: pages_of(mas.ctx.db, entry["id"]), timeout=90, interval=0.25)
    assert len(pages) == 3
    word = korean_fax.SECOND_PAGE_WORD
    assert word in pages[1] and word not in pages[0] + pages[2]
    assert "고객님께" in pages[0] and "감사합니다" in pages[2]

    async with mas.ctx.db.connect() as conn:  # the whole text, for whoever reads it out
        assert word in await mailbox_store.search_text(conn, entry["id"])
    [found] = await search(mas.ctx.db, word)
    assert found["id"] == entry["id"] and found["media"] == "fax"
    assert f"<mark>{word}</mark>" in found["snippet_html"]
    # a two-syllable word (shorter than a trigram) and a word with its particle are found too
    assert [row["id"] for row in await search(mas.ctx.db, "환불")] == [entry["id"]]
    assert [row["id"] for row in await search(mas.ctx.db, "계좌번호를")] == [entry["id"]]
    assert await search(mas.ctx.db, "대출상환") == []


async def test_a_fax_stored_while_mas_was_down_is_read_when_mas_starts(tmp_path, sqlite_url, start_suite):
    raw = korean_fax.gateway_mail("fax@ums.local", await korean_fax.render(tmp_path / "render"))
    db = connect(sqlite_url)
    async with db.begin() as conn:  # as a MAS killed before its reader got to the fax left it
        box = await mailbox_store.ensure(conn, "fax@ums.local", utcnow())
        entry_id = await mailbox_store.store_message(conn, mailbox_id=box["id"], media="fax", pages=3,
                                                     sender="fax-gateway@fax.bank.example", recipient="fax@ums.local",
                                                     subject=korean_fax.SUBJECT, size=len(raw), raw=raw)
    async with db.connect() as conn:
        assert await mailbox_store.pending_bodies(conn) != []
    await db.close()

    suite = await start_suite(make_config(tmp_path, sqlite_url), ["mas"])
    pages = await eventually(lambda: pages_of(suite.ctx.db, entry_id), timeout=90, interval=0.25)
    assert korean_fax.SECOND_PAGE_WORD in pages[1]
    async with suite.ctx.db.connect() as conn:
        assert await mailbox_store.pending_bodies(conn) == []
    assert suite.services["mas"].info()["documents_read"] == 1


def pdf_with_text(text: str) -> bytes:
    """A one-page PDF whose text layer holds ``text`` (Korean in the Nanum font)."""
    import io

    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(TTFont("NanumGothic", korean_fax.FONTS.font_path))
    out = io.BytesIO()
    page = canvas.Canvas(out)
    page.setFont("NanumGothic", 14)
    page.drawString(72, 720, text)
    page.save()
    return out.getvalue()


async def test_the_text_of_a_pdf_attachment_is_found(mas, smtp_client):
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "kim@customer.example", "sales@bank.example", "서류 보냅니다"
    message.set_content("첨부 확인 부탁드립니다.")
    message.add_attachment(pdf_with_text("대출상환계획서 제출합니다"), maintype="application", subtype="pdf",
                           filename="plan.pdf")
    async with smtp_client() as client:
        await client.sendmail("kim@customer.example", ["sales@bank.example"], message.as_bytes())
    [entry] = await entries_of(mas.ctx.db, "sales@bank.example")
    assert entry["media"] == "email"
    pages = await eventually(lambda: pages_of(mas.ctx.db, entry["id"]), timeout=60, interval=0.25)
    assert pages == ["대출상환계획서 제출합니다"]
    [found] = await search(mas.ctx.db, "상환계획")
    assert found["id"] == entry["id"] and "<mark>상환계획</mark>" in found["snippet_html"]
