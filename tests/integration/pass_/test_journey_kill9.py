"""Must-show 1: the sample journey (config/samples/journey-winback.json:
email → wait 2 days → opened? end : voice call → answered? end : fax) for
many customers, run by a real PASS process (`ums run pass`) on the
application clock, with kill -9 in the middle of the emails and again in
the middle of the calls.

The clock is moved the way an operator's machine would see it: PASS is
restarted with ``UMS_CLOCK_SHIFT`` two days later (the waits are in the
database, so they survive), then two hours later (the unanswered calls'
retries expire). Emails go to a real loopback SMTP sink, faxes through the
real T.37 fax channel (Ghostscript renders them) to the same sink — in the
1000-customer form through a scripted fax channel, as calls always go
through a scripted voice channel (journey_channels.py; a third of the
customers open the email, a third answer, a third do not).

Every customer ends with exactly the steps their branch implies, each
delivery has exactly one final CDR row, and no email or fax reached the
sink twice except what was in flight at a kill.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from pass_support import add_template, seed_audience
from tests.helpers import eventually
from ums.clock import SHIFT_VARIABLE, utcnow
from ums.db.models import cdr, contacts, deliveries, journey_runs
from ums.journeys import definitions, engine
from ums.store import journeys as journey_store
from ums.store import tracking

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parents[2] / "config" / "samples" / "journey-winback.json"
UMS = str(Path(sys.executable).with_name("ums"))
CONCURRENCY = 16
TWO_DAYS = 2 * 86400

OPENED = ["entered", "send", "wait", "branch:opened", "exit"]
ANSWERED = ["entered", "send", "wait", "branch:otherwise", "send", "branch:answered", "exit"]
NOT_ANSWERED = ["entered", "send", "wait", "branch:otherwise", "send", "branch:otherwise", "send", "exit"]


def branch_of(n: int) -> str:
    """Customer n: 0 mod 3 opens the email, 1 answers the call, 2 does neither."""
    return ("opened", "answered", "not answered")[n % 3]


def write_config(home: Path, database_url: str, sink_port: int, real_fax: bool) -> None:
    home.mkdir(parents=True, exist_ok=True)
    fax = "" if real_fax else "fax = journey_channels:ScriptedFax"
    (home / "ums.cfg").write_text(f"""
[database]
url = {database_url}
[control]
poll_interval = 0.2
[channels]
voice = journey_channels:ScriptedVoice
{fax}
[pass]
concurrency = {CONCURRENCY}
poll_interval = 0.1
lease_seconds = 10
retry_base = 1
retry_max = 2
write_interval = 0.02
journey_interval = 0.3
channel_concurrency = email=16 fax=4 voice=8
[email]
relay_port = {sink_port}
connections = 8
[fax]
t37_host = 127.0.0.1
t37_port = {sink_port}
""", encoding="utf-8")


def start_pass(home: Path, shift: float) -> subprocess.Popen:
    env = {**os.environ, "UMS_HOME": str(home), SHIFT_VARIABLE: str(shift),
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    env.pop("UMS_CONFIG", None)
    return subprocess.Popen([UMS, "--home", str(home), "run", "pass"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(home / "pass.log", "ab"))


def kill_9(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


async def stop_gracefully(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    while process.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if process.poll() is None:
        process.kill()


async def prepare(db, count: int) -> dict[int, int]:
    """``count`` customers with an email, a phone and a fax number, the
    journey's templates, the sample journey, everyone in it; contact id → n."""
    ids = await seed_audience(db, count)
    async with db.begin() as conn:
        for n, contact_id in enumerate(ids):
            await conn.execute(update(contacts).where(contacts.c.id == contact_id)
                               .values(phone=f"0101{n:07d}", fax=f"021{n:07d}"))
    for channel in ("email", "voice", "fax"):
        await add_template(db, f"winback-{channel}", channel=channel)
    async with db.begin() as conn:
        now = utcnow()
        await engine.create(conn, definitions.load(SAMPLE.read_bytes()), "marketing", now)
        assert len(await engine.enter(conn, "winback", ids, "cli", now)) == count
    return {contact_id: n for n, contact_id in enumerate(ids)}


async def count_of(db, query) -> int:
    async with db.connect() as conn:
        return await conn.scalar(query)


def sent_on(channel: str):
    return select(func.count()).where(deliveries.c.channel == channel, deliveries.c.state == "sent")


def ended_runs():
    return select(func.count()).where(journey_runs.c.state != "active")


async def open_the_emails(db, numbers: dict[int, int]) -> None:
    """A third of the customers open the email (the open a tracking pixel records)."""
    async with db.begin() as conn:
        rows = (await conn.execute(select(deliveries.c.id, deliveries.c.contact_id)
                                   .where(deliveries.c.channel == "email"))).all()
        for delivery_id, contact_id in rows:
            if branch_of(numbers[contact_id]) == "opened":
                await tracking.record(conn, None, delivery_id, contact_id, tracking.OPEN, "", None, utcnow())


class Phases:
    """How long each part of the run took (printed with -s: the figures in the report)."""

    def __init__(self):
        self.started = self.last = time.monotonic()
        self.figures: list[str] = []

    def done(self, what: str) -> None:
        now = time.monotonic()
        self.figures.append(f"{what} {now - self.last:.1f} s")
        self.last = now


