"""Throttles: concurrency, a rate (sends per second) and a sliding window
(sends per hour), per channel, per destination, per campaign and per lane
(``[pass] lane_rate`` and ``lane_per_hour``: e.g. marketing at most 100/s
while alerts go unhindered; a lane's window counts this process's sends).

A channel's hourly window is shared by every PASS process: about once a
second each process reloads it from the delivered attempts in the CDR (so
two processes may overshoot by what they send in that second).

A sender holds every limiter that applies to its delivery while it sends::

    async with throttles.slot(channel, destination, campaign_id):
        outcome = await channel.send(delivery)

:meth:`Throttles.delay` says how long a delivery would wait for its hourly
window; PASS puts such deliveries back in the queue (due then) instead of
holding their leases.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

HOUR = 3600.0


class Limiter:
    """Up to ``concurrency`` at once (0 = any), ``rate`` per second, ``per_hour`` per sliding hour.

    With ``reserved``, that many of the ``concurrency`` slots are for urgent
    and notice sends only: marketing waits in a semaphore of its own that is
    that much smaller (priority sends take the full one), so a campaign that
    keeps the channel busy still leaves room for an alert."""

    def __init__(self, concurrency: float = 0, rate: float = 0, per_hour: float = 0, reserved: int = 0):
        self.semaphore = asyncio.Semaphore(int(concurrency)) if concurrency else None
        reserved = min(reserved, int(concurrency) - 1) if concurrency else 0
        self.marketing = asyncio.Semaphore(int(concurrency) - reserved) if reserved > 0 else None
        self.interval = 1.0 / rate if rate else 0.0
        self.next_slot = 0.0
        self.per_hour = int(per_hour)
        self.window: deque[float] = deque()
        #: whether this limiter limits anything (an unlimited one is skipped)
        self.limits = bool(self.semaphore or self.interval or self.per_hour)

    def window_delay(self, now: float) -> float:
        """Seconds until the sliding hour has room for one more send."""
        if not self.per_hour:
            return 0.0
        while self.window and self.window[0] <= now - HOUR:
            self.window.popleft()
        if len(self.window) < self.per_hour:
            return 0.0
        return self.window[0] + HOUR - now

    async def acquire(self, priority: bool = True) -> None:
        if self.marketing is not None and not priority:
            await self.marketing.acquire()
            try:
                await self.semaphore.acquire()
            except BaseException:
                self.marketing.release()
                raise
        elif self.semaphore:
            await self.semaphore.acquire()
        now = time.monotonic()
        wait = self.window_delay(now)
        if self.interval:
            slot = max(now + wait, self.next_slot)
            self.next_slot = slot + self.interval
            wait = slot - now
        if self.per_hour:
            self.window.append(now + wait)
        if wait > 0:
            try:
                await asyncio.sleep(wait)
            except BaseException:
                self.release(priority)
                raise

    def release(self, priority: bool = True) -> None:
        if self.semaphore:
            self.semaphore.release()
        if self.marketing is not None and not priority:
            self.marketing.release()

    def share_window(self, ages: list[float]) -> None:
        """Replace the sliding hour with the sends every process made, given as
        their ages in seconds (oldest first), as recorded in the database."""
        now = time.monotonic()
        self.window = deque(now - age for age in ages[-self.per_hour:] if age < HOUR)


class Throttles:
    """All limiters of one PASS process, built from ``[pass]`` and campaign throttles."""

    def __init__(self, config_section: dict, reserved: int = 0):
        self.section = config_section
        #: channel slots only urgent and notice sends may take
        self.reserved = reserved
        self.channels: dict[str, Limiter] = {}
        self.destinations: dict[tuple[str, str], Limiter] = {}
        self.campaigns: dict[int, Limiter] = {}
        self.lanes: dict[str, Limiter] = {}

    def for_channel(self, channel: str) -> Limiter:
        found = self.channels.get(channel)
        if found is None:
            section = self.section
            found = self.channels[channel] = Limiter(
                section["channel_concurrency"].get(channel, 0), section["channel_rate"].get(channel, 0),
                section["channel_per_hour"].get(channel, 0), self.reserved,
            )
        return found

    def for_destination(self, channel: str, destination: str) -> Limiter:
        key = (channel, destination)
        found = self.destinations.get(key)
        if found is None:
            if len(self.destinations) > 50000:
                self._forget_idle_destinations()
            found = self.destinations[key] = Limiter(
                self.section["destination_concurrency"], self.section["destination_rate"]
            )
        return found

    def _forget_idle_destinations(self) -> None:
        for key, limiter in list(self.destinations.items()):
            if limiter.semaphore is None or not limiter.semaphore.locked():
                del self.destinations[key]

    def for_campaign(self, campaign_id: int | None, throttle: dict | None) -> Limiter | None:
        if campaign_id is None or not throttle:
            return None
        found = self.campaigns.get(campaign_id)
        if found is None:
            found = self.campaigns[campaign_id] = Limiter(
                throttle.get("concurrency", 0), throttle.get("rate", 0), throttle.get("per_hour", 0)
            )
        return found

    def for_lane(self, lane: str | None) -> Limiter | None:
        if lane is None:
            return None
        found = self.lanes.get(lane)
        if found is None:
            found = self.lanes[lane] = Limiter(0, self.section["lane_rate"].get(lane, 0),
                                               self.section["lane_per_hour"].get(lane, 0))
        return found

    def hourly_channels(self) -> list[str]:
        """Channels with a sends-per-hour window."""
        return [channel for channel, limit in self.section["channel_per_hour"].items() if limit]

    def delay(self, channel: str, campaign_id: int | None, throttle: dict | None, lane: str | None = None) -> float:
        now = time.monotonic()
        limiters = [self.for_channel(channel), self.for_campaign(campaign_id, throttle), self.for_lane(lane)]
        return max(limiter.window_delay(now) for limiter in limiters if limiter is not None)

    def slot(self, channel: str, destination: str, campaign_id: int | None = None,
             throttle: dict | None = None, priority: bool = True, lane: str | None = None) -> "Slot":
        limiters = [self.for_campaign(campaign_id, throttle), self.for_lane(lane), self.for_channel(channel)]
        if not self._destination_limit_redundant(channel):
            limiters.append(self.for_destination(channel, destination))
        return Slot([limiter for limiter in limiters if limiter is not None and limiter.limits], priority)

    def _destination_limit_redundant(self, channel: str) -> bool:
        """A destination concurrency no lower than its channel's, and no destination
        rate, can never hold a send back: the channel's limit binds first."""
        channel_limit = self.section["channel_concurrency"].get(channel, 0)
        return (bool(channel_limit) and not self.section["destination_rate"]
                and self.section["destination_concurrency"] >= channel_limit)


class Slot:
    """Holds every limiter of one send (``async with``); released in any case."""

    __slots__ = ("limiters", "taken", "priority")

    def __init__(self, limiters: list[Limiter], priority: bool = True):
        self.limiters = limiters
        self.taken: list[Limiter] = []
        self.priority = priority

    async def __aenter__(self) -> None:
        for limiter in self.limiters:
            await limiter.acquire(self.priority)
            self.taken.append(limiter)

    async def __aexit__(self, *exc_info) -> None:
        for limiter in self.taken:
            limiter.release(self.priority)
