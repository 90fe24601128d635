"""Reading the text of documents: every fax's pages recognised with Tesseract
(Korean and English models), a PDF's pages read from its text layer (pypdf).

Never while anyone waits: MAS stores a message carrying a document as
``pending`` (:func:`ums.store.mailbox.store_bodies`) and answers 250 at once;
:class:`DocumentReader`, a task on MAS's event loop, reads the pending ones
afterwards — Tesseract in a subprocess per page (:func:`ums.media.run_tool`),
the image work in a thread — and keeps each page's text with the message and
in its search text. What is pending stays pending in the database, so after a
restart the reader goes on where it stopped. An outbound fax is recognised the
same way from the TIFF its channel rendered (:func:`recognise_sent_fax`): the
image is copied to ``var/spool/ocr`` first, so a restart finds it there.

Tesseract reads each page at the fax's own resolution with page segmentation
mode 4 (one column of lines): the default mode finds no text block on a
mostly white fax page and returns nothing. A document that cannot be read
(damaged, Tesseract missing) is marked ``failed`` and stays found by its body.
"""

from __future__ import annotations

import asyncio
import email
import io
import logging
import shutil
import tempfile
from pathlib import Path

from .clock import utcnow
from .media import require, run_tool
from .mime import walk
from .mailindex import is_document
from .store import mailbox as mailbox_store

log = logging.getLogger("ums.ocr")

LANGUAGES = "kor+eng"
#: seconds Tesseract may take for one page
PAGE_TIMEOUT = 120.0
#: seconds Ghostscript may take to rasterise a PDF without a text layer
RASTER_TIMEOUT = 120.0
#: messages read per database round trip
BATCH = 5
#: seconds between looks for pending messages when nobody said there are some
IDLE_SECONDS = 30.0
#: a PDF page with fewer letters than this has no text layer worth keeping
MIN_PDF_TEXT = 3


def tiff_page_images(data: bytes) -> list[bytes]:
    """Each page of a (multi-page) TIFF as a PNG, for Tesseract (blocking: run it in a thread)."""
    from PIL import Image, ImageSequence

    pages = []
    with Image.open(io.BytesIO(data)) as image:
        for frame in ImageSequence.Iterator(image):
            out = io.BytesIO()
            frame.convert("L").save(out, "PNG", dpi=frame.info.get("dpi", (204, 196)))
            pages.append(out.getvalue())
    return pages


async def recognise_image(png: bytes, languages: str = LANGUAGES) -> str:
    """The text Tesseract reads on one page image."""
    tesseract = require("tesseract", "tesseract-ocr")
    result = await run_tool([tesseract, "stdin", "stdout", "-l", languages, "--psm", "4"], PAGE_TIMEOUT, stdin=png,
                            env={"OMP_THREAD_LIMIT": "1"})  # one core: MAS keeps the other
    return "\n".join(line.rstrip() for line in result.stdout.strip().splitlines())


async def recognise_tiff(data: bytes, languages: str = LANGUAGES) -> list[str]:
    """The text of each page of a TIFF fax, in order."""
    return [await recognise_image(png, languages) for png in await asyncio.to_thread(tiff_page_images, data)]


def pdf_page_texts(data: bytes) -> list[str]:
    """The text layer of each page of a PDF (blocking)."""
    from pypdf import PdfReader

    return [(page.extract_text() or "").strip() for page in PdfReader(io.BytesIO(data)).pages]


async def read_pdf(data: bytes) -> list[str]:
    """A PDF's pages: its text layer, or — a scanned fax has none — its pages recognised."""
    texts = await asyncio.to_thread(pdf_page_texts, data)
    if any(len(text) >= MIN_PDF_TEXT for text in texts):
        return texts
    return await recognise_tiff(await rasterise_pdf(data))


