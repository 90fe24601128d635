"""Scale-out (P5): N = 1, 2 and 4 ``ums run pass`` processes on one PostgreSQL
queue against a relay that holds every message 20 ms before its 250.

The relay is latency-bound (``queue_sinks.HoldingSink``, an asyncio server in
its own process that holds thousands of sessions at once), so what one process
sends is bounded by its concurrency, not by the cores: four processes should
send about four times what one does. Each process has the same concurrency and
as many SMTP connections, everything else as shipped (poll intervals too: an
idle process polls, and four idle pollers are CPU the senders lack on a small
machine); each N gets a fresh database and a campaign of ``--per-process`` × N
recipients, so every run lasts about as long.

The campaign's senders are all of a process's concurrency
(``reserved_concurrency = 0``: the senders kept for urgent and notice work would
stand idle in a marketing-only run, and with the shipped 8 a concurrency of 4
left one sender for the campaign). The default concurrency, 4, keeps four
processes within two cores (about 2.5 ms of CPU per message, PASS and
PostgreSQL together, at 100 msg/s a process); on a bigger machine raise it.

Four processes can only send four times what one does if the cores have room
for it: each line shows the CPU per message (PASS processes with their
database processes, and their PostgreSQL backends) and the machine's idle
share, so a run limited by the machine rather than by the queue shows as such.

Prints per N: msg/s (from the relay's first 250 to its last, and from the
campaign's start), what each process sent, duplicates (the sink counts each
Message-ID), and the final CDR rows per delivery; last a line
``4 processes: X.Xx`` (four processes' msg/s over one's).

    .venv/bin/python bench/pass_scale.py [--processes 1,2,4] [--concurrency 4] [--per-process 3000]
        [--hold 0.02] [--database-url postgresql+asyncpg://user@host/db] [--quick]

The PostgreSQL server is --database-url, else UMS_TEST_DATABASE_URL; each N
gets a scratch database there (created and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from queue_sinks import HoldingSink, drop_database, scratch_database  # noqa: E402
from tests.helpers import child_processes  # noqa: E402

#: run from this checkout's code whatever the virtualenv's ``ums`` points at
UMS = [sys.executable, "-c", "import sys; from ums.cli import main; sys.exit(main())"]


@dataclass
class Result:
    processes: int
    messages: int
    rate: float
    rate_from_start: float
    sent_by: list[int]
    received: int
    duplicates: int
    final_counts: Counter
    sink_cpu: float
    peak_sessions: int
    #: CPU seconds per message of the PASS processes (with their database
    #: processes) and of their PostgreSQL backends; the machine's idle share
    pass_cpu: float = 0.0
    postgres_cpu: float = 0.0
    idle: float = 0.0


def write_config(home: Path, url: str, sink_port: int, concurrency: int, database_process: str) -> None:
    home.mkdir(parents=True)
    (home / "ums.cfg").write_text(f"""
[database]
url = {url}
[log]
level = WARNING
[pass]
concurrency = {concurrency}
reserved_concurrency = 0
channel_concurrency = email={concurrency} fax=4 voice=4
destination_concurrency = {concurrency}
database_process = {database_process}
[email]
relay_port = {sink_port}
connections = {concurrency}
""", encoding="utf-8")


def start_pass(home: Path) -> subprocess.Popen:
    env = {**os.environ, "UMS_HOME": str(home), "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    env.pop("UMS_CONFIG", None)
    return subprocess.Popen([*UMS, "--home", str(home), "run", "pass"], env=env, cwd=home,
                            stdout=subprocess.DEVNULL, stderr=open(home / "pass.log", "ab"))


async def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


async def pass_instances(db) -> list[dict]:
    from ums.store import control

    async with db.connect() as conn:
        return [row for row in await control.instances(conn) if row["service"] == "pass"]


async def sent(db) -> int:
    from sqlalchemy import func, select

    from ums.db.models import deliveries

    async with db.connect() as conn:
        return await conn.scalar(select(func.count()).select_from(deliveries).where(deliveries.c.state == "sent"))


async def final_cdr_counts(db) -> Counter:
    """How many deliveries have 0, 1, 2… final CDR rows."""
    from sqlalchemy import func, select

    from ums.db.models import cdr, deliveries

    async with db.connect() as conn:
        per_delivery = Counter((await conn.execute(select(cdr.c.delivery_id).where(cdr.c.final.is_(True))))
                               .scalars())
        total = await conn.scalar(select(func.count()).select_from(deliveries))
    counts = Counter(per_delivery.values())
    if total > len(per_delivery):
        counts[0] = total - len(per_delivery)
    return counts


def process_cpu(pid: int) -> float:
    """CPU seconds ``pid`` has used (Linux /proc); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(pids: list[int]) -> dict[int, float]:
    """CPU seconds of each of ``pids`` and of their children (PASS's database process)."""
    return {pid: process_cpu(pid) for parent in pids for pid in (parent, *child_processes(parent))}


