"""Rules: edit a mailbox's Sieve script; validation errors are shown in place.

Beside it, "how new messages reach me" (read it to me, :mod:`ums.sieve.delivery`):
a form whose choices — read new faxes/emails to a phone, a fax copy of new
emails, new faxes mailed with their pages — are saved as the mailbox's
``read-to-me`` Sieve rule; an empty form removes it. A bad number or address
is refused (400) with the reason under the form, and nothing is saved.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from ums.addresses import normalize, problem
from ums.sieve import delivery as conversions
from ums.store import rules as rule_store
from ums.store import web
from ums.web import HttpError, Router

from ..http import Page, path_id, redirect
from ..roles import ALL_ROLES

router = Router(roles=ALL_ROLES)


def sieve_error(text: str) -> dict | None:
    """The script's first error: message, line, column and the offending line
    (for a caret under the column); ``None`` when the script is valid."""
    from ums import sieve

    try:
        sieve.check(text)
    except sieve.SieveError as exc:
        line, column = exc.fields.get("line", 0), exc.fields.get("column", 0)
        lines = text.splitlines()
        source = lines[line - 1] if 0 < line <= len(lines) else ""
        return {"message": exc.fields.get("reason") or str(exc), "line": line, "column": column, "source": source,
                "caret": " " * max(column - 1, 0) + "^"}
    return None


#: form field → (the channel its value is checked as, the medium converted, the method's scheme)
READ_FIELDS = {"read_phone": ("voice", None, "tel"), "fax_copy_to": ("fax", "email", "fax"),
               "fax_mail_to": ("email", "fax", "mailto")}


def read_form(script: str) -> dict:
    """The form's values from a mailbox's read-to-me rule."""
    form = {"read_media": "fax", **{name: "" for name in READ_FIELDS}}
    for conversion in conversions.conversions_of(script):
        for name, (_channel, media, scheme) in READ_FIELDS.items():
            if conversion.method.lower().startswith(scheme + ":") and media in (None, conversion.media):
                form[name] = conversion.target
                if media is None:
                    form["read_media"] = conversion.media
    return form


def read_choices(form: dict) -> tuple[list[conversions.Conversion], str | None]:
    """The conversions a submitted form asks for, or the reason it is refused."""
    media = form.get("read_media", "fax")
    if media not in conversions.MEDIA:
        return [], f"unknown kind of message {media!r}"
    chosen = []
    for name, (channel, converted, scheme) in READ_FIELDS.items():
        value = (form.get(name) or "").strip()
        if not value:
            continue
        reason = problem(channel, value)
        if reason:
            return [], f"{value!r}: {reason}"
        chosen.append(conversions.Conversion(converted or media, f"{scheme}:{normalize(channel, value)}"))
    return chosen, None


async def own_boxes(page: Page) -> list[dict]:
    """The mailboxes the user may set rules for, each with its Sieve script and read-to-me form."""
    async with page.app.db.connect() as conn:
        boxes = await web.rule_mailboxes(conn, None if page.user["role"] == "admin" else page.user["user_id"])
        scripts = await rule_store.scripts_named(conn, conversions.RULE_NAME, [box["id"] for box in boxes])
    for box in boxes:
        box["read"], box["read_error"] = read_form(scripts.get(box["id"], "")), None
    return boxes


@router.get("/rules")
async def rules(page: Page):
    return page.app.render(page, "rules.html", boxes=await own_boxes(page), flash=page.query.get("flash"))


@router.post("/rules/{id}/read-to-me")
async def save_read_to_me(page: Page):
    mailbox_id = path_id(page.params["id"]) or -1
    boxes = await own_boxes(page)
    if mailbox_id not in {box["id"] for box in boxes}:
        raise HttpError(404, "no such mailbox")
    chosen, reason = read_choices(page.form)
    if reason:
        for box in boxes:
            if box["id"] == mailbox_id:
                box["read"] = {name: page.form.get(name, "") for name in ("read_media", *READ_FIELDS)}
                box["read_error"] = reason
        return page.app.render(page, "rules.html", status=400, boxes=boxes)
    async with page.app.db.begin() as conn:
        if chosen:
            await rule_store.save(conn, conversions.RULE_NAME, conversions.script(chosen), page.app.now(), mailbox_id)
        else:
            await rule_store.remove(conn, conversions.RULE_NAME, mailbox_id)
    return redirect("/rules?flash=Delivery+choices+saved")


@router.post("/rules/{id}")
async def save_rule(page: Page):
    mailbox_id = path_id(page.params["id"]) or -1
    script = page.form.get("script", "").replace("\r\n", "\n")
    boxes = await own_boxes(page)
    if mailbox_id not in {box["id"] for box in boxes}:
        raise HttpError(404, "no such mailbox")
    problem = sieve_error(script)
    if problem:
        for box in boxes:
            if box["id"] == mailbox_id:
                box["script"], box["error"] = script, problem
        return page.app.render(page, "rules.html", status=400, boxes=boxes)
    try:
        async with page.app.db.begin() as conn:
            await web.save_mailbox_rule(conn, mailbox_id, script, page.app.now())
    except IntegrityError:
        raise HttpError(409, "the rule changed meanwhile; reload and try again") from None
    return redirect("/rules?flash=Rules+saved")
