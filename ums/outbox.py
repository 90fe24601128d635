"""The core API for asking UMS to send something.

EPS, WAS, the CLI and campaigns call :func:`enqueue`; the delivery core
(:mod:`ums.queue.rows`) builds and writes the delivery row that PASS will claim. Nothing here imports PASS: the database is the only
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
from .errors import UmsError
from .queue import lanes, message_ids, rows
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
    #: a :mod:`ums.queue.lanes` lane; None: the template's, else by kind (notice or marketing)
    lane: str | None = None
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
        if self.lane is not None and self.lane not in lanes.ORDER:
            raise BadSendRequest(reason=f"lane must be urgent, notice or marketing, not {self.lane!r}")


def new_message_id(domain: str | None = None) -> str:
    """A new Message-ID by the one rule (:mod:`ums.queue.message_ids`)."""
    return message_ids.new(domain)


def row_for(request: SendRequest, now: datetime) -> dict:
    """The delivery row of ``request`` (:func:`ums.queue.rows.build`), checked first."""
    request.validate()
    return rows.build(request, now)


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
    if request.kind is None or (request.lane is None and request.template):
        template = await template_store.get(conn, request.template, request.channel) if request.template else None
        if request.kind is None:
            request.kind = settled_kind(template, None)
        if request.lane is None:
            request.lane = template_lane(template)
    return await conn.run_sync(enqueue_sync, request, now)


def template_lane(template: dict | None) -> str | None:
    """The lane a template asks for (``options.lane``), if any and valid."""
    lane = ((template or {}).get("options") or {}).get("lane")
    return lane if lane in lanes.ORDER else None


def enqueue_sync(conn: Connection, request: SendRequest, now: datetime) -> int:
    """:func:`enqueue` on a sync connection (inside PASS's record batch)."""
    return rows.insert_one(conn, row_for(request, now))


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
        lane=delivery.get("lane"),
        expires_at=delivery.get("expires_at"),
        fallback=rest,
    )
    return enqueue_sync(conn, request, now)
