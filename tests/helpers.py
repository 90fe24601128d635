"""Small helpers the tests share: real network clients on loopback."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
