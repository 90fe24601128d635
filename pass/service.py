"""The PASS service: channels, the queue worker, reserved sending, the CDR
files and journeys (advancing each customer's due step)."""

from __future__ import annotations

import asyncio

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from ums.channels import Channel, load_channel
from ums.service import Service
from ums.store import deliveries

from .cdrfiles import CdrFileWriter
from .journeys import JourneyRunner
from .reservations import Reservations
from .worker import Worker


class PublicAccessSchedulingServer(Service):
    name = "pass"

    def __init__(self, ctx, name=None):
        super().__init__(ctx, name)
        self.scheduler: AsyncIOScheduler | None = None
        self.channels: dict[str, Channel] = {}
        self.worker: Worker | None = None
        self.reservations: Reservations | None = None
        self.cdr_files: CdrFileWriter | None = None
        self.journeys: JourneyRunner | None = None
        self.tasks: list[asyncio.Task] = []
        self.queue_depth = 0
        #: pending deliveries per lane (urgent, notice, marketing), for ``ums status``
        self.lane_depths: dict[str, int] = {}

    async def start(self) -> None:
        await self._load_channels()
        self.scheduler = AsyncIOScheduler(event_loop=self.ctx.loop, timezone="UTC")
        self.scheduler.start()
        self.worker = Worker(self.ctx, self, self.channels)
        self.reservations = Reservations(self.ctx, self.worker, self.scheduler)
        self.cdr_files = CdrFileWriter(self.ctx)
        self.journeys = JourneyRunner(self.ctx, self)
        await self.worker.start()
        self.tasks = [
            asyncio.create_task(self.reservations.run(), name="pass-reservations"),
            asyncio.create_task(self.cdr_files.run(), name="pass-cdr-files"),
            asyncio.create_task(self._measure_queue(), name="pass-queue-depth"),
            asyncio.create_task(self.journeys.run(), name="pass-journeys"),
        ]

    async def _load_channels(self) -> None:
        """Every configured channel that loads; a missing one is logged and its
        deliveries stay queued until a PASS that has it claims them."""
        for name in self.ctx.config.section("channels"):
            try:
                channel = load_channel(self.ctx, name)
                await channel.start()
            except Exception as exc:
                self.log.warning("channel not available; its deliveries stay queued",
                                 extra={"channel": name, "reason": str(exc)[:200]})
                continue
            self.channels[name] = channel

    async def _measure_queue(self) -> None:
        while True:
            try:
                async with self.ctx.db.connect() as conn:
                    self.lane_depths = await deliveries.pending_by_lane(conn)
                self.queue_depth = sum(self.lane_depths.values())
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("queue poll failed; retrying")
            await asyncio.sleep(max(1.0, self.ctx.config.get("pass", "poll_interval")))

    async def resume(self) -> None:
        await super().resume()
        if self.worker:
            self.worker.wake.set()

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.worker:
            await self.worker.stop(self.ctx.config.get("control", "stop_timeout"))
        if self.cdr_files:
            try:
                await self.cdr_files.catch_up()
            except Exception:
                self.log.exception("final CDR file write failed; the next start catches up")
            self.cdr_files.close()
        for channel in self.channels.values():
            try:
                await channel.stop()
            except Exception:
                self.log.exception("channel stop failed", extra={"channel": channel.name})
        if self.scheduler and self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    @property
    def state(self) -> str:
        """``degraded`` while a channel's relay or gateway cannot be reached."""
        if not self.paused and self.worker and self.worker.outages:
            return "degraded"
        return super().state

    def info(self) -> dict:
        figures = self.worker.info() if self.worker else {}
        info = {"queue": self.queue_depth, **{f"queue_{lane}": n for lane, n in self.lane_depths.items()},
                **figures, "channels": sorted(self.channels)}
        if self.worker and self.worker.outages:
            info["last_error"] = "; ".join(f"{name}: {error}" for name, error in sorted(self.worker.outages.items()))
        return info
