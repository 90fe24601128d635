"""The counts behind the frequency caps (:mod:`ums.caps`): what advertising a
batch's customers were sent lately, in one query per PASS claim batch.

Sync functions of the batch's own ``Connection`` (PASS runs them inside the
claim transaction, after :func:`ums.store.contacts.lock_for_decision`), so
the count and the decision it allows commit together.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Connection

from ..db.models import deliveries
from ..queue.states import DeliveryState
from . import as_utc

ADVERTISING = "advertising"


def advertising_sent(conn: Connection, contact_ids, since: datetime, deciding: list[int],
                     now: datetime) -> dict[int, list[datetime]]:
    """When each of ``contact_ids`` was sent advertising since ``since``:
    deliveries a relay accepted (``sent``, or ``failed`` by a later bounce) by
    their ``finished_at``, and those in flight (``sending``, other than the
    ``deciding`` ones this batch is deciding about) at ``now``. One query."""
    ids = sorted({i for i in contact_ids if i is not None})
    found: dict[int, list[datetime]] = {i: [] for i in ids}
    if not ids:
        return found
    accepted = or_(deliveries.c.state == DeliveryState.SENT.value,
                   and_(deliveries.c.state == DeliveryState.FAILED.value, deliveries.c.bounced_at.is_not(None)))
    in_flight = deliveries.c.state == DeliveryState.SENDING.value
    if deciding:
        in_flight = and_(in_flight, deliveries.c.id.not_in(deciding))
    query = select(deliveries.c.contact_id, deliveries.c.finished_at).where(
        deliveries.c.contact_id.in_(ids), deliveries.c.kind == ADVERTISING,
        or_(and_(accepted, deliveries.c.finished_at >= since), in_flight))
    for contact_id, finished_at in conn.execute(query):
        found[contact_id].append(as_utc(finished_at) or now)
    return found
