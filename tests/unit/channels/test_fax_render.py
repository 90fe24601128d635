"""Fax rendering with the real renderer: Korean text in a Korean font, page breaks, covers."""

from __future__ import annotations

import pytest
from pypdf import PdfReader

from ums.channels.fax.render import (Layout, RenderError, advertising_header, build_pdf, pdf_to_fax,
                                     render_template)

FONTS = ("/usr/share/fonts/truetype/nanum/NanumGothic.ttf", "/usr/share/fonts/truetype/nanum/NanumGothicBold.ttf")


def layout(**kwargs) -> Layout:
    return Layout(*FONTS, **kwargs)


def test_text_template_breaks_pages_on_form_feed_and_keeps_korean(tmp_path):
    template = {"body_text": "첫 장 {{ name }}\n\f둘째 장\n\f셋째 장\n\f넷째 장"}
    build_pdf(template, {"name": "홍길동"}, layout(), tmp_path / "out.pdf")
    reader = PdfReader(tmp_path / "out.pdf")
    assert len(reader.pages) == 4
    assert "첫 장 홍길동" in reader.pages[0].extract_text()
    assert "넷째 장" in reader.pages[3].extract_text()
    fonts = reader.pages[0]["/Resources"]["/Font"]
    base_fonts = {str(fonts[name].get_object()["/BaseFont"]) for name in fonts}
    assert any(name.endswith("+NanumGothic") for name in base_fonts), base_fonts  # embedded subset


def test_advertising_header_on_every_page_and_optional_cover(tmp_path):
    template = {"subject": "안내", "sender_name": "한빛은행", "sender_contact": "02-1",
                "body_html": "<p>하나</p><div class='page-break'><p>둘</p></div>"}
    header = advertising_header(template, "080-123-4567")
    assert header.startswith("(광고) 한빛은행") and "무료수신거부 080-123-4567" in header
    build_pdf(template, {}, layout(header=header, cover={"title": "팩스", "to": "02-555"}), tmp_path / "ad.pdf")
    pages = PdfReader(tmp_path / "ad.pdf").pages
    assert len(pages) == 3  # cover + 2
    assert all("(광고)" in page.extract_text() for page in pages)
    assert "팩스" in pages[0].extract_text()


def test_html_is_escaped_not_interpreted(tmp_path):
    template = {"body_html": "<p>{{ note }}</p>"}
    build_pdf(template, {"note": "<b>1 < 2</b>"}, layout(), tmp_path / "e.pdf")
    assert "<b>1 < 2</b>" in PdfReader(tmp_path / "e.pdf").pages[0].extract_text()


async def test_g4_render_and_bad_inputs(tmp_path):
    document = await render_template({"body_text": "한 장"}, {}, layout(), tmp_path, compression="g4")
    assert document.pages == 1 and document.path.read_bytes()[:4] == b"II*\x00"
    with pytest.raises(RenderError, match="no body"):
        await render_template({"body_text": ""}, {}, layout(), tmp_path / "empty")
    with pytest.raises(RenderError, match="cannot be rendered"):
        await render_template({"body_text": "{{ broken"}, {}, layout(), tmp_path / "broken")
    with pytest.raises(RenderError, match="unknown compression"):
        await pdf_to_fax(tmp_path / "document.pdf", tmp_path / "x.tif", compression="jpeg")
    (tmp_path / "junk.pdf").write_bytes(b"not a pdf")
    with pytest.raises(RenderError):
        await pdf_to_fax(tmp_path / "junk.pdf", tmp_path / "junk.tif")
