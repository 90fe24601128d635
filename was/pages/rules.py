"""Rules: edit a mailbox's Sieve script; validation errors are shown in place."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

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


@router.get("/rules")
async def rules(page: Page):
    async with page.app.db.connect() as conn:
        boxes = await web.rule_mailboxes(conn, None if page.user["role"] == "admin" else page.user["user_id"])
    return page.app.render(page, "rules.html", boxes=boxes, flash=page.query.get("flash"))


@router.post("/rules/{id}")
async def save_rule(page: Page):
    mailbox_id = path_id(page.params["id"]) or -1
    script = page.form.get("script", "").replace("\r\n", "\n")
    async with page.app.db.connect() as conn:
        boxes = await web.rule_mailboxes(conn, None if page.user["role"] == "admin" else page.user["user_id"])
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
