"""Issue #18, must-shows 2 and 4 the way customers do them: MAS, PASS and
WAS running together on one injected clock, the journey's mail going to a
real loopback SMTP sink, and the customers answering it by the paths they
have — not by store calls:

* one replies ``수신거부`` to the journey's first email over real SMTP to MAS
  (In-Reply-To naming that email's Message-ID), and leaves the journey
  before its next send;
* one follows the email's ``List-Unsubscribe`` link to the preference page
  in WAS and picks fax, and gets the journey's next step by fax (T.37 to the
  same sink);
* the third gets both emails.
"""

from __future__ import annotations

import email
import re
from datetime import timedelta
from email import policy

from sqlalchemy import select, update

from pass_support import NOW, add_template, pass_config, seed_audience
from tests.helpers import eventually
from tests.integration.mas.conftest import send_to_mas
from tests.unit.mas import mas_samples as samples
from ums.clock import Clock
from ums.db.models import contacts, deliveries
from ums.journeys import definitions, engine
from ums.store import journeys as journey_store
from ums.store import suppression
from tests.integration.was.was_site import Site

FLOW = {"name": "welcome", "kind": "advertising", "steps": [
    {"id": "hello", "send": {"channel": "email", "template": "hello"}},
    {"id": "an-hour", "wait": {"duration": "1h"}},
    {"id": "offer", "send": {"channel": "email", "template": "offer"}},
    {"id": "done", "exit": {}}]}


async def sent(db) -> dict[int, list[tuple[str, str, str]]]:
    async with db.connect() as conn:
        rows = await conn.execute(select(deliveries.c.contact_id, deliveries.c.channel, deliveries.c.template_name,
                                         deliveries.c.state).order_by(deliveries.c.id))
        by_contact: dict[int, list] = {}
        for contact_id, *rest in rows:
            by_contact.setdefault(contact_id, []).append(tuple(rest))
        return by_contact


def received(sink, address: str) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(data, policy=policy.default)
            for rcpt, _, data in sink.handler.received if rcpt == address]


async def test_customers_refuse_by_reply_and_pick_fax_on_the_page_mid_journey(tmp_path, database_url, pass_db,
                                                                            sink, start_suite):
    ids = await seed_audience(pass_db, 3)
    async with pass_db.begin() as conn:
        for number, contact_id in enumerate(ids):
            await conn.execute(update(contacts).where(contacts.c.id == contact_id).values(fax=f"0212340{number:03d}"))
        emails = (await conn.execute(select(contacts.c.id, contacts.c.email))).all()
    address = dict(emails)
    await add_template(pass_db, "hello")
    await add_template(pass_db, "offer")
    await add_template(pass_db, "offer", channel="fax")
    clock = Clock(NOW)
    config = pass_config(tmp_path, database_url, sink.port, pass__journey_interval="0.1",
                         fax__t37_host="127.0.0.1", fax__t37_port=str(sink.port), mas__local_domains="ums.local")
    suite = await start_suite(config, ["mas", "pass", "was"], clock=clock)
    async with pass_db.begin() as conn:
        await engine.create(conn, definitions.from_dict(FLOW), "marketing", clock.now)
        await engine.enter(conn, "welcome", ids, "cli", clock.now)
    refuser, chooser, stayer = ids

    async def first_emails_sent():
        return all(received(sink, address[c]) for c in ids)
    await eventually(first_emails_sent, timeout=30, interval=0.1)

    # the refuser answers the advertisement they got: 수신거부, over SMTP to MAS
    [hello] = received(sink, address[refuser])
    reply_to = email.utils.parseaddr(str(hello["Reply-To"] or hello["From"]))[1]
    answer = samples.text_message(address[refuser], reply_to, "Re: " + str(hello["Subject"]), "수신거부\n",
                                  In_Reply_To=hello["Message-ID"])
    await send_to_mas(suite, answer, address[refuser], [reply_to])

    async def refused():
        async with pass_db.connect() as conn:
            return {e["address"]: e["scope"] for e in await suppression.entries(conn)}.get(address[refuser])
    assert await eventually(refused, timeout=20, interval=0.1) == "advertising"

    # the chooser opens the preference page the email links to, and picks fax
    [hello] = received(sink, address[chooser])
    token = re.search(r"/unsubscribe/([0-9A-Za-z_-]+)>", str(hello["List-Unsubscribe"])).group(1)
    site = Site(suite, "http://" + suite.services["was"].address)
    client = site.client()
    page = await client.get(f"/unsubscribe/{token}")
    assert page.status == 200, page.text
    form = re.search(r'name="form_token" value="([0-9a-f]+)"', page.text).group(1)
    saved = await client.post(f"/unsubscribe/{token}", {
        "form_token": form, "action": "save", "topic": ["대출", "카드", "예금", "이벤트"],
        "channel": ["email", "fax", "voice"], "preferred": "fax"})
    assert saved.status == 200 and 'name="preferred" value="fax" checked' in saved.text, saved.text

    clock.now = NOW + timedelta(hours=1, minutes=1)

    async def journey_over():
        async with pass_db.connect() as conn:
            journey = await journey_store.by_name(conn, "welcome")
            runs = await journey_store.runs_with_steps(conn, journey["id"])
        return runs if all(runs[c][-1][1] in ("exit", "refused") for c in ids) else None
    runs = await eventually(journey_over, timeout=60, interval=0.2)

    async def all_sent():
        by_contact = await sent(pass_db)
        done = sum(len(rows) for rows in by_contact.values()) == 5
        return by_contact if done and all(state == "sent" for rows in by_contact.values() for *_, state in rows) \
            else None
    by_contact = await eventually(all_sent, timeout=60, interval=0.2)
    assert [kind for _, kind, _ in runs[refuser]] == ["entered", "send", "wait", "refused"]
    assert by_contact[refuser] == [("email", "hello", "sent")]
    assert len(received(sink, address[refuser])) == 1            # the offer never went
    assert by_contact[chooser] == [("email", "hello", "sent"), ("fax", "offer", "sent")]
    assert [(step, outcome) for step, kind, outcome in runs[chooser] if kind == "send"] == [
        ("hello", "email"), ("offer", "fax")]
    assert len(received(sink, address[chooser])) == 1
    assert [rcpt for rcpt, _, _ in sink.handler.received if rcpt.startswith("FAX=")] == ["FAX=+82212340001@fax.ums.local"]
    assert by_contact[stayer] == [("email", "hello", "sent"), ("email", "offer", "sent")]
    assert len(received(sink, address[stayer])) == 2
