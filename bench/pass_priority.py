"""Priority lanes (P6): do urgent alerts wait behind a marketing campaign?

A campaign (200,000 recipients by default) sends at full speed into Postfix's
smtp-sink while a load generator (its own process) posts urgent events to EPS
over real HTTP, 20 a second for 30 s, each for its own customer; the service
that answers them is registered with ``lane="urgent"``. Two runs in the same
invocation, each on a fresh database: the campaign alone (the reference), then
the campaign with the alerts. Prints the campaign's msg/s in both, the alerts'
latency from EPS's 202 to the relay's receipt (p50/p95/p99; the sink stamps
each alert's RCPT, see ``queue_sinks.StampedSmtpSink``), and last a line
``transactional p99 N ms``.

A build whose service definitions have no ``lane`` refuses the attribute; the
bench then registers the service without one, says so, and measures what that
build does (alerts share the campaign's queue).

EPS and PASS run in this process on one loop, as ``ums run`` runs them, with
the queue's transactions in PASS's database process.

    .venv/bin/python bench/pass_priority.py [--recipients 200000] [--seconds 30] [--rate 20]
        [--database-url postgresql+asyncpg://user@host/db] [--quick]

SQLite by default; with --database-url each run gets a scratch database on
that PostgreSQL server (created and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from loopback_http import exchange  # noqa: E402
from queue_sinks import StampedSmtpSink, drop_database, scratch_database  # noqa: E402

CONNECTIONS = 16
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "1024"))
SERVICE = "urgent-withdrawal-alert"
EVENT_TYPE = "large_withdrawal"
ALERT_PREFIX = "urgent"
ALERT_DOMAIN = "alerts.example"
CAMPAIGN = "bench"


def service_xml(lane: str | None) -> bytes:
    lane_attribute = f' lane="{lane}"' if lane else ""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<service name="{SERVICE}" event-type="{EVENT_TYPE}" kind="transactional" priority="1"{lane_attribute}>
  <description>Large withdrawal: tell the customer at once</description>
  <recipient customer-field=""/>
  <templates><template channel="email" name="urgent-email"/></templates>
  <policy><default><channel>email</channel></default></policy>
</service>""".encode()


def alert_address(number: int) -> str:
    return f"{ALERT_PREFIX}{number}@{ALERT_DOMAIN}"


# --- the load generator (its own process) ------------------------------------------

async def _exchange(connection, raw: bytes) -> int:
    return await exchange(*connection, raw)


def _post(host: str, port: int, key: str, path: str, body: bytes, content_type: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


async def _load(host: str, port: int, key: str, rate: float, seconds: float) -> list[list]:
    """Post ``rate`` events a second for ``seconds``, each when its time comes
    (on a free keep-alive connection, or a new one); returns
    ``[number, status, monotonic time of the answer]``."""
    idle: list = []
    results: list[list] = []

    async def one(number: int):
        connection = idle.pop() if idle else await asyncio.open_connection(host, port)
        body = json.dumps({"id": f"urgent-{number}", "type": EVENT_TYPE, "customer_id": f"U{number:06d}",
                           "data": {"amount": 5000000 + number}}).encode()
        status = await _exchange(connection, _post(host, port, key, "/v1/events", body, "application/json"))
        results.append([number, status, time.monotonic()])
        idle.append(connection)

    started = time.monotonic()
    tasks = []
    for number in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, started + number / rate - time.monotonic()))
        tasks.append(asyncio.create_task(one(number)))
    await asyncio.gather(*tasks)
    for _, writer in idle:
        writer.close()
    return results


def load_main(argv: list[str]) -> None:
    host, port, key, rate, seconds = argv
    print(json.dumps(asyncio.run(_load(host, int(port), key, float(rate), float(seconds)))))


# --- the server side ------------------------------------------------------------------

@dataclass
class Run:
    campaign_rate: float
    campaign_seconds: float
    lane_note: str = ""
    posted: int = 0
    accepted: int = 0
    latencies_ms: list[float] | None = None
    during_campaign: int = 0
    undelivered: int = 0
    #: milliseconds, per alert: row committed -> its send began (claim, ready queue, sender), and the send
    waited_ms: list[float] | None = None
    sending_ms: list[float] | None = None


async def seed_alert_customers(db, count: int) -> None:
    from sqlalchemy import insert

    from ums.clock import utcnow
    from ums.db.models import contacts
    from ums.store import templates

    async with db.begin() as conn:
        for start in range(0, count, 10000):
            await conn.execute(insert(contacts), [
                {"customer_id": f"U{n:06d}", "name": f"긴급{n}", "email": alert_address(n), "grade": "NORMAL"}
                for n in range(start, min(count, start + 10000))])
        await templates.save(conn, "urgent-email", "email", utcnow(), kind="transactional",
                             subject="[UMS은행] 고액 출금 알림", body_text="{{ name }}님 계좌에서 고액이 출금되었습니다.",
                             sender_name="UMS은행", sender_contact="1588-0000")


