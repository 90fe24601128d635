"""MAS throughput: inbound messages per second over SMTP on loopback with 200
Sieve rules loaded, against two references measured in the same run: MAS with
no rules, and a bare aiosmtpd server whose handler does nothing (the ceiling
the SMTP library and the client allow on this machine). Then rule
evaluations per second in process.

    .venv/bin/python bench/mas_inbound.py [--messages 3000] [--connections 32] [--rounds 1]
                                          [--client aiosmtplib|smtp-source] [--database URL]

The server runs in this process on one loop (as in production); the SMTP
clients run in a separate process: aiosmtplib (a new message from a new
sender each time) or Postfix's smtp-source (C, one message file, so the
server gets more of a shared machine's CPU). Every message MAS answers 250
to is committed first, and the run checks that every one was stored.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import subprocess
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


class DoNothing:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


def sent_count(client: str, messages: int, connections: int) -> int:
    return messages if client == "smtp-source" else (messages // connections) * connections


def run_smtp_source(host: str, port: int, messages: int, connections: int) -> float:
    """Postfix's C load generator: the same message each time, over reused connections."""
    with tempfile.NamedTemporaryFile("wb", suffix=".eml") as message:
        message.write(sample(0).replace(b"\r\n", b"\n"))
        message.flush()
        started = time.perf_counter()
        subprocess.run(["smtp-source", "-d", "-s", str(connections), "-m", str(messages), "-M", "customer.example",
                        "-f", "c@customer.example", "-t", "sales@ums.local", "-F", message.name, f"{host}:{port}"],
                       check=True)
        return time.perf_counter() - started


def run_clients(host: str, port: int, messages: int, connections: int, client: str = "aiosmtplib") -> float:
    """Seconds the client process took to send ``messages`` over ``connections``."""
    if client == "smtp-source":
        return run_smtp_source(host, port, messages, connections)
    context = multiprocessing.get_context("spawn")
    result = context.Queue()
    client = context.Process(target=client_process, args=(host, port, messages, connections, result))
    client.start()
    elapsed = result.get()
    client.join()
    return elapsed


async def bare_run(messages: int, connections: int, client: str) -> float:
    """Messages/s into aiosmtpd with a do-nothing handler, on this loop."""
    from aiosmtpd.smtp import SMTP

    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(DoNothing(), loop=loop), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    elapsed = await loop.run_in_executor(None, run_clients, "127.0.0.1", port, messages, connections, client)
    server.close()
    await server.wait_closed()
    return sent_count(client, messages, connections) / elapsed


async def load_rules(db) -> None:
    now = utcnow()
    async with db.begin() as conn:
        box = await mailbox.ensure(conn, "sales@ums.local", now)
        for n in range(SITE_RULES):
            await rules.save(conn, f"site-{n:03}", RULE.format(n=n), now)
        for n in range(SITE_RULES, SITE_RULES + MAILBOX_RULES):
            await rules.save(conn, f"own-{n:03}", RULE.format(n=n), now, mailbox_id=box["id"])


async def smtp_run(url: str, home: Path, with_rules: bool, messages: int, connections: int,
                   client: str = "aiosmtplib") -> float:
    db = connect(url)
    await upgrade(db)
    if with_rules:
        await load_rules(db)
    config = ums_config.load(home, overrides={
        "database.url": url, "mas.port": "0", "was.port": "0", "eps.http_port": "0",
        "eps.telegram_port": "0", "mas.site_script": "", "log.level": "WARNING",
        # the load generator is one client address with many connections
        "mas.max_connections_per_client": str(max(connections, 20)),
        "mas.max_connections": str(max(connections, 200)),
    }, config_file=home / "absent.cfg")
    suite = Suite(config, ["mas"], db=db)
    await suite.start()
    host, port = suite.services["mas"].address.rsplit(":", 1)
    loop = asyncio.get_running_loop()
    elapsed = await loop.run_in_executor(None, run_clients, host, int(port), messages, connections, client)
    async with db.connect() as conn:
        stored = await mailbox.count(conn)
    await suite.stop()
    await db.close()
    assert stored == sent_count(client, messages, connections), f"stored {stored}"
    return stored / elapsed


def evaluation_rate(seconds: float = 2.0) -> tuple[float, float]:
    """Messages evaluated per second against all 200 rules, and single rule evaluations per second."""
    from ums.inbound import InboundMessage
    from ums.sieve import Chain, compile_script, evaluate

    scripts = Chain(compile_script(RULE.format(n=n), name=str(n)) for n in range(SITE_RULES + MAILBOX_RULES))
    raws = [sample(n) for n in range(100)]
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for raw in raws:
            evaluate(scripts, InboundMessage(raw, "c@customer.example", ["sales@ums.local"]), "sales@ums.local")
        count += len(raws)
    per_message = count / (time.perf_counter() - started)
    return per_message, per_message * len(scripts.scripts)


async def one_round(args, tmp: Path, number: int) -> dict[str, float]:
    figures = {"bare aiosmtpd": await bare_run(args.messages, args.connections, args.client)}
    for label, with_rules in (("no rules", False), ("200 rules", True)):
        home = tmp / f"{number}-{label.replace(' ', '-')}"
        home.mkdir()
        url = args.database or f"sqlite+aiosqlite:///{home}/ums.db"
        figures[label] = await smtp_run(url, home, with_rules, args.messages, args.connections, args.client)
    for label, rate in figures.items():
        print(f"round {number}: SMTP inbound, {label:13}: {rate:6.0f} messages/s")
    print(f"round {number}: ratio 200 rules / bare aiosmtpd: {figures['200 rules'] / figures['bare aiosmtpd']:.2f}, "
          f"200 rules / no rules: {figures['200 rules'] / figures['no rules']:.2f}")
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--client", choices=["aiosmtplib", "smtp-source"], default="aiosmtplib",
                        help="the load generator: aiosmtplib in a separate Python process (a new message and "
                             "sender each time), or Postfix's smtp-source in C (one message file, less client CPU)")
    parser.add_argument("--database", default="", help="database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    ums_reactor.install(asyncio.get_running_loop())
    print(f"{args.client} client, {args.messages} messages over {args.connections} connections per run; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        rounds = [await one_round(args, Path(tmp), n) for n in range(1, args.rounds + 1)]
    if len(rounds) > 1:
        for label in rounds[0]:
            rates = sorted(r[label] for r in rounds)
            print(f"{label:13}: median {statistics.median(rates):6.0f}, min {rates[0]:6.0f}, max {rates[-1]:6.0f} messages/s")
    per_message, per_rule = evaluation_rate()
    print(f"in process: {per_message:8.0f} messages/s through 200 rules = {per_rule:,.0f} rule evaluations/s")


if __name__ == "__main__":
    asyncio.run(main())
