"""The rows of journeys (``journeys``), each customer's place in one
(``journey_runs``) and what each run did (``journey_steps``), in the caller's
transaction. The rules — what a step does, when a run moves — are
:mod:`ums.journeys.engine`'s.

A run moves only by :func:`move`, a compare-and-set on its ``version``: the
engine does a step (and makes its delivery) in the same transaction, so when
two workers race, or a worker dies mid-step, the step is done exactly once —
the loser's transaction, delivery included, rolls back.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import cdr, contacts, deliveries, journey_runs, journey_steps, journeys, mailbox_messages
from ..db.models import tracking_events
from . import as_dicts, as_utc

ACTIVE, PAUSED, STOPPED = "active", "paused", "stopped"
#: a run that has ended is in one of these
ENDED = ("completed", "exited", "goal", "refused", "stopped")


# --- journeys ----------------------------------------------------------------------

async def create(conn: AsyncConnection, name: str, kind: str, event_type: str | None, definition: dict,
                 created_by: str | None, now: datetime) -> int:
    result = await conn.execute(insert(journeys).values(
        name=name, kind=kind, event_type=event_type, definition=definition, created_by=created_by,
        state=ACTIVE, created_at=now, updated_at=now))
    return result.inserted_primary_key[0]


async def by_name(conn: AsyncConnection, name: str) -> dict | None:
    row = (await conn.execute(select(journeys).where(journeys.c.name == name))).first()
    return _journey(dict(row._mapping)) if row else None


async def by_id(conn: AsyncConnection, journey_id: int) -> dict | None:
    row = (await conn.execute(select(journeys).where(journeys.c.id == journey_id))).first()
    return _journey(dict(row._mapping)) if row else None


async def list_all(conn: AsyncConnection) -> list[dict]:
    return [_journey(row) for row in as_dicts(await conn.execute(select(journeys).order_by(journeys.c.name)))]


async def for_event_type(conn: AsyncConnection, event_type: str) -> list[dict]:
    """The active journeys an event of this type enters its customer into."""
    rows = await conn.execute(select(journeys).where(journeys.c.event_type == event_type,
                                                     journeys.c.state == ACTIVE))
    return [_journey(row) for row in as_dicts(rows)]


async def set_state(conn: AsyncConnection, journey_id: int, state: str, now: datetime) -> None:
    await conn.execute(update(journeys).where(journeys.c.id == journey_id).values(state=state, updated_at=now))


def _journey(row: dict) -> dict:
    row["created_at"] = as_utc(row["created_at"])
    row["updated_at"] = as_utc(row["updated_at"])
    return row


# --- runs --------------------------------------------------------------------------

def _insert(conn: AsyncConnection, table):
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


async def enter(conn: AsyncConnection, journey_id: int, contact_ids: list[int], first_step: str,
                source: str, now: datetime) -> list[int]:
    """Start a run for each contact not already in the journey (a customer
    walks a journey once); returns the new runs' ids."""
    if not contact_ids:
        return []
    already = set((await conn.execute(select(journey_runs.c.contact_id).where(
        journey_runs.c.journey_id == journey_id, journey_runs.c.contact_id.in_(contact_ids)))).scalars())
    fresh = [cid for cid in dict.fromkeys(contact_ids) if cid not in already]
    if not fresh:
        return []
    await conn.execute(_insert(conn, journey_runs).on_conflict_do_nothing(
        index_elements=[journey_runs.c.journey_id, journey_runs.c.contact_id]), [
        {"journey_id": journey_id, "contact_id": cid, "step": first_step, "state": ACTIVE, "version": 0,
         "next_at": now, "source": source[:128], "entered_at": now, "updated_at": now} for cid in fresh])
    rows = await conn.execute(select(journey_runs.c.id).where(
        journey_runs.c.journey_id == journey_id, journey_runs.c.contact_id.in_(fresh)))
    ids = list(rows.scalars())
    await add_steps(conn, [{"run_id": run_id, "step": first_step, "kind": "entered", "outcome": source[:64],
                            "at": now} for run_id in ids])
    return ids


