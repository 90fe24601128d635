"""PASS as real processes (`ums run pass`): kill -9 at random points and
restart, and two processes sharing one PostgreSQL queue."""

import asyncio
import csv
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from pass_support import add_template, seed_audience, start_campaign, states
from tests.helpers import child_processes, eventually, process_alive
from ums.db.models import cdr
from ums.store import control

SOAK = os.environ.get("UMS_SOAK") == "1"
UMS = str(Path(sys.executable).with_name("ums"))
CONCURRENCY = 16


def write_config(home: Path, database_url: str, sink_port: int) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "ums.cfg").write_text(f"""
[database]
url = {database_url}
[control]
poll_interval = 0.2
[pass]
concurrency = {CONCURRENCY}
poll_interval = 0.1
lease_seconds = 2
retry_base = 0.05
retry_max = 0.3
write_interval = 0.02
[email]
relay_port = {sink_port}
connections = 8
""", encoding="utf-8")


def start_pass(home: Path) -> subprocess.Popen:
    env = {**os.environ, "UMS_HOME": str(home)}
    env.pop("UMS_CONFIG", None)
    return subprocess.Popen([UMS, "--home", str(home), "run", "pass"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(home / "pass.log", "ab"))


async def stop_gracefully(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    for _ in range(200):
        if process.poll() is not None:
            return
        await asyncio.sleep(0.05)
    process.kill()


async def final_cdr_per_delivery(db) -> Counter:
    async with db.connect() as conn:
        return Counter((await conn.execute(select(cdr.c.delivery_id).where(cdr.c.final.is_(True)))).scalars())


#: (recipients, kill -9 restarts): the soak's (10,000 and five with UMS_SOAK=1,
#: else 1,000 and two: ``-m slow``), and the short form every run makes
SOAK_KILLS = (10000, 5) if SOAK else (1000, 2)
SHORT_KILLS = (300, 2)


@pytest.mark.parametrize("count, kills", [
    pytest.param(*SHORT_KILLS, id="short"),
    pytest.param(*SOAK_KILLS, id="soak", marks=pytest.mark.slow),
])
async def test_kill_9_and_restart_loses_nothing_and_doubles_only_in_flight(
        tmp_path, sqlite_url, pass_db_sqlite, sink, count, kills):
    db = pass_db_sqlite
    await seed_audience(db, count)
    await add_template(db)
    home = tmp_path / "instance"
    write_config(home, sqlite_url, sink.port)
    sink.handler.delay = 0.002  # keep sends in flight so kills land mid-send
    campaign_id = await start_campaign(db)
    rng = random.Random(int(os.environ.get("UMS_SEED", "3")))
    process = start_pass(home)
    try:
        for kill in range(kills):
            target = int(count * (kill + 1) / (kills + 1) * rng.uniform(0.6, 1.0))
            await eventually(lambda: len(sink.handler.received) >= target, timeout=120, interval=0.02)
            database_processes = child_processes(process.pid)
            assert database_processes
            process.send_signal(signal.SIGKILL)
            process.wait()
            # its database process (and multiprocessing's resource tracker) go too
            await eventually(lambda: not any(map(process_alive, database_processes)), timeout=5)
            process = start_pass(home)

        async def done():
            return (await states(db, campaign_id)).get("sent", 0) == count

        await eventually(done, timeout=180, interval=0.3)
    finally:
        await stop_gracefully(process)

    received = sink.handler.message_ids()
    assert len(set(received)) == count
    assert len(received) - count <= kills * CONCURRENCY
    finals = await final_cdr_per_delivery(db)
    assert len(finals) == count and set(finals.values()) == {1}

    uniqueids = []
    for path in sorted((home / "var" / "cdr").glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as handle:
            uniqueids += [row["uniqueid"] for row in csv.DictReader(handle)]
    async with db.connect() as conn:
        in_db = (await conn.execute(select(cdr.c.uniqueid))).scalars().all()
    assert sorted(uniqueids) == sorted(in_db)  # the files follow the table: no row twice, none missing


@pytest.mark.postgres
async def test_two_processes_share_one_postgres_queue_without_sending_twice(
        tmp_path, postgres_url, sink):
    from ums.db import connect

    count = 3000
    db = connect(postgres_url)
    try:
        await seed_audience(db, count)
        await add_template(db)
        homes = [tmp_path / "a", tmp_path / "b"]
        for home in homes:
            write_config(home, postgres_url, sink.port)
        sink.handler.delay = 0.002
        processes = [start_pass(home) for home in homes]
        try:
            await eventually(lambda: _both_registered(db), timeout=30, interval=0.2)
            campaign_id = await start_campaign(db)

            async def done():
                return (await states(db, campaign_id)).get("sent", 0) == count

            await eventually(done, timeout=120, interval=0.3)
            async with db.connect() as conn:
                sent_by = [row["info"].get("sent", 0) for row in await control.instances(conn)
                           if row["service"] == "pass"]
        finally:
            for process in processes:
                await stop_gracefully(process)
        received = sink.handler.message_ids()
        assert len(received) == len(set(received)) == count   # no recipient sent twice
        assert len(sent_by) == 2 and all(n > 0 for n in sent_by), sent_by   # both did work
        finals = await final_cdr_per_delivery(db)
        assert len(finals) == count and set(finals.values()) == {1}
    finally:
        await db.close()


async def _both_registered(db) -> bool:
    async with db.connect() as conn:
        return len([r for r in await control.instances(conn) if r["service"] == "pass"]) == 2