async def register_service(host: str, port: int, key: str) -> str:
    """Register the alerts' service over EPS's API, with the urgent lane if
    this build takes it; returns what happened, for the output."""
    connection = await asyncio.open_connection(host, port)
    try:
        status = await _exchange(connection, _post(host, port, key, "/v1/services", service_xml("urgent"),
                                                   "application/xml"))
        if status == 201:
            return "lane: urgent (the service definition took lane=\"urgent\")"
        refused = status
        status = await _exchange(connection, _post(host, port, key, "/v1/services", service_xml(None),
                                                   "application/xml"))
        if status != 201:
            sys.exit(f"EPS refused the alerts' service (HTTP {status})")
        return (f"lane: REFUSED (HTTP {refused} for lane=\"urgent\": this build has no lanes); "
                f"registered without a lane, so the alerts share the campaign's queue")
    finally:
        connection[1].close()


async def sent_count(db, campaign_id: int | None = None) -> int:
    from sqlalchemy import func, select

    from ums.db.models import deliveries

    query = select(func.count()).select_from(deliveries).where(deliveries.c.state == "sent")
    if campaign_id is not None:
        query = query.where(deliveries.c.campaign_id == campaign_id)
    async with db.connect() as conn:
        return await conn.scalar(query)


async def campaign_end(db) -> datetime:
    """When the relay's 250 for the campaign's last message came (its CDR rows' end)."""
    from sqlalchemy import func, select

    from ums.db.models import cdr
    from ums.store import as_utc

    async with db.connect() as conn:
        return as_utc(await conn.scalar(select(func.max(cdr.c.end)).where(cdr.c.source == CAMPAIGN)))


async def run(args, sink: StampedSmtpSink, workdir: Path, with_alerts: bool) -> Run:
    from pass_campaign import seed

    from ums import campaigns, config as ums_config
    from ums.db import connect
    from ums.clock import utcnow
    from ums.runtime import Suite
    from ums.store import apikeys

    url = await scratch_database(args.database_url, workdir, "prio")
    db = connect(url)
    await seed(db, args.recipients)
    alerts = int(args.rate * args.seconds) if with_alerts else 0
    await seed_alert_customers(db, max(alerts, 1))
    async with db.begin() as conn:
        _, key = await apikeys.create(conn, "account", utcnow())
    home = workdir / f"home-{time.monotonic_ns()}"
    home.mkdir()
    config = ums_config.load(home, config_file=home / "absent.cfg", overrides={
        "database.url": url, "email.relay_port": str(sink.port), "email.connections": str(CONNECTIONS),
        "pass.concurrency": str(CONCURRENCY), "pass.poll_interval": "0.05", "log.level": "WARNING",
        "control.poll_interval": "0.5", "eps.http_port": "0", "eps.telegram_port": "0",
    })
    suite = Suite(config, ["pass", "eps"])
    await suite.start()
    try:
        host, port = suite.services["eps"].address.split()[0].rsplit(":", 1)
        lane_note = await register_service(host, int(port), key) if with_alerts else ""
        spec = campaigns.from_dict({"name": CAMPAIGN, "kind": "transactional", "template": "bench",
                                    "audience": {"books": ["bench"]}})
        started = utcnow()
        async with db.begin() as conn:
            campaign_id = await campaigns.create(conn, spec, started)
            await campaigns.schedule(conn, campaign_id, None, started)
        suite.services["pass"].worker.wake.set()
        suite.services["pass"].reservations.wake.set()
        load = None
        if with_alerts:
            while not await sent_count(db, campaign_id):
                await asyncio.sleep(0.05)
            load = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--load", host, port, key, str(args.rate), str(args.seconds),
                stdout=subprocess.PIPE)
        while await sent_count(db, campaign_id) < args.recipients:
            await asyncio.sleep(0.25)
        ended = await campaign_end(db)
        seconds = (ended - started).total_seconds()
        result = Run(args.recipients / seconds, seconds, lane_note)
        if load is not None:
            out, _ = await load.communicate()
            # the application clock (the CDR's) as CLOCK_MONOTONIC (the 202s' and the sink's)
            ended_monotonic = time.monotonic() - (utcnow() - ended).total_seconds()
            await alert_latencies(result, json.loads(out), sink, ended_monotonic)
            result.waited_ms, result.sending_ms = await alert_stages(db)
    finally:
        await suite.stop()
        await db.close()
        await drop_database(args.database_url, url)
    return result


async def alert_latencies(result: Run, posts: list[list], sink: StampedSmtpSink, campaign_ended: float,
                          wait: float = 120.0) -> None:
    """Match each accepted alert's 202 with the relay's stamp of its recipient
    (waiting up to ``wait`` seconds for the last ones)."""
    accepted = [post for post in posts if post[1] == 202]
    deadline = time.monotonic() + wait
    while True:
        arrivals = sink.arrivals()
        if all(alert_address(number) in arrivals for number, *_ in accepted) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    during = [post for post in accepted if post[2] < campaign_ended]
    measured = during or accepted
    result.posted, result.accepted, result.during_campaign = len(posts), len(accepted), len(during)
    result.latencies_ms = sorted(1000 * (arrivals[alert_address(number)] - answered)
                                 for number, _, answered in measured if alert_address(number) in arrivals)
    result.undelivered = len(accepted) - sum(alert_address(number) in arrivals for number, *_ in accepted)


