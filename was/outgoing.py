"""Messages people write in WAS (replies, forwards, composed mail, API sends
with a body) go out through :func:`ums.outbox.enqueue` like everything else.

The channels render templates, so free-form text travels in a built-in
template, ``ums-message``, whose fields are the message's own subject and
bodies (the HTML already sanitised here).
"""

from __future__ import annotations

from datetime import datetime

from ums.outbox import SendRequest, enqueue
from ums.store import templates as template_store

FREE_FORM = "ums-message"
FREE_FORM_FIELDS = {
    "email": {"subject": "{{ subject }}", "body_text": "{{ body_text }}", "body_html": "{{ body_html|safe }}"},
    # the fax channel fills only the body, so the subject is printed as the page's first line
    "fax": {"subject": "", "body_text": "{{ subject }}\n\n{{ body_text }}", "body_html": None},
    "voice": {"subject": "", "body_text": "{{ body_text }}", "body_html": None},
}


async def ensure_free_form_template(conn, channel: str, now: datetime) -> None:
    """Create (or bring up to date) the channel's ``ums-message`` template."""
    fields = FREE_FORM_FIELDS.get(channel, FREE_FORM_FIELDS["voice"])
    current = await template_store.get(conn, FREE_FORM, channel)
    if current is None or any(current.get(key) != value for key, value in fields.items()):
        await template_store.save(conn, FREE_FORM, channel, now, kind="transactional", **fields)


async def queue_message(
    conn, channel: str, recipient: str, now: datetime, subject: str = "", body_text: str = "",
    body_html: str | None = None, kind: str = "transactional", source: str | None = None, **extra,
) -> int:
    """Queue one free-form message; returns the delivery id (durable when the caller commits)."""
    await ensure_free_form_template(conn, channel, now)
    variables = {"subject": subject, "body_text": body_text, "body_html": body_html or "", **extra}
    request = SendRequest(channel, recipient, template=FREE_FORM, kind=kind, variables=variables,
                          service_name=source)
    return await enqueue(conn, request, now)
