"""Relay sinks and scratch databases for the queue benchmarks (pass_priority,
pass_scale).

* :class:`StampedSmtpSink`: Postfix's ``smtp-sink`` (C, far faster than PASS,
  so it is never the limit) run with ``-v``; a reader process stamps with
  CLOCK_MONOTONIC (the same clock in every process here) each ``RCPT TO`` whose
  address starts with a prefix. smtp-sink answers the message's 250 one
  loopback round trip after it reads the RCPT (PIPELINING: MAIL/RCPT/DATA,
  354, the body, 250), so the stamp is the relay's receipt of that message.
* :class:`HoldingSink`: an asyncio SMTP server in a process of its own that
  holds every message ``hold`` seconds before its 250 (a latency-bound relay:
  the senders wait, not the cores), with PIPELINING, thousands of sessions at
  once, and a count per Message-ID (duplicates show).
* :func:`scratch_database`: a fresh migrated database, SQLite in a directory
  or a new database on a PostgreSQL server, dropped by :func:`drop_database`.

    python bench/queue_sinks.py --hold-sink SECONDS   (what HoldingSink runs)
    python bench/queue_sinks.py --stamp PREFIX FILE   (what StampedSmtpSink runs)
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen, what: str) -> None:
    for _ in range(200):
        if process.poll() is not None:
            sys.exit(f"{what} exited at start (status {process.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not start listening on 127.0.0.1:{port}")


# --- Postfix smtp-sink, RCPTs stamped ---------------------------------------------

RCPT = re.compile(rb"rcpt TO:<([^>]*)>", re.I)


class StampedSmtpSink:
    """smtp-sink -v on a free port; :meth:`arrivals` maps each stamped recipient
    (those starting with ``prefix``) to the monotonic time of its first RCPT."""

    def __init__(self, prefix: str, workdir: Path):
        binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        if not os.path.exists(binary):
            sys.exit("smtp-sink not found: install the Debian package postfix (scripts/apt-test.txt)")
        self.port = free_port()
        self.stamps = workdir / f"stamps-{self.port}.txt"
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.sink = subprocess.Popen([binary, *user, "-v", "-m", "2000", f"127.0.0.1:{self.port}", "1024"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.reader = subprocess.Popen([sys.executable, __file__, "--stamp", prefix, str(self.stamps)],
                                       stdin=self.sink.stderr)
        self.sink.stderr.close()   # the reader holds the pipe now
        wait_listening(self.port, self.sink, "smtp-sink")
        for _ in range(200):   # the reader opens its file once it reads
            if self.stamps.exists():
                return
            time.sleep(0.05)
        sys.exit("the smtp-sink log reader did not start")

    def arrivals(self) -> dict[str, float]:
        found: dict[str, float] = {}
        if self.stamps.exists():
            for line in self.stamps.read_text().splitlines():
                stamp, _, address = line.partition(" ")
                found.setdefault(address.lower(), float(stamp))
        return found

    def close(self) -> None:
        self.sink.terminate()
        self.sink.wait()
        self.reader.wait(timeout=10)


def stamp_main(prefix: str, path: str) -> None:
    """Read smtp-sink's -v log on stdin; write ``monotonic address`` for each RCPT
    TO whose address starts with ``prefix`` (each line as soon as it is read)."""
    wanted = prefix.lower().encode()
    tail = b""
    with open(path + ".part", "a", encoding="utf-8") as out:
        os.rename(path + ".part", path)
        while chunk := os.read(0, 1 << 16):
            now = time.monotonic()
            data = tail + chunk
            cut = data.rfind(b"\n") + 1
            tail, data = data[cut:], data[:cut]
            lines = [f"{now:.6f} {m.group(1).decode('utf-8', 'replace')}\n"
                     for m in RCPT.finditer(data) if m.group(1).lower().startswith(wanted)]
            if lines:
                out.writelines(lines)
                out.flush()


# --- a latency-bound relay ---------------------------------------------------------

MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]*>)", re.I | re.M)
END_OF_DATA = b"\r\n.\r\n"


class HoldingSession(asyncio.Protocol):
    """One SMTP session: every command answered at once (in order, so PIPELINING
    works), except the end of a message's data, answered ``hold`` seconds later;
    input that comes meanwhile waits for that 250."""

    def __init__(self, sink: "HoldingServer"):
        self.sink = sink
        self.buffer = b""
        self.in_data = False
        self.holding = False

    def connection_made(self, transport):
        self.transport = transport
        self.sink.sessions += 1
        self.sink.peak_sessions = max(self.sink.peak_sessions, self.sink.sessions)
        transport.write(b"220 hold-sink ESMTP\r\n")

    def connection_lost(self, exc):
        self.sink.sessions -= 1

    def data_received(self, data: bytes):
        self.buffer += data
        if not self.holding:
            self._process()

    def _process(self) -> None:
        while not self.holding and not self.transport.is_closing():
            if self.in_data:
                end = self.buffer.find(END_OF_DATA)
                if end < 0:
                    return
                message, self.buffer = self.buffer[:end + 2], self.buffer[end + len(END_OF_DATA):]
                self.in_data = False
                self.holding = True
                asyncio.get_running_loop().call_later(self.sink.hold, self._answer, message)
                return
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return
            line, self.buffer = self.buffer[:end], self.buffer[end + 2:]
            self.transport.write(self._reply(line))

    def _reply(self, line: bytes) -> bytes:
        verb = line[:4].upper()
        if verb in (b"EHLO", b"LHLO"):
            return b"250-hold-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 52428800\r\n"
        if verb == b"DATA":
            self.in_data = True
            return b"354 go ahead\r\n"
        if verb == b"QUIT":
            self.transport.write(b"221 bye\r\n")
            self.transport.close()
            return b""
        return b"250 ok\r\n"

    def _answer(self, message: bytes) -> None:
        headers_end = message.find(b"\r\n\r\n")
        found = MESSAGE_ID.search(message, 0, headers_end + 2 if headers_end >= 0 else len(message))
        self.sink.received[found.group(1).decode("utf-8", "replace") if found else ""] += 1
        now = time.monotonic()
        self.sink.first = self.sink.first or now
        self.sink.last = now
        self.holding = False
        if not self.transport.is_closing():
            self.transport.write(b"250 2.0.0 queued\r\n")
            self._process()


class HoldingServer:
    def __init__(self, hold: float):
        self.hold = hold
        self.received: Counter = Counter()
        self.sessions = self.peak_sessions = 0
        self.first = self.last = 0.0

    def report(self) -> dict:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        total = sum(self.received.values())
        return {"messages": total, "distinct": len(self.received),
                "duplicates": sum(n - 1 for n in self.received.values() if n > 1),
                "first": self.first, "last": self.last, "peak_sessions": self.peak_sessions,
                "cpu_seconds": usage.ru_utime + usage.ru_stime}

    def reset(self) -> None:
        self.received.clear()
        self.peak_sessions = self.sessions
        self.first = self.last = 0.0


async def hold_sink_main(hold: float) -> None:
    """Serve on a free port (printed first), then answer stdin's ``report`` and
    ``reset`` lines with one JSON line each, until stdin closes."""
    loop = asyncio.get_running_loop()
    sink = HoldingServer(hold)
    server = await loop.create_server(lambda: HoldingSession(sink), "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = line.strip()
        if command == b"reset":
            sink.reset()
        print(json.dumps(sink.report()), flush=True)
    server.close()


class HoldingSink:
    """The holding sink's process, driven from here."""

    def __init__(self, hold: float):
        resource.setrlimit(resource.RLIMIT_NOFILE, _raised_file_limit())
        self.process = subprocess.Popen([sys.executable, __file__, "--hold-sink", str(hold)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.port = int(self.process.stdout.readline())

    def _ask(self, command: str) -> dict:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def report(self) -> dict:
        return self._ask("report")

    def reset(self) -> dict:
        return self._ask("reset")

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=10)


def _raised_file_limit() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return (hard if hard != resource.RLIM_INFINITY else max(soft, 65536)), hard


# --- scratch databases ------------------------------------------------------------

async def scratch_database(server_url: str | None, workdir: Path, tag: str) -> str:
    """A fresh migrated database: SQLite under ``workdir`` when ``server_url`` is
    None, else a new database (``ums_bench_<tag>_<pid>``) on that PostgreSQL server."""
    from sqlalchemy.engine import make_url

    from ums.db import connect
    from ums.db.migrate import upgrade

    if server_url is None:
        url = f"sqlite+aiosqlite:///{workdir}/bench-{tag}-{time.monotonic_ns()}.db"
    else:
        name = f"ums_bench_{tag}_{os.getpid()}"
        await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await _admin(server_url, f'CREATE DATABASE "{name}"')
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    db = connect(url)
    await upgrade(db)
    await db.close()
    return url


async def drop_database(server_url: str | None, url: str) -> None:
    from sqlalchemy.engine import make_url

    if server_url is not None:
        await _admin(server_url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


async def _admin(server_url: str, sql: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    conn = await asyncpg.connect(make_url(server_url).set(drivername="postgresql")
                                 .render_as_string(hide_password=False))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--stamp"]:
        stamp_main(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["--hold-sink"]:
        asyncio.run(hold_sink_main(float(sys.argv[2])))
    else:
        sys.exit(__doc__)