async def rasterise_pdf(data: bytes) -> bytes:
    gs = require("gs", "ghostscript")
    folder = Path(tempfile.mkdtemp(prefix="ums-ocr-"))
    try:
        (folder / "in.pdf").write_bytes(data)
        await run_tool([gs, "-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", "-sDEVICE=tiffg4", "-r204x196",
                        f"-sOutputFile={folder / 'out.tif'}", str(folder / "in.pdf")], RASTER_TIMEOUT)
        return (folder / "out.tif").read_bytes()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def documents(raw: bytes) -> list[tuple[str, bytes]]:
    """The documents a message carries, in order: ``("tiff"|"pdf", bytes)``."""
    found = []
    for part in walk(email.message_from_bytes(raw)):
        if part.is_multipart() or not is_document(part.get_content_type(), part.get_filename()):
            continue
        data = part.get_payload(decode=True) or b""
        kind = "pdf" if data[:5] == b"%PDF-" else "tiff" if data[:4] in (b"II*\x00", b"MM\x00*") else None
        if kind:
            found.append((kind, data))
    return found


async def read_message(raw: bytes) -> list[str]:
    """The text of every page of every document the message carries, in order."""
    pages: list[str] = []
    for kind, data in documents(raw):
        pages += await (recognise_tiff(data) if kind == "tiff" else read_pdf(data))
    return pages


class DocumentReader:
    """Reads the documents of pending messages (and spooled outbound faxes) until
    stopped; :meth:`wake` says new ones were stored."""

    def __init__(self, db, spool: Path, clock=utcnow):
        self.db = db
        self.spool = spool
        self.clock = clock
        self._wake = asyncio.Event()
        self.read = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                busy = await self.read_some()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database fault: try again later, never die
                log.exception("reading documents failed")
                busy = False
            if not busy:
                try:
                    await asyncio.wait_for(self._wake.wait(), IDLE_SECONDS)
                except asyncio.TimeoutError:
                    pass

    async def read_some(self) -> bool:
        """Read one batch of pending messages and spooled faxes; False when there were none."""
        async with self.db.connect() as conn:
            pending = await mailbox_store.pending_bodies(conn, BATCH)
        for body in pending:
            await self.read_body(body["id"], body["raw"])
        spooled = sorted(self.spool.glob("delivery-*.tif"))[:BATCH] if self.spool.is_dir() else []
        for path in spooled:
            await self.read_spooled(path)
        return bool(pending or spooled)

    async def read_body(self, body_id: int, raw: bytes) -> None:
        try:
            pages = await read_message(raw)
        except Exception as error:  # a damaged document, a missing or failing tool (ToolFailed)
            log.warning("cannot read a message's document", extra={"body": body_id, "error": str(error)[:300]})
            pages = None
        async with self.db.begin() as conn:
            if await mailbox_store.store_document_text(conn, body_id, pages, raw, self.clock()):
                self.read += 1

    async def read_spooled(self, path: Path) -> None:
        delivery_id = int(path.stem.split("-", 1)[1])
        try:
            pages = await recognise_tiff(path.read_bytes())
        except FileNotFoundError:  # another reader took it meanwhile
            return
        except Exception as error:
            log.warning("cannot recognise a sent fax", extra={"delivery": delivery_id, "error": str(error)[:300]})
            path.unlink(missing_ok=True)
            return
        async with self.db.begin() as conn:
            await mailbox_store.store_sent_fax_text(conn, delivery_id, pages)
        path.unlink(missing_ok=True)
        self.read += 1


def spool_dir(config) -> Path:
    """Where outbound faxes wait to be recognised."""
    return config.var_dir / "spool" / "ocr"


def recognise_sent_fax(ctx, delivery_id: int, tiff: Path) -> None:
    """The fax channel rendered ``tiff`` for ``delivery_id``: keep a copy to recognise and
    start recognising it in the background (the send does not wait). If this process
    stops first, MAS's :class:`DocumentReader` recognises the copy when it next runs.
    A context without a database (a channel driven alone) keeps nothing."""
    if getattr(ctx, "db", None) is None:
        return
    spool = spool_dir(ctx.config)
    try:
        spool.mkdir(parents=True, exist_ok=True)
        copy = spool / f"delivery-{int(delivery_id)}.tif"
        shutil.copyfile(tiff, copy)
    except OSError as error:
        log.warning("cannot keep a sent fax to recognise", extra={"delivery": delivery_id, "error": str(error)})
        return
    reader = DocumentReader(ctx.db, spool)
    task = asyncio.get_running_loop().create_task(reader.read_spooled(copy))
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


#: recognitions of sent faxes under way (held so they are not collected before they finish)
_BACKGROUND: set[asyncio.Task] = set()
