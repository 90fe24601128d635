"""PASS end to end: a 20,000-recipient campaign (queue → render → SMTP → CDR)
into Postfix's smtp-sink on loopback, next to a raw aiosmtplib client sending
prebuilt bytes to the same sink over the same number of connections, in the
same run. Prints messages per second for both and the ratio.

PASS runs the queue's transactions in a database process of its own
(``[pass] database_process``, the default), so UMS uses two cores where the raw
client uses one; the CPU figures show each side.

The email channel pipelines MAIL/RCPT/DATA (RFC 2920) when the relay offers
it, which smtp-sink does; aiosmtplib's ``sendmail`` (the raw reference) does
not. So a third figure, prebuilt bytes over the channel's own pipelined
sessions, shows what UMS's queue, rendering and CDR cost on that same path.

    .venv/bin/python bench/pass_campaign.py [--recipients 20000] [--database sqlite|postgresql|both]

PostgreSQL uses UMS_TEST_DATABASE_URL (a scratch database is created and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiosmtplib  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from ums import campaigns, config as ums_config  # noqa: E402
from ums import reactor as ums_reactor  # noqa: E402
from ums.db import connect  # noqa: E402
from ums.db.migrate import upgrade  # noqa: E402
from ums.db.models import address_book_entries, address_books, cdr, contacts, deliveries  # noqa: E402
from ums.runtime import Suite  # noqa: E402
from ums.store import templates  # noqa: E402

CONNECTIONS = 16

#: senders ([pass] concurrency); each waits for its result to commit before
#: taking the next job, so results commit in large batches only when many
#: senders share the 16 connections (a sender costs a coroutine, not a connection)
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "1024"))
PG_URL = os.environ.get("UMS_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_sink() -> tuple[subprocess.Popen, int]:
    binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not os.path.exists(binary):
        sys.exit("smtp-sink not found: install the Debian package postfix (scripts/apt-test.txt)")
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    process = subprocess.Popen([binary, *user, "-m", "1000", f"127.0.0.1:{port}", "1024"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        except OSError:
            time.sleep(0.05)
    sys.exit("smtp-sink did not start")


async def raw_client(port: int, count: int) -> float:
    """Messages per second of bare aiosmtplib sending one prebuilt message."""
    message = (b"From: bench@ums.local\r\nTo: <user@example.com>\r\nSubject: raw\r\n"
               b"Message-ID: <raw@ums.local>\r\n\r\n" + b"x" * 600 + b"\r\n")
    remaining = [count]

    async def one_connection():
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await client.connect()
        while remaining[0] > 0:
            remaining[0] -= 1
            await client.sendmail("bounce@ums.local", ["user@example.com"], message)
        await client.quit()

    started = time.perf_counter()
    await asyncio.gather(*(one_connection() for _ in range(CONNECTIONS)))
    return count / (time.perf_counter() - started)


async def raw_pipelined(port: int, count: int) -> float:
    """The same prebuilt message over UMS's pipelined sessions (what the email
    channel uses when the relay offers PIPELINING, as smtp-sink and Postfix do):
    the ceiling for UMS on this protocol path."""
    from ums.channels.email import RelayPool

    message = (b"From: bench@ums.local\r\nTo: <user@example.com>\r\nSubject: raw\r\n"
               b"Message-ID: <raw@ums.local>\r\n\r\n" + b"x" * 600 + b"\r\n")
    pool = RelayPool({"relay_host": "127.0.0.1", "relay_port": port, "timeout": 60, "starttls": False}, CONNECTIONS)
    remaining = [count]

    async def one_connection():
        session = await pool.acquire()
        while remaining[0] > 0:
            remaining[0] -= 1
            await session.transmit("bounce@ums.local", "user@example.com", message)
        pool.release(session)

    started = time.perf_counter()
    await asyncio.gather(*(one_connection() for _ in range(CONNECTIONS)))
    elapsed = time.perf_counter() - started
    await pool.close()
    return count / elapsed


def database_process_cpu() -> float:
    """CPU seconds used so far by this process's multiprocessing children (PASS's
    database process, ``[pass] database_process``); Linux /proc."""
    total = 0.0
    for task in Path("/proc/self/task").glob("*"):
        for child in (task / "children").read_text().split():
            try:
                if b"spawn_main" not in Path(f"/proc/{child}/cmdline").read_bytes():
                    continue
                fields = Path(f"/proc/{child}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def prepare_database(kind: str, workdir: Path) -> str:
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir}/bench-{time.monotonic_ns()}.db"
    else:
        import asyncpg

        name = f"ums_bench_{os.getpid()}"
        admin = make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
        url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    db = connect(url)
    await upgrade(db)
    await db.close()
    return url


async def drop_database(kind: str, url: str) -> None:
    if kind != "postgresql":
        return
    import asyncpg

    admin = make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin)
    await conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    await conn.close()


async def seed(db, count: int) -> None:
    now = datetime.now(timezone.utc)
    async with db.begin() as conn:
        book = (await conn.execute(insert(address_books).values(name="bench"))).inserted_primary_key[0]
        for start in range(0, count, 10000):
            rows = [{"name": f"고객{n}", "email": f"user{n}@example.com", "grade": "VIP"}
                    for n in range(start, min(count, start + 10000))]
            await conn.execute(insert(contacts), rows)
        ids = (await conn.execute(select(contacts.c.id))).scalars().all()
        await conn.execute(insert(address_book_entries), [{"book_id": book, "contact_id": i} for i in ids])
        await templates.save(conn, "bench", "email", now, kind="transactional",
                             subject="{{ name }}님, 이번 달 명세서 안내",
                             body_text="{{ name }}님, 안녕하세요.\n이번 달 카드 명세서를 안내드립니다." * 3,
                             body_html="<p>{{ name }}님, 안녕하세요.</p><p>이번 달 카드 명세서를 안내드립니다.</p>" * 3,
                             sender_name="UMS은행", sender_contact="1588-0000")


async def ums_campaign(kind: str, port: int, count: int, workdir: Path,
                       database_process: str = "yes") -> tuple[float, int, dict]:
    url = await prepare_database(kind, workdir)
    db = connect(url)
    await seed(db, count)
    home = workdir / f"{kind}-{time.monotonic_ns()}"
    home.mkdir()
    config = ums_config.load(home, config_file=home / "absent.cfg", overrides={
        "database.url": url, "email.relay_port": str(port), "email.connections": str(CONNECTIONS),
        "pass.concurrency": str(CONCURRENCY), "pass.poll_interval": "0.05", "log.level": "WARNING",
        "control.poll_interval": "0.5", "pass.database_process": database_process,
    })
    suite = Suite(config, ["pass"])
    await suite.start()
    spec = campaigns.from_dict({"name": "bench", "kind": "transactional", "template": "bench",
                                "audience": {"books": ["bench"]}})
    started = time.perf_counter()
    cpu_started, loop_cpu_started = time.process_time(), time.thread_time()
    database_cpu_started = database_process_cpu()
    async with db.begin() as conn:
        campaign_id = await campaigns.create(conn, spec, datetime.now(timezone.utc))
        await campaigns.schedule(conn, campaign_id, None, datetime.now(timezone.utc))
    suite.services["pass"].worker.wake.set()
    suite.services["pass"].reservations.wake.set()
    while True:
        async with db.connect() as conn:
            sent = await conn.scalar(select(func.count()).select_from(deliveries).where(deliveries.c.state == "sent"))
        if sent >= count:
            break
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    cpu = {"process": (time.process_time() - cpu_started) / elapsed,
           "event loop": (time.thread_time() - loop_cpu_started) / elapsed,
           "database process": (database_process_cpu() - database_cpu_started) / elapsed}
    async with db.connect() as conn:
        finals = await conn.scalar(select(func.count()).select_from(cdr).where(cdr.c.final.is_(True)))
    await suite.stop()
    await db.close()
    await drop_database(kind, url)
    return count / elapsed, finals, cpu


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20000)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--runs", type=int, default=1, help="repeat each measurement this many times")
    parser.add_argument("--database-process", choices=["yes", "no"], default="yes",
                        help="[pass] database_process: no runs the queue's transactions in PASS's own process")
    args = parser.parse_args()
    ums_reactor.install(asyncio.get_running_loop())
    sink, port = start_sink()
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"sink: smtp-sink on 127.0.0.1:{port}; {CONNECTIONS} SMTP connections; "
                  f"{args.recipients} recipients", flush=True)
            for kind in kinds:
                for _ in range(args.runs):
                    # the raw client runs right before and right after, so a change in
                    # machine load during the run shows instead of skewing the ratio
                    before = await raw_client(port, args.recipients)
                    rate, finals, cpu = await ums_campaign(kind, port, args.recipients, Path(tmp),
                                                           args.database_process)
                    after = await raw_client(port, args.recipients)
                    pipelined = await raw_pipelined(port, args.recipients)
                    raw = (before + after) / 2
                    print(f"{kind:>10}: raw aiosmtplib {before:6.0f}/{after:6.0f} msg/s (before/after) "
                          f"| UMS campaign end to end {rate:6.0f} msg/s | ratio {rate / raw:.2f} "
                          f"| raw pipelined {pipelined:6.0f} msg/s, UMS/that {rate / pipelined:.2f} "
                          f"| final CDR rows {finals} | CPU busy: event loop {cpu['event loop']:.0%}, "
                          f"process {cpu['process']:.0%}, its database process "
                          f"{cpu['database process']:.0%}", flush=True)
    finally:
        sink.terminate()
        sink.wait()


if __name__ == "__main__":
    asyncio.run(main())
