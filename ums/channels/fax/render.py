"""Fax documents: a template (HTML or text) or an uploaded PDF becomes a TIFF
Class F image — A4, 204×196 dpi, G3 or G4 — that fax gateways and HylaFAX accept.

Text and HTML are laid out into a PDF with reportlab using a TrueType Korean
font (Debian's fonts-nanum), then Ghostscript rasterises the PDF with its fax
devices (``tiffg3``, ``tiffg32d``, ``tiffg4``), which write 1728-pixel-wide
pages as fax machines expect. A page break is a form feed in a text template,
or an element with ``page-break-before``/``break-before: page`` (or the class
``page-break``) in an HTML one.
"""

from __future__ import annotations

import asyncio
import html as html_escape
from dataclasses import dataclass
from pathlib import Path

from lxml import html as lxml_html
from PIL import Image
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer

from ... import advertising
from ...errors import UmsError
from ...media import ToolFailed, fill, require, run_tool
from ...templates import TemplateRenderError

#: Ghostscript's fax devices by the [fax] compression setting.
DEVICES = {"g3": "tiffg3", "g3-2d": "tiffg32d", "g4": "tiffg4"}
RESOLUTION = "204x196"
BLOCK_TAGS = {"p", "div", "h1", "h2", "h3", "h4", "li", "pre", "blockquote", "tr", "address", "section"}
INLINE_TAGS = {"b": "b", "strong": "b", "i": "i", "em": "i", "u": "u", "sub": "sub", "sup": "sup"}


class RenderError(UmsError):
    """Cannot render the fax document: {reason}."""


@dataclass
class FaxDocument:
    """A rendered fax: the TIFF file, its page count and size in bytes."""

    path: Path
    pages: int
    bytes: int


@dataclass
class Layout:
    """What the page layout needs besides the content."""

    font_path: str
    bold_font_path: str
    header: str = ""            # printed at the top of every page (advertising label)
    cover: dict | None = None   # title, to, from lines for an optional cover page


