"""The HTML email composer: rich text (sanitised on the server), template
variables, preview, a test send to oneself, send, and save as a template.

A message sent to one person is one-to-one mail (:mod:`was.outgoing`): from
one of the writer's mailboxes when they pick it (filed in its Sent folder,
sent From and Reply-To it), else from the site's sender; a mailbox that is
not the writer's is refused."""

from __future__ import annotations

from jinja2 import TemplateError
from jinja2.sandbox import SandboxedEnvironment

from ums.addresses import is_valid
from ums.mailindex import html_to_text
from ums.store import mailbox as mailbox_store
from ums.store import web
from ums.store import templates as template_store
from ums.web import HttpError, Router

from .. import mail
from ..http import Page
from ..roles import ALL_ROLES
from ..outgoing import queue_message, send_personal

router = Router(roles=ALL_ROLES)

SANDBOX = SandboxedEnvironment(autoescape=True)
TEXT_SANDBOX = SandboxedEnvironment(autoescape=False)


def variables_of(text: str) -> dict[str, str]:
    """``name = value`` lines → a dict (the sample values used for preview and test)."""
    found = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip():
            found[name.strip()] = value.strip()
    return found


def plain_text(markup: str) -> str:
    return html_to_text(markup).strip()


def render(subject: str, body_html: str, variables: dict) -> tuple[str, str]:
    try:
        return (TEXT_SANDBOX.from_string(subject).render(variables),
                mail.sanitize_composed(SANDBOX.from_string(body_html).render(variables)))
    except TemplateError as exc:
        raise HttpError(400, f"template error: {exc}") from None


@router.get("/compose")
async def compose(page: Page):
    async with page.app.db.connect() as conn:
        templates = [t for t in await template_store.list_all(conn) if t["channel"] == "email"]
        mailboxes = await web.mailbox_addresses(conn, own_mailboxes_of(page))
    chosen = next((t for t in templates if t["name"] == page.query.get("template")), None)
    draft = {"to": page.query.get("to", ""), "from_mailbox": "", "subject": (chosen or {}).get("subject") or "",
             "body_html": (chosen or {}).get("body_html") or "", "variables": "name = Kim Minji",
             "template_name": (chosen or {}).get("name") or "", "kind": (chosen or {}).get("kind") or "transactional"}
    return page.app.render(page, "compose.html", draft=draft, templates=templates, mailboxes=mailboxes)


def own_mailboxes_of(page: Page) -> int | None:
    """Whose mailboxes the writer may send from: their own (an admin's: all)."""
    return None if page.user["role"] == "admin" else page.user["user_id"]


async def sending_mailbox(conn, page: Page, address: str) -> dict | None:
    """The mailbox picked as From (None for the site's sender); another's is a 403."""
    if not address:
        return None
    if address not in await web.mailbox_addresses(conn, own_mailboxes_of(page)):
        raise HttpError(403, f"{address} is not one of your mailboxes")
    return await mailbox_store.by_address(conn, address)


@router.post("/compose")
async def compose_action(page: Page):
    form = page.form
    action = form.get("action", "preview")
    body_html = mail.sanitize_composed(form.get("body_html", ""))
    draft = {key: form.get(key, "") for key in ("to", "from_mailbox", "subject", "variables", "template_name",
                                                "kind")}
    draft["body_html"] = body_html
    sample = variables_of(draft["variables"])
    subject, rendered = render(draft["subject"], body_html, sample)
    values = {"draft": draft, "preview_subject": subject, "preview_html": rendered}
    now = page.app.now()
    if action == "test":
        own = page.user.get("email")
        if not own:
            raise HttpError(400, "your account has no email address to send a test to")
        async with page.app.db.begin() as conn:
            delivery_id = await queue_message(conn, "email", own, now, "[TEST] " + subject, plain_text(rendered),
                                              rendered, source=f"was:{page.user['username']}")
        values["flash"] = f"Test sent to {own} (delivery {delivery_id})."
    elif action == "send":
        recipient = draft["to"].strip()
        if not is_valid("email", recipient):
            raise HttpError(400, f"{recipient!r} is not an email address")
        async with page.app.db.begin() as conn:
            box = await sending_mailbox(conn, page, draft["from_mailbox"])
            sent = await send_personal(conn, page.app.ctx.config, "email", recipient, now, box, subject,
                                       plain_text(rendered), rendered, source=f"was:{page.user['username']}")
        values["flash"] = f"Queued for {recipient} (delivery {sent.delivery_id})" + (
            f" from {box['address']}; a copy is in its Sent folder." if box else ".")
    elif action == "save":
        name = draft["template_name"].strip()
        if not name or draft["kind"] not in ("advertising", "transactional"):
            raise HttpError(400, "give the template a name and a kind")
        async with page.app.db.begin() as conn:
            await template_store.save(conn, name, "email", now, kind=draft["kind"], subject=draft["subject"],
                                      body_html=body_html, body_text=plain_text(body_html))
        values["flash"] = f"Template {name} saved."
    async with page.app.db.connect() as conn:
        values["templates"] = [t for t in await template_store.list_all(conn) if t["channel"] == "email"]
        values["mailboxes"] = await web.mailbox_addresses(conn, own_mailboxes_of(page))
    return page.app.render(page, "compose.html", **values)