async def backend_cpu(db) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving the scratch database."""
    from sqlalchemy import text

    async with db.connect() as conn:
        pids = (await conn.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ))).scalars().all()
    return {pid: process_cpu(pid) for pid in pids}


def machine_times() -> tuple[int, int]:
    """(idle, total) jiffies of all cores since boot (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return values[3] + values[4], sum(values)


def used(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


async def measure(args, count: int, sink: HoldingSink, workdir: Path) -> Result:
    from pass_campaign import seed

    from ums import campaigns
    from ums.clock import utcnow
    from ums.db import connect

    url = await scratch_database(args.database_url, workdir, f"scale{count}")
    db = connect(url)
    processes: list[subprocess.Popen] = []
    try:
        messages = args.per_process * count
        await seed(db, messages)
        homes = [workdir / f"n{count}-p{n}" for n in range(count)]
        for home in homes:
            write_config(home, url, sink.port, args.concurrency, args.database_process)
        processes = [start_pass(home) for home in homes]
        deadline = time.monotonic() + 60
        while len(await pass_instances(db)) < count:
            if any(p.poll() is not None for p in processes) or time.monotonic() > deadline:
                sys.exit(f"a PASS process did not start: see {homes[0]}/pass.log")
            await asyncio.sleep(0.2)
        sink.reset()
        spec = campaigns.from_dict({"name": "bench", "kind": "transactional", "template": "bench",
                                    "audience": {"books": ["bench"]}})
        pids = [process.pid for process in processes]
        cpu_before, backends_before, machine_before = tree_cpu(pids), await backend_cpu(db), machine_times()
        started = time.monotonic()
        async with db.begin() as conn:
            campaign_id = await campaigns.create(conn, spec, utcnow())
            await campaigns.schedule(conn, campaign_id, None, utcnow())
        while await sent(db) < messages:
            if any(p.poll() is not None for p in processes):
                sys.exit(f"a PASS process exited during the run: see the pass.log files under {workdir}")
            await asyncio.sleep(0.25)
        report = sink.report()
        pass_cpu, postgres_cpu = used(cpu_before, tree_cpu(pids)), used(backends_before, await backend_cpu(db))
        idle, total = (after - before for after, before in zip(machine_times(), machine_before))
        await asyncio.sleep(1.0)   # a heartbeat: each process's own count reaches its instance row
        sent_by = [row["info"].get("sent", 0) for row in await pass_instances(db)]
        await stop(processes)
        window = max(report["last"] - report["first"], 1e-9)
        return Result(count, messages, report["messages"] / window,
                      report["messages"] / max(report["last"] - started, 1e-9), sent_by, report["messages"],
                      report["duplicates"], await final_cdr_counts(db), report["cpu_seconds"],
                      report["peak_sessions"], pass_cpu / messages, postgres_cpu / messages, idle / max(total, 1))
    finally:
        await stop(processes)
        await db.close()
        await drop_database(args.database_url, url)


def line(result: Result) -> str:
    finals = result.final_counts
    one_each = set(finals) == {1}
    return (f"{result.processes} process{'es' if result.processes > 1 else '  '}: {result.rate:7.0f} msg/s "
            f"({result.rate_from_start:.0f} from the campaign's start) | {result.messages} recipients, "
            f"the relay got {result.received}, duplicates {result.duplicates} | sent per process "
            f"{'/'.join(map(str, sorted(result.sent_by, reverse=True)))} | final CDR per delivery: "
            + ("one each" if one_each else ", ".join(f"{n} final: {c}" for n, c in sorted(finals.items())))
            + f" | CPU per message: PASS {result.pass_cpu * 1000:.2f} ms, PostgreSQL {result.postgres_cpu * 1000:.2f} ms;"
            f" machine idle {result.idle:.0%} | sink: {result.peak_sessions} sessions at most, CPU "
            f"{result.sink_cpu:.1f} s so far")


async def main(args) -> None:
    sink = HoldingSink(args.hold)
    results: dict[int, Result] = {}
    try:
        print(f"sink: asyncio relay on 127.0.0.1:{sink.port} holding each message {args.hold * 1000:.0f} ms; "
              f"PostgreSQL; each process: concurrency {args.concurrency} (none reserved), {args.concurrency} SMTP connections, "
              f"database process {args.database_process}; "
              f"{args.per_process} recipients per process", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            for count in args.processes:
                results[count] = await measure(args, count, sink, Path(tmp))
                print(line(results[count]), flush=True)
    finally:
        sink.close()
    if 1 in results and 4 in results:
        print(f"4 processes: {results[4].rate / results[1].rate:.1f}x")


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,2,4", help="the numbers of PASS processes to run (1,2,4)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="[pass] concurrency of each process, every sender the campaign's (4)")
    parser.add_argument("--per-process", type=int, default=3000,
                        help="recipients per process: N processes send a campaign of N times this (3000)")
    parser.add_argument("--hold", type=float, default=0.02, help="seconds the relay holds each message (0.02)")
    parser.add_argument("--database-url", default=os.environ.get("UMS_TEST_DATABASE_URL"),
                        help="the PostgreSQL server (postgresql+asyncpg://…; default UMS_TEST_DATABASE_URL)")
    parser.add_argument("--database-process", choices=["yes", "no"], default="yes",
                        help="[pass] database_process of each process (yes, the shipped default)")
    parser.add_argument("--quick", action="store_true", help="small numbers for a smoke test (300 per process)")
    args = parser.parse_args()
    if args.quick:
        args.per_process = 300
    if not args.database_url or not args.database_url.startswith("postgresql"):
        parser.error("needs PostgreSQL: --database-url postgresql+asyncpg://user@host/db (or UMS_TEST_DATABASE_URL)")
    try:
        args.processes = [int(n) for n in args.processes.split(",")]
    except ValueError:
        parser.error("--processes takes whole numbers separated by commas, e.g. 1,2,4")
    if min(args.processes) < 1 or args.concurrency < 1 or args.per_process < 1 or args.hold < 0:
        parser.error("--processes, --concurrency and --per-process must be positive, --hold not negative")
    return args


if __name__ == "__main__":
    asyncio.run(main(options()))
