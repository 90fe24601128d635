"""Database access: one async engine per process, SQLite (WAL) or PostgreSQL.

``connect(url)`` returns a :class:`Database`; code runs queries from
:mod:`ums.store` inside ``async with db.begin() as conn:`` (one transaction).
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ..errors import DatabaseError


class Database:
    """The process's engine plus the facts code needs about it."""

    def __init__(self, engine: AsyncEngine):
        self.engine = engine
        self.dialect = engine.dialect.name

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def close(self) -> None:
        await self.engine.dispose()


def apply_sqlite_pragmas(dbapi_connection, _record) -> None:
    """Connect hook for every SQLite connection UMS opens (async engine or a plain one)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


#: Every statement is planned for the table as it is when it runs. asyncpg prepares
#: each statement and PostgreSQL switches a prepared statement to one generic plan
#: after five runs; the queue's tables grow by hundreds of thousands of rows in the
#: minute a campaign expands, faster than autovacuum's statistics, and a plan made
#: while ``deliveries`` was small kept a sequential scan under every claim (an
#: UPDATE of 400 claimed ids took 0.3-1.6 s on a 200,000-row queue instead of
#: 35 ms). A custom plan sees the table's current size.
POSTGRES_SETTINGS = {"plan_cache_mode": "force_custom_plan"}


def connect(url: str, pool_size: int = 10, echo: bool = False) -> Database:
    """Create the engine for ``url``; for SQLite the file's folder is created."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a long text
        raise DatabaseError(reason=f"bad database URL ({exc})") from None
    options: dict = {"echo": echo}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        options["connect_args"] = {"timeout": 30}
    else:
        options.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                       connect_args={"server_settings": POSTGRES_SETTINGS})
    try:
        engine = create_async_engine(parsed, **options)
    except Exception as exc:
        raise DatabaseError(reason=f"cannot use {parsed.render_as_string()} ({exc})") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", apply_sqlite_pragmas)
    return Database(engine)


def from_config(config) -> Database:
    section = config.section("database")
    return connect(section["url"], section["pool_size"], section["echo"])


T = TypeVar("T")


async def retry_when_locked(attempt: Callable[[], Awaitable[T]], tries: int = 8) -> T:
    """``await attempt()``, again after a short pause while SQLite says the
    database is locked (another connection's write transaction); other errors,
    and the last try's, propagate."""
    for number in range(tries):
        try:
            return await attempt()
        except OperationalError as exc:
            if "locked" not in str(exc) or number == tries - 1:
                raise
            await asyncio.sleep(0.05 * (number + 1))
    raise AssertionError("unreachable")
