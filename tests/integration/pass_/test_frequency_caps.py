"""One voice: with ``[policy] advertising_per_day = 2``, two campaigns and a
journey aimed at the same customers on one Seoul day reach each of them at
most twice at the real SMTP sink; the rest
wait with the reason shown by ``ums queue stats`` and ``ums customer show``,
and go out the next local day. Transactional notices are never held by the
cap and do not use it up.

PASS runs on an injected clock (12:00 KST, then 09:00 KST the next day) and
the CLI reads the same clock, so the test passes at any hour."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from pass_support import NOW, add_template, pass_config, seed_audience, start_campaign
from tests.helpers import eventually
from ums import clock as clock_module
from ums.clock import Clock
from ums.db.models import deliveries
from ums.holds import REASONS, Hold
from ums.journeys import definitions, engine
from ums.outbox import SendRequest, enqueue

CUSTOMERS = 3


@pytest.fixture
def clock(monkeypatch):
    """PASS's injected clock, which the in-process ``ums`` commands read too."""
    clock = Clock(NOW + timedelta(minutes=5))   # Monday 23 Nov 2026, 12:05 in Seoul
    monkeypatch.setattr(clock_module, "injected", clock)
    return clock


async def cli(tmp_path, database_url, *args) -> str:
    from ums.cli import cli as ums_cli

    home = tmp_path / "cli-home"
    home.mkdir(exist_ok=True)
    (home / "ums.cfg").write_text(f"[database]\nurl = {database_url}\n")
    result = await asyncio.to_thread(CliRunner().invoke, ums_cli, ["--home", str(home), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def flattened(table: str) -> str:
    """A rich table's text with its borders gone and wrapped cells joined again."""
    return " ".join(" ".join(line.replace("│", " ").split()) for line in table.splitlines())


async def one_off_sends(db, ids, template, kind, now):
    async with db.begin() as conn:
        for n, contact_id in enumerate(ids):
            await enqueue(conn, SendRequest(channel="email", recipient=f"user{n}@example.com", template=template,
                                            kind=kind, contact_id=contact_id), now)


async def by_state_and_kind(db) -> Counter:
    async with db.connect() as conn:
        rows = (await conn.execute(select(deliveries.c.state, deliveries.c.kind, deliveries.c.hold))).all()
    return Counter(rows)


#: an advertising journey whose one send meets the two campaigns on the same day
JOURNEY = {"name": "winter-offer", "kind": "advertising", "steps": [
    {"id": "offer", "send": {"channel": "email", "template": "offer"}}, {"id": "done", "exit": {}}]}


async def enter_journey(db, ids, now):
    async with db.begin() as conn:
        await engine.create(conn, definitions.from_dict(JOURNEY), "marketing", now)
        await engine.enter(conn, JOURNEY["name"], ids, "cli", now)


async def test_two_a_day_across_two_campaigns_and_a_journey_then_the_rest_the_next_day(
        tmp_path, database_url, pass_db, sink, start_suite, clock):
    ids = await seed_audience(pass_db, CUSTOMERS, night=True)
    await add_template(pass_db)                                         # "offer", advertising
    await add_template(pass_db, name="balance", kind="transactional")
    config = pass_config(tmp_path, database_url, sink.port, policy__advertising_per_day="2",
                         pass__journey_interval="0.1")
    await start_suite(config, ["pass"], clock=clock)
    await start_campaign(pass_db, "spring", now=clock.now)
    await start_campaign(pass_db, "autumn", now=clock.now)
    await enter_journey(pass_db, ids, clock.now)
    await one_off_sends(pass_db, ids, "balance", "transactional", clock.now)

    async def day_one_settled():
        counts = await by_state_and_kind(pass_db)
        held = counts[("waiting", "advertising", Hold.CAP.value)]
        return counts if held == CUSTOMERS and counts[("sent", "advertising", None)] == 2 * CUSTOMERS \
            and counts[("sent", "transactional", None)] == CUSTOMERS else None

    counts = await eventually(day_one_settled, timeout=90, interval=0.2)
    assert sum(counts.values()) == 4 * CUSTOMERS
    await asyncio.sleep(1.0)   # nothing more goes out on day one
    received = Counter(rcpt for rcpt, _, _ in sink.handler.received)
    assert received == {f"user{n}@example.com": 3 for n in range(CUSTOMERS)}   # 2 advertising + 1 notice each

    stats = await cli(tmp_path, database_url, "queue", "stats")
    assert f"{CUSTOMERS} waiting: {REASONS[Hold.CAP]}, next send 2026-11-24 00:00 KST (in 11 h 55 m)" in stats
    shown = await cli(tmp_path, database_url, "customer", "show", "C0000000")
    assert f"→ waiting — {REASONS[Hold.CAP]}, next send 2026-11-24 00:00 KST (in 11 h 55 m)" in flattened(shown)
    assert shown.count("→ sent") == 3 and shown.count("→ waiting") == 1
    async with pass_db.connect() as conn:
        reasons = set((await conn.execute(select(deliveries.c.last_error).where(
            deliveries.c.hold == Hold.CAP.value))).scalars())
    assert reasons == {"frequency cap: 2 advertising messages today (limit 2 a day)"}

    clock.now = NOW + timedelta(hours=21)   # Tuesday 09:00 in Seoul

    async def day_two_settled():
        counts = await by_state_and_kind(pass_db)
        return counts if counts[("sent", "advertising", None)] == 3 * CUSTOMERS else None

    assert await eventually(day_two_settled, timeout=60, interval=0.2)
    received = Counter(rcpt for rcpt, _, _ in sink.handler.received)
    assert received == {f"user{n}@example.com": 4 for n in range(CUSTOMERS)}


async def test_transactional_notices_are_never_held_by_the_cap(
        tmp_path, database_url, pass_db, sink, start_suite, clock):
    ids = await seed_audience(pass_db, 1, night=True)
    await add_template(pass_db, name="balance", kind="transactional")
    config = pass_config(tmp_path, database_url, sink.port, policy__advertising_per_day="1",
                         policy__advertising_per_week="1")
    await start_suite(config, ["pass"], clock=clock)
    for _ in range(4):
        await one_off_sends(pass_db, ids, "balance", "transactional", clock.now)

    async def all_sent():
        counts = await by_state_and_kind(pass_db)
        return counts if counts[("sent", "transactional", None)] == 4 else None

    assert await eventually(all_sent, timeout=60, interval=0.2) == {("sent", "transactional", None): 4}
    assert len(sink.handler.received) == 4


async def test_an_advertising_template_queued_as_a_notice_still_uses_up_the_cap(
        tmp_path, database_url, pass_db, sink, start_suite, clock):
    """PASS sends any delivery of an advertising template as advertising
    (ums.outbox.settled_kind), and stores that kind, so the cap counts it."""
    ids = await seed_audience(pass_db, 1, night=True)
    await add_template(pass_db)
    config = pass_config(tmp_path, database_url, sink.port, policy__advertising_per_day="1")
    await start_suite(config, ["pass"], clock=clock)
    await one_off_sends(pass_db, ids, "offer", "transactional", clock.now)
    await eventually(lambda: len(sink.handler.received) == 1, timeout=60)
    await one_off_sends(pass_db, ids, "offer", "advertising", clock.now)

    async def held():
        counts = await by_state_and_kind(pass_db)
        return counts if counts[("waiting", "advertising", Hold.CAP.value)] == 1 else None

    assert await eventually(held, timeout=60, interval=0.2) == {
        ("sent", "advertising", None): 1, ("waiting", "advertising", Hold.CAP.value): 1}
    assert len(sink.handler.received) == 1


async def test_two_pass_processes_on_one_postgresql_queue_never_both_send_the_third(
        tmp_path, postgres_url, sink, start_suite, clock):
    """Each PASS decides with the customers' contact rows locked, so two of
    them claiming one customer's deliveries at the same moment still send two,
    not more. Each customer's four deliveries are next to each other in the
    queue and a claim takes at most two, so the two processes keep claiming
    the same customers' deliveries at once."""
    from ums.db import connect

    db = connect(postgres_url)
    try:
        customers, each = 40, 4
        ids = await seed_audience(db, customers, night=True)
        await add_template(db)
        async with db.begin() as conn:
            for n, contact_id in enumerate(ids):
                for _ in range(each):
                    await enqueue(conn, SendRequest(channel="email", recipient=f"user{n}@example.com",
                                                    template="offer", kind="advertising", contact_id=contact_id),
                                  clock.now)
        for n in (1, 2):
            home = tmp_path / f"pass{n}"
            home.mkdir()
            await start_suite(pass_config(home, postgres_url, sink.port, policy__advertising_per_day="2",
                                          pass__claim_batch="1"), ["pass"], clock=clock)

        async def settled():
            counts = await by_state_and_kind(db)
            return counts if counts[("sent", "advertising", None)] + counts[("waiting", "advertising", "cap")] \
                == each * customers else None

        counts = await eventually(settled, timeout=150, interval=0.2)
        await asyncio.sleep(1.0)
        received = Counter(rcpt for rcpt, _, _ in sink.handler.received)
        assert received == {f"user{n}@example.com": 2 for n in range(customers)}
        assert counts == {("sent", "advertising", None): 2 * customers,
                          ("waiting", "advertising", "cap"): (each - 2) * customers}
    finally:
        await db.close()
