"""The EPS HTTP API (twisted.web), under ``/v1``.

``POST /v1/events`` (JSON or XML), ``GET /v1/events/{id}``,
``GET|POST /v1/services``, ``GET|DELETE /v1/services/{name}``,
``POST /v1/services/{name}/stop|resume``, ``GET /v1/customers/{id}/timeline``.

Every call needs an API key (``Authorization: Bearer KEY`` or ``X-Api-Key``);
the key names the back-office system. Errors are JSON
``{"error": code, "reason": text}`` with a 4xx status; a storage failure is a
503 with Retry-After, so the sender retries and nothing is lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ums import xml
from ums.errors import UmsError
from ums.store import apikeys
from ums.store import events as event_store
from ums.store import services as service_store
from ums.store import timeline

from . import definitions, registry
from .events import MAX_EVENT_BYTES, BadEvent, from_json, from_xml

log = logging.getLogger("ums.eps.http")
KEY_CACHE_SECONDS = 5.0


class HttpError(Exception):
    def __init__(self, status: int, code: str, reason: str):
        super().__init__(reason)
        self.status, self.code, self.reason = status, code, reason


def _reply(request, status: int, payload: dict, headers: dict | None = None) -> None:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    for name, value in (headers or {}).items():
        request.setHeader(name.encode(), value.encode())
    body = json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
    request.setHeader(b"content-length", str(len(body)).encode())
    request.write(body)
    request.finish()


class KeyCheck:
    """API key → system, remembered for a few seconds (a revoked key stops
    working within ``KEY_CACHE_SECONDS``). When a remembered answer runs out,
    one lookup refreshes it for every request waiting on that key."""

    def __init__(self, db):
        self.db = db
        self.cache: dict[str, tuple[str | None, float]] = {}
        self.lookups: dict[str, asyncio.Future] = {}

    async def system_for(self, request) -> str:
        key = _presented_key(request)
        if not key:
            raise HttpError(401, "unauthorized", "an API key is required (Authorization: Bearer KEY)")
        cached = self.cache.get(key)
        if cached and cached[1] > time.monotonic():
            system = cached[0]
        else:
            lookup = self.lookups.get(key)
            if lookup is None:
                lookup = self.lookups[key] = asyncio.ensure_future(self._look_up(key))
                lookup.add_done_callback(lambda _: self.lookups.pop(key, None))
            system = await asyncio.shield(lookup)
        if system is None:
            raise HttpError(401, "unauthorized", "unknown or revoked API key")
        return system

    async def _look_up(self, key: str) -> str | None:
        async with self.db.connect() as conn:
            system = await apikeys.system_for(conn, key)
        if len(self.cache) > 10_000:
            self.cache.clear()
        self.cache[key] = (system, time.monotonic() + KEY_CACHE_SECONDS)
        return system


def _presented_key(request) -> str:
    header = (request.getHeader(b"authorization") or b"").decode("latin-1").strip()
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return (request.getHeader(b"x-api-key") or b"").decode("latin-1").strip()


class V1(Resource):
    """Routes ``/v1/...``; each handler is a coroutine returning (status, payload)."""

    isLeaf = True

    def __init__(self, service):
        super().__init__()
        self.service = service
        self.keys = KeyCheck(service.ctx.db)
        self.handling: set[asyncio.Task] = set()

    @property
    def ctx(self):
        return self.service.ctx

    def render(self, request):
        task = asyncio.ensure_future(self._handle(request))
        self.handling.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self.handling.discard)
        return NOT_DONE_YET

    async def _handle(self, request) -> None:
        gone = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        try:
            status, payload = await self._route(request)
            headers = {}
        except HttpError as exc:
            status, payload, headers = exc.status, {"error": exc.code, "reason": exc.reason}, {}
        except (BadEvent, xml.XmlError, definitions.BadDefinition) as exc:
            status, payload, headers = 400, {"error": "bad_request", "reason": str(exc)}, {}
        except registry.NoSuchService as exc:
            status, payload, headers = 404, {"error": "not_found", "reason": str(exc)}, {}
        except UmsError as exc:
            status, payload, headers = 400, {"error": "bad_request", "reason": str(exc)}, {}
        except Exception as exc:  # the database is away: the sender must retry
            log.error("request failed", extra={"path": request.path.decode("latin-1"), "error": str(exc)})
            status, payload = 503, {"error": "unavailable", "reason": "could not store; retry later"}
            headers = {"Retry-After": "5"}
        if not gone:
            _reply(request, status, payload, headers)

    async def _route(self, request):
        method = request.method.decode("ascii", "replace")
        parts = [p.decode("utf-8", "replace") for p in request.postpath if p]
        system = await self.keys.system_for(request)
        if parts == ["events"] and method == "POST":
            return await self.post_event(request, system)
        if len(parts) == 2 and parts[0] == "events" and method == "GET":
            return await self.get_event(parts[1])
        if parts and parts[0] == "services":
            return await self.services(request, method, parts[1:], system)
        if len(parts) == 3 and parts[0] == "customers" and parts[2] == "timeline" and method == "GET":
            return await self.customer_timeline(parts[1])
        raise HttpError(404, "not_found", f"no route for {method} /v1/{'/'.join(parts)}")

    # --- events ------------------------------------------------------------------

    async def post_event(self, request, system: str):
        body = request.content.read(MAX_EVENT_BYTES + 1)
        if len(body) > MAX_EVENT_BYTES:
            raise HttpError(413, "too_large", f"an event may be at most {MAX_EVENT_BYTES} bytes")
        key = (request.getHeader(b"idempotency-key") or b"").decode("utf-8", "replace")
        content_type = (request.getHeader(b"content-type") or b"").decode("latin-1").lower()
        if "xml" in content_type or (not content_type and body.lstrip()[:1] == b"<"):
            event = from_xml(body, system, key)
        else:
            event = from_json(body, system, key)
        accepted = await self.service.ingestor.submit(event)
        payload = {"id": accepted.event_id, "duplicate": accepted.duplicate}
        if accepted.state:
            payload["state"] = accepted.state
        return (200 if accepted.duplicate else 202), payload

    async def get_event(self, raw_id: str):
        if not raw_id.isdigit():
            raise HttpError(400, "bad_request", "an event id is a number")
        async with self.ctx.db.connect() as conn:
            event = await event_store.get(conn, int(raw_id))
            if event is None:
                raise HttpError(404, "not_found", f"no event {raw_id}")
            event["deliveries"] = await event_store.deliveries_of(conn, event["id"])
        return 200, event

    # --- services ----------------------------------------------------------------

    async def services(self, request, method: str, rest: list[str], system: str):
        now = self.ctx.clock()
        if not rest and method == "GET":
            async with self.ctx.db.connect() as conn:
                rows = await service_store.list_services(conn)
            return 200, {"services": [_service_summary(row) for row in rows]}
        if not rest and method == "POST":
            hint = (request.getHeader(b"content-type") or b"").decode("latin-1")
            definition = definitions.parse(request.content.read(256 * 1024), "in the request", hint)
            async with self.ctx.db.begin() as conn:
                version = await registry.register(conn, definition, now, f"api:{system}")
            return 201, {"name": definition.name, "version": version}
        if len(rest) == 1 and method == "GET":
            async with self.ctx.db.connect() as conn:
                row = await service_store.get(conn, rest[0])
            if row is None or row["state"] == "removed":
                raise registry.NoSuchService(name=rest[0])
            return 200, {**_service_summary(row), "definition": row["definition"]}
        if len(rest) == 1 and method == "DELETE":
            async with self.ctx.db.begin() as conn:
                released = await registry.remove(conn, rest[0], now)
            return 200, {"name": rest[0], "state": "removed", "released": released}
        if len(rest) == 2 and method == "POST" and rest[1] in ("stop", "resume"):
            async with self.ctx.db.begin() as conn:
                if rest[1] == "stop":
                    await registry.stop(conn, rest[0])
                    return 200, {"name": rest[0], "state": "stopped"}
                count = await registry.resume(conn, rest[0], now)
            return 200, {"name": rest[0], "state": "active", "dispatched": count}
        raise HttpError(404, "not_found", f"no route for {method} /v1/services/{'/'.join(rest)}")

    # --- customers -------------------------------------------------------------------

    async def customer_timeline(self, customer_id: str):
        async with self.ctx.db.connect() as conn:
            view = await timeline.for_customer(conn, customer_id)
        if view is None:
            raise HttpError(404, "not_found", f"no customer {customer_id}")
        return 200, view


def _service_summary(row: dict) -> dict:
    return {k: row[k] for k in ("name", "version", "event_type", "state", "kind", "priority", "created_at")}
