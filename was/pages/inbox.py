"""The unified inbox: email, fax and voice mail; read, play, reply, forward, file."""

from __future__ import annotations

import asyncio
import html
import uuid

from ums.store import web
from ums.web import HttpError, Router

from .. import mail
from ..outgoing import queue_message
from ..http import Page, Response, path_id, redirect
from ..roles import ALL_ROLES

router = Router(roles=ALL_ROLES)

MEDIA = ("email", "fax", "voice")
FLAGS = {"unseen": "Unread", "flagged": "Flagged", "seen": "Read"}
BODY_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data: cid:{remote}; sandbox"


def viewer_id(page: Page) -> int | None:
    """Admins see every mailbox; everyone else their own."""
    return None if page.user["role"] == "admin" else page.user["user_id"]


async def load(page: Page) -> dict:
    message_id = path_id(page.params["id"])
    if message_id is None:
        raise HttpError(404, "no such message")
    async with page.app.db.connect() as conn:
        found = await web.message(conn, viewer_id(page), message_id)
    if found is None:
        raise HttpError(404, "no such message")
    return found


@router.get("/inbox")
async def inbox(page: Page):
    media = page.query.get("media") if page.query.get("media") in MEDIA else None
    flag = page.query.get("flag") if page.query.get("flag") in FLAGS else None
    folder = page.query.get("folder") or None
    async with page.app.db.connect() as conn:
        messages = await web.inbox(conn, viewer_id(page), media, folder, flag)
        folder_names = await web.folders(conn, viewer_id(page))
    return page.app.render(
        page, "inbox.html", messages=messages, folders=folder_names, media_names=MEDIA, flags=FLAGS,
        media=media, folder=folder, flag=flag, flash=page.query.get("flash"),
    )


@router.get("/inbox/{id}")
async def show(page: Page):
    found = await load(page)
    if "seen" not in found["flags"]:
        async with page.app.db.begin() as conn:
            await web.set_flags(conn, found["id"], found["flags"] + ["seen"])
    parsed = mail.parse(found["raw"]) if found["raw"][:4] not in (b"RIFF", b"II*\x00", b"MM\x00*") else None
    parts = mail.attachments(parsed) if parsed is not None else []
    pages = 0
    if found["media"] == "fax":
        document = mail.fax_document(found["raw"])
        if document and document[0] != "application/pdf":
            pages = await asyncio.to_thread(mail.fax_page_count, document[2])
    _, held_back = mail.body_html(parsed) if parsed is not None and found["media"] == "email" else ("", 0)
    async with page.app.db.connect() as conn:
        folder_names = await web.folders(conn, viewer_id(page))
    return page.app.render(
        page, "message.html", message=found, parts=parts, fax_pages=range(pages), held_back=held_back,
        images=page.query.get("images") == "1", folders=folder_names,
        has_audio=found["media"] == "voice" and mail.voice_audio(found["raw"]) is not None,
    )


@router.get("/inbox/{id}/body")
async def body(page: Page):
    found = await load(page)
    allow = page.query.get("images") == "1"
    markup, _ = mail.body_html(mail.parse(found["raw"]), allow_remote_images=allow)
    document = f'<!doctype html><html><head><meta charset="utf-8"></head><body>{markup}</body></html>'
    response = Response(document)
    response.headers["content-security-policy"] = BODY_CSP.format(remote=" https: http:" if allow else "")
    return response


@router.get("/inbox/{id}/part/{index}")
async def part(page: Page):
    found = await load(page)
    index = page.params["index"]
    if not (index.isascii() and index.isdigit() and len(index) <= 6):
        raise HttpError(404, "no such attachment")
    wanted = mail.part_bytes(mail.parse(found["raw"]), int(index))
    if wanted is None:
        raise HttpError(404, "no such attachment")
    content_type, filename, data = wanted
    response = Response(data, 200, "application/octet-stream")
    safe_name = "".join(ch for ch in filename if ch.isalnum() or ch in "._-") or "attachment"
    response.headers["content-disposition"] = f'attachment; filename="{safe_name}"'
    return response


@router.get("/inbox/{id}/fax/{page}")
async def fax_page(page: Page):
    found = await load(page)
    document = mail.fax_document(found["raw"])
    if document is None:
        raise HttpError(404, "this message has no fax document")
    try:
        number = int(page.params["page"].removesuffix(".png"))
        png = await asyncio.to_thread(mail.fax_page_png, document[2], number)
    except (ValueError, EOFError, OSError):
        raise HttpError(404, "no such fax page") from None
    return Response(png, 200, "image/png")


