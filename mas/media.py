"""Recognising fax and voice mail from gateways, and measuring them.

A fax-to-email gateway sends the fax as a TIFF (or PDF) attachment; a
voicemail-to-email gateway sends the recording as WAV (or another audio
format). WAS shows fax pages as images and plays voice mail, so MAS stores
the page count and the duration with the message.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

log = logging.getLogger("ums.mas.media")

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
_AUDIO_EXTENSIONS = (".wav", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".flac", ".amr", ".gsm")


@dataclass(frozen=True)
class Media:
    """What a gateway mail carries: ``fax`` with pages, or ``voice`` with seconds."""

    kind: str  # fax or voice
    pages: int | None = None
    duration: float | None = None


def tiff_pages(data: bytes) -> int:
    """Pages in a (multi-page) TIFF, counted by walking its IFD chain."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return getattr(image, "n_frames", 1)


def pdf_pages(data: bytes) -> int:
    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(data)).pages)


def audio_duration(data: bytes) -> float:
    """Seconds of audio in WAV (any codec: PCM, μ-law, GSM…) or another format mutagen reads."""
    import mutagen

    audio = mutagen.File(io.BytesIO(data))
    if audio is None or not getattr(audio, "info", None):
        raise ValueError("not a recognised audio format")
    return round(float(audio.info.length), 3)


def is_fax(content_type: str, filename: str, data: bytes) -> str | None:
    name = filename.lower()
    if content_type in ("image/tiff", "image/tif", "image/x-tiff") or name.endswith((".tif", ".tiff")):
        return "tiff"
    if data[:4] in _TIFF_MAGIC:
        return "tiff"
    if content_type == "application/pdf" or name.endswith(".pdf") or data[:5] == b"%PDF-":
        return "pdf"
    return None


def is_audio(content_type: str, filename: str, data: bytes) -> bool:
    if content_type.startswith("audio/"):
        return True
    if filename.lower().endswith(_AUDIO_EXTENSIONS):
        return True
    return data[:4] == b"RIFF" and data[8:12] == b"WAVE"


def recognise(attachments: list[tuple[str, str, bytes]], subject: str = "") -> Media | None:
    """Fax or voice mail from a message's attachments, else None.

    Audio wins over a document (a voicemail may carry a PDF transcript); a PDF
    counts as a fax only when the subject says so, since ordinary replies carry
    PDFs too. An unreadable attachment is still recognised, without a count.
    """
    for content_type, filename, data in attachments:
        if is_audio(content_type, filename, data):
            return Media("voice", duration=_measure(audio_duration, data, filename))
    lowered = subject.lower()
    for content_type, filename, data in attachments:
        kind = is_fax(content_type, filename, data)
        if kind == "tiff":
            return Media("fax", pages=_measure(tiff_pages, data, filename))
        if kind == "pdf" and ("fax" in lowered or "팩스" in subject):
            return Media("fax", pages=_measure(pdf_pages, data, filename))
    return None


def _measure(function, data: bytes, filename: str):
    try:
        return function(data)
    except Exception as exc:  # a damaged attachment is still worth storing
        log.warning("cannot measure attachment", extra={"file": filename, "error": str(exc)})
        return None