def enter_for_events(conn: Connection, entries: list[tuple[str, int, int]], now: datetime) -> int:
    """EPS's batch (sync): for each (event type, contact id, event id), a run
    in every active journey entered by that type, when the contact is not in
    it yet; returns how many runs started."""
    types = {event_type for event_type, _, _ in entries}
    if not types:
        return 0
    found = as_dicts(conn.execute(select(journeys.c.id, journeys.c.event_type, journeys.c.definition)
                                  .where(journeys.c.event_type.in_(types), journeys.c.state == ACTIVE)))
    started = 0
    for journey in found:
        first = journey["definition"]["steps"][0]["id"]
        wanted = {contact_id: event_id for event_type, contact_id, event_id in entries
                  if event_type == journey["event_type"]}
        already = set(conn.execute(select(journey_runs.c.contact_id).where(
            journey_runs.c.journey_id == journey["id"], journey_runs.c.contact_id.in_(list(wanted)))).scalars())
        for contact_id, event_id in wanted.items():
            if contact_id in already:
                continue
            run_id = conn.execute(insert(journey_runs).values(
                journey_id=journey["id"], contact_id=contact_id, step=first, state=ACTIVE, version=0, next_at=now,
                source=f"event:{event_id}", entered_at=now, updated_at=now)).inserted_primary_key[0]
            conn.execute(insert(journey_steps).values(run_id=run_id, step=first, kind="entered",
                                                      outcome=f"event:{event_id}", at=now))
            started += 1
    return started


async def due(conn: AsyncConnection, now: datetime, limit: int) -> list[int]:
    """Ids of active runs of active journeys whose next step is due, soonest first."""
    rows = await conn.execute(
        select(journey_runs.c.id).select_from(journey_runs.join(journeys, journeys.c.id == journey_runs.c.journey_id))
        .where(journey_runs.c.state == ACTIVE, journey_runs.c.next_at <= now, journeys.c.state == ACTIVE)
        .order_by(journey_runs.c.next_at).limit(limit))
    return list(rows.scalars())


async def run(conn: AsyncConnection, run_id: int) -> dict | None:
    row = (await conn.execute(select(journey_runs).where(journey_runs.c.id == run_id))).first()
    return _run(dict(row._mapping)) if row else None


async def move(conn: AsyncConnection, run: dict, step: str | None, state: str, next_at: datetime,
               now: datetime) -> bool:
    """Set the run's next step (compare-and-set on the version read with
    ``run``); False when another worker moved it first."""
    values = {"step": step, "state": state, "next_at": next_at, "updated_at": now,
              "version": run["version"] + 1}
    if state in ENDED:
        values["finished_at"] = now
    done = await conn.execute(update(journey_runs).where(
        journey_runs.c.id == run["id"], journey_runs.c.version == run["version"]).values(**values))
    return done.rowcount == 1


async def stop_runs(conn: AsyncConnection, journey_id: int, now: datetime) -> int:
    """End every active run of the journey (``ums journey stop``); returns how many."""
    ids = list((await conn.execute(select(journey_runs.c.id).where(
        journey_runs.c.journey_id == journey_id, journey_runs.c.state == ACTIVE))).scalars())
    if not ids:
        return 0
    await conn.execute(update(journey_runs).where(journey_runs.c.id.in_(ids)).values(
        state="stopped", step=None, finished_at=now, updated_at=now, version=journey_runs.c.version + 1))
    await add_steps(conn, [{"run_id": i, "step": "-", "kind": "stopped", "outcome": "journey stopped", "at": now}
                           for i in ids])
    return len(ids)


def _run(row: dict) -> dict:
    for key in ("next_at", "entered_at", "updated_at", "finished_at"):
        row[key] = as_utc(row[key])
    return row


# --- step history ------------------------------------------------------------------

async def add_steps(conn: AsyncConnection, rows: list[dict]) -> None:
    if rows:
        await conn.execute(insert(journey_steps), [{"delivery_id": None, "outcome": None, **row} for row in rows])


async def steps_of(conn: AsyncConnection, run_id: int) -> list[dict]:
    rows = await conn.execute(select(journey_steps).where(journey_steps.c.run_id == run_id)
                              .order_by(journey_steps.c.id))
    found = as_dicts(rows)
    for row in found:
        row["at"] = as_utc(row["at"])
    return found


async def last_step(conn: AsyncConnection, run_id: int) -> dict | None:
    """The run's latest history row (what it last did)."""
    row = (await conn.execute(select(journey_steps).where(journey_steps.c.run_id == run_id)
                              .order_by(journey_steps.c.id.desc()).limit(1))).first()
    return dict(row._mapping) if row else None


