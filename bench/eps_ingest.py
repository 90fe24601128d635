"""EPS ingest benchmark: durable events per second over HTTP (keep-alive JSON)
and over TCP telegrams, each from a load-generator process on this machine,
plus a burst of events checked afterwards for none lost and none doubled.

    .venv/bin/python bench/eps_ingest.py [--events 20000] [--burst 50000] [--connections 64]

Prints events/s with p50/p99 latency, and the same for GET /health (no
database) as the reference measured in the same run. Runs on SQLite by
default; set UMS_BENCH_DATABASE_URL for PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from loopback_http import exchange  # noqa: E402


# --- the load generator (runs in its own process) ---------------------------------------

async def _http_worker(host, port, requests, latencies, errors):
    reader, writer = await asyncio.open_connection(host, port)
    for raw in requests:
        started = time.perf_counter()
        status = await exchange(reader, writer, raw)
        latencies.append(time.perf_counter() - started)
        if status not in (200, 202):
            errors.append(status)
    writer.close()


def _http_request(host, port, key, number, prefix, path):
    if path == "/health":
        return f"GET /health HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    body = json.dumps({"id": f"{prefix}-{number}", "type": "deposit", "customer_id": f"B{number % 1000:04d}",
                       "data": {"amount": 1500000 + number}}).encode()
    head = (f"POST /v1/events HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def _telegram_worker(host, port, frames, latencies, errors):
    reader, writer = await asyncio.open_connection(host, port)
    for raw in frames:
        started = time.perf_counter()
        writer.write(raw)
        length = int(await reader.readexactly(4))
        body = await reader.readexactly(length)
        latencies.append(time.perf_counter() - started)
        if body[:4] != b"ACK ":
            errors.append(body)
    writer.close()


async def _load(args) -> dict:
    latencies, errors, work = [], [], []
    for worker in range(args.connections):
        numbers = range(worker, args.count, args.connections)
        if args.kind == "telegram":
            from eps.telegrams import encode_fields, frame, load_layouts
            layout = load_layouts()["AC01"]
            frames = [frame(encode_fields(layout, {
                "telegram_id": f"{args.prefix}{n:010d}", "customer_id": f"B{n % 1000:04d}", "direction": "D",
                "account": "110-234-567890", "amount": 1500000 + n, "branch": "본점"})) for n in numbers]
            work.append(_telegram_worker(args.host, args.port, frames, latencies, errors))
        else:
            requests = [_http_request(args.host, args.port, args.key, n, args.prefix, args.path) for n in numbers]
            work.append(_http_worker(args.host, args.port, requests, latencies, errors))
    started = time.perf_counter()
    await asyncio.gather(*work)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "count": len(latencies), "errors": len(errors), "seconds": elapsed,
        "per_second": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99) - 1],
    }


def load_main(argv):
    parser = argparse.ArgumentParser()
    for name in ("--host", "--key", "--prefix", "--path", "--kind"):
        parser.add_argument(name, default="")
    parser.add_argument("--port", type=int)
    parser.add_argument("--count", type=int)
    parser.add_argument("--connections", type=int)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(_load(args))))


# --- the server side ------------------------------------------------------------------

async def _setup(home: Path, url: str):
    from sqlalchemy import insert

    from ums.event_services import definitions, registry
    from ums import config as ums_config
    from ums.db import connect
    from ums.db.migrate import upgrade
    from ums.db.models import contacts, templates
    from ums.runtime import Suite
    from ums.store import apikeys, utcnow

    db = connect(url)
    await upgrade(db)
    async with db.begin() as conn:
        await conn.execute(insert(contacts), [
            {"customer_id": f"B{n:04d}", "email": f"b{n}@example.com", "grade": "NORMAL"} for n in range(1000)])
        await conn.execute(insert(templates).values(name="deposit-email", channel="email", subject="s", body_text="b"))
        await conn.execute(insert(templates).values(name="deposit-fax", channel="fax", subject="s", body_text="b"))
        await conn.execute(insert(templates).values(name="deposit-voice", channel="voice", subject="s", body_text="b"))
        sample = ROOT / "config" / "samples" / "services" / "large-deposit-alert.json"
        await registry.register(conn, definitions.load(sample), utcnow(), "bench")
        _, key = await apikeys.create(conn, "account", utcnow())
    config = ums_config.load(home, overrides={
        "database.url": url, "eps.http_port": "0", "eps.telegram_port": "0", "log.level": "WARNING",
    }, config_file=home / "absent.cfg")
    suite = Suite(config, ["eps"])
    await suite.start()
    return suite, db, key


def _batches(eps) -> tuple[int, int]:
    return eps.ingestor.stored, eps.ingestor.batches


def _batch_note(before: tuple[int, int], after: tuple[int, int]) -> str:
    events, batches = after[0] - before[0], after[1] - before[1]
    return f"{'':<28} {batches} commits, {events / max(batches, 1):.1f} events per commit"


async def _run_load(kind, host, port, count, connections, key="", prefix="", path="") -> dict:
    """Run the load generator; adds the server's CPU time per request (all
    its threads), a figure that depends less on other load on the machine."""
    cpu = time.process_time()
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--load", "--kind", kind, "--host", host, "--port", str(port),
        "--count", str(count), "--connections", str(connections), "--key", key, "--prefix", prefix,
        "--path", path, stdout=subprocess.PIPE)
    out, _ = await process.communicate()
    result = json.loads(out)
    result["server_cpu_us"] = 1e6 * (time.process_time() - cpu) / max(result["count"], 1)
    return result


def _line(name: str, result: dict) -> str:
    return (f"{name:<28} {result['per_second']:>9.0f}/s  p50 {result['p50_ms']:6.1f} ms  "
            f"p99 {result['p99_ms']:6.1f} ms  ({result['count']} in {result['seconds']:.1f} s, "
            f"{result['errors']} errors; server CPU {result['server_cpu_us']:.0f} us each)")


async def main(args) -> None:
    from sqlalchemy import func, select

    from ums.db.models import deliveries, events

    home = Path(tempfile.mkdtemp(prefix="ums-bench-"))
    url = os.environ.get("UMS_BENCH_DATABASE_URL") or f"sqlite+aiosqlite:///{home}/bench.db"
    suite, db, key = await _setup(home, url)
    eps = suite.services["eps"]
    host, port = eps.address.split()[0].rsplit(":", 1)
    telegram_port = int(eps.address.rsplit(" ", 1)[1])
    print(f"EPS ingest benchmark on {db.dialect}; {args.connections} keep-alive connections, "
          f"load generator in its own process")
    try:
        health = await _run_load("http", host, int(port), args.events, args.connections, path="/health")
        print(_line("GET /health (reference)", health))
        before = _batches(eps)
        posted = await _run_load("http", host, int(port), args.events, args.connections, key, "h")
        after = _batches(eps)
        print(_line("POST /v1/events (durable)", posted))
        print(_batch_note(before, after))
        print(f"{'':<28} ratio to reference: {posted['per_second'] / health['per_second']:.2f}")
        before = _batches(eps)
        telegrams = await _run_load("telegram", host, telegram_port, args.events, args.connections, prefix="T")
        after = _batches(eps)
        print(_line("telegrams AC01 (durable)", telegrams))
        print(_batch_note(before, after))
        before = _batches(eps)
        burst = await _run_load("http", host, int(port), args.burst, args.connections, key, "burst")
        after = _batches(eps)
        print(_line(f"burst of {args.burst}", burst))
        print(_batch_note(before, after))
        async with db.connect() as conn:
            stored = await conn.scalar(select(func.count()).select_from(events).where(
                events.c.idempotency_key.like("burst-%")))
            distinct = await conn.scalar(select(func.count(func.distinct(events.c.idempotency_key))).where(
                events.c.idempotency_key.like("burst-%")))
            produced = await conn.scalar(select(func.count()).select_from(deliveries).join(
                events, deliveries.c.event_id == events.c.id).where(events.c.idempotency_key.like("burst-%")))
        expected = burst["count"]
        print(f"burst check: sent {expected}, stored {stored}, distinct {distinct}, deliveries {produced} -> "
              + ("none lost, none doubled" if stored == distinct == produced == expected == args.burst
                 else "MISMATCH"))
    finally:
        await suite.stop()
        await db.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--load"]:
        load_main(sys.argv[2:])
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--events", type=int, default=20000)
        parser.add_argument("--burst", type=int, default=50000)
        parser.add_argument("--connections", type=int, default=64)
        options = parser.parse_args()
        from ums import reactor as ums_reactor

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        ums_reactor.install(loop)
        loop.run_until_complete(main(options))
