"""EPS test support: a real HTTP client on loopback, customers, templates, keys."""

from __future__ import annotations

import asyncio
import http.client
import json
from pathlib import Path

import pytest
from sqlalchemy import insert

from tests.conftest import make_config
from tests.helpers import split_address
from ums.config import SHIPPED_CONFIG_DIR
from ums.db import connect
from ums.db.models import templates
from ums.store import apikeys, contacts, utcnow

SAMPLES = SHIPPED_CONFIG_DIR / "samples" / "services"


class EpsClient:
    """A keep-alive HTTP client (http.client in a thread) and a store helper."""

    def __init__(self, suite, db, key: str):
        self.suite = suite
        self.db = db
        self.key = key
        eps = suite.services["eps"]
        self.host, self.port = split_address(eps.address)
        self.telegram_port = int(eps.address.rsplit(" ", 1)[1])

    def _request(self, method, path, body=None, headers=None, key=None):
        status, response_headers, raw = self._exchange(method, path, body, headers, key)
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            payload = {"raw": raw.decode("utf-8", "replace")}
        return status, response_headers, payload

    def _exchange(self, method, path, body=None, headers=None, key=None):
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            all_headers = {"Authorization": f"Bearer {key or self.key}", **(headers or {})}
            connection.request(method, path, body=body, headers=all_headers)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    async def request(self, method, path, body=None, headers=None, key=None):
        return await asyncio.to_thread(self._request, method, path, body, headers, key)

    async def request_raw(self, method, path, body=None, headers=None, key=None):
        """Like :meth:`request`, with the response body as bytes (not parsed)."""
        return await asyncio.to_thread(self._exchange, method, path, body, headers, key)

    async def post_json(self, event: dict, idempotency_key: str | None = None, key=None):
        headers = {"Content-Type": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return await self.request("POST", "/v1/events", json.dumps(event).encode(), headers, key)

    async def post_xml(self, document: bytes | str, idempotency_key: str | None = None):
        headers = {"Content-Type": "application/xml"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        body = document.encode() if isinstance(document, str) else document
        return await self.request("POST", "/v1/events", body, headers)

    async def register(self, path: Path):
        kind = "application/xml" if path.suffix == ".xml" else "application/json"
        return await self.request("POST", "/v1/services", path.read_bytes(), {"Content-Type": kind})


async def add_customer(db, customer_id, grade="NORMAL", email=None, fax=None, phone=None, name=None):
    async with db.begin() as conn:
        return await contacts.create(conn, customer_id=customer_id, grade=grade, email=email,
                                     fax=fax, phone=phone, name=name or customer_id)


async def add_templates(db, *names_and_channels):
    async with db.begin() as conn:
        for name, channel in names_and_channels:
            await conn.execute(insert(templates).values(
                name=name, channel=channel, subject=f"{name} subject", body_text=f"{name} body {{amount}}"))


async def new_key(db, system: str) -> str:
    async with db.begin() as conn:
        _, key = await apikeys.create(conn, system, utcnow())
    return key




async def new_key_with(db, system: str, *scopes: str) -> str:
    async with db.begin() as conn:
        _, key = await apikeys.create(conn, system, utcnow(), scopes=list(scopes))
    return key
