"""Telling people about new mail: the mailbox owner's standing wish
(``mailboxes.notify_channel``/``notify_address``) and Sieve ``notify``
actions become short transactional sends queued through PASS
(:func:`ums.outbox.enqueue`), in the same transaction that stores the message.

The notice uses the template ``mas-new-message`` (created with a plain
default the first time it is needed, editable like any template) with the
variables ``mailbox``, ``folder``, ``media``, ``sender``, ``subject``,
``pages``, ``duration``, ``message`` (the Sieve ``:message`` text, if any) and
``mailbox_message_id``. A Sieve ``redirect`` is queued the same way with the
template ``mas-redirect``.

Read it to me (:mod:`ums.sieve.delivery`): a ``notify`` with the option
``ums-content=fax|email|any`` converts a new message of that medium instead
of announcing it — a ``tel:`` call that reads its text, a ``fax:`` copy of an
email, a ``mailto:`` mail carrying a fax's pages and text. Each is a
transactional delivery (template ``mas-read-message`` of its channel) with the
variables above plus ``read_entry`` (the mailbox entry), ``read_text`` (an
email's text as stored for search; empty for a fax, whose text is recognised
after it is stored and looked up by the channel when it sends,
:func:`ums.channels.readout.with_text`) and, mailing a fax,
``attach_mailbox_message`` (its pages). A conversion rule for another medium
does nothing.

A refusal MAS cannot trust (it answers no message UMS sent to its From
address) is confirmed with the template ``mas-refusal-confirm`` sent to that
address (variables ``address``, ``keyword``, ``subject``; the renderer adds
``unsubscribe_url``): replying to it, or its unsubscribe link, is a refusal
that provably comes from the address (:mod:`mas.feedback`).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from ums import outbox, refusal
from ums.store import templates

from ums.sieve import Verdict
from ums.sieve import delivery as conversions

log = logging.getLogger("ums.mas.notify")

NOTICE_TEMPLATE = "mas-new-message"
REDIRECT_TEMPLATE = "mas-redirect"
READ_TEMPLATE = "mas-read-message"
CONFIRM_TEMPLATE = refusal.CONFIRM_TEMPLATE
_SCHEMES = {"mailto": "email", "tel": "voice", "sms": "voice", "fax": "fax"}
_DEFAULTS = {
    NOTICE_TEMPLATE: {
        "subject": "New {{ media }} in {{ mailbox }}: {{ subject }}",
        "body_text": "New {{ media }} from {{ sender }} in {{ mailbox }} ({{ folder }}).\n"
                     "Subject: {{ subject }}\n{% if message %}{{ message }}\n{% endif %}",
    },
    REDIRECT_TEMPLATE: {
        "subject": "Fwd: {{ subject }}",
        "body_text": "Forwarded by the rules of {{ mailbox }}: message from {{ sender }}.\n"
                     "Subject: {{ subject }}\n",
    },
    CONFIRM_TEMPLATE: {
        "subject": "광고 수신거부 확인 요청 / Please confirm: stop advertising to {{ address }}",
        "body_text": "{{ address }} 주소의 광고 수신거부 요청을 받았습니다 (\"{{ subject }}\").\n"
                     "본인이 요청하셨다면 이 메일에 회신하시거나 다음 링크를 눌러 주세요: {{ unsubscribe_url }}\n"
                     "요청하지 않으셨다면 이 메일을 무시하셔도 됩니다. 아무것도 바뀌지 않았습니다.\n\n"
                     "We received a request to stop advertising to {{ address }} (\"{{ subject }}\").\n"
                     "If it was you, reply to this message or open the link above.\n"
                     "If it was not, ignore this message: nothing has changed.\n",
    },
}


#: the read-it-to-me template's default on each channel
_READ_DEFAULTS = {
    "voice": {"subject": "{{ subject }}",
              "body_text": "{% if media == 'fax' %}새 팩스입니다.{% else %}새 메일입니다. {{ subject }}.{% endif %}"
                           " {{ read_text }}"},
    "fax": {"subject": "{{ subject }}",
            "body_text": "From: {{ sender }}\nSubject: {{ subject }}\n\n{{ read_text }}\n"},
    "email": {"subject": "New {{ media }} from {{ sender }}: {{ subject }}",
              "body_text": "New {{ media }} from {{ sender }} in {{ mailbox }}{% if pages %}, {{ pages }} page(s),"
                           " attached{% endif %}.\n\n{% if read_text %}{{ read_text }}\n{% endif %}"},
}


def channel_of(method: str) -> tuple[str, str] | None:
    """``mailto:a@b`` → ("email", "a@b"); unknown schemes → None."""
    scheme, _, target = method.partition(":")
    channel = _SCHEMES.get(scheme.lower())
    target = target.split("?", 1)[0].strip()
    return (channel, target) if channel and target else None


async def ensure_template(conn: AsyncConnection, name: str, channel: str, now: datetime) -> None:
    if await templates.get(conn, name, channel) is None:
        default = _READ_DEFAULTS[channel] if name == READ_TEMPLATE else _DEFAULTS[name]
        await templates.save(conn, name, channel, now, kind="transactional", **default)


async def queue(conn, template: str, channel: str, recipient: str, variables: dict, now: datetime,
                contact_id: int | None = None) -> int:
    await ensure_template(conn, template, channel, now)
    request = outbox.SendRequest(
        channel=channel, recipient=recipient, template=template, kind="transactional",
        variables=variables, service_name="mas", contact_id=contact_id,
    )
    return await outbox.enqueue(conn, request, now)


def wanted(mailbox: dict, verdict: Verdict) -> bool:
    """Whether a new message in this mailbox calls for any notice or redirect."""
    standing = mailbox.get("notify_channel") not in (None, "", "none") and mailbox.get("notify_address")
    return bool(standing or verdict.notifications or verdict.redirects)


def split_notifications(verdict: Verdict, media: str) -> tuple[list, list[conversions.Conversion]]:
    """The plain notices, and the conversions asked for a new message of ``media``."""
    notices, converted = [], []
    for note in verdict.notifications:
        if conversions.content_of(note) is None:
            notices.append(note)
        elif conversions.converts(note, media) and channel_of(note.method):
            converted.append(conversions.Conversion(conversions.content_of(note), note.method))
    return notices, list(dict.fromkeys(converted))


async def convert(conn: AsyncConnection, conversion: conversions.Conversion, variables: dict, row: dict,
                  stored_id: int, now: datetime) -> int:
    """Queue one read-it-to-me delivery of the newly stored message."""
    channel, target = channel_of(conversion.method)
    text = (row.get("search_text") or "") if row["media"] == "email" else ""
    extra = {"read_entry": stored_id, "read_text": text}
    if channel == "email" and row["media"] != "email":
        extra["attach_mailbox_message"] = stored_id
    return await queue(conn, READ_TEMPLATE, channel, target, {**variables, **extra}, now)


async def new_message(
    conn: AsyncConnection, mailbox: dict, verdict: Verdict, row: dict, stored_id: int, now: datetime,
) -> list[int]:
    """Queue the notices and redirects a newly stored message calls for; returns delivery ids."""
    variables = {
        "mailbox": mailbox["address"], "folder": next(iter(verdict.folders), "INBOX"),
        "media": row["media"], "sender": row["sender"], "subject": row["subject"] or "",
        "pages": row["pages"], "duration": row["duration"], "mailbox_message_id": stored_id,
    }
    queued = []
    targets = []
    if mailbox.get("notify_channel") not in (None, "", "none") and mailbox.get("notify_address"):
        targets.append((mailbox["notify_channel"], mailbox["notify_address"], None))
    notices, converted = split_notifications(verdict, row["media"])
    for note in notices:
        found = channel_of(note.method)
        if found is None:
            log.warning("notification method not supported", extra={"method": note.method})
            continue
        targets.append((*found, note.message))
    for channel, address, message in dict.fromkeys(targets):
        queued.append(await queue(conn, NOTICE_TEMPLATE, channel, address, {**variables, "message": message}, now))
    for conversion in converted:
        queued.append(await convert(conn, conversion, variables, row, stored_id, now))
    for address in verdict.redirects:
        queued.append(await queue(conn, REDIRECT_TEMPLATE, "email", address, variables, now))
    return queued


async def confirm_refusal(
    conn: AsyncConnection, address: str, keyword: str, subject: str, now: datetime, contact_id: int | None = None,
) -> int:
    """Ask ``address`` to confirm a refusal of advertising; returns the delivery id
    (the pending confirmation: its Message-ID and token authenticate the answer)."""
    variables = {"address": address, "keyword": keyword, "subject": subject[:200]}
    return await queue(conn, CONFIRM_TEMPLATE, "email", address, variables, now, contact_id=contact_id)
