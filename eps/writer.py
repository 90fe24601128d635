"""Where the ingest writer runs a batch: one transaction, one call.

A batch is a plain function of a SQLAlchemy ``Connection`` (see
:func:`eps.ingest.store_batch`). On SQLite it runs in a thread of its own
with a synchronous connection to the same file, so the whole batch is one
hand-off between the event loop and the database thread; going statement by
statement through the async driver costs several hand-offs per statement, each
waiting its turn on a busy event loop. On PostgreSQL (asyncpg is natively
asynchronous) it runs on the async engine through ``run_sync``.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from sqlalchemy import create_engine, event

from ums.db import Database, apply_sqlite_pragmas

log = logging.getLogger("ums.eps.writer")


class AsyncWriter:
    """Runs batches on the suite's async engine, on a connection it keeps."""

    def __init__(self, db: Database):
        self.db = db
        self.conn = None

    async def run(self, work: Callable[..., Any], *args) -> Any:
        if self.conn is None or self.conn.closed or self.conn.invalidated:
            self.conn = await self.db.engine.connect()
        async with self.conn.begin():
            return await self.conn.run_sync(work, *args)

    async def reset(self) -> None:
        """Forget the connection after a failure; the next batch opens a new one."""
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception as exc:  # it is broken already
                log.warning("could not close the writer connection", extra={"error": str(exc)})

    async def close(self) -> None:
        await self.reset()


class ThreadWriter:
    """Runs batches in one dedicated thread on a synchronous SQLite connection
    (same file, same pragmas as the suite's engine: WAL, busy timeout)."""

    def __init__(self, db: Database):
        url = db.engine.url.set(drivername="sqlite")
        self.engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(self.engine, "connect", apply_sqlite_pragmas)
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eps-writer")

    async def run(self, work: Callable[..., Any], *args) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.thread, self._in_thread, work, args)

    def _in_thread(self, work, args):
        with self.engine.begin() as conn:
            return work(conn, *args)

    async def reset(self) -> None:
        """Nothing to do: the pool drops a connection that failed."""

    async def close(self) -> None:
        await asyncio.to_thread(self.thread.shutdown)
        self.engine.dispose()


def for_database(db: Database) -> AsyncWriter | ThreadWriter:
    """A thread writer for an SQLite file, the async engine otherwise."""
    database = db.engine.url.database or ""
    if db.dialect == "sqlite" and database and database != ":memory:" and "mode=memory" not in str(db.engine.url):
        return ThreadWriter(db)
    return AsyncWriter(db)
