"""A property-based fuzz of every operation in WAS's OpenAPI document
(``tests/http_fuzz.py``), over real HTTP with a key holding every WAS scope:
no request a client can make gets a 5xx, and the API keeps serving."""

from __future__ import annotations

import asyncio
import json

from was_site import api_key

from tests.http_fuzz import Endpoint, fuzz
from was.openapi import DOCUMENT


async def test_no_request_drawn_from_the_openapi_document_gets_a_server_error(sqlite_site):
    key = await api_key(sqlite_site.ctx)
    host, port = sqlite_site.base.removeprefix("http://").split(":")
    good = json.dumps({"channel": "email", "recipient": "kim@example.com", "subject": "Hi", "body": "Hello"})
    endpoint = Endpoint(host, int(port), {"x-api-key": key}, ("POST", "/api/v1/send", good.encode()))
    statuses = await asyncio.to_thread(fuzz, DOCUMENT, endpoint)
    print(f"WAS fuzz: {sum(statuses.values())} requests, statuses {dict(sorted(statuses.items()))}")
    assert not [status for status in statuses if status >= 500]
    assert any(200 <= status < 300 for status in statuses), "the fuzz never made a valid request"
    assert any(400 <= status < 500 for status in statuses), "the fuzz never made an invalid request"
