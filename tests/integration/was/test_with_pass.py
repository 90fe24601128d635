"""WAS and PASS together, with a real SMTP sink: an XML API request is sent by
PASS, and a one-click unsubscribe makes the next campaign skip the address."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from aiosmtpd.smtp import SMTP as SMTPServer
from was_site import Client

from tests.conftest import make_config
from tests.helpers import eventually
from tests.integration.was.test_api import GOOD_XML
from ums.db.models import deliveries
from ums.store import addressbooks, apikeys


class Recorder:
    def __init__(self):
        self.received: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        self.received.append((list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 2.0.0 queued"

    def recipients(self) -> list[str]:
        return [rcpt for rcpts, _ in self.received for rcpt in rcpts]


@pytest.fixture
async def smtp_sink():
    recorder = Recorder()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTPServer(recorder, hostname="sink.test"), "127.0.0.1", 0)
    recorder.port = server.sockets[0].getsockname()[1]
    yield recorder
    server.close()


@pytest.fixture
async def suite_with_pass(tmp_path, sqlite_url, start_suite, smtp_sink):
    config = make_config(tmp_path, sqlite_url, email__relay_port=str(smtp_sink.port))
    suite = await start_suite(config, ["was", "pass"])
    async with suite.ctx.db.begin() as conn:
        _, key = await apikeys.create(conn, "account", suite.ctx.clock(),
                                         scopes=["send", "contacts", "campaigns", "mailbox"])
    return suite, Client("http://" + suite.services["was"].address), {"x-api-key": key}


async def test_a_valid_xml_request_is_sent_by_pass(suite_with_pass, smtp_sink):
    suite, client, key = suite_with_pass
    reply = await client.request("POST", "/api/v1/send", GOOD_XML, {"content-type": "application/xml", **key})
    assert reply.status == 202
    await eventually(lambda: "kim@example.com" in smtp_sink.recipients(), timeout=15)
    [(_, data)] = smtp_sink.received
    assert b"Balance alert" in data


async def test_one_click_unsubscribe_makes_the_next_campaign_skip_the_address(suite_with_pass, smtp_sink):
    suite, client, key = suite_with_pass
    now = suite.ctx.clock()
    async with suite.ctx.db.begin() as conn:
        book = await addressbooks.ensure_book(conn, "Offers")
        for address in ("stay@example.com", "leave@example.com"):
            contact = await addressbooks.save_contact(conn, {"name": address, "email": address}, now)
            await addressbooks.add_to_book(conn, book, contact)
            await addressbooks.record_consent(conn, contact, True, "web form", now - timedelta(days=1), night_time=True)
    headers = {"content-type": "application/json", **key}
    template = {"name": "offer", "subject": "Offer", "body_text": "Hello", "body_html": "<p>Hello</p>",
                "sender_name": "UMS Bank", "sender_contact": "1588-0000"}

    async def run_campaign(name: str) -> int:
        spec = {"name": name, "kind": "advertising", "channel": "email", "template": template,
                "audience": {"books": ["Offers"]}}
        made = await client.request("POST", "/api/v1/campaigns", json.dumps(spec).encode(), headers)
        assert made.status == 201, made.text
        campaign_id = json.loads(made.body)["id"]
        scheduled = await client.request("POST", f"/api/v1/campaigns/{campaign_id}/schedule", b"", headers)
        assert scheduled.status == 200, scheduled.text

        async def finished():
            status = json.loads((await client.get(f"/api/v1/campaigns/{campaign_id}", **key)).body)
            return status["state"] == "completed"

        await eventually(finished, timeout=20, interval=0.2)
        return campaign_id

    first = await run_campaign("offer-1")
    assert sorted(smtp_sink.recipients()) == ["leave@example.com", "stay@example.com"]
    async with suite.ctx.db.connect() as conn:
        token = await conn.scalar(deliveries.select().with_only_columns(deliveries.c.token).where(
            deliveries.c.campaign_id == first, deliveries.c.recipient == "leave@example.com"))
    # the message carries the one-click header pointing at this endpoint
    leave_message = next(data for rcpts, data in smtp_sink.received if rcpts == ["leave@example.com"])
    assert f"/unsubscribe/{token}".encode() in leave_message
    done = await client.post(f"/unsubscribe/{token}", {"List-Unsubscribe": "One-Click"})
    assert done.status == 200

    smtp_sink.received.clear()
    second = await run_campaign("offer-2")
    assert smtp_sink.recipients() == ["stay@example.com"]
    async with suite.ctx.db.connect() as conn:
        states = dict((await conn.execute(
            deliveries.select().with_only_columns(deliveries.c.recipient, deliveries.c.state)
            .where(deliveries.c.campaign_id == second))).all())
    assert states == {"stay@example.com": "sent", "leave@example.com": "suppressed"}
