"""Small helpers the tests share: real network clients on loopback."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import select
import socket
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path


async def smtp_banner(host: str, port: int, timeout: float = 5) -> str:
    """Connect like an SMTP client and return the server's first reply line."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        line = await asyncio.wait_for(reader.readline(), timeout)
        return line.decode("ascii", "replace").strip()
    finally:
        writer.close()


async def http_get(url: str, timeout: float = 5) -> tuple[int, dict, bytes]:
    """A real HTTP GET in a thread (urllib), returning status, headers and body."""

    def fetch():
        request = urllib.request.Request(url)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    return await asyncio.to_thread(fetch)


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.split()[0].rpartition(":")
    return host, int(port)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _udp_port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


#: free_port's range: below the kernel's ephemeral ports (32768 and up), so a
#: server bound to port 0 never takes a port handed out here
PORT_RANGE = range(20000, 32000)


def _worker_ports() -> range:
    """This process's block of PORT_RANGE: under pytest-xdist each worker
    (PYTEST_XDIST_WORKER gw0, gw1…) gets its own slice, so two workers running
    at once never hand out the same port; a serial run has the whole range."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or count < 2:
        return PORT_RANGE
    index = int(worker[2:]) % count
    size = len(PORT_RANGE) // count
    start = PORT_RANGE.start + index * size
    return range(start, start + size)


def _ports_in_turn() -> itertools.cycle:
    """This worker's block in turn, starting at a place picked by the pid, so
    two test runs on one machine (another checkout's) rarely offer the same
    port at the same moment."""
    block = _worker_ports()
    start = os.getpid() * 7919 % len(block)
    return itertools.cycle([*block[start:], *block[:start]])


#: the next ports free_port offers: each is handed out once per process (two
#: servers configured with one port collide when they start), in this worker's block
_next_ports = _ports_in_turn()


def free_port() -> int:
    """A loopback port nothing listens on, in this worker's own block, never
    one this process was given before (until the block wraps round)."""
    for _ in range(len(_worker_ports())):
        port = next(_next_ports)
        if port_is_free(port) and _udp_port_is_free(port):  # SIP peers listen on both
            return port
    raise RuntimeError("no free loopback port in this worker's block")


async def eventually(check, timeout: float = 5.0, interval: float = 0.05):
    """Await ``check()`` (sync or async) until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def child_processes(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return [child for child in found if process_alive(child)]


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


# --- a raw-socket uploader: big bodies, slow clients ------------------------------------

@dataclass
class Upload:
    """What a raw upload saw: the answer's status (0: none), how many body
    bytes were sent before it came, the raw answer."""

    status: int
    sent: int
    answer: bytes


def upload(host: str, port: int, head: str, total: int, chunked: bool, give_up_after: int,
           chunk: int = 64 * 1024, seconds: float = 20.0) -> Upload:
    """Send ``head`` then up to ``total`` body bytes in chunks, stopping as soon
    as an answer is readable, after ``give_up_after`` bytes, or after
    ``seconds``; then read the answer (bounded in time too)."""
    block = b"x" * chunk
    sent = 0
    deadline = time.monotonic() + seconds
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(head.encode("latin-1"))
        readable = select.select([sock], [], [], 0.3)[0]  # a verdict from the headers alone
        while not readable and sent < min(total, give_up_after) and time.monotonic() < deadline:
            piece = b"%x\r\n%s\r\n" % (len(block), block) if chunked else block
            try:
                sock.sendall(piece)
            except OSError:  # the server closed: its answer is in the socket already
                break
            sent += len(block)
            readable = select.select([sock], [], [], 0)[0]
        return _finish(sock, sent, deadline)


def _finish(sock, sent: int, deadline: float) -> Upload:
    answer = b""
    sock.settimeout(max(0.5, min(5.0, deadline - time.monotonic())))
    try:
        while b"\r\n\r\n" not in answer or len(answer) < _expected_length(answer):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    except OSError:
        pass
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    return Upload(status, sent, answer)


def _expected_length(answer: bytes) -> int:
    head, _, _ = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + 4 + int(value)
    return len(answer) + 1


def answer_json(answer: bytes) -> dict:
    return json.loads(answer.partition(b"\r\n\r\n")[2] or b"{}")


def rss_kb() -> int:
    """This process's resident set size (the server runs in it), in kB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")
