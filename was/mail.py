"""Reading stored mailbox messages for the browser: the body (sanitised by
:mod:`was.sanitizer`), its inline images, the attachments, fax pages as PNG
images drawn at their true aspect, and voice mail as WAV.

Inline images: an HTML body's ``cid:`` references name parts by Content-ID
(RFC 2392); WAS shows them in place from the stored part (raster image types
only, up to :data:`INLINE_IMAGE_BYTES` each) and does not list them again as
attachments. They are written into the body as ``data:`` URLs, not fetched
by URL: the body's frame is sandboxed without ``allow-same-origin``, so its
requests carry no session cookie (and must not), and the frame's policy
allows images from ``data:`` only. Remote images are
dropped unless the reader asks for them, and the body is served in a
sandboxed frame under a Content-Security-Policy that forbids scripts and
remote loads anyway.

Fax pixels are not square: a fine fax is 204×196 dpi, a normal one 204×98 dpi
(every line of it stands for two). Each page is drawn with square pixels at
its horizontal resolution, from the TIFF's XResolution/YResolution, so a
normal-resolution page is not shown at half height.
"""

from __future__ import annotations

import base64
import email
import html
import io
import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from urllib.parse import unquote

from ums.mailindex import html_to_text

from .sanitizer import sanitize_composed, sanitize_html

__all__ = ["sanitize_composed", "sanitize_html"]
#: what an inline (cid:) part may be shown as
INLINE_IMAGE_TYPES = ("image/png", "image/gif", "image/jpeg", "image/webp", "image/bmp")
#: the largest inline image shown in place (a bigger one is only an attachment)
INLINE_IMAGE_BYTES = 2 * 1024 * 1024


@dataclass
class Part:
    index: int
    content_type: str
    filename: str
    size: int


def parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)


def attachments(message: EmailMessage) -> list[Part]:
    """The parts a reader may download: not the body, not the images it shows inline."""
    found = []
    inline = set(inline_images(message)) if _html_body(message) is not None else set()
    for index, part in enumerate(message.walk()):
        if part.is_multipart() or index in inline:
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


def _html_body(message: EmailMessage):
    part = message.get_body(preferencelist=("html",))
    return part if part is not None and part.get_content_subtype() == "html" else None


def inline_images(message: EmailMessage) -> dict[int, tuple[str, str, bytes]]:
    """Part index → (Content-ID without brackets, type, bytes) of each raster image
    part with a Content-ID that is small enough to show in place."""
    found = {}
    for index, part in enumerate(message.walk()):
        content_id = (part.get("content-id") or "").strip().strip("<>").strip()
        if content_id and not part.is_multipart() and part.get_content_type() in INLINE_IMAGE_TYPES:
            data = part.get_payload(decode=True) or b""
            if len(data) <= INLINE_IMAGE_BYTES:
                found[index] = (content_id, part.get_content_type(), data)
    return found


def body_html(message: EmailMessage, allow_remote_images: bool = False) -> tuple[str, int]:
    """The message body as safe HTML (a plain-text body is escaped into <pre>);
    ``cid:`` images are written in as ``data:`` URLs of their parts."""
    part = message.get_body(preferencelist=("html", "plain"))
    if part is None:
        return '<p class="muted">(no text)</p>', 0
    text = _text_of(part)
    if part.get_content_subtype() == "html":
        by_id = {content_id: (kind, data) for content_id, kind, data in reversed(inline_images(message).values())}

        def cid_url(reference: str) -> str | None:
            found = by_id.get(unquote(reference).strip("<>"))
            return f"data:{found[0]};base64,{base64.b64encode(found[1]).decode('ascii')}" if found else None

        return sanitize_html(text, allow_remote_images, cid_url)
    return f'<pre style="white-space:pre-wrap;font-family:inherit">{html.escape(text)}</pre>', 0


def body_text(message: EmailMessage) -> str:
    """A plain-text version of the body, for quoting in replies."""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    text = _text_of(part)
    return html_to_text(text) if part.get_content_subtype() == "html" else text


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


def square_pixels(frame, resolution: tuple[float, float] | None):
    """``frame`` stretched so its pixels are square at its horizontal resolution
    (a 204×98 dpi page gets twice its lines); unchanged when square or unknown."""
    across, down = resolution or (0, 0)
    if not (across and down) or abs(across / down - 1) <= 0.01:
        return frame
    return frame.resize((frame.width, round(frame.height * across / down)))


def _resolution(image) -> tuple[float, float] | None:
    """A page's (XResolution, YResolution) in dpi, from its TIFF tags (each page its own)."""
    tags = getattr(image, "tag_v2", None)
    if tags is not None and 282 in tags and 283 in tags:
        across, down = float(tags[282]), float(tags[283])
        if tags.get(296) == 3:  # ResolutionUnit centimetre
            across, down = across * 2.54, down * 2.54
        return across, down
    return image.info.get("dpi")


def fax_page_png(document: bytes, page: int) -> bytes:
    """One page of a TIFF (or single image) as PNG, at its true aspect (:func:`square_pixels`)."""
    from PIL import Image

    with Image.open(io.BytesIO(document)) as image:
        image.seek(page)
        frame = square_pixels(image.convert("L"), _resolution(image))
        out = io.BytesIO()
        frame.save(out, "PNG", optimize=False)
        return out.getvalue()


def fax_as_pdf(document: tuple[str, str, bytes]) -> bytes:
    """A received fax document as PDF, the form the fax channel sends on (every page kept,
    each at its true aspect; a page that names no resolution is taken as fine, 204×196)."""
    from PIL import Image

    content_type, _, data = document
    if content_type == "application/pdf":
        return data
    pages = []
    with Image.open(io.BytesIO(data)) as image:
        across = (_resolution(image) or (204, 196))[0]
        for number in range(getattr(image, "n_frames", 1)):
            image.seek(number)
            pages.append(square_pixels(image.convert("L"), _resolution(image) or (204, 196)))
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
