"""PASS's database process ([pass] database_process): the queue's transactions
run in a child process. Sending survives that process dying, and the process
does not outlive PASS."""

import os
import signal
from pathlib import Path

from sqlalchemy import select

from pass_support import add_template, pass_config, seed_audience, start_campaign, states
from tests.helpers import child_processes, eventually
from ums.db.models import cdr

COUNT = 1000


def database_processes() -> list[int]:
    """This process's children that multiprocessing spawned as workers (not its resource tracker)."""
    return [pid for pid in child_processes(os.getpid())
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


async def test_campaign_completes_exactly_once_when_the_database_process_is_killed(
        tmp_path, database_url, pass_db, sink, start_suite):
    await seed_audience(pass_db, COUNT)
    await add_template(pass_db)
    sink.handler.delay = 0.002   # keep the campaign running while we kill
    await start_suite(pass_config(tmp_path, database_url, sink.port), ["pass"])
    [database_process] = database_processes()
    campaign_id = await start_campaign(pass_db)

    await eventually(lambda: len(sink.handler.received) >= COUNT // 3, timeout=60, interval=0.01)
    os.kill(database_process, signal.SIGKILL)

    async def all_sent():
        return (await states(pass_db, campaign_id)).get("sent", 0) == COUNT

    await eventually(all_sent, timeout=90, interval=0.2)
    received = sink.handler.message_ids()
    assert len(received) == COUNT == len(set(received))   # nothing lost, nothing sent twice
    async with pass_db.connect() as conn:
        finals = (await conn.execute(select(cdr.c.delivery_id).where(cdr.c.final.is_(True)))).scalars().all()
    assert len(finals) == COUNT == len(set(finals))
    replacement = database_processes()
    assert replacement and database_process not in replacement


async def test_database_process_no_keeps_the_transactions_in_process(
        tmp_path, database_url, pass_db, sink, start_suite):
    await seed_audience(pass_db, 300)
    await add_template(pass_db)
    await start_suite(pass_config(tmp_path, database_url, sink.port, pass__database_process="no"), ["pass"])
    campaign_id = await start_campaign(pass_db)

    async def all_sent():
        return (await states(pass_db, campaign_id)).get("sent", 0) == 300

    await eventually(all_sent, timeout=60, interval=0.2)
    assert database_processes() == []
    assert len(set(sink.handler.message_ids())) == 300
