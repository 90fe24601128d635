"""Urgent and notice work announces itself: PASS need not look for it 50 times a second.

On PostgreSQL the transaction that inserts an urgent or notice delivery
(:mod:`ums.queue.rows`) also sends ``NOTIFY ums_priority_due``, which
PostgreSQL delivers when — and only if — it commits, to every process
listening, this one included; PASS's priority claimer listens
(:func:`listen`) and claims as soon as it is told, and otherwise looks only
every ``[pass] poll_interval`` (for work that becomes due later: a retry, a
reservation, a resumed service). An idle PASS process then costs nothing
between polls; on a machine running four of them that was a quarter of a
core.

SQLite has no such channel between processes, so there PASS keeps looking
every ``[pass] urgent_poll`` seconds (:func:`listen` returns None).
"""

from __future__ import annotations

import logging
from typing import Callable

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from . import lanes

CHANNEL = "ums_priority_due"

log = logging.getLogger("ums.queue")


def announce(conn: Connection, lane_values) -> None:
    """Inside the inserting transaction: tell the listeners, once it commits, that
    urgent or notice work is due (nothing for marketing, nothing on SQLite)."""
    if conn.dialect.name == "postgresql" and any(lane in lanes.PRIORITY for lane in lane_values):
        conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


class Listening:
    """A connection held open for the notifications (:func:`listen`)."""

    def __init__(self, conn: AsyncConnection, driver):
        self.conn = conn
        self.driver = driver

    @property
    def alive(self) -> bool:
        return not self.driver.is_closed()

    async def close(self) -> None:
        try:
            await self.conn.close()
        except Exception:  # the database went away: nothing left to close
            pass


async def listen(db, wake: Callable[[], None]) -> Listening | None:
    """Call ``wake()`` whenever urgent or notice work was committed, from any process;
    None where the database cannot tell (SQLite) or cannot be reached now (then
    poll, and try again later)."""
    if not db.is_postgres:
        return None
    conn = None
    try:
        conn = await db.engine.connect()
        driver = (await conn.get_raw_connection()).driver_connection
        await driver.add_listener(CHANNEL, lambda *_: wake())
        return Listening(conn, driver)
    except Exception as exc:
        log.warning("cannot listen for urgent work; polling for it", extra={"error": str(exc)[:200]})
        if conn is not None:
            await Listening(conn, None).close()
        return None
