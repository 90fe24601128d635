"""Journeys driven by a real PASS (in-process, on an injected clock) sending
to a real loopback SMTP sink — email directly, fax through the T.37 fax
channel (rendered by Ghostscript, mailed to the same sink as gateway):

* must-show 2: a customer who refuses (the one-click unsubscribe of the
  journey's first email) leaves the journey before its next send, while
  another customer gets it;
* must-show 4: a customer who picks "fax" on the preference page gets the
  journey's next step by fax, with its own CDR.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from pass_support import NOW, add_template, pass_config, seed_audience
from tests.conftest import make_config
from tests.helpers import eventually
from ums import preferences, refusal
from ums.clock import Clock
from ums.db.models import cdr, contacts, deliveries, events
from ums.journeys import definitions, engine
from ums.store import deliveries as delivery_store
from ums.store import journeys as journey_store
from ums.store import timeline

FLOW = {"name": "welcome", "kind": "advertising", "steps": [
    {"id": "hello", "send": {"channel": "email", "template": "hello"}},
    {"id": "an-hour", "wait": {"duration": "1h"}},
    {"id": "offer", "send": {"channel": "email", "template": "offer"}},
    {"id": "done", "exit": {}}]}


async def start(tmp_path, database_url, pass_db, sink, start_suite, count=3):
    ids = await seed_audience(pass_db, count)
    async with pass_db.begin() as conn:
        for number, contact_id in enumerate(ids):
            await conn.execute(update(contacts).where(contacts.c.id == contact_id)
                               .values(fax=f"0212340{number:03d}"))
    await add_template(pass_db, "hello")
    await add_template(pass_db, "offer")
    await add_template(pass_db, "offer", channel="fax")
    clock = Clock(NOW)
    config = pass_config(tmp_path, database_url, sink.port, pass__journey_interval="0.1",
                         fax__t37_host="127.0.0.1", fax__t37_port=str(sink.port))
    await start_suite(config, ["pass"], clock=clock)
    async with pass_db.begin() as conn:
        await engine.create(conn, definitions.from_dict(FLOW), "marketing", clock.now)
        await engine.enter(conn, "welcome", ids, "cli", clock.now)
    return ids, clock


async def sent_to(db, contact_id) -> list[tuple[str, str, str]]:
    async with db.connect() as conn:
        rows = await conn.execute(select(deliveries.c.channel, deliveries.c.template_name, deliveries.c.state)
                                  .where(deliveries.c.contact_id == contact_id).order_by(deliveries.c.id))
        return [tuple(row) for row in rows]


async def all_sent(db, expected: int):
    async with db.connect() as conn:
        states = (await conn.execute(select(deliveries.c.state))).scalars().all()
    return len(states) == expected and set(states) == {"sent"}


async def first_delivery(db, contact_id) -> dict:
    async with db.connect() as conn:
        delivery_id = await conn.scalar(select(deliveries.c.id).where(deliveries.c.contact_id == contact_id)
                                        .order_by(deliveries.c.id))
        return await delivery_store.get(conn, delivery_id)


async def history(db, name="welcome") -> dict:
    async with db.connect() as conn:
        journey = await journey_store.by_name(conn, name)
        return await journey_store.runs_with_steps(conn, journey["id"])


async def test_a_refusal_mid_journey_stops_it_before_the_next_send(tmp_path, database_url, pass_db, sink,
                                                                   start_suite):
    (refuser, stayer, _), clock = await start(tmp_path, database_url, pass_db, sink, start_suite)
    await eventually(lambda: all_sent(pass_db, 3), timeout=30, interval=0.1)
    first = await first_delivery(pass_db, refuser)
    async with pass_db.begin() as conn:   # the one-click unsubscribe of the first email
        await refusal.refuse_address(conn, "email", first["recipient"], clock.now + timedelta(minutes=10),
                                     "one-click", reason="unsubscribe", delivery_id=first["id"],
                                     contact_id=refuser, evidence=refusal.token_evidence(first))
    clock.now = NOW + timedelta(hours=1, minutes=1)
    await eventually(lambda: all_sent(pass_db, 5), timeout=30, interval=0.1)

    assert await sent_to(pass_db, refuser) == [("email", "hello", "sent")]
    assert await sent_to(pass_db, stayer) == [("email", "hello", "sent"), ("email", "offer", "sent")]
    runs = await history(pass_db)
    assert [kind for _, kind, _ in runs[refuser]] == ["entered", "send", "wait", "refused"]
    assert [kind for _, kind, _ in runs[stayer]] == ["entered", "send", "wait", "send", "exit"]
    received = sorted(rcpt for rcpt, _, _ in sink.handler.received)
    assert received.count(first["recipient"]) == 1 and len(received) == 5


async def test_a_customer_who_picks_fax_gets_the_next_step_by_fax(tmp_path, database_url, pass_db, sink,
                                                                 start_suite):
    (chooser, other), clock = await start(tmp_path, database_url, pass_db, sink, start_suite, count=2)
    await eventually(lambda: all_sent(pass_db, 2), timeout=30, interval=0.1)
    first = await first_delivery(pass_db, chooser)
    async with pass_db.begin() as conn:   # what the preference page saves when they pick fax
        contact = await preferences.contact_of(conn, first)
        await preferences.save(conn, first, contact, preferences.Choice(preferred_channel="fax"), [],
                               clock.now + timedelta(minutes=5))
    clock.now = NOW + timedelta(hours=1, minutes=1)
    await eventually(lambda: all_sent(pass_db, 4), timeout=60, interval=0.2)

    assert await sent_to(pass_db, chooser) == [("email", "hello", "sent"), ("fax", "offer", "sent")]
    assert await sent_to(pass_db, other) == [("email", "hello", "sent"), ("email", "offer", "sent")]
    assert any(rcpt.startswith("FAX=+8221234") for rcpt, _, _ in sink.handler.received)
    async with pass_db.connect() as conn:
        media = (await conn.execute(select(cdr.c.medium).select_from(cdr.join(deliveries, deliveries.c.id == cdr.c.delivery_id))
                                    .where(deliveries.c.contact_id == chooser, cdr.c.final.is_(True))
                                    .order_by(cdr.c.id))).scalars().all()
    assert media == ["email", "fax"]
    runs = await history(pass_db)
    assert [(step, outcome) for step, kind, outcome in runs[chooser] if kind == "send"] == [
        ("hello", "email"), ("offer", "fax")]
    async with pass_db.connect() as conn:   # the customer's timeline: the journey, step by step, with outcomes
        view = await timeline.for_customer(conn, contact["customer_id"])
    shown = [(e["action"], e["step"], e["outcome"]) for e in view["entries"] if e["kind"] == "journey"]
    assert shown[0] == ("entered", "hello", "cli") and shown[-1] == ("exit", "done", None)
    assert ("send", "offer", "fax") in shown and shown[2][0] == "wait" and shown[2][2].startswith("until ")
    fax_step = next(e for e in view["entries"] if e["kind"] == "journey" and e["step"] == "offer")
    fax = next(e for e in view["entries"] if e["kind"] == "delivery" and e["id"] == fax_step["delivery_id"])
    assert (fax["channel"], fax["state"]) == ("fax", "sent")


async def test_an_eps_event_enters_its_customer_once(tmp_path, database_url, pass_db, start_suite):
    from tests.integration.eps.eps_support import EpsClient, add_customer, new_key

    customer = await add_customer(pass_db, "C1", email="c1@example.com")
    async with pass_db.begin() as conn:
        await engine.create(conn, definitions.from_dict({**FLOW, "event_type": "dormant"}), "marketing", NOW)
    suite = await start_suite(make_config(tmp_path, database_url), ["eps"])   # no PASS: the run waits to start
    client = EpsClient(suite, pass_db, await new_key(pass_db, "account"))
    for _ in range(2):
        status, _, reply = await client.post_json({"type": "dormant", "customer_id": "C1", "data": {}})
        assert status == 202, reply
    status, _, reply = await client.post_json({"type": "dormant", "customer_id": "C404", "data": {}})
    assert status == 202, reply
    async with pass_db.connect() as conn:
        journey = await journey_store.by_name(conn, "welcome")
        runs = await journey_store.runs_with_steps(conn, journey["id"])
        first_event = await conn.scalar(select(events.c.id).order_by(events.c.id))
    assert runs == {customer: [("hello", "entered", f"event:{first_event}")]}


async def test_a_tracked_journey_email_opened_through_its_pixel_takes_the_opened_branch(
        tmp_path, database_url, pass_db, sink, start_suite):
    import email
    import email.policy
    import re
    from urllib.parse import urlsplit

    from tests.integration.was.was_site import Site

    ids = await seed_audience(pass_db, 2)
    await add_template(pass_db, "hello")
    await add_template(pass_db, "offer")
    clock = Clock(NOW)
    config = pass_config(tmp_path, database_url, sink.port, pass__journey_interval="0.1")
    suite = await start_suite(config, ["pass", "was"], clock=clock)
    flow = {"name": "nudge", "kind": "advertising", "tracking": True, "steps": [
        {"id": "hello", "send": {"channel": "email", "template": "hello"}},
        {"id": "an-hour", "wait": {"duration": "1h"}},
        {"id": "opened?", "branch": {"cases": {"opened": "done"}, "otherwise": "offer"}},
        {"id": "offer", "send": {"channel": "email", "template": "offer"}},
        {"id": "done", "exit": {}}]}
    async with pass_db.begin() as conn:
        await engine.create(conn, definitions.from_dict(flow), "marketing", clock.now)
        await engine.enter(conn, "nudge", ids, "cli", clock.now)
    await eventually(lambda: all_sent(pass_db, 2), timeout=30, interval=0.1)
    reader = next(data for rcpt, _, data in sink.handler.received if rcpt == "user0@example.com")
    html = email.message_from_bytes(reader, policy=email.policy.default).get_body(("html",)).get_content()
    pixel = re.search(r'<img src="([^"]+/t/o/0/[^"]+)"', html)
    assert pixel, "the journey email carries the open pixel"
    client = Site(suite, "http://" + suite.services["was"].address).client()
    got = await client.get(urlsplit(pixel.group(1)).path)   # the customer's mail client shows it
    assert got.status == 200 and got.headers["Content-Type"] == "image/gif"
    clock.now = NOW + timedelta(hours=1, minutes=1)
    await eventually(lambda: all_sent(pass_db, 3), timeout=30, interval=0.1)

    assert await sent_to(pass_db, ids[0]) == [("email", "hello", "sent")]
    assert await sent_to(pass_db, ids[1]) == [("email", "hello", "sent"), ("email", "offer", "sent")]
    runs = await history(pass_db, "nudge")
    assert [(kind, outcome) for _, kind, outcome in runs[ids[0]] if kind == "branch"] == [("branch", "opened")]
    async with pass_db.connect() as conn:
        view = await timeline.for_customer(conn, "C0000000")
    assert [e["kind"] for e in view["entries"]].count("open") == 1
