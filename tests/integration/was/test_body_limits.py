"""Big bodies at WAS, over raw sockets on loopback: a 200 MB upload, with and
without an API key, announced by Content-Length or chunked, is answered
before 16 MB of it is sent — 401 from the headers without a key or login,
413 past the route's limit — the server's memory stays flat, and WAS serves
the next request."""

from __future__ import annotations

import asyncio
import json

import pytest
from was_site import api_key

from tests.helpers import answer_json, rss_kb, upload

BIG = 200 * 1024 * 1024
GIVE_UP = 16 * 1024 * 1024


def head(host: str, port: int, path: str, key: str | None, chunked: bool) -> str:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json"]
    if key:
        lines.append(f"X-API-Key: {key}")
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {BIG}")
    return "\r\n".join(lines) + "\r\n\r\n"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_200_mb_body_is_refused_before_16_mb_and_memory_stays_flat(sqlite_site, chunked):
    key = await api_key(sqlite_site.ctx)
    host, port = sqlite_site.base.removeprefix("http://").split(":")
    good = json.dumps({"channel": "email", "recipient": "kim@example.com", "subject": "Hi", "body": "Hello"})
    client = sqlite_site.client()
    warm = await client.request("POST", "/api/v1/send", good.encode(), {"content-type": "application/json", "x-api-key": key})
    assert warm.status == 202, warm.text
    before = rss_kb()
    cases = [("/api/v1/send", True, 413), ("/api/v1/send", False, 401), ("/api/v1/contacts", True, 413),
             ("/login", False, 413), ("/contacts/import", False, 401)]
    for path, with_key, expected in cases:
        result = await asyncio.to_thread(upload, host, int(port), head(host, int(port), path, key if with_key else None,
                                                                      chunked), BIG, chunked, GIVE_UP)
        assert result.status == expected, (path, with_key, result.status, result.answer[:300])
        assert result.sent < GIVE_UP, (path, with_key, result.sent)
        assert answer_json(result.answer), (path, result.answer[:300])
        print(f"WAS {path} key={with_key} chunked={chunked}: {result.status} after {result.sent // 1024} kB sent")
    grown = rss_kb() - before
    print(f"WAS RSS grew by {grown} kB")
    assert grown < 20 * 1024, f"RSS grew by {grown} kB"
    again = await client.request("POST", "/api/v1/send", good.encode(), {"content-type": "application/json", "x-api-key": key})
    assert again.status == 202, again.text
