"""PASS's CDR files follow the ``cdr`` table with no row twice: a stop that
cancels the file writer while it appends (in a thread) leaves that append to
finish, and the last catch-up goes on after it instead of writing its rows again.
(Seen in CI: a kill -9 test's files held 148 rows twice after the graceful stop.)"""

from __future__ import annotations

import asyncio
import csv
import importlib
import threading
import time
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

cdrfiles = importlib.import_module("pass.cdrfiles")

START = datetime(2026, 12, 5, 5, 0, tzinfo=timezone.utc)


class Table:
    """The ``cdr`` rows, as :mod:`ums.store.cdr` gives them to the writer."""

    def __init__(self, count: int):
        self.rows = [{"id": n, "uniqueid": f"{n}.1", "start": START + timedelta(seconds=n)}
                     for n in range(1, count + 1)]

    async def after(self, conn, last_id: int):
        return [row for row in self.rows if row["id"] > last_id][:500]

    async def max_id_of(self, conn, uniqueids):
        return max((row["id"] for row in self.rows if row["uniqueid"] in uniqueids), default=0)


def writer_for(tmp_path, monkeypatch, table: Table):
    @asynccontextmanager
    async def connect():
        yield None

    monkeypatch.setattr(cdrfiles, "cdr_store", table)
    monkeypatch.setattr(cdrfiles, "site_zone", lambda config: ZoneInfo("Asia/Seoul"))
    ctx = SimpleNamespace(config=SimpleNamespace(var_dir=tmp_path), db=SimpleNamespace(connect=connect))
    return cdrfiles.CdrFileWriter(ctx)


def written(tmp_path) -> list[str]:
    found = []
    for path in sorted((tmp_path / "cdr").glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as handle:
            found += [row["uniqueid"] for row in csv.DictReader(handle)]
    return found


async def test_a_stop_during_an_append_writes_no_row_twice(tmp_path, monkeypatch):
    table = Table(300)
    writer = writer_for(tmp_path, monkeypatch, table)
    appending = threading.Event()
    append = writer.files.append

    def slow_append(rows):
        appending.set()
        time.sleep(0.3)   # a loaded machine's write and fsync
        append(rows)

    writer.files.append = slow_append
    loop_task = asyncio.create_task(writer.run())
    await asyncio.to_thread(appending.wait, 5)
    loop_task.cancel()   # what PassService.stop does to the running writer
    await asyncio.gather(loop_task, return_exceptions=True)
    writer.files.append = append
    table.rows += Table(320).rows[300:]   # rows recorded while stopping
    assert await writer.catch_up() == 20   # the stop's last catch-up: only what is new
    assert written(tmp_path) == [f"{n}.1" for n in range(1, 321)]
    writer.close()
