"""A property-based fuzz of every operation in EPS's OpenAPI document
(``tests/http_fuzz.py``), over real HTTP with a key holding every back-office
scope: no request a client can make gets a 5xx (a 503 would make a sender
retry for ever), and EPS keeps serving."""

from __future__ import annotations

import asyncio
import json

from eps.openapi import DOCUMENT
from tests.http_fuzz import Endpoint, fuzz


async def test_no_request_drawn_from_the_openapi_document_gets_a_server_error(eps):
    good = json.dumps({"type": "deposit", "customer_id": "C1", "data": {"amount": 5}}).encode()
    endpoint = Endpoint(eps.host, eps.port, {"authorization": f"Bearer {eps.key}"}, ("POST", "/v1/events", good))
    statuses = await asyncio.to_thread(fuzz, DOCUMENT, endpoint)
    print(f"EPS fuzz: {sum(statuses.values())} requests, statuses {dict(sorted(statuses.items()))}")
    assert not [status for status in statuses if status >= 500]
    assert any(200 <= status < 300 for status in statuses), "the fuzz never made a valid request"
    assert any(400 <= status < 500 for status in statuses), "the fuzz never made an invalid request"
