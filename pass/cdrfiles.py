"""Keeps ``var/cdr/YYYY-MM-DD.csv`` following the ``cdr`` table.

One PASS process per instance directory writes the files (an advisory lock
on ``var/cdr/.lock``); the others skip. The position is recovered from the
files themselves at start, so a crash neither repeats nor skips a row.
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
        written = 0
        async with self.ctx.db.connect() as conn:
            if self.last_id is None:
                self.last_id = await cdr_store.max_id_of(conn, self.files.last_written())
            while True:
                rows = await cdr_store.after(conn, self.last_id)
                if not rows:
                    return written
                await asyncio.to_thread(self.files.append, rows)
                self.last_id = rows[-1]["id"]
                written += len(rows)

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
