"""Digests (Novu's digest): the events of a digest service for one customer
that arrive within the service's window of the first become ONE message —
five card payments in ten minutes, one notice listing them — rendered with
the digest template, which gets the events as ``events`` (each the variables
the event alone would have had) and their ``count``. A customer with one
event in the window gets the service's normal message, as if there were no
digest. Either way the message goes when the window closes.

Collecting (:func:`collect`) runs inside EPS's ingest transaction instead of
queueing the event's delivery: the delivery it would have made is kept in
``digest_events`` with the time its window closes. The customer's contact
row is locked first (PostgreSQL), so two EPS processes agree on one window.

Releasing (:func:`release_due`, EPS's periodic task every ``[eps]
digest_poll`` seconds on the injected clock) queues one delivery per closed
window through the delivery core (:func:`ums.outbox.enqueue_sync`) and marks
the window's rows released in the same transaction: a crash (kill -9) at
any point either committed both or neither, so nothing is lost or doubled,
and running it again finds nothing left to release.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import datetime
from itertools import groupby

from sqlalchemy.engine import Connection

from ums.outbox import SendRequest, enqueue_sync
from ums.store import contacts as contact_store
from ums.store import digests as store

from .dispatch import Plan

#: most events one release transaction reads; a window cut at the limit waits for the next
RELEASE_LIMIT = 5000


def is_digest(plan: Plan) -> bool:
    """Whether ``plan``'s delivery waits in a digest instead of being queued now."""
    return plan.request is not None and plan.service is not None and plan.service.definition.digest is not None


def collect(conn: Connection, plans: list[tuple[Plan, int]], now: datetime) -> None:
    """Keep the deliveries of ``(plan, event id)`` pairs (digest plans) in
    their customers' open windows, opening a window for a customer who has none."""
    if not plans:
        return
    contact_store.lock_for_decision(conn, [plan.request.contact_id for plan, _ in plans])
    windows = store.open_windows(conn, [(plan.service.name, plan.request.contact_id) for plan, _ in plans], now)
    rows = []
    for plan, event_id in plans:
        key = (plan.service.name, plan.request.contact_id)
        ends = windows.setdefault(key, now + plan.service.definition.digest.window)
        plan.request.event_id = event_id
        request = {**asdict(plan.request), "due_at": None, "expires_at": None,
                   "digest_template": plan.service.definition.digest.template}
        rows.append({"service_name": plan.service.name, "contact_id": plan.request.contact_id,
                     "event_id": event_id, "request": request, "received_at": now, "window_ends_at": ends})
    store.add(conn, rows)


def release_due(conn: Connection, now: datetime) -> int:
    """Queue one delivery for each window closed by ``now``; returns how many."""
    rows = store.due(conn, now, RELEASE_LIMIT)
    windows = [list(group) for _, group in groupby(rows, key=_window_of)]
    if len(rows) == RELEASE_LIMIT and len(windows) > 1:
        windows.pop()   # may be cut short by the limit: the next run takes it whole
    for window in windows:
        delivery_id = enqueue_sync(conn, request_for(window), now)
        store.mark_released(conn, [row["id"] for row in window], delivery_id, now)
    return len(windows)


def _window_of(row: dict):
    return row["service_name"], row["contact_id"], row["window_ends_at"]


def request_for(window: list[dict]) -> SendRequest:
    """The one delivery of a closed window: an event alone is its own normal
    message; several are the digest template with every event listed."""
    requests = [_request(row["request"]) for row in window]
    first = requests[0]
    if len(requests) == 1:
        return first
    template = window[0]["request"]["digest_template"]
    events = [request.variables for request in requests]
    variables = {**first.variables, "events": events, "count": len(events)}
    fallback = [{**step, "template": template} for step in first.fallback]
    return replace(first, template=template, variables=variables, fallback=fallback)


def _request(stored: dict) -> SendRequest:
    fields = {key: value for key, value in stored.items() if key != "digest_template"}
    return SendRequest(**fields)
