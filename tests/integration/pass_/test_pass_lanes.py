"""An urgent alert does not wait behind a campaign's backlog (#15).

A relay that takes 20 ms a message, a marketing campaign of 1,500 queued
ahead, then a one-off urgent delivery: PASS sends the alert while most of
the campaign is still waiting, and the campaign still completes. Alerts that
come together go out together: the next one does not wait for the one before
it to be recorded.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.helpers import eventually
from pass_support import add_template, pass_config, seed_audience, start_campaign, states
from ums.db import connect
from ums.outbox import SendRequest, enqueue
from ums.store import utcnow

BACKLOG = 1500


async def test_an_urgent_delivery_overtakes_the_marketing_backlog(tmp_path, database_url, pass_db, sink, start_suite):
    sink.handler.delay = 0.02
    await seed_audience(pass_db, BACKLOG)
    await add_template(pass_db, name="statement", kind="transactional")
    config = pass_config(tmp_path, database_url, sink.port, pass__concurrency="8", pass__reserved_concurrency="2",
                         email__connections="8")
    await start_suite(config, ["pass"])
    campaign_id = await start_campaign(pass_db, kind="transactional", template="statement")
    await eventually(lambda: len(sink.handler.received) >= 50, timeout=60, interval=0.05)

    async with pass_db.begin() as conn:
        await enqueue(conn, SendRequest("email", "otp@bank.example", template="statement", lane="urgent"), utcnow())

    def alert_sent():
        recipients = [rcpt for rcpt, _, _ in sink.handler.received]
        return [recipients.index("otp@bank.example")] if "otp@bank.example" in recipients else None

    [position] = await eventually(alert_sent, timeout=60, interval=0.02)
    assert position < BACKLOG / 2, f"the alert went out after {position} campaign messages"

    async def campaign_done():
        return (await states(pass_db, campaign_id))["sent"] == BACKLOG

    await eventually(campaign_done, timeout=120, interval=0.2)
    assert sorted(rcpt for rcpt, _, _ in sink.handler.received).count("otp@bank.example") == 1


async def test_urgent_alerts_that_come_together_do_not_wait_for_each_others_records(
        tmp_path, database_url, pass_db, sink, start_suite):
    """Results are recorded only every 2 s here; one sender of two serves urgent work only.
    Five alerts at once all reach the relay long before the first record: the urgent
    sender takes the next alert as soon as it has sent one."""
    await add_template(pass_db, name="otp", kind="transactional")
    config = pass_config(tmp_path, database_url, sink.port, pass__concurrency="2", pass__reserved_concurrency="1",
                         pass__write_interval="2")
    await start_suite(config, ["pass"])
    await asyncio.sleep(0.5)
    alerts = [f"otp{n}@bank.example" for n in range(5)]
    async with pass_db.begin() as conn:
        for address in alerts:
            await enqueue(conn, SendRequest("email", address, template="otp", lane="urgent"), utcnow())
    committed = time.monotonic()
    await eventually(lambda: set(alerts) <= {rcpt for rcpt, _, _ in sink.handler.received}, timeout=20,
                     interval=0.01)
    assert time.monotonic() - committed < 1.5, "the alerts went out one record batch after another"

    async def all_recorded():
        return (await states(pass_db)).get("sent", 0) == len(alerts)

    await eventually(all_recorded, timeout=20, interval=0.1)
    assert sorted(rcpt for rcpt, _, _ in sink.handler.received) == sorted(alerts)


@pytest.mark.postgres
async def test_on_postgresql_an_urgent_delivery_is_sent_when_committed_not_when_polled(
        tmp_path, postgres_url, sink, start_suite):
    """PASS polls only every 30 s here (both polls): the alert's own commit tells it (NOTIFY)."""
    db = connect(postgres_url)
    try:
        await add_template(db, name="otp", kind="transactional")
        config = pass_config(tmp_path, postgres_url, sink.port, pass__poll_interval="30", pass__urgent_poll="30")
        await start_suite(config, ["pass"])
        await asyncio.sleep(1.0)  # past PASS's first look at the queue
        async with db.begin() as conn:
            await enqueue(conn, SendRequest("email", "otp@bank.example", template="otp", lane="urgent"), utcnow())
        committed = time.monotonic()
        await eventually(lambda: "otp@bank.example" in [rcpt for rcpt, _, _ in sink.handler.received],
                         timeout=10, interval=0.01)
        assert time.monotonic() - committed < 3
        async with db.begin() as conn:  # marketing does not announce itself: it waits for the poll
            await enqueue(conn, SendRequest("email", "ad@bank.example", template="otp", lane="marketing"), utcnow())
        await asyncio.sleep(2)
        assert "ad@bank.example" not in [rcpt for rcpt, _, _ in sink.handler.received]
    finally:
        await db.close()
