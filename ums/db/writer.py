"""Where a batch of database work runs: one transaction, one call.

A batch is a plain (sync) function of a SQLAlchemy ``Connection``: EPS's
ingest writer (:func:`eps.ingest.store_batch`) and PASS's queue worker
(record results, claim the next deliveries) use it. On SQLite it runs in a thread of its own
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

log = logging.getLogger("ums.db.writer")


class AsyncWriter:
    """Runs batches on the suite's async engine, one at a time on a connection it keeps."""

    def __init__(self, db: Database):
        self.db = db
        self.conn = None
        self.lock = asyncio.Lock()

    async def run(self, work: Callable[..., Any], *args) -> Any:
        async with self.lock:
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

    def __init__(self, db: Database, name: str = "db-writer"):
        url = db.engine.url.set(drivername="sqlite")
        self.engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(self.engine, "connect", apply_sqlite_pragmas)
        event.listen(self.engine, "connect", _sqlite_begins_itself)
        event.listen(self.engine, "begin", _begin_immediate)
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

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


def _sqlite_begins_itself(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None   # SQLAlchemy's own BEGIN, not the driver's


def _begin_immediate(conn) -> None:
    """A batch writes: take SQLite's write lock when it begins (waiting up to the
    busy timeout) rather than at its first write, where a snapshot that another
    writer overtook fails at once with "database is locked"."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def for_database(db: Database, name: str = "db-writer") -> AsyncWriter | ThreadWriter:
    """A thread writer (its thread called ``name``) for an SQLite file, the async engine otherwise."""
    database = db.engine.url.database or ""
    if db.dialect == "sqlite" and database and database != ":memory:" and "mode=memory" not in str(db.engine.url):
        return ThreadWriter(db, name)
    return AsyncWriter(db)
