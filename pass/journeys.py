"""Journeys in PASS: every ``[pass] journey_interval`` seconds, advance the
runs whose next step is due on the application clock (``ctx.clock``, so an
injected clock drives waits in tests). The rules are the core's
(:mod:`ums.journeys.engine`); any number of PASS processes may run this at
once — each run's step is claimed by compare-and-set, so it happens once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from ums.journeys.engine import Engine, Settings

log = logging.getLogger("ums.pass.journeys")


class JourneyRunner:
    def __init__(self, ctx, service):
        self.ctx = ctx
        self.service = service
        section = ctx.config.section("pass")
        self.interval = section["journey_interval"]
        self.engine = Engine(ctx.db, Settings(recheck=timedelta(seconds=self.interval),
                                              batch=section["journey_batch"],
                                              default_timezone=ctx.config.get("ums", "timezone")))
        self.moved = 0

    async def run(self) -> None:
        while True:
            try:
                if not self.service.paused:
                    await self.advance_all()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("journey pass failed; retrying")
            await asyncio.sleep(self.interval)

    async def advance_all(self) -> None:
        """Advance due runs until none is left due right now (a batch at a time)."""
        while True:
            moved = await self.engine.advance_due(self.ctx.clock())
            self.moved += moved
            if moved < self.engine.settings.batch:
                return
