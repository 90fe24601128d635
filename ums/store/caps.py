"""The counts behind the frequency caps (:mod:`ums.caps`): what advertising a
batch's customers were sent lately, in one query per PASS claim batch.

Sync functions of the batch's own ``Connection`` (PASS runs them inside the
claim transaction, after :func:`ums.store.contacts.lock_for_decision`), so
the count and the decision it allows commit together.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, select, union_all
from sqlalchemy.engine import Connection

from ..db.models import deliveries
from ..queue.states import DeliveryState
from . import as_utc

ADVERTISING = "advertising"
SENT, FAILED, SENDING = DeliveryState.SENT.value, DeliveryState.FAILED.value, DeliveryState.SENDING.value


def advertising_sent(conn: Connection, contact_ids, since: datetime, deciding: list[int],
                     now: datetime) -> dict[int, list[datetime]]:
    """When each of ``contact_ids`` was sent advertising since ``since``:
    deliveries a relay accepted (``sent``, or ``failed`` by a later bounce) by
    their ``finished_at``, and those in flight (``sending``, other than the
    ``deciding`` ones this batch is deciding about) at ``now``. One statement.

    Its two halves are kept apart (UNION ALL) and the accepted states are
    picked here, not in SQL: any test of ``state`` next to the finish time
    makes SQLite walk the claim index (every sent row) instead of
    ``ix_deliveries_contact_kind`` — 2.5 s instead of 20 ms for 400 customers
    among 200,000 deliveries (``bench/caps_query.py``)."""
    ids = sorted({i for i in contact_ids if i is not None})
    found: dict[int, list[datetime]] = {i: [] for i in ids}
    if not ids:
        return found
    mine = and_(deliveries.c.contact_id.in_(ids), deliveries.c.kind == ADVERTISING)
    columns = (deliveries.c.contact_id, deliveries.c.finished_at, deliveries.c.state, deliveries.c.bounced_at)
    finished = select(*columns).where(mine, deliveries.c.finished_at >= since)
    in_flight = select(*columns).where(mine, deliveries.c.state == SENDING)
    if deciding:
        in_flight = in_flight.where(deliveries.c.id.not_in(deciding))
    for contact_id, finished_at, state, bounced_at in conn.execute(union_all(finished, in_flight)):
        if state == SENDING:
            found[contact_id].append(now)
        elif state == SENT or (state == FAILED and bounced_at is not None):
            found[contact_id].append(as_utc(finished_at))
    return found