@router.get("/inbox/{id}/audio")
async def audio(page: Page):
    found = await load(page)
    data = mail.voice_audio(found["raw"])
    if data is None:
        raise HttpError(404, "this message has no audio")
    return Response(data, 200, "audio/wav")


@router.post("/inbox/{id}/flags")
async def flags(page: Page):
    found = await load(page)
    action = page.form.get("action", "")
    current = set(found["flags"])
    changes = {"read": ("seen", True), "unread": ("seen", False), "flag": ("flagged", True),
               "unflag": ("flagged", False)}
    if action not in changes:
        raise HttpError(400, f"unknown action {action!r}")
    flag, on = changes[action]
    current = current | {flag} if on else current - {flag}
    async with page.app.db.begin() as conn:
        await web.set_flags(conn, found["id"], sorted(current))
    return redirect(f"/inbox/{found['id']}" if action != "unread" else "/inbox")


@router.post("/inbox/{id}/move")
async def move(page: Page):
    found = await load(page)
    folder = (page.form.get("new_folder") or page.form.get("folder") or "").strip()
    if not folder or len(folder) > 128:
        raise HttpError(400, "a folder name of 1 to 128 characters is needed")
    async with page.app.db.begin() as conn:
        await web.move(conn, found["id"], folder)
    return redirect(f"/inbox?folder={folder}&flash=Moved+to+{folder}")


@router.get("/inbox/{id}/respond")
async def respond_form(page: Page):
    found = await load(page)
    mode = page.query.get("mode", "reply")
    subject = found["subject"] or ""
    prefix = "Re: " if mode == "reply" else "Fwd: "
    if not subject.lower().startswith(prefix.lower()):
        subject = prefix + subject
    quoted = ""
    if found["media"] == "email":
        original = mail.body_text(mail.parse(found["raw"]))
        quoted = "\n\n" + "\n".join("> " + line for line in original.splitlines())
    channel = page.query.get("channel")
    if channel not in ("email", "fax"):
        channel = "fax" if found["media"] == "fax" and mode == "reply" else "email"
    to = ""
    if mode == "reply":
        if channel == "fax":
            to = mail.reply_number(found["sender"], found["subject"])
        elif "@" in (found["sender"] or ""):
            to = found["sender"]
    return page.app.render(
        page, "respond.html", message=found, mode=mode, subject=subject, quoted=quoted, channel=channel, to=to,
        fax_number=mail.reply_number(found["sender"], found["subject"]) if found["media"] != "email" else "",
    )


async def forwarded_fax_pdf(page: Page, found: dict) -> str:
    """Write the fax's pages as a PDF where the fax channel reads documents; returns its path."""
    document = mail.fax_document(found["raw"])
    if document is None:
        raise HttpError(400, "this fax has no document to forward")
    folder = page.app.ctx.config.var_dir / "spool" / "was"
    path = folder / f"forward-{found['id']}-{uuid.uuid4().hex}.pdf"

    def write() -> None:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_bytes(mail.fax_as_pdf(document))

    try:
        await asyncio.to_thread(write)
    except (OSError, ValueError) as exc:
        raise HttpError(400, f"cannot read the fax document: {exc}") from None
    return str(path)


@router.post("/inbox/{id}/respond")
async def respond(page: Page):
    found = await load(page)
    form = page.form
    channel = form.get("channel", "email")
    recipient = form.get("to", "").strip()
    if channel not in ("email", "fax"):
        raise HttpError(400, "reply by email or fax")
    if not recipient:
        raise HttpError(400, "say who to send it to")
    text = form.get("body", "")
    html_body = mail.sanitize_composed("<p>" + "<br>".join(html.escape(line) for line in text.splitlines()) + "</p>")
    extra = {
        "in_reply_to": found["message_id"] if form.get("mode") == "reply" else None,
        # the original's attachments (fax document, voice mail) go along
        "attach_mailbox_message": found["id"] if found["media"] != "email" or form.get("mode") == "forward" else None,
    }
    if channel == "fax" and form.get("mode") == "forward" and found["media"] == "fax":
        # a fax forwarded as a fax sends its own pages
        extra["document"] = await forwarded_fax_pdf(page, found)
    async with page.app.db.begin() as conn:
        delivery_id = await queue_message(conn, channel, recipient, page.app.now(), form.get("subject", ""),
                                          text, html_body, source=f"was:{page.user['username']}", **extra)
    return redirect(f"/inbox/{found['id']}?flash=Queued+as+delivery+{delivery_id}")
