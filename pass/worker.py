"""The queue worker: claim → policy → throttle → channel → record.

Three kinds of task share the work:

* the *claimer* leases due deliveries in batches (only for channels that
  loaded), applies the send-time policy in the same transaction (ending,
  holding or deferring what must not go now) and queues the rest in memory;
* *senders* (``[pass] concurrency`` of them) take a job, wait for its
  throttles and call its channel;
* the *writer* commits finished attempts in batches — each delivery's new
  state and its CDR row in one transaction — and hands back held jobs.

The transactions themselves are :class:`~pass.batches.QueueBatches`, hosted
by a :mod:`ums.db.writer`: with ``[pass] database_process`` (the default) in
a process of their own, so reading rows, the policy and building CDR rows run
on another core than sending; otherwise in a thread (SQLite) or on the event
loop (PostgreSQL). Either way only plain data crosses: deliveries ready to
send come back, results and held deliveries go in, and the event loop alone
keeps its own state (``in_memory``, the ready queue, the figures).

A lease covers a job from claim to record and is renewed while the job is
in memory; if this process dies the lease runs out and any PASS takes the
delivery again (it keeps its Message-ID).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta

from ums import alerts, caps, cdr
from ums.addresses import normalize
from ums.channels import TEMPORARY, Channel, Delivery, Outcome
from ums.db import writer as db_writer
from ums.holds import Hold, campaign_stops
from ums.queue import after_send, lanes, wakeups
from ums.store import as_utc
from ums.store import campaigns as campaign_store
from ums.store import cdr as cdr_store
from ums.store import deliveries as delivery_store
from ums.store import suppression
from ums.queue.states import DeliveryState

from .batches import Batch, BatchResult, Held, QueueBatches, QueueCalls, Settings
from .lanequeue import LaneQueue
from .throttle import Throttles

log = logging.getLogger("ums.pass")

#: seconds between looks while announced urgent work waits for room (checked in memory first)
ROOM_RECHECK = 0.02


@dataclass
class Job:
    delivery: Delivery
    campaign_id: int | None
    channel: Channel
    campaign: dict | None
    destination: str
    lane: str = lanes.Lane.NOTICE.value

    @property
    def priority(self) -> bool:
        """An urgent or notice job: reserved senders and channel slots serve it."""
        return self.lane in lanes.PRIORITY


@dataclass
class Finished:
    job: Job
    outcome: Outcome
    #: resolved once the result is committed; the sender waits for it, so at most
    #: ``concurrency`` messages are ever sent but not yet recorded
    recorded: asyncio.Future | None = None


@dataclass
class Figures:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    ended_by_policy: int = 0
    started: float = field(default_factory=time.monotonic)


class Worker:
    def __init__(self, ctx, service, channels: dict[str, Channel]):
        self.ctx = ctx
        self.service = service
        self.section = ctx.config.section("pass")
        self.channels = channels
        self.id = f"{ctx.host}:{os.getpid()}:{secrets.token_hex(3)}"
        #: senders (of ``concurrency``) and channel slots that only urgent and notice jobs may take
        self.reserved = min(self.section["reserved_concurrency"], max(0, self.section["concurrency"] - 1))
        self.throttles = Throttles(self.section, self.reserved)
        self.ready = LaneQueue()
        self.finished: list[Finished] = []
        self.held: list[Held] = []
        #: ids of urgent and notice jobs among ``held`` (they leave ``priority_in_memory`` when written)
        self.held_priority: dict[int, int] = {}
        self.in_memory = 0
        self.capacity = max(self.section["claim_batch"] * 2, self.section["concurrency"] * 4)
        #: claim only when this much room is free, so claims come in full batches
        self.claim_room = min(self.section["claim_batch"], self.capacity // 2)
        #: a claim that came back short means nothing more is due: until this
        #: (monotonic) time only the claimer's own polls look again, not every record batch
        self.queue_empty_until = 0.0
        self.campaigns_checked = 0.0
        #: suppressions added after jobs were claimed stop those jobs before they are sent
        self.suppressions_checked = 0.0
        self.suppressions_seen: int | None = None
        #: (channel, address) → scope of entries added since the claim-time check
        self.late_suppressed: dict[tuple[str, str], str] = {}
        self.ended_late: list[Job] = []
        #: campaigns of jobs in memory; their states are re-read 4 times a second
        self.campaigns: dict[int, dict] = {}
        self.figures = Figures()
        self.wake = asyncio.Event()
        self.written = asyncio.Event()
        self.has_results = asyncio.Event()
        self.stopping = False
        self.db = db_writer.for_database(ctx.db, "pass-db", QueueBatches(self._settings()),
                                         own_process=self.section["database_process"])
        self.calls = QueueCalls(self.db)
        #: the priority claimer's own connection (a thread on SQLite), so an alert's claim
        #: waits for the write lock at most, never behind the batches queued for ``db``
        self.priority_db = db_writer.for_database(ctx.db, "pass-priority-db", QueueBatches(self._settings()),
                                                  eager=True)
        self.priority_calls = QueueCalls(self.priority_db)
        #: urgent and notice jobs in memory; their own claims may go beyond ``capacity`` up to this many
        self.priority_in_memory = 0
        self.priority_room = max(self.reserved * 4, 16)
        self.tasks: list[asyncio.Task] = []
        self.senders: list[asyncio.Task] = []
        self.window_sharer: asyncio.Task | None = None
        #: channel → last error, while its relay or gateway cannot be reached
        self.outages: dict[str, str] = {}
        self.windows_loaded = asyncio.Event()

    def _settings(self) -> Settings:
        section, config = self.section, self.ctx.config
        return Settings(
            worker_id=self.id, channels=tuple(self.channels), lease_seconds=section["lease_seconds"],
            claim_most=section["claim_batch"] * 2, rates=cdr.rate_table(config),
            from_address=config.get("email", "from_address"), default_timezone=config.get("ums", "timezone"),
            misfire_grace=timedelta(seconds=section["misfire_grace"]),
            retry=after_send.Retry(section["retry_base"], section["retry_max"], section["default_expiry"]),
            caps=caps.Limits.from_config(config),
        )

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        await self.db.start()
        await self.priority_db.start()
        self.tasks = [
            asyncio.create_task(self._claimer(), name="pass-claimer"),
            asyncio.create_task(self._writer(), name="pass-writer"),
            asyncio.create_task(self._renew_leases(), name="pass-leases"),
            asyncio.create_task(self._priority_claimer(), name="pass-priority-claimer"),
        ]
        general = self.section["concurrency"] - self.reserved
        self.senders = [
            asyncio.create_task(self._sender(priority_only=n >= general), name=f"pass-sender-{n}")
            for n in range(self.section["concurrency"])
        ]
        self.window_sharer = (asyncio.create_task(self._share_hourly_windows(), name="pass-windows")
                              if self.throttles.hourly_channels() else None)

    async def stop(self, timeout: float) -> None:
        """Stop claiming; in-flight sends finish (up to ``timeout``); everything
        else goes back to the queue unsent."""
        self.stopping = True
        self.wake.set()
        if self.window_sharer is not None:
            self.window_sharer.cancel()
            await asyncio.gather(self.window_sharer, return_exceptions=True)
        claimer, writer, renewer, priority_claimer = self.tasks
        for task in (claimer, priority_claimer):
            task.cancel()
        await asyncio.gather(claimer, priority_claimer, return_exceptions=True)
        self._hold_queued_jobs()
        for _ in self.senders:
            self.ready.put_nowait(None)
        done, pending = await asyncio.wait(self.senders, timeout=max(0.5, timeout - 1))
        for task in pending:
            task.cancel()
        await asyncio.gather(*self.senders, return_exceptions=True)
        self.written.set()
        await asyncio.gather(writer, return_exceptions=True)
        renewer.cancel()
        await asyncio.gather(renewer, return_exceptions=True)
        try:
            await self._flush()
            released = await self.calls.release_all(self.ctx.clock())
            if released:
                log.info("released unsent deliveries", extra={"count": released})
        except Exception:
            log.exception("could not release leases at stop; they expire on their own")
        await self.db.close()
        await self.priority_db.close()

    def info(self) -> dict:
        elapsed = max(1e-9, time.monotonic() - self.figures.started)
        return {"in_memory": self.in_memory, "sent": self.figures.sent, "failed": self.figures.failed,
                "retried": self.figures.retried, "rate": round(self.figures.sent / elapsed, 1)}

    # --- claiming ------------------------------------------------------------------

    async def _claimer(self) -> None:
        interval = self.section["poll_interval"]
        if self.window_sharer is not None:
            await _wait(self.windows_loaded, 5)  # know what others sent this hour before sending
        while not self.stopping:
            claimed = 0
            try:
                await self._refresh_suppressions()
                room = self.capacity - self.in_memory
                if not self.service.paused and self.channels and room >= self.claim_room:
                    claimed = self._take(await self.calls.record_and_claim(
                        Batch(self.ctx.clock(), claim=room, claim_lanes=self._general_lanes())))
                await self._refresh_campaigns()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("claiming failed; retrying")
                await asyncio.sleep(interval)
            if claimed:
                continue
            if self.in_memory >= self.capacity // 2:
                self.written.clear()
                await _wait(self.written, interval)
            else:
                self.wake.clear()
                await _wait(self.wake, interval)

    def _take(self, done: BatchResult) -> int:
        """What a batch did: its figures, and the deliveries it claimed join the
        ready queue as jobs. Returns how many."""
        figures = self.figures
        figures.sent += done.sent
        figures.failed += done.failed
        figures.retried += done.retried
        figures.ended_by_policy += done.ended_by_policy
        for delivery_id in done.lost:
            log.warning("lease lost before recording; another worker owns it", extra={"delivery": delivery_id})
        if done.claimed_short:
            self.queue_empty_until = time.monotonic() + self.section["poll_interval"]
        for campaign_id, campaign in done.campaigns.items():
            self.campaigns.setdefault(campaign_id, campaign)
        self.in_memory += len(done.ready)
        for ready in done.ready:
            delivery = ready.delivery
            channel = self.channels[delivery.channel]
            job = Job(delivery, ready.campaign_id, channel, self.campaigns.get(ready.campaign_id),
                      channel.destination(delivery), ready.lane)
            self.priority_in_memory += job.priority
            self.ready.put_nowait(job, lanes.rank(job.lane))
        return len(done.ready)

    async def _priority_claimer(self) -> None:
        """Urgent and notice work is claimed as soon as it is durable, whatever
        the marketing backlog: told so by the committing transaction on
        PostgreSQL (:mod:`ums.queue.wakeups`; otherwise a look every
        ``[pass] poll_interval``, for work due later), or every
        ``[pass] urgent_poll`` seconds on SQLite, a cheap read (no write lock)
        looks for due urgent or notice deliveries, and if there are some, a
        small claim of those lanes alone, on a connection of its own, takes
        them — beyond the memory a campaign fills, into the senders it cannot
        take. (Every claim for all lanes takes them first, too; the record
        batches claim no priority work of their own: on PostgreSQL those extra
        lookups cost the campaign a third of its speed.)"""
        told = asyncio.Event()
        listening = await wakeups.listen(self.ctx.db, told.set)
        pending = True  # look once at start: work may have been committed before we listened
        try:
            while not self.stopping:
                if listening is None:
                    await asyncio.sleep(self.section["urgent_poll"])
                    pending = True
                elif not pending:
                    await _wait(told, self.section["poll_interval"])
                    told.clear()
                    pending = True
                    if not listening.alive:  # the database restarted: listen again (or poll)
                        await listening.close()
                        listening = await wakeups.listen(self.ctx.db, told.set)
                else:  # no room (or no channel) yet, or more than there was room for: soon again
                    await asyncio.sleep(ROOM_RECHECK)
                pending = not await self._claim_priority()
        finally:
            if listening is not None:
                await listening.close()

    async def _claim_priority(self) -> bool:
        """Claim due urgent and notice work if there is room; False if there may be
        more than there was room for (or the look failed), so look again soon."""
        room = self._priority_room()
        if not room:
            return False
        try:
            async with self.ctx.db.connect() as conn:
                due = await delivery_store.priority_due(conn, self.ctx.clock(), list(self.channels))
            if due:
                return self._take(await self.priority_calls.claim_priority(self.ctx.clock(), room)) < room
            return True
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("claiming urgent work failed; retrying")
            await asyncio.sleep(self.section["poll_interval"])
            return False

    async def _refresh_campaigns(self) -> None:
        """Re-read the states of campaigns in memory (pause/cancel from anywhere), 4 times a second."""
        if not self.campaigns or time.monotonic() - self.campaigns_checked < 0.25:
            return
        self.campaigns_checked = time.monotonic()
        async with self.ctx.db.connect() as conn:
            current = await campaign_store.states(conn, list(self.campaigns))
        for campaign_id, state in current.items():
            self.campaigns[campaign_id]["state"] = state

    async def _refresh_suppressions(self) -> None:
        """4 times a second, note what was suppressed since (an unsubscribe in the
        middle of a campaign): claimed jobs to those addresses end unsent."""
        if time.monotonic() - self.suppressions_checked < 0.25:
            return
        self.suppressions_checked = time.monotonic()
        if not self.in_memory:
            self.late_suppressed.clear()   # the claim-time check covers what comes next
        async with self.ctx.db.connect() as conn:
            if self.suppressions_seen is None:
                self.suppressions_seen = await suppression.last_id(conn)
                return
            # a little overlap: on PostgreSQL a lower id can commit after a higher one
            for entry_id, channel, address, scope in await suppression.added_after(conn, self.suppressions_seen - 50):
                if self.late_suppressed.get((channel, address)) != suppression.ALL:
                    self.late_suppressed[(channel, address)] = scope
                self.suppressions_seen = max(self.suppressions_seen, entry_id)

    def _suppressed_since_claim(self, job: Job) -> bool:
        if not self.late_suppressed:
            return False
        delivery = job.delivery
        scope = self.late_suppressed.get((delivery.channel, normalize(delivery.channel, delivery.recipient or "")))
        return scope == suppression.ALL or (scope == suppression.ADVERTISING and delivery.kind == "advertising")

    # --- sending ------------------------------------------------------------------

    async def _sender(self, priority_only: bool = False) -> None:
        hold_after = self.section["lease_seconds"] / 3
        most = lanes.PRIORITY_RANK if priority_only else lanes.rank(lanes.ORDER[-1])
        while True:
            job = await self.ready.get(most)
            if job is None:
                return
            if self._must_hold(job):
                self._hold(self._paused(job), job)
                continue
            throttle = (job.campaign or {}).get("throttle")
            delay = self.throttles.delay(job.delivery.channel, job.campaign_id, throttle, job.lane)
            if delay > hold_after:
                due = self.ctx.clock() + timedelta(seconds=delay)
                self._hold(Held(job.delivery.id, due, DeliveryState.QUEUED.value, "hourly window full", Hold.WINDOW), job)
                continue
            try:
                async with self.throttles.slot(job.delivery.channel, job.destination, job.campaign_id, throttle,
                                               priority=job.priority, lane=job.lane):
                    if self._must_hold(job):
                        self._hold(self._paused(job), job)
                        continue
                    if self._suppressed_since_claim(job):
                        self.ended_late.append(job)
                        self.has_results.set()
                        continue
                    outcome = await job.channel.send(job.delivery)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("channel raised; counted as a temporary failure", extra={"delivery": job.delivery.id})
                outcome = Outcome(status=TEMPORARY, code="error", detail=str(exc)[:200], disposition="FAILED")
            self._note_reachability(job.delivery.channel, outcome)
            # urgent and notice work in memory is bounded by ``priority_room``: a sender kept
            # for it takes the next alert without waiting for this one's record (0.1-0.3 s)
            recorded = None if priority_only else asyncio.get_running_loop().create_future()
            self.finished.append(Finished(job, outcome, recorded))
            self.has_results.set()
            if recorded is not None:
                await recorded   # cancelled at stop: the writer still records it (it checks done())

    def _note_reachability(self, channel: str, outcome: Outcome) -> None:
        """One WARNING when a channel's relay or gateway becomes unreachable, one
        INFO when it answers again; ``ums status`` shows PASS degraded between."""
        if outcome.unreachable:
            if channel not in self.outages:
                log.warning("relay unreachable; deliveries wait and retry",
                            extra={"channel": channel, "error": outcome.detail})
                alerts.relay_unreachable(self.ctx, channel, outcome.detail)
            self.outages[channel] = outcome.detail
        elif channel in self.outages:   # any answer at all shows it is reachable
            del self.outages[channel]
            log.info("relay reachable again", extra={"channel": channel})
            alerts.relay_reachable(self.ctx, channel)

    def _must_hold(self, job: Job) -> bool:
        return self.service.paused or self.stopping or campaign_stops((job.campaign or {}).get("state"))

    def _paused(self, job: Job) -> Held:
        """Why a job that must not go now goes back to the queue."""
        if self.stopping:
            return Held(job.delivery.id, reason="stopping")
        if self.service.paused:
            return Held(job.delivery.id, reason="PASS paused", hold=Hold.PAUSED)
        if (job.campaign or {}).get("state") == "cancelled":
            return Held(job.delivery.id, state=DeliveryState.CANCELLED.value, reason="campaign cancelled")
        return Held(job.delivery.id, reason="campaign paused", hold=Hold.PAUSED)

    def _hold(self, held: Held, job: Job) -> None:
        self.held.append(held)
        if job.priority:
            self.held_priority[held.delivery_id] = 1

    def _hold_queued_jobs(self) -> None:
        for job in self.ready.drain():
            self._hold(Held(job.delivery.id, reason="stopping"), job)

    # --- recording ------------------------------------------------------------------

    async def _writer(self) -> None:
        interval = self.section["write_interval"]
        while True:
            if self.stopping and not any(not task.done() for task in self.senders) \
                    and not self.finished and not self.held and not self.ended_late:
                return
            self.has_results.clear()
            if not self.finished and not self.held and not self.ended_late:
                await _wait(self.has_results, 0.2)
            await asyncio.sleep(interval)  # let a group of results gather for one commit
            try:
                await self._flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recording results failed; will retry")
                await asyncio.sleep(1)

    async def _flush(self) -> None:
        while self.finished or self.held or self.ended_late:
            batch = self.finished[: self.section["write_batch"]]
            holds = self.held[: self.section["write_batch"]]
            ended = self.ended_late[: self.section["write_batch"]]
            done = await self.calls.record_and_claim(Batch(
                self.ctx.clock(), [(item.job.delivery.id, item.outcome) for item in batch], holds,
                [job.delivery.id for job in ended], self._room_after(len(batch) + len(holds) + len(ended)),
                claim_lanes=self._general_lanes()))
            del self.finished[: len(batch)]
            del self.held[: len(holds)]
            del self.ended_late[: len(ended)]
            for item in batch:
                if item.recorded is not None and not item.recorded.done():
                    item.recorded.set_result(None)
            self.in_memory -= len(batch) + len(holds) + len(ended)
            self.priority_in_memory -= sum(item.job.priority for item in batch) + \
                sum(job.priority for job in ended) + sum(self.held_priority.pop(h.delivery_id, 0) for h in holds)
            self._take(done)
            self.written.set()

    def _priority_room(self) -> int:
        """How many urgent and notice deliveries a batch may claim besides the
        rest: beyond ``capacity``, up to ``priority_room`` of them in memory."""
        if self.stopping or self.service.paused or not self.channels:
            return 0
        return max(0, min(self.priority_room - self.priority_in_memory, self.section["claim_batch"]))

    def _general_lanes(self) -> tuple[str, ...]:
        """What the campaign-sized claims take: marketing alone while the priority
        claimer has room for urgent and notice work (on PostgreSQL an alert that a
        long record batch locked waited for that batch's commit, its own claimer
        skipping it: p50 0.4 s), every lane when it has none (a notice backlog
        then flows at full speed)."""
        return lanes.ORDER if not self._priority_room() else (lanes.Lane.MARKETING.value,)

    def _room_after(self, leaving: int) -> int:
        """How many deliveries a record batch may claim besides (0: none), once
        ``leaving`` jobs have left memory: one commit (and on SQLite one turn of
        the write lock) for both."""
        room = self.capacity - self.in_memory + leaving
        if self.stopping or self.service.paused or not self.channels or room < self.claim_room \
                or time.monotonic() < self.queue_empty_until:
            return 0
        return room

    # --- hourly windows ------------------------------------------------------------------

    async def _share_hourly_windows(self) -> None:
        """Once a second, load each hourly channel window from what all PASS
        processes delivered in the last hour (the CDR)."""
        while True:
            try:
                now = self.ctx.clock()
                async with self.ctx.db.connect() as conn:
                    for channel in self.throttles.hourly_channels():
                        limiter = self.throttles.for_channel(channel)
                        starts = await cdr_store.recent_sends(conn, channel, now - timedelta(hours=1),
                                                              limiter.per_hour)
                        limiter.share_window([(now - as_utc(start)).total_seconds() for start in starts])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not load the hourly windows; keeping this process's own count")
            self.windows_loaded.set()
            await asyncio.sleep(1.0)

    # --- leases ------------------------------------------------------------------

    async def _renew_leases(self) -> None:
        every = self.section["lease_seconds"] / 3
        while True:
            await asyncio.sleep(every)
            if not self.in_memory:
                continue
            try:
                until = self.ctx.clock() + timedelta(seconds=self.section["lease_seconds"])
                await self.calls.renew(until)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("lease renewal failed")


async def _wait(event: asyncio.Event, timeout: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except asyncio.TimeoutError:
        pass
