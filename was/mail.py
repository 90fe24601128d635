"""Reading stored mailbox messages for the browser: the body (sanitised), the
attachments, fax pages as PNG images and voice mail as WAV.

Inbound HTML is cleaned with nh3 (no scripts, no event handlers, no
``javascript:`` links, no forms or frames); remote images are dropped unless the
reader asks for them, and the body is served in a sandboxed frame under a
Content-Security-Policy that forbids scripts and remote loads anyway.
"""

from __future__ import annotations

import email
import html
import io
import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage

import nh3

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "center", "code", "col", "colgroup", "dd", "del", "div",
    "dl", "dt", "em", "font", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "li", "ol", "p",
    "pre", "q", "s", "small", "span", "strike", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th",
    "thead", "tr", "u", "ul",
}
ALLOWED_ATTRIBUTES = {
    "*": {"align", "bgcolor", "color", "dir", "lang", "title", "width", "height", "valign"},
    "a": {"href", "name"},
    "img": {"src", "alt", "width", "height"},
    "font": {"face", "size", "color"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "table": {"border", "cellpadding", "cellspacing"},
}
REMOTE_SCHEMES = ("http:", "https:", "//")


def sanitize_html(markup: str, allow_remote_images: bool = False) -> tuple[str, int]:
    """Clean untrusted HTML; returns the safe markup and how many remote images were held back."""
    held_back = 0

    def keep(tag: str, attribute: str, value: str):
        nonlocal held_back
        if tag == "img" and attribute == "src":
            lowered = value.strip().lower()
            if lowered.startswith(REMOTE_SCHEMES) and not allow_remote_images:
                held_back += 1
                return None
            if not lowered.startswith(REMOTE_SCHEMES + ("data:image/", "cid:")):
                return None
        return value

    cleaned = nh3.clean(
        markup, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes={"http", "https", "mailto", "cid", "data"},
        link_rel="noopener noreferrer nofollow", attribute_filter=keep, strip_comments=True,
    )
    return cleaned, held_back


def sanitize_composed(markup: str) -> str:
    """Clean what a user wrote in the composer (remote images allowed: it is outbound mail)."""
    return sanitize_html(markup, allow_remote_images=True)[0]


@dataclass
class Part:
    index: int
    content_type: str
    filename: str
    size: int


def parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)


def attachments(message: EmailMessage) -> list[Part]:
    found = []
    for index, part in enumerate(message.walk()):
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        if disposition == "attachment" or (part.get_filename() and disposition != "inline") or \
                part.get_content_maintype() in ("image", "audio", "application") and index > 0:
            payload = part.get_payload(decode=True) or b""
            found.append(Part(index, part.get_content_type(), part.get_filename() or f"part-{index}", len(payload)))
    return found


def part_bytes(message: EmailMessage, index: int) -> tuple[str, str, bytes] | None:
    for position, part in enumerate(message.walk()):
        if position == index and not part.is_multipart():
            return part.get_content_type(), part.get_filename() or f"part-{index}", part.get_payload(decode=True) or b""
    return None


def _text_of(part) -> str:
    try:
        return part.get_content()
    except (LookupError, UnicodeError, KeyError):
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", "replace")


def body_html(message: EmailMessage, allow_remote_images: bool = False) -> tuple[str, int]:
    """The message body as safe HTML (a plain-text body is escaped into <pre>)."""
    part = message.get_body(preferencelist=("html", "plain"))
    if part is None:
        return '<p class="muted">(no text)</p>', 0
    text = _text_of(part)
    if part.get_content_subtype() == "html":
        return sanitize_html(text, allow_remote_images)
    return f'<pre style="white-space:pre-wrap;font-family:inherit">{html.escape(text)}</pre>', 0


def body_text(message: EmailMessage) -> str:
    """A plain-text version of the body, for quoting in replies."""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    text = _text_of(part)
    if part.get_content_subtype() == "html":
        text = nh3.clean(text, tags=set())
        text = html.unescape(text)
    return text


def first_of_type(message: EmailMessage, *types: str) -> tuple[str, str, bytes] | None:
    for part in message.walk():
        if not part.is_multipart() and part.get_content_type() in types:
            return part.get_content_type(), part.get_filename() or "attachment", part.get_payload(decode=True) or b""
    return None


FAX_TYPES = ("image/tiff", "image/tif", "application/pdf", "image/png")
AUDIO_TYPES = ("audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave")


def fax_document(raw: bytes) -> tuple[str, str, bytes] | None:
    if raw[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff", "fax.tif", raw
    return first_of_type(parse(raw), *FAX_TYPES)


def voice_audio(raw: bytes) -> bytes | None:
    if raw[:4] == b"RIFF":
        return raw
    found = first_of_type(parse(raw), *AUDIO_TYPES)
    return found[2] if found else None


def fax_page_count(document: bytes) -> int:
    from PIL import Image

    with Image.open(io.BytesIO(document)) as image:
        return getattr(image, "n_frames", 1)


def fax_page_png(document: bytes, page: int) -> bytes:
    """One page of a TIFF (or single image) as PNG."""
    from PIL import Image

    with Image.open(io.BytesIO(document)) as image:
        image.seek(page)
        frame = image.convert("L")
        out = io.BytesIO()
        frame.save(out, "PNG", optimize=False)
        return out.getvalue()


def fax_as_pdf(document: tuple[str, str, bytes]) -> bytes:
    """A received fax document as PDF, the form the fax channel sends on (every page kept).

    Fax pixels are not square (204×196 or 204×98 dpi): each page is stretched
    to square pixels at the horizontal resolution so it keeps its proportions."""
    from PIL import Image

    content_type, _, data = document
    if content_type == "application/pdf":
        return data
    pages = []
    with Image.open(io.BytesIO(data)) as image:
        across, down = image.info.get("dpi") or (204, 196)
        for number in range(getattr(image, "n_frames", 1)):
            image.seek(number)
            frame = image.convert("L")
            if down and abs(across / down - 1) > 0.01:
                frame = frame.resize((frame.width, round(frame.height * across / down)))
            pages.append(frame)
    out = io.BytesIO()
    pages[0].save(out, "PDF", save_all=True, append_images=pages[1:], resolution=float(across))
    return out.getvalue()


_NUMBER = re.compile(r"\+?\d[\d ()\-.]{5,}\d")


def reply_number(sender: str, subject: str = "") -> str:
    """The number a fax or voice mail came from, to answer it by fax.

    Gateways name the caller in the sender's local part (``FAX=+8225550100@gw``,
    RFC 3192, or ``+8225550100@gw``) or in the subject ("Fax from +82 2 …");
    an empty string when neither holds a number.
    """
    local = (sender or "").strip().strip("<>").rpartition("@")[0] or (sender or "").strip()
    local = re.sub(r"^(fax|tel|voice)=", "", local, flags=re.IGNORECASE)
    for text in (local, subject or ""):
        found = _NUMBER.search(text)
        if found and (text is not local or _NUMBER.fullmatch(local)):
            return re.sub(r"[ ()\-.]", "", found.group(0))
    return ""
