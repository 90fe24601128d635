"""Retries, permanent failures, pause/resume, cancel and the night rule,
against a real SMTP sink on loopback."""

import email
import email.policy
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, insert, select

from pass_support import add_template, pass_config, seed_audience, start_campaign, states
from tests.helpers import eventually
from ums import campaigns
from ums.db.models import cdr, deliveries, suppressions
from ums.outbox import SendRequest, enqueue
from ums.store import deliveries as queue
from ums.store import suppression
from ums.clock import Clock, utcnow


async def final_cdr_per_delivery(db) -> Counter:
    async with db.connect() as conn:
        rows = await conn.execute(select(cdr.c.delivery_id).where(cdr.c.final.is_(True)))
        return Counter(rows.scalars().all())


async def test_4xx_retries_until_sent_5xx_fails_once_and_is_suppressed(
        tmp_path, database_url, pass_db, faulty_sink, start_suite):
    count = 1000
    await seed_audience(pass_db, count)
    await add_template(pass_db)
    await start_suite(pass_config(tmp_path, database_url, faulty_sink.port), ["pass"])
    campaign_id = await start_campaign(pass_db)

    async def nothing_pending():
        counts = await states(pass_db, campaign_id)
        return sum(counts.values()) == count and not any(counts.get(s) for s in queue.PENDING_STATES)

    await eventually(nothing_pending, timeout=90, interval=0.3)
    handler = faulty_sink.handler
    failing = {f"user{n}@example.com" for n in range(count) if handler.permanently_failing(f"user{n}@example.com")}
    assert handler.answers["4xx"] > 100 and handler.answers["dropped"] > 0 and failing
    counts = await states(pass_db, campaign_id)
    assert counts == Counter({"sent": count - len(failing), "failed": len(failing)})
    received = handler.message_ids()
    assert len(received) == len(set(received)) == count - len(failing)

    finals = await final_cdr_per_delivery(pass_db)
    assert len(finals) == count and set(finals.values()) == {1}
    async with pass_db.connect() as conn:
        suppressed = set((await conn.execute(select(suppressions.c.address))).scalars().all())
        failed = set((await conn.execute(
            select(deliveries.c.recipient).where(deliveries.c.state == "failed"))).scalars().all())
        retries = await conn.scalar(select(func.count()).select_from(cdr).where(cdr.c.final.is_(False)))
    assert suppressed == failed == failing
    assert retries >= handler.answers["4xx"] * 0.9  # every temporary failure has its own CDR row


async def test_pause_stops_sending_resume_finishes_without_duplicates(
        tmp_path, database_url, pass_db, sink, start_suite):
    count = 1500
    await seed_audience(pass_db, count)
    await add_template(pass_db)
    await start_suite(pass_config(tmp_path, database_url, sink.port), ["pass"])
    campaign_id = await start_campaign(pass_db, throttle={"rate": 300})
    await eventually(lambda: len(sink.handler.received) > 200, timeout=30)
    async with pass_db.begin() as conn:
        await campaigns.pause(conn, campaign_id, utcnow())
    import asyncio

    await asyncio.sleep(1.0)
    after_pause = len(sink.handler.received)
    await asyncio.sleep(1.5)
    assert len(sink.handler.received) == after_pause < count  # nothing more within a second of pausing
    async with pass_db.begin() as conn:
        await campaigns.resume(conn, campaign_id, utcnow())

    async def all_sent():
        return (await states(pass_db, campaign_id)).get("sent", 0) == count

    await eventually(all_sent, timeout=60, interval=0.3)
    received = sink.handler.message_ids()
    assert len(received) == len(set(received)) == count


