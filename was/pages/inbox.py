"""The unified inbox: email, fax and voice mail; read, play, reply, forward, file.

Who sees what: an admin every mailbox (with a mailbox column and filter),
everyone else the mailboxes assigned to them (``ums mailbox assign``, the
Users page) — a message of another mailbox is a 404. The list pages through
any number of messages (``?page=``, :data:`PER_PAGE` a page, with the count),
sorts (``?sort=received|sender|subject|size&dir=asc|desc``) and searches
sender, subject, body text, fax pages and PDF text (``?q=``, every word must
match; Korean too, inside words: :mod:`ums.store.web`), best matches first
unless another order is asked for, each with its matches marked in a snippet.
A fax shows the text recognised on each page under that page (:mod:`ums.ocr`). A message shows its conversation (References and
In-Reply-To); a reply or forward is sent from the message's mailbox and filed
in its Sent folder, where its delivery state (queued, sent, bounced…) is read
live from the delivery (``/inbox/states``, polled by the page).

Bad query parameters are a 400 with the reason.
"""

from __future__ import annotations

import asyncio
import html
import uuid
from urllib.parse import quote_plus, urlencode

from ums import addresses, mailindex
from ums.store import mailbox as mailbox_store
from ums.store import web
from ums.web import HttpError, Router

from .. import mail
from ..outgoing import send_personal
from ..http import Page, Response, json_response, path_id, redirect
from ..roles import ALL_ROLES

router = Router(roles=ALL_ROLES)

MEDIA = ("email", "fax", "voice")
FLAGS = {"unseen": "Unread", "flagged": "Flagged", "seen": "Read"}
SORT_NAMES = {"received": "Received", "sender": "From", "subject": "Subject", "size": "Size", "relevance": "Relevance"}
PER_PAGE = 50
MAX_SEARCH = 200
BODY_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:{remote}; sandbox"


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


def _choice(page: Page, name: str, allowed) -> str | None:
    value = page.query.get(name) or None
    if value is not None and value not in allowed:
        raise HttpError(400, f"{name} must be one of {', '.join(allowed)}")
    return value


def _page_number(page: Page) -> int:
    text = page.query.get("page") or "1"
    if not (text.isascii() and text.isdigit()) or len(text) > 7 or int(text) < 1:
        raise HttpError(400, "page must be a whole number from 1")
    return int(text)


def inbox_query(page: Page) -> web.InboxQuery:
    """The listing the query string asks for (a 400 for a value that cannot be)."""
    search = (page.query.get("q") or "").strip()
    if len(search) > MAX_SEARCH:
        raise HttpError(400, f"a search may be at most {MAX_SEARCH} characters")
    for name in ("folder", "mailbox", "thread"):
        if len(page.query.get(name) or "") > 320:
            raise HttpError(400, f"{name} is too long")
    number = _page_number(page)
    return web.InboxQuery(
        media=_choice(page, "media", MEDIA), flag=_choice(page, "flag", FLAGS),
        folder=page.query.get("folder") or None, mailbox=page.query.get("mailbox") or None,
        thread=page.query.get("thread") or None, search=search or None,
        sort=_choice(page, "sort", SORT_NAMES) or (web.RELEVANCE if search else "received"),
        descending=(_choice(page, "dir", ("asc", "desc")) or "desc") == "desc",
        offset=(number - 1) * PER_PAGE, limit=PER_PAGE,
    )


def link(request: Page, **changes) -> str:
    """This listing's URL with ``changes`` (None drops a parameter; any change but the page goes to page 1)."""
    values = {key: value for key, value in request.query.items() if key != "flash"}
    if "page" not in changes:
        values.pop("page", None)
    values.update(changes)
    kept = {key: value for key, value in values.items() if value not in (None, "")}
    return "/inbox" + ("?" + urlencode(kept) if kept else "")


