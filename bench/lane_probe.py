"""Priority lanes under load: a marketing campaign's backlog sending at full
speed into Postfix's smtp-sink while EPS receives urgent events, all in one
``ums run eps pass`` process (the embedded default).

Prints the campaign's msg/s alone and with the alerts, and for the alerts
p50/p95/p99 from EPS's 202 (as the poster receives it) to the relay's 250
(as PASS's email channel receives it), then a line ``urgent p99 N ms``.
A quick probe for tuning the lanes; ``bench/pass_priority.py`` is the full
benchmark (P6).

    .venv/bin/python bench/lane_probe.py [--recipients 60000] [--rate 20] [--database sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlalchemy import func, select  # noqa: E402

from pass_campaign import CONCURRENCY, CONNECTIONS, drop_database, prepare_database, seed, start_sink  # noqa: E402
from ums import campaigns, config as ums_config  # noqa: E402
from ums import reactor as ums_reactor  # noqa: E402
from ums.db import connect  # noqa: E402
from ums.db.models import deliveries  # noqa: E402
from ums.event_services import definitions, registry  # noqa: E402
from ums.runtime import Suite  # noqa: E402
from ums.store import apikeys, contacts, templates  # noqa: E402

OTP = {"name": "otp", "event_type": "otp", "kind": "transactional", "lane": "urgent",
       "templates": {"email": "otp"}, "policy": {"default": ["email"]}}


def post(host: str, port: int, key: str, seq: int) -> float:
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        body = json.dumps({"type": "otp", "customer_id": "OTP", "data": {"seq": seq}}).encode()
        connection.request("POST", "/v1/events", body, {"Authorization": f"Bearer {key}",
                                                       "Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        if response.status != 202:
            raise RuntimeError(f"EPS answered {response.status}")
        return time.perf_counter()
    finally:
        connection.close()


async def run(kind: str, sink_port: int, count: int, rate: float, workdir: Path) -> tuple[float, list[float]]:
    url = await prepare_database(kind, workdir)
    db = connect(url)
    await seed(db, count)
    now = datetime.now(timezone.utc)
    async with db.begin() as conn:
        await contacts.create(conn, customer_id="OTP", name="OTP", email="otp@example.com")
        await templates.save(conn, "otp", "email", now, kind="transactional", subject="인증번호",
                             body_text="인증번호 {{ seq }}")
        _, key = await apikeys.create(conn, "account", now)
        await registry.register(conn, definitions.from_dict(OTP), now, system="account")
    home = workdir / f"{kind}-{time.monotonic_ns()}"
    home.mkdir()
    config = ums_config.load(home, config_file=home / "absent.cfg", overrides={
        "database.url": url, "email.relay_port": str(sink_port), "email.connections": str(CONNECTIONS),
        "pass.concurrency": str(CONCURRENCY), "pass.poll_interval": "0.05", "log.level": "WARNING",
        "control.poll_interval": "0.5", "eps.http_port": "0", "eps.telegram_port": "0",
    })
    suite = Suite(config, ["eps", "pass"])
    await suite.start()
    eps_host, eps_port = suite.services["eps"].address.split(" ")[0].rsplit(":", 1)
    channel = suite.services["pass"].channels["email"]
    sent_at: dict[int, float] = {}
    stages: dict[int, dict[str, float]] = {}
    original = channel.send
    worker = suite.services["pass"].worker
    original_take = worker._take

    def timed_take(done):
        for ready in done.ready:
            if ready.delivery.recipient == "otp@example.com":
                stages.setdefault(int(ready.delivery.variables["seq"]), {})["claimed"] = time.perf_counter()
        return original_take(done)

    async def timed_send(delivery):
        if delivery.recipient == "otp@example.com":
            stages.setdefault(int(delivery.variables["seq"]), {})["sending"] = time.perf_counter()
        outcome = await original(delivery)
        if delivery.recipient == "otp@example.com":
            sent_at[int(delivery.variables["seq"])] = time.perf_counter()
        return outcome

    channel.send = timed_send
    worker._take = timed_take
    spec = campaigns.from_dict({"name": "bench", "kind": "transactional", "template": "bench",
                                "audience": {"books": ["bench"]}})
    started = time.perf_counter()
    async with db.begin() as conn:
        campaign_id = await campaigns.create(conn, spec, datetime.now(timezone.utc))
        await campaigns.schedule(conn, campaign_id, None, datetime.now(timezone.utc))
    suite.services["pass"].reservations.wake.set()
    acked: dict[int, asyncio.Future] = {}
    seq, finished = 0, None
    while True:
        if rate and finished is None and time.perf_counter() - started > 1.0:   # the backlog first
            acked[seq] = asyncio.ensure_future(asyncio.to_thread(post, eps_host, int(eps_port), key, seq))
            seq += 1
        await asyncio.sleep(1 / rate if rate else 0.05)
        if finished is None and (seq % 10 == 0 or not rate):
            async with db.connect() as conn:
                sent = await conn.scalar(select(func.count()).select_from(deliveries)
                                         .where(deliveries.c.state == "sent", deliveries.c.campaign_id.is_not(None)))
            if sent >= count:
                finished = time.perf_counter()
        if finished is not None and all(n in sent_at for n in acked) or \
                finished is not None and time.perf_counter() - finished > 30:
            break
    acks = {n: await future for n, future in acked.items()}
    latencies = sorted((sent_at[n] - acks[n]) * 1000 for n in acks if n in sent_at)
    if acks:
        def share(name, since):
            values = sorted((stages[n][name] - since(n)) * 1000 for n in acks if name in stages.get(n, {}))
            return f"{name} p50 {percentile(values, .5):.0f} / p99 {percentile(values, .99):.0f} ms"
        print("  202 →", share("claimed", acks.get), "|", share("sending", lambda n: stages[n]["claimed"]),
              "after the claim |", "250 after sending: p50/p99 "
              f"{percentile(sorted((sent_at[n] - stages[n]['sending']) * 1000 for n in acks if n in sent_at), .5):.0f}/"
              f"{percentile(sorted((sent_at[n] - stages[n]['sending']) * 1000 for n in acks if n in sent_at), .99):.0f} ms",
              flush=True)
    lost = len(acked) - len(latencies)
    if lost:
        print(f"  {lost} alerts not sent within 30 s of the campaign's end", flush=True)
    await suite.stop()
    await db.close()
    await drop_database(kind, url)
    return count / (finished - started), latencies


def percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(round(share * (len(values) - 1))))] if values else float("nan")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=60000)
    parser.add_argument("--rate", type=float, default=20.0, help="urgent events per second")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    ums_reactor.install(asyncio.get_running_loop())
    sink, port = start_sink()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            alone, _ = await run(args.database, port, args.recipients, 0, Path(tmp))
            together, latencies = await run(args.database, port, args.recipients, args.rate, Path(tmp))
    finally:
        sink.terminate()
    print(f"{args.database}: campaign alone {alone:.0f} msg/s, with alerts {together:.0f} msg/s "
          f"({(together / alone - 1) * 100:+.1f}%); {len(latencies)} alerts: p50 {percentile(latencies, .5):.0f} ms, "
          f"p95 {percentile(latencies, .95):.0f} ms, p99 {percentile(latencies, .99):.0f} ms, "
          f"max {max(latencies, default=float('nan')):.0f} ms")
    print(f"urgent p99 {percentile(latencies, .99):.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
