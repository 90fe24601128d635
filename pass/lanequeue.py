"""The ready queue of claimed jobs, one line per lane.

A sender takes the oldest job of the highest lane it may serve: general
senders serve every lane (urgent first), reserved senders only urgent and
notice — so a marketing backlog in memory never delays an alert behind it,
and an alert finds a sender free even while a campaign keeps every general
sender busy. ``None`` (the stop signal) is served to any sender.
"""

from __future__ import annotations

import asyncio
from collections import deque


class LaneQueue:
    def __init__(self, lanes: int = 3):
        self.lines: list[deque] = [deque() for _ in range(lanes)]
        #: (highest rank the waiter serves, its future), in arrival order
        self.waiters: deque[tuple[int, asyncio.Future]] = deque()
        self.stops = 0

    def put_nowait(self, job, rank: int = 0) -> None:
        """Queue ``job`` in line ``rank`` (0 highest); None asks one sender to stop."""
        if job is None:
            self.stops += 1
        else:
            self.lines[min(rank, len(self.lines) - 1)].append(job)
        self._wake()

    async def get(self, most: int):
        """The next job of a line ranked ``most`` or higher (or None: stop)."""
        while True:
            job = self._take(most)
            if job is not False:
                return job
            future = asyncio.get_running_loop().create_future()
            self.waiters.append((most, future))
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self._wake()   # pass on a wake-up this waiter can no longer use
                raise

    def _take(self, most: int):
        if self.stops:
            self.stops -= 1
            return None
        for line in self.lines[: most + 1]:
            if line:
                return line.popleft()
        return False

    def _wake(self) -> None:
        """Wake the first waiter that can serve some queued job."""
        while self.waiters and self.waiters[0][1].done():
            self.waiters.popleft()   # cancelled at stop
        for index, (most, future) in enumerate(self.waiters):
            if future.done():
                continue
            if self.stops or any(self.lines[: most + 1]):
                del self.waiters[index]
                future.set_result(None)
                return

    def drain(self) -> list:
        """Every queued job, taken out (at stop)."""
        jobs = [job for line in self.lines for job in line]
        for line in self.lines:
            line.clear()
        return jobs

    def empty(self) -> bool:
        return not any(self.lines)