@router.get("/inbox")
async def inbox(page: Page):
    wanted = inbox_query(page)
    async with page.app.db.connect() as conn:
        messages, total = await web.inbox_page(conn, viewer_id(page), wanted)
        folder_names = await web.folders(conn, viewer_id(page))
        boxes = await web.mailbox_addresses(conn, viewer_id(page))
    number = wanted.offset // PER_PAGE + 1
    last = max(1, -(-total // PER_PAGE))
    if number > last and total:
        raise HttpError(404, f"there are only {last} pages")
    return page.app.render(
        page, "inbox.html", messages=messages, folders=folder_names, media_names=MEDIA, flags=FLAGS,
        media=wanted.media, folder=wanted.folder, flag=wanted.flag, flash=page.query.get("flash"),
        total=total, first=wanted.offset + 1 if total else 0, last_shown=wanted.offset + len(messages),
        page_number=number, last_page=last, wanted=wanted, sorts=SORT_NAMES, mailboxes=boxes,
        show_mailbox=page.user["role"] == "admin" or len(boxes) > 1,
        sent_view=wanted.folder == web.SENT, link=lambda **changes: link(page, **changes),
    )


@router.get("/inbox/states")
async def states(page: Page):
    """The delivery state of Sent entries the viewer may see: ``?ids=1,2,3`` →
    ``{"1": {"state": "sent", "detail": null}, …}``."""
    text = page.query.get("ids") or ""
    ids = [path_id(part) for part in text.split(",") if part]
    if len(ids) > 500 or None in ids:
        raise HttpError(400, "ids must be up to 500 message ids separated by commas")
    async with page.app.db.connect() as conn:
        found = await web.delivery_states(conn, viewer_id(page), ids)
    return json_response({str(key): value for key, value in found.items()})


def parsed_email(found: dict):
    """The stored message parsed, or None for a bare fax TIFF or WAV."""
    return mail.parse(found["raw"]) if found["raw"][:4] not in (b"RIFF", b"II*\x00", b"MM\x00*") else None


def shows_body(found: dict) -> bool:
    """An email, or a copy in Sent of what was written (a fax reply too), shows its text."""
    return found["media"] == "email" or found["classification"] == "sent"


@router.get("/inbox/{id}")
async def show(page: Page):
    found = await load(page)
    if "seen" not in found["flags"]:
        async with page.app.db.begin() as conn:
            await web.set_flags(conn, found["id"], found["flags"] + ["seen"])
    parsed = parsed_email(found)
    parts = mail.attachments(parsed) if parsed is not None else []
    pages = 0
    if found["media"] == "fax" and found["classification"] != "sent":
        document = mail.fax_document(found["raw"])
        if document and document[0] != "application/pdf":
            pages = await asyncio.to_thread(mail.fax_page_count, document[2])
    _, held_back = mail.body_html(parsed) if parsed is not None and shows_body(found) else ("", 0)
    async with page.app.db.connect() as conn:
        folder_names = await web.folders(conn, viewer_id(page))
        conversation = await web.thread(conn, viewer_id(page), found["thread_key"]) if found["thread_key"] else []
        box = await mailbox_store.get(conn, found["mailbox_id"]) if found["mailbox_id"] else None
        sent = (await web.delivery_states(conn, viewer_id(page), [found["id"]])).get(found["id"])
        page_texts = await mailbox_store.fax_text(conn, found["id"]) if found["media"] == "fax" else []
        text_state = await mailbox_store.text_state(conn, found["body_id"])
    return page.app.render(
        page, "message.html", message=found, parts=parts, fax_pages=range(pages), held_back=held_back,
        page_texts=page_texts, text_state=text_state,
        images=page.query.get("images") == "1", folders=folder_names, shows_body=shows_body(found),
        has_audio=found["media"] == "voice" and mail.voice_audio(found["raw"]) is not None,
        conversation=conversation if len(conversation) > 1 else [], mailbox=box, sent=sent,
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


def part_index(page: Page) -> int:
    index = page.params["index"]
    if not (index.isascii() and index.isdigit() and len(index) <= 6):
        raise HttpError(404, "no such attachment")
    return int(index)


@router.get("/inbox/{id}/part/{index}")
async def part(page: Page):
    found = await load(page)
    wanted = mail.part_bytes(mail.parse(found["raw"]), part_index(page))
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


def respond_mode(value: str | None) -> str:
    if value not in (None, "", "reply", "forward"):
        raise HttpError(400, "mode must be reply or forward")
    return value or "reply"


@router.get("/inbox/{id}/respond")
async def respond_form(page: Page):
    found = await load(page)
    mode = respond_mode(page.query.get("mode"))
    subject = found["subject"] or ""
    prefix = "Re: " if mode == "reply" else "Fwd: "
    if not subject.lower().startswith(prefix.lower()):
        subject = prefix + subject
    quoted = ""
    if shows_body(found):
        original = mail.body_text(mail.parse(found["raw"]))
        quoted = "\n\n" + "\n".join("> " + line for line in original.splitlines())
    channel = page.query.get("channel")
    if channel not in ("email", "fax"):
        channel = "fax" if found["media"] == "fax" and mode == "reply" else "email"
    to = ""
    if mode == "reply":
        if found["classification"] == "sent":
            to = found["recipient"] or ""
        elif channel == "fax":
            to = mail.reply_number(found["sender"], found["subject"])
        elif "@" in (found["sender"] or ""):
            to = found["sender"]
    async with page.app.db.connect() as conn:
        box = await mailbox_store.get(conn, found["mailbox_id"]) if found["mailbox_id"] else None
    return page.app.render(
        page, "respond.html", message=found, mode=mode, subject=subject, quoted=quoted, channel=channel, to=to,
        fax_number=mail.reply_number(found["sender"], found["subject"]) if found["media"] != "email" else "",
        mailbox=box,
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
    """Send a reply or forward from the message's mailbox; its copy goes to that mailbox's Sent folder."""
    found = await load(page)
    form = page.form
    channel = form.get("channel", "email")
    mode = respond_mode(form.get("mode"))
    if channel not in ("email", "fax"):
        raise HttpError(400, "reply by email or fax")
    recipient = addresses.check(channel, form.get("to", ""))
    text = form.get("body", "")
    html_body = mail.sanitize_composed("<p>" + "<br>".join(html.escape(line) for line in text.splitlines()) + "</p>")
    extra = {
        # the original's attachments (fax document, voice mail) go along
        "attach_mailbox_message": found["id"] if found["media"] != "email" or mode == "forward" else None,
    }
    if mode == "reply" and found["message_id"]:
        earlier = mailindex.thread_headers(bytes(found["raw"])).references
        extra.update(in_reply_to=found["message_id"], references=" ".join((*earlier, found["message_id"])))
    if channel == "fax" and mode == "forward" and found["media"] == "fax":
        # a fax forwarded as a fax sends its own pages
        extra["document"] = await forwarded_fax_pdf(page, found)
    async with page.app.db.begin() as conn:
        box = await mailbox_store.get(conn, found["mailbox_id"]) if found["mailbox_id"] else None
        sent = await send_personal(conn, page.app.ctx.config, channel, recipient, page.app.now(), box,
                                   form.get("subject", ""), text, html_body,
                                   source=f"was:{page.user['username']}", **extra)
    note = f"Queued as delivery {sent.delivery_id}" + (f" from {box['address']}; see Sent" if box else "")
    return redirect(f"/inbox/{found['id']}?flash=" + quote_plus(note))
