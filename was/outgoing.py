"""Messages people write in WAS (replies, forwards, composed mail, API sends
with a body) go out through :func:`ums.outbox.enqueue` like everything else.

The channels render templates, so free-form text travels in a built-in
template, ``ums-message``, whose fields are the message's own subject and
bodies (the HTML already sanitised here).

One-to-one mail — a reply, a forward, a message composed to one person — is
*personal* (``variables["personal"]``): the email channel gives it no list
headers (List-Unsubscribe is for mailings). Sent from a mailbox
(:func:`send_personal`), a copy of what was written is filed in that
mailbox's Sent folder in the same transaction, pointing at the delivery; the
email channel sends it From and Reply-To that mailbox because that copy
exists (never because of a variable), and the Sent folder reads its state
from the delivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from ums.outbox import SendRequest, enqueue
from ums.store import mailbox as mailbox_store
from ums.store import templates as template_store
from ums.store import web

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


@dataclass(frozen=True)
class Sent:
    delivery_id: int
    #: its copy in the mailbox's Sent folder (None when sent from no mailbox)
    entry_id: int | None


async def send_personal(
    conn, config, channel: str, recipient: str, now: datetime, mailbox: dict | None, subject: str,
    body_text: str, body_html: str | None, source: str | None = None, **extra,
) -> Sent:
    """Queue one-to-one mail from ``mailbox`` (a ``mailboxes`` row, or None for
    the site's own sender) and file its copy in the mailbox's Sent folder.
    ``extra`` may carry ``in_reply_to`` and ``references`` (threading) and what
    :func:`queue_message` takes."""
    subject = " ".join(subject.split())
    extra = {key: value for key, value in extra.items() if value is not None}
    delivery_id = await queue_message(conn, channel, recipient, now, subject, body_text, body_html,
                                      source=source, personal=True, **extra)
    if mailbox is None:
        return Sent(delivery_id, None)
    message_id = (await web.delivery(conn, delivery_id))["message_id"]
    raw = sent_copy(config.get("email", "from_name"), mailbox["address"], recipient, subject, body_text,
                    body_html, message_id, now, extra.get("in_reply_to"), extra.get("references"))
    entry_id = await mailbox_store.store_message(
        conn, mailbox_id=mailbox["id"], folder=web.SENT, flags=["seen"], media=channel, classification="sent",
        sender=mailbox["address"], recipient=recipient[:320], subject=subject, message_id=message_id,
        size=len(raw), raw=raw, delivery_id=delivery_id, received_at=now,
    )
    return Sent(delivery_id, entry_id)


def sent_copy(name: str, address: str, recipient: str, subject: str, text: str, markup: str | None,
              message_id: str, now: datetime, in_reply_to: str | None, references: str | None) -> bytes:
    """What the Sent folder keeps of a message: its headers and the text as written
    (the channel builds the message it sends; attachments go along there)."""
    message = EmailMessage()
    message["From"] = formataddr((name, address))
    if "@" in recipient:
        message["To"] = recipient
    message["Subject"] = subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = references or in_reply_to
    message.set_content(text or "")
    if markup:
        message.add_alternative(markup, subtype="html")
    return message.as_bytes()
