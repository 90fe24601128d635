"""MAS throughput: inbound messages per second over SMTP on loopback with 200
Sieve rules loaded (reference: the same run with no rules), and rule
evaluations per second in process.

    .venv/bin/python bench/mas_inbound.py [--messages 3000] [--connections 8] [--database URL]

The server runs in this process on one loop (as in production); the SMTP
clients run in a separate process so they do not share its CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ums import config as ums_config  # noqa: E402
from ums import reactor as ums_reactor  # noqa: E402
from ums.db import connect  # noqa: E402
from ums.db.migrate import upgrade  # noqa: E402
from ums.runtime import Suite  # noqa: E402
from ums.store import mailbox, rules, utcnow  # noqa: E402

RULE = """require ["fileinto", "imap4flags"];
if allof (header :contains "subject" "campaign-{n}", address :domain :is "from" "d{n}.example") {{
    addflag "$rule{n}";
    fileinto "Rule{n}";
    stop;
}}
"""
SITE_RULES, MAILBOX_RULES = 50, 150


def sample(n: int) -> bytes:
    return (
        f"From: Customer {n} <c{n}@customer.example>\r\nTo: sales@ums.local\r\n"
        f"Subject: =?euc-kr?b?ua7AxyC15biztM+02Q==?= Re: question {n}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0900\r\n"
        f"Message-ID: <{n}.{time.time_ns()}@customer.example>\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n" + "안녕하세요, 문의드립니다.\r\n" * 20
    ).encode()


def client_process(host: str, port: int, messages: int, connections: int, result) -> None:
    import aiosmtplib

    async def one_connection(count: int, offset: int) -> int:
        async with aiosmtplib.SMTP(hostname=host, port=port, timeout=60) as client:
            for i in range(count):
                await client.sendmail(f"c{i}@customer.example", ["sales@ums.local"], sample(offset + i))
        return count

    async def main() -> float:
        per = messages // connections
        started = time.perf_counter()
        await asyncio.gather(*(one_connection(per, k * per) for k in range(connections)))
        return time.perf_counter() - started

    result.put(asyncio.run(main()))


async def load_rules(db) -> None:
    now = utcnow()
    async with db.begin() as conn:
        box = await mailbox.ensure(conn, "sales@ums.local", now)
        for n in range(SITE_RULES):
            await rules.save(conn, f"site-{n:03}", RULE.format(n=n), now)
        for n in range(SITE_RULES, SITE_RULES + MAILBOX_RULES):
            await rules.save(conn, f"own-{n:03}", RULE.format(n=n), now, mailbox_id=box["id"])


async def smtp_run(url: str, home: Path, with_rules: bool, messages: int, connections: int) -> float:
    db = connect(url)
    await upgrade(db)
    if with_rules:
        await load_rules(db)
    config = ums_config.load(home, overrides={
        "database.url": url, "mas.port": "0", "was.port": "0", "eps.http_port": "0",
        "eps.telegram_port": "0", "mas.site_script": "", "log.level": "WARNING",
    }, config_file=home / "absent.cfg")
    suite = Suite(config, ["mas"], db=db)
    await suite.start()
    host, port = suite.services["mas"].address.rsplit(":", 1)
    result = multiprocessing.get_context("spawn").Queue()
    client = multiprocessing.get_context("spawn").Process(
        target=client_process, args=(host, int(port), messages, connections, result))
    client.start()
    loop = asyncio.get_running_loop()
    elapsed = await loop.run_in_executor(None, result.get)
    await loop.run_in_executor(None, client.join)
    async with db.connect() as conn:
        stored = await mailbox.count(conn)
    await suite.stop()
    await db.close()
    assert stored == (messages // connections) * connections, f"stored {stored}"
    return stored / elapsed


def evaluation_rate(seconds: float = 2.0) -> tuple[float, float]:
    """Messages evaluated per second against all 200 rules, and single rule evaluations per second."""
    from mas.message import InboundMessage
    from mas.sieve import compile_script, evaluate

    scripts = [compile_script(RULE.format(n=n), name=str(n)) for n in range(SITE_RULES + MAILBOX_RULES)]
    raws = [sample(n) for n in range(100)]
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for raw in raws:
            evaluate(scripts, InboundMessage(raw, "c@customer.example", ["sales@ums.local"]), "sales@ums.local")
        count += len(raws)
    per_message = count / (time.perf_counter() - started)
    return per_message, per_message * len(scripts)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--database", default="", help="database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    ums_reactor.install(asyncio.get_running_loop())
    with tempfile.TemporaryDirectory() as tmp:
        figures = {}
        for label, with_rules in (("no rules", False), ("200 rules", True)):
            home = Path(tmp) / label.replace(" ", "-")
            home.mkdir()
            url = args.database or f"sqlite+aiosqlite:///{home}/ums.db"
            figures[label] = await smtp_run(url, home, with_rules, args.messages, args.connections)
            print(f"SMTP inbound, {label:9}: {figures[label]:8.0f} messages/s "
                  f"({args.messages} messages, {args.connections} connections)")
        print(f"ratio 200 rules / no rules: {figures['200 rules'] / figures['no rules']:.2f}")
    per_message, per_rule = evaluation_rate()
    print(f"in process: {per_message:8.0f} messages/s through 200 rules = {per_rule:,.0f} rule evaluations/s")


if __name__ == "__main__":
    asyncio.run(main())
