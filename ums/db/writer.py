"""Where a batch of database work runs: one transaction, one call.

A batch is a plain (sync) function of a SQLAlchemy ``Connection``: EPS's
ingest writer (:func:`eps.ingest.store_batch`) and PASS's queue worker
(record results, claim the next deliveries) use it. A writer may also host an
object whose methods are batches (:meth:`call`), for work that keeps state
between batches (PASS's :class:`~pass.batches.QueueBatches`).

Three places to run it, one interface (:class:`Writer`):

* :class:`ThreadWriter` — SQLite: a thread of its own with a synchronous
  connection to the same file, so a batch is one hand-off between the event
  loop and the database thread (statement by statement through the async
  driver costs several hand-offs per statement, each waiting its turn on a busy
  event loop);
* :class:`AsyncWriter` — on the suite's async engine through ``run_sync``
  (PostgreSQL, and in-memory SQLite, which no other connection can see);
* :class:`ProcessWriter` — a process of its own: the batch's Python work runs
  on another core instead of sharing the interpreter lock with the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError

from ums.db import Database, apply_sqlite_pragmas, connect

log = logging.getLogger("ums.db.writer")


class Writer:
    """Where batches run, one at a time, each in one transaction."""

    #: the object whose methods :meth:`call` runs as batches (None: only :meth:`run`)
    host: Any = None

    async def start(self) -> None:
        """Get ready to run batches (nothing to prepare unless a writer says so)."""

    async def run(self, work: Callable[..., Any], *args) -> Any:
        """``work(conn, *args)`` in one transaction; its result."""
        raise NotImplementedError

    async def call(self, method: str, *args) -> Any:
        """The host's ``method(conn, *args)`` as a batch."""
        return await self.run(getattr(self.host, method), *args)

    async def reset(self) -> None:
        """After a failed batch (nothing to do unless a writer says so)."""

    async def close(self) -> None:
        """Release the connection (and thread or process); no batches after this."""


class AsyncWriter(Writer):
    """Runs batches on the suite's async engine, one at a time on a connection it keeps."""

    def __init__(self, db: Database, host: Any = None):
        self.db = db
        self.host = host
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


class ThreadWriter(Writer):
    """Runs batches in one dedicated thread on a synchronous SQLite connection
    (same file, same pragmas as the suite's engine: WAL, busy timeout)."""

    def __init__(self, db: Database, name: str = "db-writer", host: Any = None, eager: bool = False):
        self.engine = _sqlite_engine(db.engine.url, eager)
        self.host = host
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def run(self, work: Callable[..., Any], *args) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.thread, self._in_thread, work, args)

    def _in_thread(self, work, args):
        with self.engine.begin() as conn:
            return work(conn, *args)

    async def close(self) -> None:
        await asyncio.to_thread(self.thread.shutdown)
        self.engine.dispose()


