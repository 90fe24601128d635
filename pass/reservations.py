"""Reserved sending and campaign runs.

The database is the persistent store of what is due: ``campaigns.schedule_at``
(one-off or the next cron time) and ``deliveries.due_at``. Any PASS process
may start a due campaign, but the start is a conditional UPDATE on the old
state (or old schedule time), so exactly one wins — a campaign never fires
twice, even with several processes. APScheduler only wakes PASS at the next
due time; a poll covers what it cannot see (a time set by another process).
A start missed while PASS was down fires when PASS comes back, unless it is
older than ``pass.misfire_grace`` — then the campaign is marked ``missed``
(or, for cron, waits for its next time) and the log says so with both
times; ``ums campaign reschedule`` revives it. Cron schedules run in
``[ums] timezone``.

Starting a campaign expands its audience into deliveries in batches (one
INSERT … SELECT each, constant memory); once every batch is in and nothing
is pending, the campaign is completed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta

from ums import alerts
from ums.campaigns import next_cron_time
from ums.clock import shown, site_zone
from ums.queue import message_ids
from ums.db import retry_when_locked
from ums.store import as_utc
from ums.store import campaigns as campaign_store
from ums.store import deliveries as queue

log = logging.getLogger("ums.pass.reservations")
WAKE_JOB = "pass-wake"
#: the first expansion batch of a campaign; later ones double up to [pass] expand_batch
FIRST_EXPAND_BATCH = 1000
#: the longest pause between two expansion batches (seconds)
EXPAND_PAUSE_MOST = 0.5


class Reservations:
    def __init__(self, ctx, worker, scheduler):
        self.ctx = ctx
        self.worker = worker
        self.scheduler = scheduler
        section = ctx.config.section("pass")
        self.grace = timedelta(seconds=section["misfire_grace"])
        self.batch = section["expand_batch"]
        # campaign starts are rare: look at least once a second (APScheduler wakes us on time)
        self.interval = max(1.0, section["poll_interval"])
        self.domain = message_ids.domain_of(ctx.config)
        self.tz = site_zone(ctx.config)
        self.wake = asyncio.Event()

    async def run(self) -> None:
        while True:
            self.wake.clear()   # before the pass: a wake-up during it means look again
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reservations pass failed; retrying")
            try:
                await asyncio.wait_for(self.wake.wait(), self.interval)
            except asyncio.TimeoutError:
                pass

    async def _transaction(self, work):
        """Run ``await work(conn)`` in one transaction; SQLite lock contention
        (with the worker's batches) is retried."""
        async def attempt():
            async with self.ctx.db.begin() as conn:
                return await work(conn)
        return await retry_when_locked(attempt)

    async def tick(self) -> None:
        await self.start_due_campaigns()
        await self.expand_running()
        now = self.ctx.clock()
        completed = await self._transaction(lambda conn: campaign_store.complete_finished(conn, now))
        alerts.campaigns_finished(self.ctx, completed)
        alerts.check_rates(self.ctx)
        await self.arm_timer()

    async def start_due_campaigns(self) -> None:
        now = self.ctx.clock()
        async with self.ctx.db.connect() as conn:
            due = await campaign_store.due_to_start(conn, now)
        for campaign in due:
            await self._transaction(lambda conn: self._start(conn, campaign, now))

    async def _start(self, conn, campaign: dict, now: datetime) -> None:
        planned = as_utc(campaign["schedule_at"])
        late = now - planned > self.grace
        if campaign["cron"]:
            following = next_cron_time(campaign["cron"], now, self.tz)
            if not await campaign_store.advance_schedule(conn, campaign["id"], campaign["schedule_at"], following):
                return  # another process fired this run
            if late:
                log.warning("recurring campaign run missed: PASS was not running at its time, later than "
                            "the grace; the next run is on schedule",
                            extra=self._late(campaign, planned, now, following=shown(following, self.tz)))
                return
            run_id = await campaign_store.insert_campaign(
                conn, **_run_of(campaign, planned, now, self.tz)
            )
            log.info("recurring campaign run started", extra={"campaign": campaign["name"], "run": run_id})
            return
        if late:
            if await campaign_store.set_state(conn, campaign["id"], "missed", ("scheduled",), finished_at=now):
                log.warning("campaign start missed: PASS was not running at its time, later than the grace; "
                            "`ums campaign reschedule` gives it a new time", extra=self._late(campaign, planned, now))
            return
        if await campaign_store.set_state(conn, campaign["id"], "running", ("scheduled",), started_at=now):
            log.info("campaign started", extra={"campaign": campaign["name"], "planned": planned})

    def _late(self, campaign: dict, planned, now, **more) -> dict:
        return {"campaign": campaign["name"], "planned": shown(planned, self.tz), "now": shown(now, self.tz),
                "grace_seconds": int(self.grace.total_seconds()), **more}

    async def expand_running(self) -> None:
        async with self.ctx.db.connect() as conn:
            pending = await campaign_store.needing_expansion(conn)
        for campaign in pending:
            await self.expand(campaign["id"])

    async def expand(self, campaign_id: int) -> None:
        """Expand one campaign fully, a batch per transaction. Batches start
        small and double up to ``[pass] expand_batch``, so the first sends
        start while the rest of a large audience is still being expanded;
        after each, the database is left to others as long as the batch took."""
        size = min(FIRST_EXPAND_BATCH, self.batch)
        while True:
            now = self.ctx.clock()

            async def batch(conn):
                campaign = await campaign_store.get(conn, campaign_id)
                if campaign is None or campaign["state"] != "running" or campaign["expanded_at"]:
                    return 0
                added = await campaign_store.expand_batch(conn, campaign, now, size, self.domain)
                if added == 0:
                    await campaign_store.mark_expanded(conn, campaign_id, now)
                    log.info("campaign expanded", extra={"campaign": campaign["name"], "total": campaign["total"]})
                return added

            started = time.monotonic()
            added = await self._transaction(batch)
            if not added and added is not None:
                return
            self.worker.wake.set()
            full, size = added == size, min(size * 2, self.batch)
            if full:
                # more to come: leave the database (SQLite's one write lock) to the other writers
                # about as long as the batch held it, so EPS's commits and PASS's claims of alerts
                # go between the batches of a large audience
                await asyncio.sleep(min(EXPAND_PAUSE_MOST, time.monotonic() - started))
            else:
                await asyncio.sleep(0)

    async def arm_timer(self) -> None:
        now = self.ctx.clock()
        async with self.ctx.db.connect() as conn:
            times = [await campaign_store.next_start(conn), await queue.next_due(conn)]
        future = [as_utc(t) for t in times if t is not None and as_utc(t) > now]
        if not future or self.scheduler is None or not self.scheduler.running:
            return
        self.scheduler.add_job(self._fire, "date", run_date=min(future), id=WAKE_JOB,
                               replace_existing=True, misfire_grace_time=None)

    def _fire(self) -> None:
        self.wake.set()
        self.worker.wake.set()


def _run_of(campaign: dict, planned: datetime, now: datetime, tz) -> dict:
    """A running copy of a recurring campaign for the run planned at ``planned``
    (named after it in the site's zone)."""
    keep = ("kind", "channel", "template_name", "audience", "throttle", "expires_after", "created_by")
    values = {key: campaign[key] for key in keep}
    values.update(
        name=f"{campaign['name']} {shown(planned, tz, '%Y-%m-%d %H:%M')}"[:128], state="running", schedule_at=planned,
        started_at=now, created_at=now, definition={"run_of": campaign["id"]},
    )
    return values
