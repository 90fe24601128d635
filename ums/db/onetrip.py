"""Several write statements in one trip to the database driver, inside the caller's transaction.

On SQLite, every statement SQLAlchemy executes through aiosqlite is about three
trips between the event loop and aiosqlite's thread (a cursor, the execute,
the close), and each trip back waits its turn on the loop. For a writer that
serves a busy loop — MAS's group commit, with dozens of SMTP sessions on the
same loop — the waiting, not SQLite, is most of the write: a batch of three
``executemany`` statements took nine trips. :func:`execute_all` runs the whole
list on aiosqlite's thread in one trip, on the same connection and so in the
same transaction (SQLite's module begins it before the first write, as it
does for SQLAlchemy; the caller's commit ends it).

Statements are compiled by SQLAlchemy for the connection's dialect and their
values converted by the columns' own types, so what is stored is exactly what
``conn.execute(statement, rows)`` would store. Statements with Python-side
column defaults or expanding ``IN`` parameters are not for this module
(compilation leaves those to the execution, which does not happen here).
On PostgreSQL (asyncpg pipelines its own work) each step is ``conn.execute``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable


class Step(NamedTuple):
    """One statement and the parameter sets it is executed for (all with the same keys)."""
    statement: Executable
    rows: Sequence[dict]


class _Compiled(NamedTuple):
    sql: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]

    def positional(self, row: dict) -> tuple:
        return tuple(row[name] if process is None else process(row[name])
                     for name, process in zip(self.names, self.processors))


#: by (statement, keys): statements are module constants, kept alive by this key
_compiled: dict[tuple, _Compiled] = {}


async def execute_all(conn: AsyncConnection, steps: Sequence[Step]) -> None:
    """Execute each step's statement for each of its rows, in order, in ``conn``'s transaction."""
    steps = [step for step in steps if step.rows]
    if not steps:
        return
    if conn.dialect.name != "sqlite":
        for step in steps:
            await conn.execute(step.statement, list(step.rows))
        return
    plan = [(compiled.sql, [compiled.positional(row) for row in step.rows])
            for step in steps for compiled in [_compile(step, conn.dialect)]]
    driver = (await conn.get_raw_connection()).driver_connection
    await driver._execute(_run_plan, driver._conn, plan)  # aiosqlite: run on its thread, one trip


def _run_plan(sqlite_connection, plan: list[tuple[str, list[tuple]]]) -> None:
    for sql, rows in plan:
        sqlite_connection.executemany(sql, rows)


def _compile(step: Step, dialect: Dialect) -> _Compiled:
    keys = tuple(step.rows[0])
    found = _compiled.get((step.statement, keys))
    if found is None:
        compiled = step.statement.compile(dialect=dialect, column_keys=list(keys))
        names = tuple(compiled.positiontup or ())
        processors = tuple(compiled.binds[name].type.bind_processor(dialect) for name in names)
        found = _compiled[(step.statement, keys)] = _Compiled(str(compiled), names, processors)
    return found