async def test_cancel_leaves_every_unsent_delivery_cancelled_with_its_cdr(
        tmp_path, database_url, pass_db, sink, start_suite):
    count = 1000
    await seed_audience(pass_db, count)
    await add_template(pass_db)
    await start_suite(pass_config(tmp_path, database_url, sink.port), ["pass"])
    campaign_id = await start_campaign(pass_db, throttle={"rate": 200})
    await eventually(lambda: len(sink.handler.received) > 100, timeout=30)
    async with pass_db.begin() as conn:
        await campaigns.cancel(conn, campaign_id, utcnow())

    async def settled():
        counts = await states(pass_db, campaign_id)
        return not any(counts.get(s) for s in queue.PENDING_STATES) and counts

    counts = await eventually(settled, timeout=30, interval=0.2)
    assert set(counts) == {"sent", "cancelled"} and sum(counts.values()) == count
    assert counts["sent"] == len(sink.handler.received) < count
    finals = await final_cdr_per_delivery(pass_db)
    assert len(finals) == count and set(finals.values()) == {1}
    async with pass_db.connect() as conn:
        cancelled_cdr = await conn.scalar(
            select(func.count()).select_from(cdr).where(cdr.c.status_code == "cancelled", cdr.c.final.is_(True)))
    assert cancelled_cdr == counts["cancelled"]


async def test_night_rule_holds_advertising_until_eight_but_not_transactional(
        tmp_path, database_url, pass_db, sink, start_suite):
    night_owls = await seed_audience(pass_db, 20, night=True)
    sleepers = await seed_audience(pass_db, 30, night=False, start=100)
    await add_template(pass_db)
    await add_template(pass_db, name="alert", kind="transactional")
    clock = Clock(datetime(2026, 11, 23, 13, 0, tzinfo=timezone.utc))   # 22:00 in Seoul
    await start_suite(pass_config(tmp_path, database_url, sink.port), ["pass"], clock=clock)
    campaign_id = await start_campaign(pass_db, now=clock.now)
    async with pass_db.begin() as conn:
        await enqueue(conn, SendRequest(channel="email", recipient="user105@example.com", template="alert",
                                        contact_id=sleepers[5]), clock.now)
        # a request that calls an advertising template transactional is still advertising
        mislabelled = (await conn.execute(insert(deliveries).values(
            channel="email", recipient="owl-not@example.com", contact_id=sleepers[6], template_name="offer",
            kind="transactional", state="queued", due_at=clock.now, created_at=clock.now,
            message_id="<mislabelled@test>", token="mislabelled"))).inserted_primary_key[0]

    async def night_done():
        counts = await states(pass_db, campaign_id)
        async with pass_db.connect() as conn:
            held = await conn.scalar(select(deliveries.c.hold).where(deliveries.c.id == mislabelled))
        return counts.get("sent") == len(night_owls) and counts.get("waiting") == len(sleepers) and held

    assert await eventually(night_done, timeout=30, interval=0.2)
    async with pass_db.connect() as conn:
        row = (await conn.execute(select(deliveries).where(deliveries.c.id == mislabelled))).one()
    assert (row.state, row.hold) == ("waiting", "night")
    recipients = [rcpt for rcpt, _, _ in sink.handler.received]
    assert "user105@example.com" in recipients                      # the alert went out at once
    assert sorted(recipients) == sorted([f"user{n}@example.com" for n in range(20)] + ["user105@example.com"])
    async with pass_db.connect() as conn:
        due = set((await conn.execute(select(deliveries.c.due_at).where(deliveries.c.state == "waiting"))).scalars())
    assert {d.replace(tzinfo=timezone.utc) if d.tzinfo is None else d for d in due} == {
        datetime(2026, 11, 23, 23, 0, tzinfo=timezone.utc)}       # 08:00 the next morning in Seoul

    clock.now = datetime(2026, 11, 23, 23, 0, 1, tzinfo=timezone.utc)

    async def morning_done():
        return (await states(pass_db, campaign_id)).get("sent") == len(night_owls) + len(sleepers)

    await eventually(morning_done, timeout=30, interval=0.2)
    await eventually(lambda: len(sink.handler.received) == len(night_owls) + len(sleepers) + 2, timeout=10)
    late = [data for rcpt, _, data in sink.handler.received if rcpt == "owl-not@example.com"]
    assert len(late) == 1 and "(광고)" in str(email.message_from_bytes(late[0], policy=email.policy.default)["Subject"])