async def alert_stages(db) -> tuple[list[float], list[float]]:
    """Where each alert's time went inside UMS: from its delivery row's commit
    to the start of its send (the claim, the ready queue, a free sender), and
    the send itself (rendering, a relay connection, the SMTP exchange) — read
    from the rows (``created_at``) and the final CDR rows (``start``, ``end``)."""
    from sqlalchemy import select

    from ums.db.models import cdr, deliveries

    query = (select(deliveries.c.created_at, cdr.c.start, cdr.c.end)
             .join(cdr, cdr.c.delivery_id == deliveries.c.id)
             .where(deliveries.c.recipient.like(f"{ALERT_PREFIX}%@{ALERT_DOMAIN}"), cdr.c.final.is_(True)))
    async with db.connect() as conn:
        rows = (await conn.execute(query)).all()
    waited = sorted(1000 * (start - created).total_seconds() for created, start, _ in rows)
    sending = sorted(1000 * (end - start).total_seconds() for _, start, end in rows)
    return waited, sending


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank of sorted ``values``."""
    return values[max(0, math.ceil(fraction * len(values)) - 1)]


async def main(args) -> None:
    from ums import reactor as ums_reactor

    ums_reactor.install(asyncio.get_running_loop())
    with tempfile.TemporaryDirectory() as tmp:
        sink = StampedSmtpSink(ALERT_PREFIX, Path(tmp))
        try:
            database = "PostgreSQL (scratch databases)" if args.database_url else "SQLite"
            print(f"sink: Postfix smtp-sink on 127.0.0.1:{sink.port} (alerts stamped at their RCPT); {database}; "
                  f"{args.recipients} recipients, {CONNECTIONS} SMTP connections, concurrency {CONCURRENCY}; "
                  f"urgent events {args.rate:g}/s for {args.seconds:g} s", flush=True)
            alone = await run(args, sink, Path(tmp), with_alerts=False)
            print(f"campaign alone:            {alone.campaign_rate:7.0f} msg/s "
                  f"({args.recipients} in {alone.campaign_seconds:.1f} s)", flush=True)
            mixed = await run(args, sink, Path(tmp), with_alerts=True)
            print(mixed.lane_note, flush=True)
            change = mixed.campaign_rate / alone.campaign_rate - 1
            print(f"campaign with the alerts:  {mixed.campaign_rate:7.0f} msg/s "
                  f"({args.recipients} in {mixed.campaign_seconds:.1f} s), {change:+.1%} against alone", flush=True)
        finally:
            sink.close()
    latencies = mixed.latencies_ms or [float("nan")]
    print(f"urgent alerts: {mixed.posted} posted, {mixed.accepted} answered 202, "
          f"{mixed.accepted - mixed.undelivered} reached the relay ({mixed.undelivered} not within the wait); "
          f"{mixed.during_campaign} posted while the campaign was sending "
          f"({'those' if mixed.during_campaign else 'all accepted'} measured)")
    print(f"EPS 202 -> relay: p50 {percentile(latencies, 0.5):.0f} ms, p95 {percentile(latencies, 0.95):.0f} ms, "
          f"p99 {percentile(latencies, 0.99):.0f} ms, max {latencies[-1]:.0f} ms")
    for stage, values in (("row committed -> send began", mixed.waited_ms), ("send began -> relay's 250", mixed.sending_ms)):
        if values:
            print(f"  {stage}: p50 {percentile(values, 0.5):.0f} ms, p99 {percentile(values, 0.99):.0f} ms")
    print(f"transactional p99 {percentile(latencies, 0.99):.0f} ms")


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=200000, help="the campaign's audience (200000)")
    parser.add_argument("--seconds", type=float, default=30, help="how long urgent events are posted (30)")
    parser.add_argument("--rate", type=float, default=20, help="urgent events per second (20)")
    parser.add_argument("--database-url", help="a PostgreSQL server to make scratch databases on "
                                               "(postgresql+asyncpg://…); SQLite when absent")
    parser.add_argument("--quick", action="store_true",
                        help="small numbers for a smoke test (3000 recipients, 10 events/s for 2 s)")
    args = parser.parse_args()
    if args.quick:
        args.recipients, args.seconds, args.rate = 3000, 2, 10
    if args.recipients < 1 or args.seconds <= 0 or args.rate <= 0:
        parser.error("--recipients, --seconds and --rate must be positive")
    if args.database_url and not args.database_url.startswith("postgresql"):
        parser.error("--database-url must be a PostgreSQL URL (postgresql+asyncpg://user@host/db)")
    return args


if __name__ == "__main__":
    if sys.argv[1:2] == ["--load"]:
        load_main(sys.argv[2:])
    else:
        asyncio.run(main(options()))
