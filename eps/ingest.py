"""Storing events durably, many per transaction (group commit).

HTTP requests and telegrams hand their event to :meth:`Ingestor.submit` and
wait; a single writer task takes everything queued so far, stores and
dispatches it in one transaction and then answers every waiter. So the reply
(202 or ACK) still comes only after the commit, but a thousand concurrent
senders cost a handful of commits instead of a thousand. If a batch fails,
each of its events is retried alone, so one bad event cannot sink the others.

A batch is one plain function of a connection, :func:`store_batch`; the
:mod:`ums.db.writer` runs it in a single hand-off to the database. An event
also enters its customer into every active journey that names its type
(:func:`ums.store.journeys.enter_for_events`), in the same transaction.

Events of a digest service wait in their customer's window instead of
queueing a delivery (:mod:`ums.event_services.digests`), in the same transaction.

Idempotency: an event whose (source system, idempotency key) is stored
already is answered with the stored event's id — ``duplicate`` when it is the
same event (same :meth:`~eps.events.IncomingEvent.fingerprint`: type, customer
and payload), ``conflict`` when the key was used for a different one, which is
then not stored. A key posted twice in one batch is judged the same way
against its first post.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from ums.store import contacts as contact_store
from ums.store import events as event_store
from ums.store import journeys as journey_store
from ums.store import preferences as preference_store
from ums.store import services as service_store

from ums.db import writer

from ums.event_services import digests, dispatch
from .events import IncomingEvent, fingerprint

log = logging.getLogger("ums.eps.ingest")


@dataclass
class Accepted:
    """The answer for one submitted event."""

    event_id: int
    state: str
    duplicate: bool = False
    #: the key was used before for a different event (``event_id`` is that one's)
    conflict: bool = False


class Ingestor:
    def __init__(self, ctx, max_batch: int = 500):
        self.ctx = ctx
        self.max_batch = max_batch
        self.queue: asyncio.Queue = asyncio.Queue()
        self.task: asyncio.Task | None = None
        self.stored = 0
        self.batches = 0
        self.writer = writer.for_database(ctx.db, "eps-writer")

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None
        await self.writer.close()
        while not self.queue.empty():
            _, future = self.queue.get_nowait()
            if not future.done():
                future.set_exception(ConnectionAbortedError("EPS is stopping"))

    async def submit(self, event: IncomingEvent) -> Accepted:
        """Store (and dispatch) one event; returns once it is committed."""
        future = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((event, future))  # unbounded: never waits
        return await future

    @property
    def backlog(self) -> int:
        return self.queue.qsize()

    async def _run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.max_batch and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            await self._commit_batch(batch)

    async def _commit_batch(self, batch) -> None:
        try:
            results = await self._store([event for event, _ in batch])
        except Exception as exc:
            await self.writer.reset()
            if len(batch) == 1:
                log.error("event not stored", extra={"error": str(exc)})
                _answer(batch[0][1], exc)
                return
            log.warning("batch not stored; storing its events one by one",
                        extra={"events": len(batch), "error": str(exc)[:300]})
            for item in batch:  # find the one that spoils the batch
                await self._commit_batch([item])
            return
        self.stored += len(batch)
        self.batches += 1
        for (_, future), result in zip(batch, results):
            _answer(future, result)

    async def _store(self, batch: list[IncomingEvent]) -> list[Accepted]:
        return await self.writer.run(store_batch, batch, self.ctx.clock())


def store_batch(conn, batch: list[IncomingEvent], now) -> list[Accepted]:
    """Store and dispatch a batch of events in the caller's transaction (a
    sync ``Connection``); returns the answer for each event, in order."""
    fresh: dict[tuple[str, str], IncomingEvent] = {}
    for event in batch:  # a key posted twice in one batch is stored once
        fresh.setdefault(event.key, event)
    service_rows = service_store.for_event_types(conn, {e.event_type for e in fresh.values()})
    services = [dispatch.live_service(row) for row in service_rows]
    contacts = _contacts_for(conn, fresh.values(), services)
    plans = {
        key: dispatch.decide(dispatch.choose(services, event.event_type, event.data),
                             event.event_type, event.customer_id, event.data, contacts)
        for key, event in fresh.items()
    }
    stored = event_store.insert_new(conn, [_row(event, plans[key], now) for key, event in fresh.items()])
    missing = [key for key in fresh if key not in stored]
    # retried posts (or reused keys): their events were stored before, by an earlier batch
    earlier = event_store.stored_under(conn, missing) if missing else {}
    made = [(plans[key], event_id) for key, event_id in stored.items()]
    digests.collect(conn, [(plan, event_id) for plan, event_id in made if digests.is_digest(plan)], now)
    now_queued = [(plan, event_id) for plan, event_id in made if not digests.is_digest(plan)]
    event_store.queue_deliveries(conn, dispatch.delivery_rows(
        [plan for plan, _ in now_queued], [event_id for _, event_id in now_queued], now))
    journey_store.enter_for_events(conn, [
        (fresh[key].event_type, contacts[fresh[key].customer_id]["id"], event_id)
        for key, event_id in stored.items() if contacts.get(fresh[key].customer_id)], now)
    return [_answer_for(event, fresh[event.key], stored, plans, earlier) for event in batch]


def _answer_for(event: IncomingEvent, first: IncomingEvent, stored: dict, plans: dict, earlier: dict) -> Accepted:
    """The answer for one event of a batch whose first post of its key was ``first``."""
    key = event.key
    if key in stored:
        if first is event:
            return Accepted(stored[key], plans[key].state)
        same = first.fingerprint() == event.fingerprint()
        return Accepted(stored[key], plans[key].state if same else "", duplicate=same, conflict=not same)
    row = earlier[key]
    same = fingerprint(row["event_type"], row["customer_id"], row["payload"] or {}) == event.fingerprint()
    return Accepted(row["id"], "", duplicate=same, conflict=not same)


def _contacts_for(conn, batch, services) -> dict:
    """The contacts the batch's events name, in one query, keyed by customer
    id (None for customers not found)."""
    wanted = {event.customer_id for event in batch}
    for service in services:
        if service.definition.customer_field:
            wanted |= {str(event.data.get(service.definition.customer_field) or "") for event in batch}
    wanted.discard("")
    found = contact_store.customers_by_ids(conn, sorted(wanted), dispatch.CONTACT_COLUMNS)
    chosen = preference_store.by_contacts(conn, [contact["id"] for contact in found.values() if contact])
    for contact in found.values():   # what each customer chose on the preference centre
        if contact:
            contact["preferences"] = chosen.get(contact["id"])
    return {customer_id: found.get(customer_id) for customer_id in wanted}


def _row(event: IncomingEvent, plan: dispatch.Plan, now) -> dict:
    return {
        "source_system": event.source_system,
        "idempotency_key": event.idempotency_key,
        "event_type": event.event_type,
        "customer_id": event.customer_id,
        "payload": event.payload(),
        "state": plan.state,
        "service_name": plan.service.name if plan.service else None,
        "service_version": plan.service.version if plan.service else None,
        "error": plan.error,
        "received_at": now,
        "processed_at": None if plan.state == "held" else now,
    }


def _answer(future: asyncio.Future, outcome) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