async def render_template(template: dict, variables: dict, layout: Layout, workdir: Path,
                          compression: str = "g3", timeout: float = 60) -> FaxDocument:
    """Fill the template with ``variables`` and render it to a fax TIFF in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    pdf = workdir / "document.pdf"
    await asyncio.to_thread(build_pdf, template, variables, layout, pdf)
    return await pdf_to_fax(pdf, workdir / "document.tif", compression, timeout)


async def pdf_to_fax(pdf: Path, tiff: Path, compression: str = "g3", timeout: float = 60) -> FaxDocument:
    """Rasterise a PDF (or PostScript) file into a TIFF Class F fax, A4, 204×196 dpi."""
    if compression not in DEVICES:
        raise RenderError(reason=f"unknown compression {compression!r}; use one of {', '.join(DEVICES)}")
    gs = require("gs", "ghostscript")
    argv = [gs, "-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", f"-sDEVICE={DEVICES[compression]}",
            f"-r{RESOLUTION}", "-sPAPERSIZE=a4", "-dFIXEDMEDIA", "-dPDFFitPage",
            f"-sOutputFile={tiff}", str(pdf)]
    try:
        await run_tool(argv, timeout)
    except ToolFailed as error:
        raise RenderError(reason=str(error)) from None
    pages = count_pages(tiff)
    if pages == 0:
        raise RenderError(reason=f"{pdf.name} has no pages")
    return FaxDocument(tiff, pages, tiff.stat().st_size)


def count_pages(tiff: Path) -> int:
    try:
        with Image.open(tiff) as image:
            return image.n_frames
    except (OSError, ValueError) as error:
        raise RenderError(reason=f"unreadable TIFF {tiff.name}: {error}") from None


def advertising_header(template: dict, refusal_number: str) -> str:
    """``(광고) sender (contact) · 무료수신거부 080-…`` for the top of each page."""
    sender = " ".join(part for part in (template.get("sender_name"), _bracket(template.get("sender_contact"))) if part)
    return f"{advertising.label_text(sender)} · {advertising.FREE_REFUSAL} {refusal_number}".strip()


def _bracket(text: str | None) -> str:
    return f"({text})" if text else ""


# --- layout -----------------------------------------------------------------------

def build_pdf(template: dict, variables: dict, layout: Layout, pdf: Path) -> None:
    """Lay the filled template out on A4 pages (blocking; run it in a thread)."""
    try:
        _build_pdf(template, variables, layout, pdf)
    except TemplateRenderError as error:
        raise RenderError(reason=str(error)) from None


def _build_pdf(template: dict, variables: dict, layout: Layout, pdf: Path) -> None:
    regular, bold = _register_fonts(layout)
    styles = _styles(regular, bold)
    story = _cover(layout.cover, styles) if layout.cover else []
    if template.get("body_html"):
        story += html_flowables(fill(template["body_html"], variables, html=True), styles)
    else:
        story += text_flowables(fill(template.get("body_text"), variables), styles)
    if not story:
        raise RenderError(reason="the template has no body")
    document = SimpleDocTemplate(str(pdf), pagesize=A4, topMargin=22 * mm, bottomMargin=15 * mm,
                                 leftMargin=18 * mm, rightMargin=18 * mm,
                                 title=template.get("subject") or "fax")

    def decorate(canvas, _document):
        if layout.header:
            canvas.saveState()
            canvas.setFont(bold, 11)
            canvas.drawString(18 * mm, A4[1] - 12 * mm, layout.header)
            canvas.restoreState()

    document.build(story, onFirstPage=decorate, onLaterPages=decorate)


def _register_fonts(layout: Layout) -> tuple[str, str]:
    for name, path in (("UmsFax", layout.font_path), ("UmsFaxBold", layout.bold_font_path)):
        if name not in pdfmetrics.getRegisteredFontNames():
            try:
                pdfmetrics.registerFont(TTFont(name, path))
            except Exception as error:  # reportlab raises its own TTFError or IOError
                raise RenderError(reason=f"cannot load font {path}: {error}") from None
    pdfmetrics.registerFontFamily("UmsFax", normal="UmsFax", bold="UmsFaxBold",
                                  italic="UmsFax", boldItalic="UmsFaxBold")
    return "UmsFax", "UmsFaxBold"


def _styles(regular: str, bold: str) -> dict[str, ParagraphStyle]:
    body = ParagraphStyle("body", fontName=regular, fontSize=12, leading=18, spaceAfter=6, wordWrap="CJK")
    return {
        "body": body,
        "h1": ParagraphStyle("h1", parent=body, fontName=bold, fontSize=20, leading=28, spaceAfter=12),
        "h2": ParagraphStyle("h2", parent=body, fontName=bold, fontSize=16, leading=22, spaceAfter=10),
        "h3": ParagraphStyle("h3", parent=body, fontName=bold, fontSize=14, leading=20),
        "pre": ParagraphStyle("pre", parent=body, fontSize=11, leading=15),
    }


def _cover(cover: dict, styles) -> list:
    story = [Spacer(1, 40 * mm), Paragraph(html_escape.escape(cover.get("title") or "FAX"), styles["h1"])]
    for label in ("to", "from", "date", "note"):
        if cover.get(label):
            story.append(Paragraph(f"<b>{label.title()}:</b> {html_escape.escape(str(cover[label]))}", styles["body"]))
    story.append(PageBreak())
    return story


def text_flowables(text: str, styles) -> list:
    """Plain text: one paragraph per line, a form feed starts a new page."""
    story: list = []
    for number, page in enumerate(text.split("\f")):
        if number:
            story.append(PageBreak())
        for line in page.splitlines():
            if line.strip():
                story.append(Paragraph(html_escape.escape(line).replace("  ", "&nbsp; "), styles["body"]))
            else:
                story.append(Spacer(1, 6))
    return story


def html_flowables(markup: str, styles) -> list:
    """HTML: headings and block elements become paragraphs; inline bold/italic kept."""
    if not markup.strip():
        return []
    root = lxml_html.fragment_fromstring(markup, create_parent="div")
    story: list = []
    _walk(root, story, styles)
    return story


def _walk(element, story: list, styles) -> None:
    if element.text and element.text.strip():
        story.append(Paragraph(html_escape.escape(element.text.strip()), styles["body"]))
    for child in element:
        if not isinstance(child.tag, str) or child.tag in ("script", "style", "head", "title"):
            pass
        elif _breaks_before(child):
            story.append(PageBreak())
            _block(child, story, styles)
        else:
            _block(child, story, styles)
        if _breaks_after(child):
            story.append(PageBreak())
        if child.tail and child.tail.strip():
            story.append(Paragraph(html_escape.escape(child.tail.strip()), styles["body"]))


def _block(element, story: list, styles) -> None:
    tag = element.tag
    if tag in ("br", "hr"):
        story.append(Spacer(1, 8))
    elif tag in ("table", "tbody", "thead", "ul", "ol", "body", "html", "article", "main") or (
        tag in ("div", "section") and any(child.tag in BLOCK_TAGS for child in element if isinstance(child.tag, str))
    ):
        _walk(element, story, styles)
    elif tag == "tr":
        cells = [_inline(cell).strip() for cell in element if isinstance(cell.tag, str)]
        story.append(Paragraph(" &nbsp;|&nbsp; ".join(cells), styles["body"]))
    else:
        markup = _inline(element).strip()
        if markup:
            prefix = "• " if tag == "li" else ""
            story.append(Paragraph(prefix + markup, styles.get(tag, styles["body"])))


def _inline(element) -> str:
    """An element's content as reportlab paragraph markup (escaped text, simple tags)."""
    parts = [html_escape.escape(element.text or "")]
    for child in element:
        if isinstance(child.tag, str):
            if child.tag == "br":
                parts.append("<br/>")
            else:
                inner = _inline(child)
                mapped = INLINE_TAGS.get(child.tag)
                parts.append(f"<{mapped}>{inner}</{mapped}>" if mapped else inner)
        parts.append(html_escape.escape(child.tail or ""))
    return "".join(parts)


def _style_of(element) -> str:
    return (element.get("style") or "").replace(" ", "").lower()


def _breaks_before(element) -> bool:
    style = _style_of(element)
    return ("page-break-before:always" in style or "break-before:page" in style
            or "page-break" in (element.get("class") or "").split())


def _breaks_after(element) -> bool:
    style = _style_of(element)
    return "page-break-after:always" in style or "break-after:page" in style
