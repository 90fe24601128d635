"""Group commit for inbound mail.

Messages that arrive while a transaction is being written wait and are
stored together in the next one, so many SMTP sessions share one commit;
each sender still gets its 250 only after the commit that holds its message.
If a batch fails, its messages are retried one per transaction, so one bad
message (or a database fault) only ever answers for itself. One writer at a
time also suits SQLite, which has a single writer anyway.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncConnection

#: process(conn, item, rows) → SMTP reply; rows it appends are inserted by flush(conn, rows)
Process = Callable[[AsyncConnection, object, list], Awaitable[str]]
Flush = Callable[[AsyncConnection, list], Awaitable[None]]
#: prepare(conn, items): look up in one query what every item of the batch will need
Prepare = Callable[[AsyncConnection, list], Awaitable[None]]
#: committed(items): the transaction holding ``items`` committed (what it wrote may now be cached)
Committed = Callable[[list], None]


class GroupCommitter:
    def __init__(self, db, process: Process, flush: Flush, prepare: Prepare, max_batch: int = 64,
                 committed: Committed | None = None):
        self.db = db
        self.process = process
        self.flush = flush
        self.prepare = prepare
        self.committed = committed
        self.max_batch = max_batch
        self.waiting: list[tuple[object, asyncio.Future]] = []
        self.writer: asyncio.Task | None = None

    async def submit(self, item) -> str:
        """Store ``item`` through ``process`` in some transaction; returns its SMTP reply
        after that transaction committed, or raises what made it fail."""
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((item, future))
        if self.writer is None or self.writer.done():
            self.writer = asyncio.create_task(self.write_all())
        return await future

    async def write_all(self) -> None:
        while self.waiting:
            batch, self.waiting = self.waiting[: self.max_batch], self.waiting[self.max_batch:]
            try:
                replies = await self.write(batch)
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0][1], error=exc)
                    continue
                for entry in batch:
                    try:
                        [reply] = await self.write([entry])
                        _settle(entry[1], reply)
                    except Exception as single_exc:
                        _settle(entry[1], error=single_exc)
                continue
            for (_, future), reply in zip(batch, replies):
                _settle(future, reply)

    async def write(self, batch) -> list[str]:
        """One transaction for ``batch``; one writer at a time, so ``prepare`` marks
        the start of a transaction and ``committed`` its successful end."""
        rows: list = []
        items = [item for item, _ in batch]
        async with self.db.begin() as conn:
            await self.prepare(conn, items)
            replies = [await self.process(conn, item, rows) for item in items]
            await self.flush(conn, rows)
        if self.committed is not None:
            self.committed(items)
        return replies


def _settle(future: asyncio.Future, reply: str | None = None, error: Exception | None = None) -> None:
    if future.done():  # the SMTP session went away meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(reply)
