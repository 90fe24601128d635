"""The core API for asking UMS to send something.

EPS, WAS, the CLI and campaigns call :func:`enqueue`; it writes a delivery row
that PASS will claim. Nothing here imports PASS: the database is the only
channel between services. The caller's transaction decides when the request is
durable (commit before acknowledging).

A delivery from a template is sent as the template's kind unless the caller
asks for advertising, and an advertising template is never sent as
transactional (:func:`settled_kind`): PASS applies that rule to every
delivery it claims, whatever path queued it; :func:`enqueue` applies it when
no kind was given; a caller that knows the kind was asked for explicitly
(``ums send --kind``) refuses a mismatch first with :func:`kind_for`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from . import advertising
from .addresses import CHANNELS
from .db.models import deliveries
from .errors import UmsError
from .security import time_ordered_key
from .store import templates as template_store


class BadSendRequest(UmsError):
    """Bad send request: {reason}."""


class AdvertisingTemplate(BadSendRequest):
    """Template {name!r} ({channel}) is advertising: it is never sent as transactional (leave the kind out, or ask for advertising)."""


@dataclass
class SendRequest:
    channel: str
    recipient: str
    template: str | None = None
    #: None: the template's own kind (see :func:`settled_kind`, applied by :func:`enqueue`)
    kind: str | None = "transactional"
    variables: dict = field(default_factory=dict)
    contact_id: int | None = None
    campaign_id: int | None = None
    event_id: int | None = None
    service_name: str | None = None
    priority: int = 5
    due_at: datetime | None = None
    expires_at: datetime | None = None
    #: further channels to try, in order: [{"channel": "fax", "recipient": "...", "template": "..."}]
    fallback: list[dict] = field(default_factory=list)

    def validate(self) -> None:
        if self.channel not in CHANNELS:
            raise BadSendRequest(reason=f"unknown channel {self.channel!r}")
        if self.kind not in ("advertising", "transactional"):
            raise BadSendRequest(reason=f"kind must be advertising or transactional, not {self.kind!r}")
        if not self.recipient:
            raise BadSendRequest(reason="no recipient")


def new_message_id(domain: str = "ums.local") -> str:
    return f"<{time_ordered_key()}@{domain}>"


def row_for(request: SendRequest, now: datetime) -> dict:
    request.validate()
    return {
        "channel": request.channel,
        "recipient": request.recipient,
        "contact_id": request.contact_id,
        "campaign_id": request.campaign_id,
        "event_id": request.event_id,
        "service_name": request.service_name,
        "template_name": request.template,
        "kind": request.kind,
        "priority": request.priority,
        "state": "queued",
        "due_at": request.due_at or now,
        "expires_at": request.expires_at,
        "message_id": new_message_id(),
        "token": time_ordered_key(),
        "variables": request.variables,
        "fallback": request.fallback,
        "created_at": now,
        "updated_at": now,
    }


def settled_kind(template: dict | None, asked: str | None) -> str:
    """The kind a delivery from ``template`` (a template row, or None) is sent
    as: ``asked``, or the template's own kind when ``asked`` is None
    (transactional without a template) — and advertising whenever the
    template is, whatever was asked. Never raises."""
    own = (template or {}).get("kind") or advertising.TRANSACTIONAL
    if asked is None or own == advertising.ADVERTISING:
        return own
    return asked


def kind_for(template: dict | None, asked: str | None) -> str:
    """:func:`settled_kind` for a kind the user asked for explicitly: asking
    for transactional with an advertising template raises
    :class:`AdvertisingTemplate` instead of being overruled. Asking for
    advertising is always allowed (it adds the label, the consent check and
    the night rule)."""
    kind = settled_kind(template, asked)
    if asked is not None and asked != kind:
        raise AdvertisingTemplate(name=template["name"], channel=template["channel"])
    return kind


async def enqueue(conn: AsyncConnection, request: SendRequest, now: datetime) -> int:
    """Queue one delivery; returns its id. Without a kind it takes the named
    template's (:func:`settled_kind`)."""
    if request.kind is None:
        template = await template_store.get(conn, request.template, request.channel) if request.template else None
        request.kind = settled_kind(template, None)
    return await conn.run_sync(enqueue_sync, request, now)


def enqueue_sync(conn: Connection, request: SendRequest, now: datetime) -> int:
    """:func:`enqueue` on a sync connection (inside PASS's record batch)."""
    return conn.execute(deliveries.insert().values(**row_for(request, now))).inserted_primary_key[0]


async def fall_back(conn: AsyncConnection, delivery: dict, now: datetime) -> int | None:
    """:func:`fall_back_sync` from async code (MAS, when a bounce ends a delivery)."""
    return await conn.run_sync(fall_back_sync, delivery, now)


def fall_back_sync(conn: Connection, delivery: dict, now: datetime) -> int | None:
    """Queue the next channel of a delivery's fallback list, if any.

    Called when a delivery ends permanently failed (PASS), or when a sent
    email bounces permanently (MAS). The new delivery carries the rest of the
    list, so a chain email → fax → voice walks one step each time. The step
    keeps the delivery's kind (PASS makes a step onto an advertising template
    advertising when it claims it). Returns the new delivery's id, or None
    when there is nothing left to try.
    """
    remaining = list(delivery.get("fallback") or [])
    if not remaining:
        return None
    step, rest = remaining[0], remaining[1:]
    template = step.get("template") or delivery.get("template_name")
    request = SendRequest(
        channel=step["channel"],
        recipient=step["recipient"],
        template=template,
        kind=delivery.get("kind") or advertising.TRANSACTIONAL,
        variables=delivery.get("variables") or {},
        contact_id=delivery.get("contact_id"),
        campaign_id=delivery.get("campaign_id"),
        event_id=delivery.get("event_id"),
        service_name=delivery.get("service_name"),
        priority=delivery.get("priority", 5),
        expires_at=delivery.get("expires_at"),
        fallback=rest,
    )
    return enqueue_sync(conn, request, now)
