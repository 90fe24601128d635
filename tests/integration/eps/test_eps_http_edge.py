"""The EPS HTTP edge against hostile clients: a 200 MB body is answered
(413, 401 or 403) from its headers, before 16 MB of it is sent, and the
server's memory does not grow with it; bodies are never truncated and
parsed; a client that trickles its request is cut off within the request
timeout, and a silent one within the idle timeout."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from eps_support import EpsClient, add_templates, new_key, new_key_with
from tests.conftest import make_config
from tests.helpers import answer_json, rss_kb, upload
from ums.db import connect

BIG = 200 * 1024 * 1024
GIVE_UP = 16 * 1024 * 1024


def head(eps, path: str, key: str | None, chunked: bool, length: int = BIG, kind="application/json") -> str:
    lines = [f"POST {path} HTTP/1.1", f"Host: {eps.host}:{eps.port}", f"Content-Type: {kind}"]
    if key:
        lines.append(f"Authorization: Bearer {key}")
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}")
    return "\r\n".join(lines) + "\r\n\r\n"


async def send_big(eps, path: str, key: str | None, chunked: bool):
    return await asyncio.to_thread(upload, eps.host, eps.port, head(eps, path, key, chunked), BIG, chunked, GIVE_UP)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_200_mb_body_is_answered_from_the_headers_and_memory_stays_flat(eps, chunked):
    read_only = await new_key_with(eps.db, "account", "events:read")
    unknown = "ums_" + "A" * 43
    cases = [  # (path, key, expected status)
        ("/v1/events", eps.key, 413),
        ("/v1/events", None, 401),
        ("/v1/services", eps.key, 413),
        ("/v1/services", None, 401),
        ("/v1/events", unknown, 413 if not chunked else 401),
        ("/v1/events", read_only, 413 if not chunked else 403),
    ]
    await eps.request("GET", "/v1/services")  # warm up the server's code paths before measuring
    before = rss_kb()
    for path, key, expected in cases:
        result = await send_big(eps, path, key, chunked)
        assert result.status == expected, (path, key, result)
        assert result.sent < GIVE_UP, (path, result.sent)
        assert answer_json(result.answer)["reason"]
        assert b"Connection: close" in result.answer
    grown = rss_kb() - before
    assert grown < 20 * 1024, f"RSS grew by {grown} kB"
    status, _, reply = await eps.post_json({"type": "deposit", "customer_id": "C1", "data": {}})
    assert status == 202, reply


async def test_a_refused_client_sees_its_answer_and_nothing_past_the_limit_is_parsed(eps):
    # one byte over the service limit: refused whole, not truncated to 256 KB and parsed
    definition = json.dumps({"name": "big", "event_type": "deposit", "policy": {"default": ["email"]},
                             "templates": {"email": "deposit-email"}, "description": ""})
    padded = definition.replace('"description": ""', '"description": "' + "x" * 256 * 1024 + '"')
    status, _, reply = await eps.request("POST", "/v1/services", padded.encode(),
                                         {"Content-Type": "application/json"})
    assert status == 413, reply
    status, _, listing = await eps.request("GET", "/v1/services")
    assert listing["services"] == []
    # a chunked event just over 64 KB: 413, nothing stored
    body = json.dumps({"type": "deposit", "customer_id": "C1", "data": {"memo": "y" * 70000}}).encode()
    status, _, reply = await eps.request("POST", "/v1/events", iter([body[:40000], body[40000:]]),
                                         {"Content-Type": "application/json"})  # an iterable: sent chunked
    assert status == 413, reply
    # and one just under the limit, chunked, is stored whole
    body = json.dumps({"type": "deposit", "customer_id": "C1", "data": {"memo": "z" * 60000}}).encode()
    status, _, reply = await eps.request("POST", "/v1/events", iter([body[:30000], body[30000:]]),
                                         {"Content-Type": "application/json"})  # an iterable: sent chunked
    assert status == 202, reply
    _, _, shown = await eps.request("GET", f"/v1/events/{reply['id']}")
    assert shown["payload"]["memo"] == "z" * 60000


@pytest.fixture
async def impatient_eps(tmp_path, database_url, start_suite):
    """EPS with short timeouts: 1.5 s per request, 1 s of silence."""
    config = make_config(tmp_path, database_url, eps__request_timeout="1.5", eps__idle_timeout="1")
    db = connect(database_url)
    suite = await start_suite(config, ["eps"])
    await add_templates(db, ("deposit-email", "email"))
    client = EpsClient(suite, db, await new_key(db, "account"))
    yield client
    await db.close()


def drip(host: str, port: int, text: bytes, interval: float, seconds: float) -> tuple[float, bytes]:
    """Send ``text`` one byte every ``interval`` s until the server closes (or
    ``seconds`` pass); returns how long the connection lasted and what came back."""
    started = time.monotonic()
    answer = b""
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.settimeout(interval)
        for byte in text:
            if time.monotonic() - started > seconds:
                break
            try:
                sock.sendall(bytes([byte]))
                data = sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            answer += data
    return time.monotonic() - started, answer


async def test_a_client_dripping_its_request_is_cut_off_within_the_request_timeout(impatient_eps):
    eps = impatient_eps
    request = head(eps, "/v1/events", eps.key, chunked=False, length=40).encode() + b"{" * 40
    lasted, answer = await asyncio.to_thread(drip, eps.host, eps.port, request, 0.25, 15)
    assert lasted < 1.5 + 2.0, f"the dripping client held its connection {lasted:.1f} s"
    assert answer.startswith(b"HTTP/1.1 408"), answer
    # the server kept serving everyone else
    status, _, reply = await eps.post_json({"type": "deposit", "customer_id": "C1", "data": {}})
    assert status == 202, reply


async def test_a_silent_connection_is_closed_within_the_idle_timeout(impatient_eps):
    eps = impatient_eps

    def silent() -> float:
        started = time.monotonic()
        with socket.create_connection((eps.host, eps.port), timeout=10) as sock:
            assert sock.recv(100) == b""
        return time.monotonic() - started

    assert await asyncio.to_thread(silent) < 1 + 2.0