async def step_counts(conn: AsyncConnection, journey_id: int) -> dict:
    """``{"at": {step: runs waiting at it}, "passed": {step: runs that did it},
    "ended": {state: runs}}`` for the flow page and ``ums journey show``."""
    at = await conn.execute(
        select(journey_runs.c.step, func.count()).where(journey_runs.c.journey_id == journey_id,
                                                        journey_runs.c.state == ACTIVE)
        .group_by(journey_runs.c.step))
    passed = await conn.execute(
        select(journey_steps.c.step, func.count(func.distinct(journey_steps.c.run_id)))
        .select_from(journey_steps.join(journey_runs, journey_runs.c.id == journey_steps.c.run_id))
        .where(journey_runs.c.journey_id == journey_id,
               journey_steps.c.kind.in_(("send", "wait", "branch", "exit", "goal")))
        .group_by(journey_steps.c.step))
    ended = await conn.execute(
        select(journey_runs.c.state, func.count()).where(journey_runs.c.journey_id == journey_id,
                                                         journey_runs.c.state != ACTIVE)
        .group_by(journey_runs.c.state))
    return {"at": dict(at.all()), "passed": dict(passed.all()), "ended": dict(ended.all())}


async def for_contact(conn: AsyncConnection, contact_id: int, limit: int) -> list[dict]:
    """The contact's journey history (entries, steps and outcomes), newest first, with the journey's name."""
    rows = await conn.execute(
        select(journey_steps.c.id, journey_steps.c.step, journey_steps.c.kind, journey_steps.c.outcome,
               journey_steps.c.delivery_id, journey_steps.c.at, journeys.c.name)
        .select_from(journey_steps.join(journey_runs, journey_runs.c.id == journey_steps.c.run_id)
                     .join(journeys, journeys.c.id == journey_runs.c.journey_id))
        .where(journey_runs.c.contact_id == contact_id).order_by(journey_steps.c.id.desc()).limit(limit))
    return [{"at": as_utc(row.at), "kind": "journey", "id": row.id, "journey": row.name, "step": row.step,
             "action": row.kind, "outcome": row.outcome, "delivery_id": row.delivery_id} for row in rows]


# --- what an earlier send came to --------------------------------------------------

async def delivery_facts(conn: AsyncConnection, delivery_id: int) -> dict | None:
    """What branches read about one delivery: its channel, state and
    ``bounced_at``, its CDR attempts' dispositions and pages (oldest first),
    whether it was opened or clicked and whether a reply or a refusal came back to it."""
    row = (await conn.execute(select(deliveries.c.channel, deliveries.c.state, deliveries.c.bounced_at,
                                     deliveries.c.last_code)
                              .where(deliveries.c.id == delivery_id))).first()
    if row is None:
        return None
    attempts = (await conn.execute(select(cdr.c.disposition, cdr.c.pages, cdr.c.final)
                                   .where(cdr.c.delivery_id == delivery_id).order_by(cdr.c.attempt, cdr.c.id))).all()
    tracked = set((await conn.execute(select(tracking_events.c.kind)
                                      .where(tracking_events.c.delivery_id == delivery_id))).scalars())
    inbound = set((await conn.execute(select(mailbox_messages.c.classification)
                                      .where(mailbox_messages.c.delivery_id == delivery_id))).scalars())
    return {"channel": row.channel, "state": row.state, "bounced": row.bounced_at is not None,
            "code": row.last_code, "attempts": [(a.disposition, a.pages, a.final) for a in attempts],
            "tracked": tracked, "inbound": inbound}


async def contact_for_run(conn: AsyncConnection, contact_id: int) -> dict | None:
    row = (await conn.execute(select(contacts).where(contacts.c.id == contact_id))).first()
    return dict(row._mapping) if row else None


async def runs_with_steps(conn: AsyncConnection, journey_id: int) -> dict[int, list[tuple[str, str, str | None]]]:
    """contact id → [(step, kind, outcome), …] in order: the whole journey's history (tests, audits)."""
    rows = await conn.execute(
        select(journey_runs.c.contact_id, journey_steps.c.step, journey_steps.c.kind, journey_steps.c.outcome)
        .select_from(journey_steps.join(journey_runs, and_(journey_runs.c.id == journey_steps.c.run_id,
                                                           journey_runs.c.journey_id == journey_id)))
        .order_by(journey_steps.c.id))
    found: dict[int, list] = {}
    for contact_id, step, kind, outcome in rows:
        found.setdefault(contact_id, []).append((step, kind, outcome))
    return found
