"""The queue worker: claim → policy → throttle → channel → record.

Three kinds of task share the work:

* the *claimer* leases due deliveries in batches (only for channels that
  loaded), applies the send-time policy in the same transaction (ending,
  holding or deferring what must not go now) and queues the rest in memory;
* *senders* (``[pass] concurrency`` of them) take a job, wait for its
  throttles and call its channel;
* the *writer* commits finished attempts in batches — each delivery's new
  state and its CDR row in one transaction — and hands back held jobs.

Each transaction is one plain function of a sync ``Connection`` run by
:mod:`ums.db.writer`: on SQLite in the writer's own thread, so a batch costs
one hand-off to the database instead of several per statement, each waiting
for its turn on an event loop busy with sending. Those functions therefore
leave what the event loop also changes (``in_memory``, the ready queue) to it:
they return the claimed jobs, and :meth:`Worker._take` queues them. They only
write what nothing else writes (the campaign and template caches, the
figures, ``queue_empty_until``).

A lease covers a job from claim to record and is renewed while the job is
in memory; if this process dies the lease runs out and any PASS takes the
delivery again (it keeps its Message-ID).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from ums import cdr
from ums.addresses import normalize
from ums.channels import SENT, TEMPORARY, Channel, Delivery, Outcome
from ums.db import retry_when_locked
from ums.db import writer as db_writer
from ums.outbox import fall_back_sync
from ums.store import as_utc
from ums.store import campaigns as campaign_store
from ums.store import cdr as cdr_store
from ums.store import contacts as contact_store
from ums.store import deliveries as queue
from ums.store import suppression
from ums.store import templates as template_store

from . import policy
from .throttle import Throttles

log = logging.getLogger("ums.pass")
CONTACT_FIELDS = ("name", "email", "fax", "phone", "grade", "customer_id", "locale", "timezone")


@dataclass
class Job:
    row: dict
    delivery: Delivery
    channel: Channel
    campaign: dict | None
    destination: str


@dataclass
class Finished:
    job: Job
    outcome: Outcome
    #: resolved once the result is committed; the sender waits for it, so at most
    #: ``concurrency`` messages are ever sent but not yet recorded
    recorded: asyncio.Future | None = None


@dataclass
class Held:
    delivery_id: int
    due_at: datetime | None = None
    state: str = "queued"
    reason: str | None = None


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
        self.throttles = Throttles(self.section)
        self.rates = cdr.rate_table(ctx.config)
        self.from_address = ctx.config.get("email", "from_address")
        self.policy_ctx_args = (ctx.config.get("ums", "timezone"),
                                timedelta(seconds=self.section["misfire_grace"]))
        self.ready: asyncio.Queue[Job | None] = asyncio.Queue()
        self.finished: list[Finished] = []
        self.held: list[Held] = []
        self.in_memory = 0
        self.capacity = max(self.section["claim_batch"] * 2, self.section["concurrency"] * 4)
        #: claim only when this much room is free, so claims come in full batches
        self.claim_room = min(self.section["claim_batch"], self.capacity // 2)
        #: most one claim takes, so the first sends start before a whole capacity is read
        self.claim_most = self.section["claim_batch"] * 2
        #: a claim that came back short means nothing more is due: until this
        #: (monotonic) time only the claimer's own polls look again, not every record batch
        self.queue_empty_until = 0.0
        self.campaigns_checked = 0.0
        #: suppressions added after jobs were claimed stop those jobs before they are sent
        self.suppressions_checked = 0.0
        self.suppressions_seen: int | None = None
        self.late_suppressed: set[tuple[str, str]] = set()
        self.ended_late: list[Job] = []
        self.campaigns: dict[int, dict] = {}
        self.templates: dict[tuple[str, str], tuple[float, dict | None]] = {}
        self.figures = Figures()
        self.wake = asyncio.Event()
        self.written = asyncio.Event()
        self.has_results = asyncio.Event()
        self.stopping = False
        self.db = db_writer.for_database(ctx.db, "pass-db")
        self.tasks: list[asyncio.Task] = []
        self.senders: list[asyncio.Task] = []
        self.window_sharer: asyncio.Task | None = None
        self.windows_loaded = asyncio.Event()

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self.tasks = [
            asyncio.create_task(self._claimer(), name="pass-claimer"),
            asyncio.create_task(self._writer(), name="pass-writer"),
            asyncio.create_task(self._renew_leases(), name="pass-leases"),
        ]
        self.senders = [
            asyncio.create_task(self._sender(), name=f"pass-sender-{n}")
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
        claimer, writer, renewer = self.tasks
        claimer.cancel()
        await asyncio.gather(claimer, return_exceptions=True)
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
            released = await self._transaction(lambda conn: queue.release_all(conn, self.id, self.ctx.clock()))
            if released:
                log.info("released unsent deliveries", extra={"count": released})
        except Exception:
            log.exception("could not release leases at stop; they expire on their own")
        await self.db.close()

    def info(self) -> dict:
        elapsed = max(1e-9, time.monotonic() - self.figures.started)
        return {"in_memory": self.in_memory, "sent": self.figures.sent, "failed": self.figures.failed,
                "retried": self.figures.retried, "rate": round(self.figures.sent / elapsed, 1)}

    # --- transactions ------------------------------------------------------------------

    async def _transaction(self, work):
        """Run ``work(conn)`` (sync) in one transaction; SQLite lock contention is retried."""
        return await retry_when_locked(lambda: self._run_batch(work))

    async def _run_batch(self, work):
        try:
            return await self.db.run(work)
        except Exception:
            await self.db.reset()   # the next batch opens a fresh connection
            raise

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
                    jobs = await self._transaction(lambda conn: self._claim(conn, room))
                    claimed = len(jobs)
                    self._take(jobs)
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

    def _take(self, jobs: list[Job]) -> None:
        """Jobs claimed by a transaction join the ready queue (on the event loop)."""
        self.in_memory += len(jobs)
        for job in jobs:
            self.ready.put_nowait(job)

    def _claim(self, conn: Connection, limit: int) -> list[Job]:
        now = self.ctx.clock()
        lease = now + timedelta(seconds=self.section["lease_seconds"])
        limit = min(limit, self.claim_most)
        rows = queue.claim(conn, self.id, now, lease, limit, channels=list(self.channels))
        self.queue_empty_until = time.monotonic() + self.section["poll_interval"] if len(rows) < limit else 0.0
        if not rows:
            return []
        candidates = self._candidates(conn, rows)
        ctx = policy.Context(now, *self.policy_ctx_args)
        jobs, ended, holds = [], [], []
        for candidate in candidates:
            decision = policy.decide(candidate, ctx)
            if decision is None:
                jobs.append(self._job(conn, candidate))
            elif decision.action == policy.END:
                ended.append((candidate, decision))
            elif decision.action == policy.WAIT:
                holds.append(Held(candidate.row["id"], decision.until, "waiting", decision.reason))
            else:
                holds.append(Held(candidate.row["id"], None, "queued", decision.reason))
        self._end_by_policy(conn, ended, now)
        self._release(conn, holds, now)
        return jobs

    def _candidates(self, conn: Connection, rows: list[dict]) -> list[policy.Candidate]:
        campaign_ids = {row["campaign_id"] for row in rows if row["campaign_id"]}
        missing = campaign_ids - set(self.campaigns)
        self.campaigns.update(campaign_store.names(conn, missing))
        contacts = contact_store.by_ids(conn, [row["contact_id"] for row in rows])
        advertising_contacts = [row["contact_id"] for row in rows if row["kind"] == "advertising"]
        consents = contact_store.advertising_consents(conn, advertising_contacts)
        suppressed: set[tuple[str, str]] = set()
        for channel in {row["channel"] for row in rows}:
            addresses = [row["recipient"] for row in rows if row["channel"] == channel and row["recipient"]]
            suppressed |= {(channel, a) for a in suppression.suppressed_among(conn, channel, addresses)}
        return [
            policy.Candidate(
                row=row, campaign=self.campaigns.get(row["campaign_id"]),
                contact=contacts.get(row["contact_id"]), consents=consents.get(row["contact_id"], []),
                suppressed=(row["channel"], normalize(row["channel"], row["recipient"] or "")) in suppressed,
            )
            for row in rows
        ]

    def _template(self, conn: Connection, name: str | None, channel: str) -> dict | None:
        if not name:
            return None
        key = (name, channel)
        cached = self.templates.get(key)
        if cached and time.monotonic() - cached[0] < 5:
            return cached[1]
        row = template_store.get_sync(conn, name, channel)
        self.templates[key] = (time.monotonic(), row)
        return row

    def _job(self, conn: Connection, candidate: policy.Candidate) -> Job:
        row, contact = candidate.row, candidate.contact or {}
        variables = {key: contact.get(key) for key in CONTACT_FIELDS if contact.get(key) is not None}
        variables.update(contact.get("attributes") or {})
        channel = self.channels[row["channel"]]
        delivery = Delivery(
            id=row["id"], channel=row["channel"], recipient=row["recipient"], kind=row["kind"],
            message_id=row["message_id"], token=row["token"], attempt=row["attempts"] + 1,
            template=self._template(conn, row["template_name"], row["channel"]),
            variables=row["variables"] or {}, contact=variables,
            source=(candidate.campaign or {}).get("name") or row.get("service_name") or "",
        )
        return Job(row, delivery, channel, candidate.campaign, channel.destination(delivery))

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
            for entry_id, channel, address in await suppression.added_after(conn, self.suppressions_seen - 50):
                self.late_suppressed.add((channel, address))
                self.suppressions_seen = max(self.suppressions_seen, entry_id)

    def _suppressed_since_claim(self, job: Job) -> bool:
        if not self.late_suppressed:
            return False
        channel = job.row["channel"]
        return (channel, normalize(channel, job.row["recipient"] or "")) in self.late_suppressed

    # --- sending ------------------------------------------------------------------

    async def _sender(self) -> None:
        hold_after = self.section["lease_seconds"] / 3
        while True:
            job = await self.ready.get()
            if job is None:
                return
            if self._must_hold(job):
                self._hold(Held(job.row["id"], reason="paused"))
                continue
            throttle = (job.campaign or {}).get("throttle")
            delay = self.throttles.delay(job.row["channel"], job.row["campaign_id"], throttle)
            if delay > hold_after:
                due = self.ctx.clock() + timedelta(seconds=delay)
                self._hold(Held(job.row["id"], due, "queued", "hourly window full"))
                continue
            try:
                async with self.throttles.slot(job.row["channel"], job.destination, job.row["campaign_id"], throttle):
                    if self._must_hold(job):
                        self._hold(Held(job.row["id"], reason="paused"))
                        continue
                    if self._suppressed_since_claim(job):
                        self.ended_late.append(job)
                        self.has_results.set()
                        continue
                    outcome = await job.channel.send(job.delivery)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("channel raised; counted as a temporary failure", extra={"delivery": job.row["id"]})
                outcome = Outcome(status=TEMPORARY, code="error", detail=str(exc)[:200], disposition="FAILED")
            recorded = asyncio.get_running_loop().create_future()
            self.finished.append(Finished(job, outcome, recorded))
            self.has_results.set()
            await recorded   # cancelled at stop: the writer still records it (it checks done())

    def _must_hold(self, job: Job) -> bool:
        state = (job.campaign or {}).get("state")
        return self.service.paused or self.stopping or state in ("paused", "cancelled")

    def _hold(self, held: Held) -> None:
        self.held.append(held)

    def _hold_queued_jobs(self) -> None:
        while not self.ready.empty():
            job = self.ready.get_nowait()
            if job is not None:
                self._hold(Held(job.row["id"], reason="stopping"))

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
            jobs = await self._transaction(lambda conn: self._record_and_claim(conn, batch, holds, ended))
            del self.finished[: len(batch)]
            del self.held[: len(holds)]
            del self.ended_late[: len(ended)]
            for item in batch:
                if item.recorded is not None and not item.recorded.done():
                    item.recorded.set_result(None)
            self.in_memory -= len(batch) + len(holds) + len(ended)
            self._take(jobs)
            self.written.set()

    def _record_and_claim(self, conn: Connection, batch: list[Finished], holds: list[Held],
                          ended: list[Job]) -> list[Job]:
        """Record results and, when there is room, claim the next jobs in the same
        transaction: one commit (and on SQLite one turn of the write lock) for both."""
        self._record(conn, batch, holds)
        if ended:
            unsubscribed = policy.Decision(policy.END, "suppressed", "suppressed",
                                           "address suppressed after the delivery was queued")
            self._end_by_policy(conn, [(policy.Candidate(job.row, job.campaign, None), unsubscribed)
                                       for job in ended], self.ctx.clock())
        room = self.capacity - self.in_memory + len(batch) + len(holds) + len(ended)
        if self.stopping or self.service.paused or not self.channels or room < self.claim_room \
                or time.monotonic() < self.queue_empty_until:
            return []
        return self._claim(conn, room)

    def _record(self, conn: Connection, batch: list[Finished], holds: list[Held]) -> None:
        now = self.ctx.clock()
        mine = queue.owned(conn, [item.job.row["id"] for item in batch], self.id)
        changes, cdr_rows = [], []
        for item in batch:
            row = item.job.row
            if row["id"] not in mine:
                log.warning("lease lost before recording; another worker owns it", extra={"delivery": row["id"]})
                continue
            change = self._outcome_change(conn, item, now)
            changes.append(change)
            cdr_rows.append(self._cdr(row, item.outcome, row["attempts"] + 1,
                                      change["b_state"] in queue.FINAL_STATES, item.job.campaign, now))
        queue.finish(conn, changes, cdr_rows)
        self._release(conn, holds, now)

    def _outcome_change(self, conn: Connection, item: Finished, now: datetime) -> dict:
        row, outcome = item.job.row, item.outcome
        attempts = row["attempts"] + 1
        state, due = "sent", row["due_at"]
        if outcome.status == SENT:
            self.figures.sent += 1
        elif outcome.status == TEMPORARY:
            due = now + timedelta(seconds=self._backoff(attempts))
            state = "retry" if due <= self._expiry(row) else "expired"
            self.figures.retried += state == "retry"
        else:
            state = "failed"
            self._after_permanent_failure(conn, row, outcome)
        if state in ("failed", "expired"):
            self.figures.failed += 1
            fall_back_sync(conn, {**row, "state": state}, now)
        return {
            "b_id": row["id"], "b_state": state, "b_attempts": attempts, "b_due_at": due,
            "b_code": outcome.code[:16], "b_error": None if state == "sent" else outcome.detail[:1000],
            "b_finished": now if state in queue.FINAL_STATES else None, "b_now": now,
        }

    def _after_permanent_failure(self, conn: Connection, row: dict, outcome: Outcome) -> None:
        """5.1.x (no such user, bad address) puts the address on the suppression list."""
        if row["channel"] == "email" and " 5.1." in f" {outcome.code.partition(' ')[2]}":
            suppression.add_sync(conn, "email", row["recipient"], "bounce", source="pass",
                                  detail=outcome.detail[:500])

    def _backoff(self, attempts: int) -> float:
        base, ceiling = self.section["retry_base"], self.section["retry_max"]
        return min(ceiling, base * 2 ** (attempts - 1)) * random.uniform(0.5, 1.0)

    def _expiry(self, row: dict) -> datetime:
        return as_utc(row["expires_at"]) or (
            as_utc(row["created_at"]) + timedelta(seconds=self.section["default_expiry"])
        )

    def _end_by_policy(self, conn: Connection, ended: list, now: datetime) -> None:
        changes, cdr_rows = [], []
        for candidate, decision in ended:
            row = candidate.row
            outcome = cdr.policy_outcome(decision.code, decision.reason, now)
            changes.append({
                "b_id": row["id"], "b_state": decision.state, "b_attempts": row["attempts"],
                "b_due_at": row["due_at"], "b_code": decision.code[:16], "b_error": decision.reason,
                "b_finished": now, "b_now": now,
            })
            cdr_rows.append(self._cdr(row, outcome, row["attempts"] + 1, True, candidate.campaign, now))
            if decision.state in ("failed", "expired"):
                fall_back_sync(conn, {**row, "state": decision.state}, now)
        self.figures.ended_by_policy += len(changes)
        queue.finish(conn, changes, cdr_rows)

    def _release(self, conn: Connection, holds: list[Held], now: datetime) -> None:
        groups: dict[tuple, list[int]] = {}
        for held in holds:
            groups.setdefault((held.state, held.due_at, held.reason), []).append(held.delivery_id)
        for (state, due_at, reason), ids in groups.items():
            queue.release(conn, ids, self.id, now, state=state, due_at=due_at, reason=reason)

    def _cdr(self, row: dict, outcome: Outcome, attempt: int, final: bool, campaign: dict | None,
             now: datetime) -> dict:
        campaign = campaign or {}
        account = campaign.get("created_by") or (row.get("variables") or {}).get("account") \
            or row.get("service_name") or ""
        source = campaign.get("name") or row.get("service_name") or "send"
        sender = self.from_address if row["channel"] == "email" else ""
        return cdr.attempt_row(row, outcome, attempt, final, self.rates, now, account, source, sender)

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
                await self._transaction(lambda conn: queue.renew(conn, self.id, until))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("lease renewal failed")


async def _wait(event: asyncio.Event, timeout: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except asyncio.TimeoutError:
        pass