class ProcessWriter(Writer):
    """Runs batches in a process of its own, with its own connection to the
    same database: the batch's Python work (building statements, reading rows,
    the caller's logic) runs on a second core while the event loop goes on.

    :meth:`start` (or else the first batch) spawns the process; one that died
    is replaced at the next batch. ``work`` and ``host`` cross over by
    pickling, so ``work`` must be a module-level function; ``host`` is copied
    once, and its state lives on in that process (it starts afresh, from the
    same copy, if the process has to be replaced). Arguments and results are
    pickled too: keep them plain data. The process ignores SIGINT and SIGTERM
    (the parent's stop decides when batches end) and exits within a fraction
    of a second of its parent, however the parent ended."""

    def __init__(self, db: Database, name: str = "db-writer", host: Any = None):
        self.url = db.engine.url.render_as_string(hide_password=False)
        self.name = name
        self.host = host
        self.pool: ProcessPoolExecutor | None = None

    def _process(self) -> ProcessPoolExecutor:
        if self.pool is None:
            self.pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                initializer=_process_start, initargs=(self.url, self.host, os.getpid(), self.name),
            )
        return self.pool

    async def start(self) -> None:
        """Spawn the process and wait until it can take batches (it imports
        what the batches need, about a second of CPU), so the first batch
        does not wait for it."""
        await self._submit(_process_ready)

    async def run(self, work: Callable[..., Any], *args) -> Any:
        return await self._submit(_process_run, work, args)

    async def call(self, method: str, *args) -> Any:
        return await self._submit(_process_call, method, args)

    async def _submit(self, function, *args) -> Any:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._process(), function, *args)
        except BrokenProcessPool:
            self._forget()
            raise

    def _forget(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    async def close(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown)


#: the database process's side of :class:`ProcessWriter`: its host and how a batch runs
_in_process: dict[str, Any] = {}


def _process_start(url: str, host: Any, parent: int, name: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent,), name=f"{name}-parent", daemon=True).start()
    _in_process["host"] = host
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(parsed)

        def run(work, args):
            with engine.begin() as conn:
                return work(conn, *args)
    else:
        loop = asyncio.new_event_loop()
        db = connect(url, pool_size=1)

        async def batch(work, args):
            async with db.begin() as conn:
                return await conn.run_sync(work, *args)

        def run(work, args):
            return loop.run_until_complete(batch(work, args))
    _in_process["run"] = run


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(0)


def _process_ready() -> bool:
    return "run" in _in_process


def _process_run(work, args):
    return _in_process["run"](work, args)


def _process_call(method: str, args):
    return _in_process["run"](getattr(_in_process["host"], method), args)


def _sqlite_engine(url: URL, eager: bool = False):
    """A synchronous engine on the SQLite file of ``url`` (same pragmas as the suite's);
    ``eager``: its transactions take the write lock by :func:`_begin_immediate_eagerly`."""
    engine = create_engine(url.set(drivername="sqlite"), connect_args={"timeout": 30})
    event.listen(engine, "connect", apply_sqlite_pragmas)
    event.listen(engine, "connect", _sqlite_begins_itself)
    if eager:
        event.listen(engine, "connect", _no_busy_wait)
    event.listen(engine, "begin", _begin_immediate_eagerly if eager else _begin_immediate)
    return engine


def _sqlite_begins_itself(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None   # SQLAlchemy's own BEGIN, not the driver's


def _begin_immediate(conn) -> None:
    """A batch writes: take SQLite's write lock when it begins (waiting up to the
    busy timeout) rather than at its first write, where a snapshot that another
    writer overtook fails at once with "database is locked"."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _begin_immediate_eagerly(conn) -> None:
    """:func:`_begin_immediate` for work that must not wait behind a stream of other
    writers' transactions (PASS's claims of urgent alerts). SQLite's own busy wait
    sleeps ever longer between tries — 25, 50, then 100 ms — and a writer that
    commits and begins again at once (a campaign's record batches) keeps finding the
    lock free before it looks; looking every millisecond takes the first gap."""
    deadline = time.monotonic() + EAGER_LOCK_SECONDS
    while True:
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            return
        except OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.001)


#: how long an eager transaction tries for the write lock (as long as the busy timeout)
EAGER_LOCK_SECONDS = 30.0


def _no_busy_wait(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA busy_timeout=0")


def for_database(db: Database, name: str = "db-writer", host: Any = None, own_process: bool = False,
                 eager: bool = False) -> Writer:
    """Where ``db``'s batches run: a process of its own when asked for (and the
    database can be reached from one), else a thread (called ``name``) for an
    SQLite file, else the async engine. ``host``: see :meth:`AsyncWriter.call`.
    ``eager``: on an SQLite file, a thread whose transactions look for the write
    lock every millisecond (:func:`_begin_immediate_eagerly`)."""
    in_memory = db.dialect == "sqlite" and (
        (db.engine.url.database or ":memory:") == ":memory:" or "mode=memory" in str(db.engine.url)
    )
    if in_memory:
        return AsyncWriter(db, host)
    if own_process:
        return ProcessWriter(db, name, host)
    if db.dialect == "sqlite":
        return ThreadWriter(db, name, host, eager)
    return AsyncWriter(db, host)
