"""Reserved sending: a campaign or a one-off send reserved for a time PASS was
down fires once when PASS comes back within the grace, never twice; past the
grace it is missed. Cron campaigns start a run at each due time."""

import asyncio
from collections import Counter
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from pass_support import add_template, pass_config, seed_audience, states
from tests.helpers import eventually
from ums import campaigns
from ums.db.models import campaigns as campaign_table
from ums.db.models import cdr
from ums.outbox import SendRequest, enqueue
from ums.store import as_utc
from ums.store import deliveries as queue
from ums.clock import Clock

T0 = datetime(2026, 11, 23, 3, 0, tzinfo=timezone.utc)   # noon in Seoul
GRACE = timedelta(minutes=10)


async def reserve_campaign(db, name: str, at: datetime | None, cron: str | None = None) -> int:
    spec = campaigns.from_dict({"name": name, "kind": "transactional", "template": "notice",
                                "audience": {"books": ["customers"]},
                                "schedule": {"cron": cron} if cron else {}})
    async with db.begin() as conn:
        campaign_id = await campaigns.create(conn, spec, T0)
        await campaigns.schedule(conn, campaign_id, at=at, now=T0)
    return campaign_id


async def reserve_send(db, recipient: str, at: datetime) -> int:
    async with db.begin() as conn:
        return await enqueue(conn, SendRequest("email", recipient, template="notice", due_at=at), T0)


async def campaign_row(db, campaign_id: int) -> dict:
    async with db.connect() as conn:
        row = (await conn.execute(select(campaign_table).where(campaign_table.c.id == campaign_id))).first()
    return dict(row._mapping)


def per_recipient(sink) -> Counter:
    return Counter(rcpt for rcpt, _, _ in sink.handler.received)


async def test_reservations_missed_while_down_fire_once_within_the_grace_and_never_past_it(
        tmp_path, database_url, pass_db, sink, start_suite):
    audience = 15
    await seed_audience(pass_db, audience)
    await add_template(pass_db, name="notice", kind="transactional")
    on_time = await reserve_campaign(pass_db, "within grace", T0 + timedelta(minutes=50))
    too_late = await reserve_campaign(pass_db, "past grace", T0 + timedelta(minutes=10))
    kept = await reserve_send(pass_db, "reserved@example.com", T0 + timedelta(minutes=50))
    missed = await reserve_send(pass_db, "missed@example.com", T0 + timedelta(minutes=10))
    config = pass_config(tmp_path, database_url, sink.port, pass__misfire_grace=str(int(GRACE.total_seconds())))

    # PASS was down from T0 and comes back at T0 + 55 min: 5 minutes after one
    # reservation (inside the 10-minute grace), 45 minutes after the other
    clock = Clock(T0 + timedelta(minutes=55))
    suite = await start_suite(config, ["pass"], clock=clock)

    async def on_time_sent():
        return (await states(pass_db, on_time)).get("sent") == audience \
            and "reserved@example.com" in per_recipient(sink)

    await eventually(on_time_sent, timeout=30, interval=0.2)
    await eventually(lambda: _state_is(pass_db, on_time, "completed"), timeout=15, interval=0.2)
    assert (await campaign_row(pass_db, too_late))["state"] == "missed"
    assert not await states(pass_db, too_late)                       # never expanded
    async with pass_db.connect() as conn:
        missed_row = await queue.get(conn, missed)
        kept_row = await queue.get(conn, kept)
    assert (missed_row["state"], missed_row["last_code"]) == ("expired", "missed")
    assert kept_row["state"] == "sent"

    # PASS restarts (later still): nothing fires a second time
    await suite.stop()
    clock.now = T0 + timedelta(minutes=58)
    await start_suite(config, ["pass"], clock=clock)
    await _quiet_for(pass_db, seconds=2.5)
    received = per_recipient(sink)
    assert set(received.values()) == {1}
    assert len(received) == audience + 1
    assert "missed@example.com" not in received
    async with pass_db.connect() as conn:
        finals = Counter((await conn.execute(select(cdr.c.delivery_id).where(cdr.c.final.is_(True)))).scalars())
    assert set(finals.values()) == {1} and len(finals) == audience + 2   # the missed send has its final CDR too


async def test_cron_campaign_starts_a_run_at_each_due_time_and_skips_runs_missed_past_the_grace(
        tmp_path, database_url, pass_db, sink, start_suite):
    audience = 10
    await seed_audience(pass_db, audience)
    await add_template(pass_db, name="notice", kind="transactional")
    recurring = await reserve_campaign(pass_db, "hourly digest", None, cron="0 * * * *")
    assert as_utc((await campaign_row(pass_db, recurring))["schedule_at"]) == T0 + timedelta(hours=1)
    config = pass_config(tmp_path, database_url, sink.port, pass__misfire_grace=str(int(GRACE.total_seconds())))
    clock = Clock(T0 + timedelta(hours=1, seconds=30))
    await start_suite(config, ["pass"], clock=clock)

    async def delivered(times: int):
        counts = per_recipient(sink)
        return len(counts) == audience and set(counts.values()) == {times}

    await eventually(lambda: delivered(1), timeout=30, interval=0.2)
    assert as_utc((await campaign_row(pass_db, recurring))["schedule_at"]) == T0 + timedelta(hours=2)
    # every send recorded before the clock jumps an hour (a lease taken at 13:00 ends long before 14:01)
    await eventually(lambda: _all_sent(pass_db, audience), timeout=30, interval=0.2)

    clock.now = T0 + timedelta(hours=2, minutes=1)
    await eventually(lambda: delivered(2), timeout=30, interval=0.2)

    # the 06:00 run is noticed only at 06:30, later than the grace: no run for it,
    # the schedule moves on to 07:00
    clock.now = T0 + timedelta(hours=3, minutes=30)
    await eventually(lambda: _schedule_is(pass_db, recurring, T0 + timedelta(hours=4)), timeout=15, interval=0.2)
    await _quiet_for(pass_db, seconds=2)
    assert await delivered(2)
    async with pass_db.connect() as conn:
        runs = (await conn.execute(
            select(campaign_table.c.name, campaign_table.c.state).where(campaign_table.c.id != recurring)
            .order_by(campaign_table.c.id)
        )).all()
    # each run is named after its time in [ums] timezone (04:00 and 05:00 UTC)
    assert [name for name, _ in runs] == ["hourly digest 2026-11-23 13:00", "hourly digest 2026-11-23 14:00"]
    assert (await campaign_row(pass_db, recurring))["state"] == "scheduled"


async def _all_sent(db, count: int) -> bool:
    return await states(db) == Counter({"sent": count})


async def _state_is(db, campaign_id: int, state: str) -> bool:
    return (await campaign_row(db, campaign_id))["state"] == state


async def _schedule_is(db, campaign_id: int, when: datetime) -> bool:
    return as_utc((await campaign_row(db, campaign_id))["schedule_at"]) == when


async def _quiet_for(db, seconds: float) -> None:
    """Let PASS run a few reservation passes (it looks at least once a second)."""
    await asyncio.sleep(seconds)
