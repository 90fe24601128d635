"""Must-show 5 through real services: EPS, PASS and MAS running together, an
SMTP sink as the mail relay and a T.37 fax gateway sink.

A VIP customer with no voice number gets the email (the policy's next channel).
A customer whose email bounces permanently — a real DSN sent to MAS over SMTP,
to the ``bounce+<token>@`` return path PASS used — gets the fax. Both show in
``GET /v1/customers/{id}/timeline``.
"""

from __future__ import annotations

import email
import email.policy
import shutil

import aiosmtplib
import pytest
from sqlalchemy import select

from eps_support import SAMPLES, EpsClient, add_customer, new_key
from tests.conftest import make_config
from tests.helpers import eventually, split_address
from tests.integration.channels.peers import FaxGatewaySink, start_smtp_sink
from tests.unit.mas.mas_samples import dsn
from ums.db import connect
from ums.db.models import deliveries
from ums.store import templates as template_store
from ums.store import utcnow

FAX_DOMAIN = "fax.test"


class Relay:
    """The mail relay: keeps each message with its envelope."""

    def __init__(self):
        self.messages: list[dict] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "message": email.message_from_bytes(envelope.content, policy=email.policy.default)})
        return "250 2.0.0 queued"

    def to(self, address: str) -> dict | None:
        return next((m for m in self.messages if address in m["to"]), None)


@pytest.fixture
async def suite_with_sinks(tmp_path, database_url, start_suite):
    if not (shutil.which("gs") and shutil.which("tiffinfo")):
        pytest.fail("fax rendering needs ghostscript and libtiff-tools; run scripts/bootstrap test")
    relay, fax = Relay(), FaxGatewaySink(FAX_DOMAIN)
    relay_server, relay_port = await start_smtp_sink(relay)
    fax_server, fax_port = await start_smtp_sink(fax)
    config = make_config(tmp_path, database_url, email__relay_port=relay_port, fax__driver="t37",
                         fax__t37_port=fax_port, fax__t37_domain=FAX_DOMAIN, mas__local_domains="ums.local",
                         eps__held_sweep_interval="0.5")
    db = connect(database_url)
    try:
        now = utcnow()
        async with db.begin() as conn:
            await template_store.save(conn, "deposit-email", "email", now, subject="입금 안내",
                                      body_text="{{ customer_name }}님, {{ amount }}원이 입금되었습니다.")
            await template_store.save(conn, "deposit-fax", "fax", now, subject="입금 안내",
                                      body_text="{{ customer_name }}님, {{ amount }}원이 입금되었습니다.")
            await template_store.save(conn, "deposit-voice", "voice", now,
                                      body_text="{{ amount }}원이 입금되었습니다.")
        key = await new_key(db, "account")
        suite = await start_suite(config, ["eps", "pass", "mas"])
        client = EpsClient(suite, db, key)
        status, _, _ = await client.register(SAMPLES / "large-deposit-alert.json")
        assert status in (200, 201)
        yield client, relay, fax
    finally:
        relay_server.close()
        fax_server.close()
        await db.close()


async def _deliveries_of(db, event_id: int) -> list[dict]:
    async with db.connect() as conn:
        rows = await conn.execute(select(deliveries).where(deliveries.c.event_id == event_id)
                                  .order_by(deliveries.c.id))
        return [dict(row._mapping) for row in rows]


async def _timeline(client, customer_id: str) -> list[tuple]:
    status, _, view = await client.request("GET", f"/v1/customers/{customer_id}/timeline")
    assert status == 200, view
    return [(e["kind"], e.get("channel"), e.get("state")) for e in view["entries"]]


async def test_vip_without_voice_gets_the_email(suite_with_sinks):
    client, relay, _ = suite_with_sinks
    await add_customer(client.db, "VIP7", grade="VIP", email="vip7@example.com", phone=None, name="김우수")
    status, _, reply = await client.post_json({"type": "deposit", "customer_id": "VIP7",
                                               "data": {"amount": 5000000}})
    assert status == 202, reply

    sent = await eventually(lambda: relay.to("vip7@example.com"), timeout=30, interval=0.2)
    assert "5000000" in sent["message"].get_body(("plain",)).get_content()
    assert sent["from"].startswith("bounce+")

    async def final():
        rows = await _deliveries_of(client.db, reply["id"])
        return rows if rows and rows[0]["state"] == "sent" else None

    [delivery] = await eventually(final, timeout=30, interval=0.2)
    assert (delivery["channel"], delivery["recipient"]) == ("email", "vip7@example.com")
    assert await _timeline(client, "VIP7") == [("event", None, "dispatched"), ("delivery", "email", "sent")]


async def test_a_permanent_bounce_sends_the_fax(suite_with_sinks):
    client, relay, fax = suite_with_sinks
    await add_customer(client.db, "N7", email="gone7@example.com", fax="02-555-0199", name="이반송")
    status, _, reply = await client.post_json({"type": "deposit", "customer_id": "N7",
                                               "data": {"amount": 1200000}})
    assert status == 202, reply

    sent = await eventually(lambda: relay.to("gone7@example.com"), timeout=30, interval=0.2)
    return_path = sent["from"]
    assert return_path.startswith("bounce+") and return_path.endswith("@ums.local")

    async def recorded():  # PASS has committed the relay's 250 (a DSN comes later than that)
        rows = await _deliveries_of(client.db, reply["id"])
        return rows if rows and rows[0]["state"] == "sent" else None

    await eventually(recorded, timeout=30, interval=0.1)

    # the recipient's mail server refuses it later: a DSN comes back to the return path, through MAS
    mas_host, mas_port = split_address(client.suite.services["mas"].address)
    smtp = aiosmtplib.SMTP(hostname=mas_host, port=mas_port, timeout=10, start_tls=False)
    async with smtp:
        await smtp.sendmail("", [return_path], dsn("gone7@example.com", sent["message"]["Message-ID"],
                                                   to=return_path))

    received = await eventually(lambda: fax.received, timeout=60, interval=0.2)
    assert received[0][0] == f"FAX=+8225550199@{FAX_DOMAIN}"

    async def settled():
        rows = await _deliveries_of(client.db, reply["id"])
        return rows if [r["state"] for r in rows][1:] == ["sent"] else None

    bounced, faxed = await eventually(settled, timeout=30, interval=0.2)
    assert bounced["channel"] == "email" and bounced["last_code"] == "5.1.1"
    assert (faxed["channel"], faxed["recipient"], faxed["fallback"]) == ("fax", "02-555-0199", [])
    status, _, view = await client.request("GET", "/v1/customers/N7/timeline")
    assert status == 200, view
    entries = [e for e in view["entries"] if e["kind"] != "inbound"]
    assert [(e["kind"], e.get("channel"), e.get("state")) for e in entries] == [
        ("event", None, "dispatched"), ("delivery", "email", "sent"), ("delivery", "fax", "sent")]
    email_entry, fax_entry = entries[1:]
    assert email_entry["bounced_at"] is not None and email_entry["last_code"] == "5.1.1"
    assert [(a["medium"], a["disposition"]) for a in fax_entry["cdr"]] == [("fax", "ANSWERED")]
    # and the DSN itself, filed by MAS against the delivery it reports on
    [inbound] = [e for e in view["entries"] if e["kind"] == "inbound"]
    assert (inbound["classification"], inbound["delivery_id"]) == ("bounce", bounced["id"])
