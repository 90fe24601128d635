"""Must-show 1's call and fax branch with the real channels: a journey's call
is placed by PASS as a real SIP call (baresip on loopback); a customer who
answers leaves the journey, one whose phone only rings (NO ANSWER, retried
until the call's expiry on the injected clock) gets a fax instead, rendered
and sent through the T.37 fax channel to a loopback gateway — each attempt
with its CDR row, one final per delivery."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta, timezone

from sqlalchemy import insert, select

from tests.conftest import make_config
from tests.helpers import eventually
from ums.db import connect
from ums.db.models import cdr, contacts, deliveries
from ums.journeys import definitions, engine
from ums.runtime import Suite
from ums.store import journeys as journey_store
from ums.store import templates as template_store

from .conftest import need

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=timezone.utc)   # 12:00 in Seoul
FLOW = {"name": "callback", "kind": "transactional", "steps": [
    {"id": "call", "send": {"channel": "voice", "template": "callback", "expires_after": "1m"}},
    {"id": "answered?", "branch": {"cases": {"answered": "done"}, "otherwise": "fax"}},
    {"id": "fax", "send": {"channel": "fax", "template": "callback"}},
    {"id": "done", "exit": {}}]}


class RunningClock:
    """The injected clock: from NOW it runs with real time, and ``jump`` moves it on."""

    def __init__(self, start: datetime):
        self.start, self.began, self.jumped = start, time.monotonic(), timedelta()

    def __call__(self) -> datetime:
        return self.start + self.jumped + timedelta(seconds=time.monotonic() - self.began)

    def jump(self, by: timedelta) -> None:
        self.jumped += by


async def seed(db) -> dict[str, int]:
    async with db.begin() as conn:
        await conn.execute(insert(contacts), [
            {"customer_id": name, "name": name, "phone": phone, "fax": fax, "timezone": "Asia/Seoul"}
            for name, phone, fax in (("answers", "01011112222", "0211112222"),
                                     ("rings", "01033334444", "0233334444"))])
        for channel in ("voice", "fax"):
            await template_store.save(conn, "callback", channel, NOW, kind="transactional", subject="연락 요청",
                                      body_text="고객님, 상담을 위해 연락드렸습니다.", sender_name="한빛은행",
                                      sender_contact="1588-0000")
        await engine.create(conn, definitions.from_dict(FLOW), "operator", NOW)
        rows = await conn.execute(select(contacts.c.customer_id, contacts.c.id))
        return dict(rows.all())


async def run_pass(tmp_path, database_url, clock, callee, gateway) -> Suite:
    config = make_config(tmp_path, database_url, voice__sip_uri=callee.uri, voice__ring_timeout="2",
                         voice__max_call_seconds="30", fax__t37_port=str(gateway.port), fax__t37_domain="fax.test",
                         pass__journey_interval="0.1", pass__retry_base="0.05", pass__retry_max="0.3",
                         pass__lease_seconds="600")   # the clock's jump past the call's expiry leaves a ringing call its lease
    suite = Suite(config, ["pass"], clock=clock)
    await suite.start()
    return suite


async def ended(db, contact_id) -> bool:
    async with db.connect() as conn:
        journey = await journey_store.by_name(conn, "callback")
        steps = (await journey_store.runs_with_steps(conn, journey["id"])).get(contact_id, [])
    return bool(steps) and steps[-1][1] == "exit"


async def sends_of(db, contact_id, settled: bool = True) -> list[tuple[str, str, list[str]]]:
    async with db.connect() as conn:
        rows = (await conn.execute(select(deliveries.c.id, deliveries.c.channel, deliveries.c.state)
                                   .where(deliveries.c.contact_id == contact_id).order_by(deliveries.c.id))).all()
        found = []
        for delivery_id, channel, state in rows:
            attempts = (await conn.execute(select(cdr.c.disposition, cdr.c.final).where(cdr.c.delivery_id == delivery_id)
                                           .order_by(cdr.c.attempt))).all()
            assert not settled or Counter(final for _, final in attempts)[True] == 1, attempts   # one final CDR
            found.append((channel, state, [disposition for disposition, _ in attempts]))
        return found


async def test_an_answered_call_ends_the_journey_and_one_that_rings_out_gets_a_fax(
        tmp_path, database_url, sip_peer, fax_gateway):
    need("espeak-ng", "sox", "baresip", "gs")
    db = connect(database_url)
    try:
        ids = await seed(db)
        clock = RunningClock(NOW)
        suite = await run_pass(tmp_path, database_url, clock, await sip_peer("answer"), fax_gateway)
        try:
            async with db.begin() as conn:
                await engine.enter(conn, "callback", [ids["answers"]], "cli", clock())
            await eventually(lambda: ended(db, ids["answers"]), timeout=60, interval=0.2)
        finally:
            await suite.stop()
        assert await sends_of(db, ids["answers"]) == [("voice", "sent", ["ANSWERED"])]

        suite = await run_pass(tmp_path, database_url, clock, await sip_peer("ring"), fax_gateway)
        try:
            async with db.begin() as conn:
                await engine.enter(conn, "callback", [ids["rings"]], "cli", clock())

            async def rang_out():
                sends = await sends_of(db, ids["rings"], settled=False)
                return sends and "NO ANSWER" in sends[0][2]

            await eventually(rang_out, timeout=60, interval=0.2)
            clock.jump(timedelta(minutes=2))   # past the call's expiry: no more retries
            await eventually(lambda: ended(db, ids["rings"]), timeout=60, interval=0.2)

            async def faxed():
                return len(fax_gateway.received) == 1

            await eventually(faxed, timeout=90, interval=0.2)
        finally:
            await suite.stop()
        call, fax = await sends_of(db, ids["rings"])
        assert call[:2] == ("voice", "expired") and set(call[2][:-1]) == {"NO ANSWER"}
        assert fax == ("fax", "sent", ["ANSWERED"])
        assert fax_gateway.received[0][0] == "FAX=+82233334444@fax.test"
        async with db.connect() as conn:
            journey = await journey_store.by_name(conn, "callback")
            runs = await journey_store.runs_with_steps(conn, journey["id"])
        assert [(kind, outcome) for _, kind, outcome in runs[ids["rings"]]] == [
            ("entered", "cli"), ("send", "voice"), ("branch", "otherwise"), ("send", "fax"), ("exit", None)]
        assert [(kind, outcome) for _, kind, outcome in runs[ids["answers"]]] == [
            ("entered", "cli"), ("send", "voice"), ("branch", "answered"), ("exit", None)]
    finally:
        await db.close()
