"""Keeps ``var/cdr/YYYY-MM-DD.csv`` following the ``cdr`` table.

One PASS process per instance directory writes the files (an advisory lock
on ``var/cdr/.lock``); the others skip. The position is recovered from the
files themselves at start, so a crash neither repeats nor skips a row; a
write that stopping interrupts is finished before the last catch-up, which
would otherwise write its rows again.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging

from ums.clock import site_zone
from ums.cdr import DailyFiles
from ums.store import cdr as cdr_store

log = logging.getLogger("ums.pass.cdr")


class CdrFileWriter:
    def __init__(self, ctx, every: float = 1.0):
        self.ctx = ctx
        self.every = every
        self.files = DailyFiles(ctx.config.var_dir / "cdr", site_zone(ctx.config))
        self.last_id: int | None = None
        self.lock_handle = None
        #: rows being appended (in a thread) and the position moved past them, as one
        #: step a cancelled loop leaves running: the next catch-up waits for it rather
        #: than write those rows again
        self.appending: asyncio.Future | None = None

    def _take_lock(self) -> bool:
        if self.lock_handle is not None:
            return True
        self.files.directory.mkdir(parents=True, exist_ok=True)
        handle = open(self.files.directory / ".lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self.lock_handle = handle
        return True

    async def catch_up(self) -> int:
        """Append every CDR row not yet in the files; returns how many."""
        if not self._take_lock():
            return 0
        if self.appending is not None:
            await asyncio.wait([self.appending])   # its rows are in the files whatever its outcome
        written = 0
        async with self.ctx.db.connect() as conn:
            if self.last_id is None:
                self.last_id = await cdr_store.max_id_of(conn, self.files.last_written())
            while True:
                rows = await cdr_store.after(conn, self.last_id)
                if not rows:
                    return written
                self.appending = asyncio.ensure_future(self._append(rows))
                await asyncio.shield(self.appending)
                written += len(rows)

    async def _append(self, rows: list[dict]) -> None:
        await asyncio.to_thread(self.files.append, rows)
        self.last_id = rows[-1]["id"]

    async def run(self) -> None:
        while True:
            try:
                await self.catch_up()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("writing CDR files failed; retrying")
            await asyncio.sleep(self.every)

    def close(self) -> None:
        if self.lock_handle is not None:
            self.lock_handle.close()
            self.lock_handle = None