async def run_the_journey(tmp_path, database_url, db, sink, count: int,
                          real_fax: bool) -> tuple[dict, list[str], int]:
    phases = Phases()
    numbers = await prepare(db, count)
    phases.done("seed and enter")
    home = tmp_path / "instance"
    write_config(home, database_url, sink.port, real_fax)
    base = float(os.environ.get(SHIFT_VARIABLE, "0"))
    sink.handler.delay = 0.002   # keep sends in flight so the kill lands mid-send
    kills = 0
    process = start_pass(home, base)
    try:
        # the emails, with a kill -9 when about half are out
        await eventually(lambda: len(sink.handler.received) >= count // 2, timeout=120, interval=0.02)
        kill_9(process)
        kills += 1
        process = start_pass(home, base)
        await eventually(lambda: _is(db, sent_on("email"), count), timeout=180, interval=0.2)
        phases.done("emails (one kill -9)")
        await open_the_emails(db, numbers)
        await stop_gracefully(process)

        # two days later: the opened leave, the others are called; kill -9 while calls retry
        process = start_pass(home, base + TWO_DAYS + 300)
        answered = sum(1 for n in numbers.values() if branch_of(n) == "answered")
        opened = sum(1 for n in numbers.values() if branch_of(n) == "opened")
        await eventually(lambda: _is(db, sent_on("voice"), answered), timeout=180, interval=0.2)
        await eventually(lambda: _is(db, ended_runs(), answered + opened), timeout=600, interval=0.2)
        phases.done("two days later: branch, calls")
        kill_9(process)
        kills += 1

        # two hours on: the unanswered calls expire, a fax goes instead
        process = start_pass(home, base + TWO_DAYS + 2 * 3600)
        await eventually(lambda: _is(db, ended_runs(), count), timeout=600, interval=0.3)
        faxes = count - answered - opened
        await eventually(lambda: _is(db, sent_on("fax"), faxes), timeout=900, interval=0.3)
        phases.done("two hours on: calls expire, faxes")
    finally:
        await stop_gracefully(process)
        print(f"\n{count} customers ({os.path.basename(database_url.split(':')[0])}): " + ", ".join(phases.figures))
    return numbers, sink.handler.message_ids(), kills


async def _is(db, query, expected: int) -> bool:
    return await count_of(db, query) == expected


async def check_every_customer(db, numbers: dict[int, int], received: list[str], kills: int,
                               real_fax: bool) -> None:
    async with db.connect() as conn:
        journey = await journey_store.by_name(conn, "winback")
        runs = await journey_store.runs_with_steps(conn, journey["id"])
        sent = (await conn.execute(select(deliveries.c.contact_id, deliveries.c.channel, deliveries.c.state)
                                   .order_by(deliveries.c.id))).all()
        finals = Counter((await conn.execute(select(cdr.c.delivery_id).where(cdr.c.final.is_(True)))).scalars())
        delivery_ids = set((await conn.execute(select(deliveries.c.id))).scalars())
        states = Counter((await conn.execute(select(journey_runs.c.state))).scalars())
    by_contact: dict[int, list] = {}
    for contact_id, channel, state in sent:
        by_contact.setdefault(contact_id, []).append((channel, state))
    expected_steps = {"opened": OPENED, "answered": ANSWERED, "not answered": NOT_ANSWERED}
    expected_sends = {"opened": [("email", "sent")], "answered": [("email", "sent"), ("voice", "sent")],
                      "not answered": [("email", "sent"), ("voice", "expired"), ("fax", "sent")]}
    wrong = []
    for contact_id, n in numbers.items():
        branch = branch_of(n)
        steps = [kind if kind != "branch" else f"branch:{outcome}" for _, kind, outcome in runs[contact_id]]
        if steps != expected_steps[branch] or by_contact.get(contact_id) != expected_sends[branch]:
            wrong.append((n, branch, steps, by_contact.get(contact_id)))
    assert not wrong, wrong[:5]
    assert states == {"exited": len(numbers)}
    assert set(finals) == delivery_ids and set(finals.values()) == {1}   # one final CDR per delivery
    faxes = sum(1 for n in numbers.values() if branch_of(n) == "not answered") if real_fax else 0
    emails_and_faxes = len(numbers) + faxes
    assert len(set(received)) == emails_and_faxes
    assert len(received) - emails_and_faxes <= kills * CONCURRENCY   # only what was in flight, again


async def test_the_sample_journey_for_150_customers_survives_kill_9(tmp_path, database_url, pass_db, sink):
    numbers, received, kills = await run_the_journey(tmp_path, database_url, pass_db, sink, 150, real_fax=True)
    await check_every_customer(pass_db, numbers, received, kills, real_fax=True)


@pytest.mark.slow
@pytest.mark.timeout(2400)
async def test_the_sample_journey_for_1000_customers_survives_kill_9(tmp_path, database_url, pass_db, sink):
    numbers, received, kills = await run_the_journey(tmp_path, database_url, pass_db, sink, 1000, real_fax=False)
    await check_every_customer(pass_db, numbers, received, kills, real_fax=False)