async def test_hourly_window_counts_what_other_processes_sent(tmp_path, database_url, pass_db, sink, start_suite):
    """channel_per_hour is shared through the CDR: 8 messages another PASS
    process delivered ten minutes ago leave room for 2 of the next 5."""
    await add_template(pass_db, name="alert", kind="transactional")
    now = utcnow()
    earlier = now - timedelta(minutes=10)
    async with pass_db.begin() as conn:
        await conn.execute(insert(cdr), [{
            "accountcode": "", "dst": f"other{n}@example.com", "channel": "email", "lastapp": "SMTP",
            "start": earlier, "end": earlier, "duration": 0, "billsec": 0, "disposition": "ANSWERED",
            "amaflags": "BILLING", "uniqueid": f"other.{n}", "medium": "email", "final": True, "attempt": 1,
        } for n in range(8)])
        for n in range(5):
            await enqueue(conn, SendRequest("email", f"now{n}@example.com", template="alert"), now)
    config = pass_config(tmp_path, database_url, sink.port, pass__channel_per_hour="email=10")
    await start_suite(config, ["pass"])

    async def settled():
        counts = await states(pass_db)
        return counts.get("sent") == 2 and counts.get("queued") == 3 and counts

    await eventually(settled, timeout=20, interval=0.2)
    assert len(sink.handler.received) == 2
    async with pass_db.connect() as conn:
        held = (await conn.execute(
            select(deliveries.c.due_at, deliveries.c.last_error).where(deliveries.c.state == "queued")
        )).all()
    # room again when the other process's sends leave the hour (50 minutes from now)
    for due_at, reason in held:
        due = due_at if due_at.tzinfo else due_at.replace(tzinfo=timezone.utc)
        assert timedelta(minutes=49) < due - now < timedelta(minutes=51)
        assert reason == "hourly window full"


@pytest.mark.parametrize("kind", ["transactional", "advertising"])
async def test_unsubscribe_mid_campaign_stops_deliveries_already_claimed(
        tmp_path, database_url, pass_db, sink, start_suite, kind):
    """The whole (throttled) audience is claimed at once; an address suppressed
    while its delivery waits in PASS's memory is not sent, and ends suppressed —
    a refusal of advertising only when the delivery is advertising."""
    await seed_audience(pass_db, 60)
    await add_template(pass_db, name="alert", kind=kind)
    await start_suite(pass_config(tmp_path, database_url, sink.port), ["pass"])
    campaign_id = await start_campaign(pass_db, kind=kind, template="alert", throttle={"rate": 20})
    await eventually(lambda: len(sink.handler.received) >= 5, timeout=20, interval=0.05)
    async with pass_db.connect() as conn:
        in_flight = await conn.scalar(select(func.count()).select_from(deliveries).where(
            deliveries.c.campaign_id == campaign_id, deliveries.c.state == "sending"))
    assert in_flight > 40                                 # user55 and user56 are among the claimed
    async with pass_db.begin() as conn:
        await suppression.add(conn, "email", "user55@example.com", "unsubscribe", source="test")
        await suppression.add(conn, "email", "user56@example.com", "refusal", source="test", scope="advertising")
    refused_ads = kind == "advertising"

    async def finished():
        counts = await states(pass_db, campaign_id)
        return counts.get("sent", 0) + counts.get("suppressed", 0) == 60 and counts

    counts = await eventually(finished, timeout=30, interval=0.2)
    assert counts["suppressed"] == 1 + refused_ads
    received = [rcpt for rcpt, _, _ in sink.handler.received]
    assert "user55@example.com" not in received
    assert ("user56@example.com" in received) is not refused_ads
    async with pass_db.connect() as conn:
        row = (await conn.execute(select(deliveries).where(deliveries.c.recipient == "user55@example.com"))).first()
        final = await conn.scalar(select(func.count()).select_from(cdr).where(
            cdr.c.delivery_id == row.id, cdr.c.final.is_(True)))
    assert row.state == "suppressed" and final == 1
