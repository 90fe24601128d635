"""The PASS service: the reserved-sending scheduler and the queue worker."""

from __future__ import annotations

import asyncio

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from ums.service import Service
from ums.store import deliveries


class PublicAccessSchedulingServer(Service):
    name = "pass"

    def __init__(self, ctx, name=None):
        super().__init__(ctx, name)
        self.scheduler: AsyncIOScheduler | None = None
        self.worker: asyncio.Task | None = None
        self.queue_depth = 0
        self._wake = asyncio.Event()

    async def start(self) -> None:
        self.scheduler = AsyncIOScheduler(event_loop=self.ctx.loop, timezone="UTC")
        self.scheduler.start()
        self.worker = asyncio.create_task(self._work(), name="pass-worker")

    async def _work(self) -> None:
        interval = self.ctx.config.get("pass", "poll_interval")
        while True:
            try:
                async with self.ctx.db.connect() as conn:
                    self.queue_depth = await deliveries.count_pending(conn)
            except Exception:
                self.log.exception("queue poll failed; retrying")
            try:
                await asyncio.wait_for(self._wake.wait(), interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    async def stop(self) -> None:
        if self.worker:
            self.worker.cancel()
            await asyncio.gather(self.worker, return_exceptions=True)
        if self.scheduler and self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def info(self) -> dict:
        return {"queue": self.queue_depth}
