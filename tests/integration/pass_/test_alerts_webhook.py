"""Operator alerts reach a real loopback webhook receiver (http.server in a
thread), signed: a campaign completing, the relay unreachable for the
configured minutes (and reachable again), a service stopping; a receiver that
fails at first gets the same alert again, and one that never answers costs
one WARNING and leaves the campaign alone. The test checks each signature
itself with the shared secret, as a receiver would."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from pass_support import Sink, SinkHandler, add_template, pass_config, seed_audience, start_campaign, states
from tests.helpers import eventually, free_port
from tests.integration.webhook_receiver import SECRET, Receiver, signature_is_valid
from ums import alerts

def alert_config(tmp_path, database_url, relay_port, url, **more):
    return pass_config(tmp_path, database_url, relay_port, alerts__webhook_url=url, alerts__webhook_secret=SECRET,
                       alerts__retry_base="0.05", alerts__timeout="5", **more)


async def test_a_completed_campaign_reaches_the_webhook_signed(tmp_path, database_url, pass_db, sink, start_suite):
    await seed_audience(pass_db, 20)
    await add_template(pass_db)
    with Receiver() as receiver:
        suite = await start_suite(alert_config(tmp_path, database_url, sink.port, receiver.url), ["pass"])
        campaign_id = await start_campaign(pass_db, name="winter-offer")
        await eventually(lambda: receiver.events("campaign.completed"), timeout=60, interval=0.2)
        [request] = receiver.events("campaign.completed")
        body = json.loads(request["body"])
        assert (await states(pass_db, campaign_id))["sent"] == 20
        assert body["data"]["campaign"] == "winter-offer" and body["data"]["counts"] == {"sent": 20}
        assert "winter-offer completed" in body["summary"] and body["at"].endswith("+09:00")
        assert request["path"] == "/hooks/ums" and request["headers"]["X-UMS-Event"] == "campaign.completed"
        assert request["headers"]["X-UMS-Delivery"] == body["id"]

        assert signature_is_valid(request)
        tampered = request["body"].replace(b'"sent": 20', b'"sent": 21')
        assert tampered != request["body"] and not signature_is_valid(request, tampered)
        assert not signature_is_valid(request, secret="another-secret")
        stamp = request["headers"]["X-UMS-Timestamp"]
        assert alerts.verify(SECRET, request["body"], stamp, request["headers"]["X-UMS-Signature"])
        assert not alerts.verify(SECRET, tampered, stamp, request["headers"]["X-UMS-Signature"])
        assert not alerts.verify(SECRET, request["body"], stamp, request["headers"]["X-UMS-Signature"],
                                 now=int(stamp) + 600)   # a replay ten minutes later
        assert SECRET.encode() not in request["body"]

        await suite.stop()   # service.stopped is sent before the suite's stop returns
        [stopped] = receiver.events("service.stopped")
        assert json.loads(stopped["body"])["data"]["service"] == "pass" and signature_is_valid(stopped)


async def test_an_unreachable_relay_reaches_the_webhook_after_the_minutes_set(
        tmp_path, database_url, pass_db, start_suite):
    relay_port = free_port()   # nothing listens here yet
    await seed_audience(pass_db, 3)
    await add_template(pass_db)
    with Receiver() as receiver:
        config = alert_config(tmp_path, database_url, relay_port, receiver.url, pass__retry_base="0.2",
                              pass__retry_max="0.5", alerts__relay_unreachable_minutes="0.02")  # 1.2 s
        await start_suite(config, ["pass"])
        started = time.monotonic()
        await start_campaign(pass_db)
        await eventually(lambda: receiver.events("relay.unreachable"), timeout=30, interval=0.1)
        assert time.monotonic() - started >= 1.2
        [request] = receiver.events("relay.unreachable")
        body = json.loads(request["body"])
        assert signature_is_valid(request)
        assert body["data"]["channel"] == "email" and f"127.0.0.1:{relay_port}" in body["data"]["error"]
        assert "unreachable for 0.02 minutes" in body["summary"]
        assert not signature_is_valid(request, request["body"].replace(b"email", b"fax"))

        relay = await Sink(SinkHandler()).start_on(relay_port)
        try:
            await eventually(lambda: receiver.events("relay.reachable"), timeout=30, interval=0.2)
            assert signature_is_valid(receiver.events("relay.reachable")[0])
            assert len(receiver.events("relay.unreachable")) == 1
        finally:
            await relay.close()


async def test_a_short_outage_sends_no_alert(tmp_path, database_url, pass_db, start_suite):
    relay_port = free_port()
    await seed_audience(pass_db, 2)
    await add_template(pass_db)
    with Receiver() as receiver:
        config = alert_config(tmp_path, database_url, relay_port, receiver.url, pass__retry_base="0.2",
                              pass__retry_max="0.3", alerts__relay_unreachable_minutes="1")
        suite = await start_suite(config, ["pass"])
        campaign_id = await start_campaign(pass_db)
        await eventually(lambda: suite.services["pass"].state == "degraded", timeout=30, interval=0.1)
        relay = await Sink(SinkHandler()).start_on(relay_port)
        try:
            await eventually(lambda: receiver.events("campaign.completed"), timeout=30, interval=0.2)
        finally:
            await relay.close()
        assert (await states(pass_db, campaign_id))["sent"] == 2
        assert not receiver.events("relay.unreachable") and not receiver.events("relay.reachable")


async def test_a_failing_receiver_gets_the_same_alert_again_and_a_dead_one_is_logged_once(
        tmp_path, database_url, pass_db, sink, start_suite, caplog):
    await seed_audience(pass_db, 5)
    await add_template(pass_db)
    dead = f"http://127.0.0.1:{free_port()}/never"
    caplog.set_level(logging.INFO, logger="ums.alerts")
    with Receiver(fail_first=2) as receiver:
        config = alert_config(tmp_path, database_url, sink.port, f"{receiver.url} {dead}", alerts__retries="3")
        await start_suite(config, ["pass"])
        campaign_id = await start_campaign(pass_db)
        await eventually(lambda: len(receiver.events("campaign.completed")) == 3, timeout=30, interval=0.1)
        assert (await states(pass_db, campaign_id))["sent"] == 5   # the alerts held nothing up
        tries = receiver.events("campaign.completed")
        assert len({t["headers"]["X-UMS-Delivery"] for t in tries}) == 1 and all(map(signature_is_valid, tries))

        def dead_warnings():
            return [r for r in caplog.records if r.levelno == logging.WARNING and r.getMessage() == "alert not delivered"]

        await eventually(dead_warnings, timeout=10, interval=0.1)
        [warning] = dead_warnings()
        assert warning.to == dead and warning.attempts == 4
        assert SECRET not in caplog.text


@pytest.mark.parametrize("url, secret", [("", ""), ("http://127.0.0.1:9/x", "")])
async def test_no_destination_or_no_secret_sends_nothing(tmp_path, database_url, url, secret):
    from tests.conftest import make_config

    config = make_config(tmp_path, database_url, alerts__webhook_url=url, alerts__webhook_secret=secret)
    alerts.notify(config, "service.stopped", "Service pass stopped", service="pass")
    assert not [key for key in alerts._dispatchers if key[1] == id(config)]


async def test_a_paused_service_reaches_the_webhook(tmp_path, database_url, pass_db, sink, start_suite):
    from ums.store import control

    with Receiver() as receiver:
        await start_suite(alert_config(tmp_path, database_url, sink.port, receiver.url), ["pass"])
        async with pass_db.begin() as conn:   # what `ums pause pass` writes
            await control.set_desired(conn, "pass", "paused", by="operator")
        await eventually(lambda: receiver.events("service.paused"), timeout=15, interval=0.1)
        [request] = receiver.events("service.paused")
        assert signature_is_valid(request) and json.loads(request["body"])["data"]["service"] == "pass"


async def test_a_bounce_rate_over_its_threshold_reaches_the_webhook_once(
        tmp_path, database_url, pass_db, sink, start_suite):
    from ums.store import suppression

    await seed_audience(pass_db, 20)
    await add_template(pass_db)
    with Receiver() as receiver:
        config = alert_config(tmp_path, database_url, sink.port, receiver.url, alerts__bounce_rate_threshold="0.1",
                              alerts__refusal_rate_threshold="0.5", alerts__rate_min_sent="10",
                              alerts__rate_check_seconds="0.2")
        await start_suite(config, ["pass"])
        await start_campaign(pass_db)
        await eventually(lambda: receiver.events("campaign.completed"), timeout=60, interval=0.2)
        async with pass_db.begin() as conn:
            await suppression.add(conn, "email", "user0@example.com", "refusal")
            await suppression.add(conn, "email", "user1@example.com", "bounce")
        await asyncio.sleep(1)   # looked at several times: 1 bounce in 20 (5%) is under the threshold
        assert not receiver.events("bounce_rate.exceeded")
        async with pass_db.begin() as conn:
            for n in (2, 3):   # 3 in 20: 15%
                await suppression.add(conn, "email", f"user{n}@example.com", "bounce")
        await eventually(lambda: receiver.events("bounce_rate.exceeded"), timeout=15, interval=0.1)
        [request] = receiver.events("bounce_rate.exceeded")
        body = json.loads(request["body"])
        assert signature_is_valid(request)
        assert body["data"]["bounced"] == 3 and body["data"]["sent"] == 20 and body["data"]["rate"] == 0.15
        assert "15.0% of 20 delivered" in body["summary"]
        async with pass_db.begin() as conn:
            await suppression.add(conn, "email", "user4@example.com", "bounce")
        await asyncio.sleep(1)
        assert len(receiver.events("bounce_rate.exceeded")) == 1   # told once while it stays over
        assert not receiver.events("refusal_rate.exceeded")   # 1 in 20 is under 50%


async def test_alerts_by_mail_reach_the_operator_through_the_relay(tmp_path, database_url, pass_db, sink,
                                                                    start_suite):
    await seed_audience(pass_db, 3)
    await add_template(pass_db)
    config = pass_config(tmp_path, database_url, sink.port, alerts__email_to="ops@bank.example",
                         alerts__retry_base="0.05")
    await start_suite(config, ["pass"])
    await start_campaign(pass_db, name="mail-alert")

    def operator_mail():
        return [data for rcpt, _id, data in sink.handler.received if rcpt == "ops@bank.example"]

    await eventually(operator_mail, timeout=60, interval=0.2)
    [data] = operator_mail()
    assert b"Subject: [UMS] Campaign mail-alert completed" in data and b"campaign.completed" in data
