"""The EPS HTTP API (twisted.web), under ``/v1``.

Every call needs an API key (``Authorization: Bearer KEY`` or ``X-Api-Key``)
with the scope of its route; the key names the back-office system:

=====================================================  ===================  ==========
route                                                  scope                body limit
=====================================================  ===================  ==========
``POST /v1/events`` (JSON or XML)                      ``events:write``     64 KB
``GET /v1/events/{id}``                                ``events:read``      —
``GET /v1/customers/{id}/timeline``                    ``events:read``      —
``GET /v1/services``                                   ``services:manage``  —
``POST /v1/services`` (JSON or XML definition)         ``services:manage``  256 KB
``GET|DELETE /v1/services/{name}``                     ``services:manage``  —
``POST /v1/services/{name}/stop|resume``               ``services:manage``  —
=====================================================  ===================  ==========

(— : at most :data:`SMALL_BODY` bytes.) The edge (:class:`ums.web.GuardedSite`
with :class:`EpsGate`) decides from the headers, before any of the body is
read, in this order: 401 for a missing or malformed key (anything but the
key alphabet, e.g. non-UTF-8 bytes), 413 for a ``Content-Length`` over the
route's limit, 401 for an unknown or revoked key and 403 for a key lacking the
route's scope — these two as soon as the key is looked up, while a body
(never more than the limit) may still be streaming. Chunked bodies are cut at
the limit (413); a request not in within ``[eps] request_timeout`` gets 408.

Ownership: a key sees only its own system's events — another system's event
is 404, as is an id that is not a number or out of range. A service
registered over HTTP belongs to the key's system; a key lists, shows, stops,
resumes and removes only its own system's services. Another system's
service, or an operator's (registered with ``ums service register``), is 404
for reading and for changing alike: the API does not tell a foreign name
from a missing one. Registering a name another owner holds is 409. The
operator's CLI manages every service. The customer timeline leaves out other
systems' events and their deliveries.

Idempotency: a retried ``POST /v1/events`` under the same ``Idempotency-Key``
(or event ``id``) with the same event is answered 200 ``duplicate`` with the
original id; the same key with a different event is 409, and not stored.

Errors are JSON ``{"error": code, "reason": text}``: 4xx for anything the
client sent (bad JSON of any kind, wrong-typed fields, naming the field);
503 with Retry-After only when storage failed, so the sender retries and
nothing is lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ums import xml
from ums.errors import UmsError
from ums.store import apikeys
from ums.store import events as event_store
from ums.store import services as service_store
from ums.store import timeline
from ums.web import Gate, Refusal, admission

from . import definitions, registry
from .events import MAX_EVENT_BYTES, BadEvent, from_json, from_xml, header_key

log = logging.getLogger("ums.eps.http")
KEY_CACHE_SECONDS = 5.0
#: the body limit of routes that take none
SMALL_BODY = 16 * 1024
_KEY_SHAPE = re.compile(r"^[A-Za-z0-9_\-]{8,256}$")
_EVENT_ID = re.compile(r"^[0-9]{1,19}$")
_CUSTOMER_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="ums"'}


class HttpError(Exception):
    def __init__(self, status: int, code: str, reason: str, headers: dict | None = None):
        super().__init__(reason)
        self.status, self.code, self.reason = status, code, reason
        self.headers = headers or {}


_JSON = json.JSONEncoder(ensure_ascii=False, default=str)


def _reply(request, status: int, payload: dict, headers: dict | None = None) -> None:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    for name, value in (headers or {}).items():
        request.setHeader(name.encode(), value.encode())
    body = _JSON.encode(payload).encode("utf-8")
    request.setHeader(b"content-length", str(len(body)).encode())
    request.write(body)
    request.finish()


# --- routes ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Route:
    """What a request asks for: the handler, the scope it needs, its body limit."""

    handler: str
    scope: str
    limit: int = SMALL_BODY


ROUTES = {
    ("POST", ("events",)): Route("post_event", "events:write", MAX_EVENT_BYTES),
    ("GET", ("events", "*")): Route("get_event", "events:read"),
    ("GET", ("customers", "*", "timeline")): Route("customer_timeline", "events:read"),
    ("GET", ("services",)): Route("list_services", "services:manage"),
    ("POST", ("services",)): Route("register_service", "services:manage", definitions.MAX_DEFINITION_BYTES),
    ("GET", ("services", "*")): Route("show_service", "services:manage"),
    ("DELETE", ("services", "*")): Route("remove_service", "services:manage"),
    ("POST", ("services", "*", "stop")): Route("stop_service", "services:manage"),
    ("POST", ("services", "*", "resume")): Route("resume_service", "services:manage"),
}


#: the routes by method and number of segments, for :func:`match`
_BY_SHAPE: dict[tuple[str, int], list[tuple[tuple[str, ...], Route]]] = {}
for (verb, shape), route in ROUTES.items():
    _BY_SHAPE.setdefault((verb, len(shape)), []).append((shape, route))
del verb, shape, route


def match(method: str, parts: list[str]) -> tuple[Route | None, list[str]]:
    """The route for ``method /v1/<parts>`` and its ``*`` arguments (None: no such route)."""
    for shape, route in _BY_SHAPE.get((method, len(parts)), ()):
        if all(want == "*" or want == part for want, part in zip(shape, parts)):
            return route, [part for want, part in zip(shape, parts) if want == "*"]
    return None, []


def _segments(target: bytes) -> list[str]:
    """A request target's path segments, as twisted.web's ``postpath`` would have them."""
    path = target.split(b"?", 1)[0]
    return [unquote_to_bytes(p).decode("utf-8", "replace") for p in path.split(b"/") if p]


# --- keys and the gate -------------------------------------------------------------------

def presented_key(request) -> str:
    """The API key in the headers (as presented: see :func:`checked_key`); a
    401 :class:`Refusal` when there is none."""
    scheme, _, raw = (request.getHeader(b"authorization") or b"").strip().partition(b" ")
    if scheme.lower() != b"bearer":
        raw = request.getHeader(b"x-api-key") or b""
    raw = raw.strip()
    if not raw:
        raise Refusal(401, "unauthorized", "an API key is required (Authorization: Bearer KEY)",
                      UNAUTHORIZED_HEADERS)
    return raw.decode("latin-1")


def checked_key(key: str) -> str:
    """``key`` if it can be a key (ASCII letters, digits, ``_`` and ``-``); else a 401 :class:`Refusal`."""
    if not _KEY_SHAPE.match(key):
        raise Refusal(401, "unauthorized", "malformed API key", UNAUTHORIZED_HEADERS)
    return key


class KeyCheck:
    """API key → :class:`~ums.store.apikeys.Credential`, remembered for a few
    seconds (a revoked key stops working within ``KEY_CACHE_SECONDS``). When a
    remembered answer runs out, one lookup refreshes it for every request
    waiting on that key."""

    def __init__(self, db):
        self.db = db
        self.cache: dict[str, tuple[apikeys.Credential | None, float]] = {}
        self.lookups: dict[str, asyncio.Future] = {}

    def remembered(self, key: str) -> tuple[bool, apikeys.Credential | None]:
        """(True, credential or None) when the answer for ``key`` is fresh; else (False, None)."""
        cached = self.cache.get(key)
        if cached and cached[1] > time.monotonic():
            return True, cached[0]
        return False, None

    async def credential(self, key: str) -> apikeys.Credential | None:
        known, credential = self.remembered(key)
        if known:
            return credential
        lookup = self.lookups.get(key)
        if lookup is None:
            lookup = self.lookups[key] = asyncio.ensure_future(self._look_up(key))
            lookup.add_done_callback(lambda _: self.lookups.pop(key, None))
        return await asyncio.shield(lookup)

    async def _look_up(self, key: str) -> apikeys.Credential | None:
        async with self.db.connect() as conn:
            credential = await apikeys.credential_for(conn, key)
        if len(self.cache) > 10_000:
            self.cache.clear()
        self.cache[key] = (credential, time.monotonic() + KEY_CACHE_SECONDS)
        return credential


def judge(credential: apikeys.Credential | None, route: Route | None) -> apikeys.Credential | Refusal:
    """The verdict on a looked-up key for a route (None: no route; any key may hear 404)."""
    if credential is None:
        return Refusal(401, "unauthorized", "unknown or revoked API key", UNAUTHORIZED_HEADERS)
    if route is not None and not credential.allows(route.scope):
        return Refusal(403, "forbidden", f"this API key lacks the {route.scope} scope")
    return credential


class EpsGate(Gate):
    """The EPS edge: body limits by route, keys and scopes from the headers."""

    def __init__(self, keys: KeyCheck, paused=lambda: False):
        super().__init__(SMALL_BODY)
        self.keys = keys
        #: while EPS is paused every caller gets its 503 with Retry-After (retry later), keys or not
        self.paused = paused
        self.routes: dict[tuple[bytes, bytes], tuple[bool, Route | None]] = {}

    def _route(self, method: bytes, target: bytes) -> tuple[bool, Route | None]:
        """(is it under /v1, its route), remembered for the targets seen lately."""
        found = self.routes.get((method, target))
        if found is None:
            parts = _segments(target)
            found = (parts[:1] == ["v1"],
                     match(method.decode("ascii", "replace"), parts[1:])[0] if parts[:1] == ["v1"] else None)
            if len(self.routes) > 1000:
                self.routes.clear()
            self.routes[(method, target)] = found
        return found

    def body_limit(self, method: bytes, path: bytes) -> int:
        route = self._route(method, path)[1]
        return route.limit if route else SMALL_BODY

    def admit(self, request, method: bytes, path: bytes):
        under_v1, route = self._route(method, path)
        if not under_v1 or self.paused():
            return None  # /health, 404s, and the paused answer
        key = presented_key(request)
        known, credential = self.keys.remembered(key)  # only well-formed keys are remembered
        if not known:
            return asyncio.ensure_future(self._verdict(checked_key(key), route))
        return judge(credential, route)

    async def _verdict(self, key: str, route: Route | None):
        return judge(await self.keys.credential(key), route)

    async def verdict(self, request, route: Route | None):
        """The whole check, for a request that did not pass the edge."""
        try:
            return await self._verdict(checked_key(presented_key(request)), route)
        except Refusal as refusal:
            return refusal


# --- the resource -------------------------------------------------------------------------

class V1(Resource):
    """Routes ``/v1/...``; each handler is a coroutine returning (status, payload)."""

    isLeaf = True

    def __init__(self, service, gate: EpsGate | None = None):
        super().__init__()
        self.service = service
        self.gate = gate or EpsGate(KeyCheck(service.ctx.db))
        self.handling: set[asyncio.Task] = set()
        self.matched: dict[tuple[bytes, bytes], tuple] = {}

    @property
    def ctx(self):
        return self.service.ctx

    def render(self, request):
        task = asyncio.ensure_future(self._handle(request))
        self.handling.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self.handling.discard)
        return NOT_DONE_YET

    async def _handle(self, request) -> None:
        headers: dict = {}
        try:
            status, payload = await self._route(request)
        except (HttpError, Refusal) as exc:
            status, payload, headers = exc.status, {"error": exc.code, "reason": exc.reason}, exc.headers
        except (BadEvent, xml.XmlError, definitions.BadDefinition) as exc:
            status, payload = 400, {"error": "bad_request", "reason": str(exc)}
        except registry.NoSuchService as exc:
            status, payload = 404, {"error": "not_found", "reason": str(exc)}
        except registry.ServiceNameTaken as exc:
            status, payload = 409, {"error": "conflict", "reason": str(exc)}
        except UmsError as exc:
            status, payload = 400, {"error": "bad_request", "reason": str(exc)}
        except Exception as exc:  # the database is away: the sender must retry
            log.error("request failed", extra={"path": request.path.decode("latin-1"), "error": str(exc)})
            status, payload = 503, {"error": "unavailable", "reason": "could not store; retry later"}
            headers = {"Retry-After": "5"}
        if getattr(request, "channel", None) is not None:  # None: the client went away meanwhile
            _reply(request, status, payload, headers)

    def _match(self, request) -> tuple[str, list[str], Route | None, list[str]]:
        """Method, path segments, route and its arguments, remembered for the paths seen lately."""
        found = self.matched.get((request.method, request.path))
        if found is None:
            method = request.method.decode("ascii", "replace")
            parts = [p.decode("utf-8", "replace") for p in request.postpath if p]
            found = (method, parts, *match(method, parts))
            if len(self.matched) > 1000:
                self.matched.clear()
            self.matched[(request.method, request.path)] = found
        return found

    async def _route(self, request):
        method, parts, route, args = self._match(request)
        verdict = await admission(request) or await self.gate.verdict(request, route)
        if not isinstance(verdict, Refusal):  # the scope again, for the route as routed here
            verdict = judge(verdict, route)
        if isinstance(verdict, Refusal):
            raise verdict
        if route is None:
            raise HttpError(404, "not_found", f"no route for {method} /v1/{'/'.join(parts)}"[:200])
        return await getattr(self, route.handler)(request, verdict.system, *args)

    # --- events ------------------------------------------------------------------

    async def post_event(self, request, system: str):
        body = _body(request, MAX_EVENT_BYTES)
        key = header_key(request.getHeader(b"idempotency-key"))
        content_type = (request.getHeader(b"content-type") or b"").decode("latin-1").lower()
        if "xml" in content_type or (not content_type and body.lstrip()[:1] == b"<"):
            event = from_xml(body, system, key)
        else:
            event = from_json(body, system, key)
        accepted = await self.service.ingestor.submit(event)
        if accepted.conflict:
            raise HttpError(409, "conflict", f"the idempotency key {event.idempotency_key!r} was used for a "
                                             f"different event (id {accepted.event_id}); a new event needs a new key")
        payload = {"id": accepted.event_id, "duplicate": accepted.duplicate}
        if accepted.state:
            payload["state"] = accepted.state
        return (200 if accepted.duplicate else 202), payload

    async def get_event(self, request, system: str, raw_id: str):
        event = None
        if _EVENT_ID.match(raw_id):
            async with self.ctx.db.connect() as conn:
                event = await event_store.get(conn, int(raw_id), source_system=system)
                if event is not None:
                    event["deliveries"] = await event_store.deliveries_of(conn, event["id"])
        if event is None:
            raise HttpError(404, "not_found", f"no event {raw_id[:40]}")
        return 200, event

    # --- services ----------------------------------------------------------------

    async def list_services(self, request, system: str):
        async with self.ctx.db.connect() as conn:
            rows = await service_store.list_services(conn, system=system)
        return 200, {"services": [_service_summary(row) for row in rows]}

    async def register_service(self, request, system: str):
        hint = (request.getHeader(b"content-type") or b"").decode("latin-1")
        body = _body(request, definitions.MAX_DEFINITION_BYTES)
        definition = definitions.parse(body, "in the request", hint)
        async with self.ctx.db.begin() as conn:
            version = await registry.register(conn, definition, self.ctx.clock(), f"api:{system}"[:64], system)
        return 201, {"name": definition.name, "version": version}

    async def show_service(self, request, system: str, name: str):
        async with self.ctx.db.connect() as conn:
            row = await registry.get(conn, _service_name(name), system)
        return 200, {**_service_summary(row), "definition": row["definition"]}

    async def remove_service(self, request, system: str, name: str):
        async with self.ctx.db.begin() as conn:
            released = await registry.remove(conn, _service_name(name), self.ctx.clock(), system)
        return 200, {"name": name, "state": "removed", "released": released}

    async def stop_service(self, request, system: str, name: str):
        async with self.ctx.db.begin() as conn:
            await registry.stop(conn, _service_name(name), system)
        return 200, {"name": name, "state": "stopped"}

    async def resume_service(self, request, system: str, name: str):
        async with self.ctx.db.begin() as conn:
            count = await registry.resume(conn, _service_name(name), self.ctx.clock(), system)
        return 200, {"name": name, "state": "active", "dispatched": count}

    # --- customers -------------------------------------------------------------------

    async def customer_timeline(self, request, system: str, customer_id: str):
        view = None
        if _CUSTOMER_ID.match(customer_id):
            async with self.ctx.db.connect() as conn:
                view = await timeline.for_customer(conn, customer_id)
                if view is not None:
                    view["entries"] = await _own_entries(conn, view["entries"], system)
        if view is None:
            raise HttpError(404, "not_found", f"no customer {customer_id[:64]}")
        return 200, view


def _body(request, limit: int) -> bytes:
    """The request body; 413 past ``limit`` (the edge has refused those already)."""
    body = request.content.read(limit + 1)
    if len(body) > limit:
        raise HttpError(413, "too_large", f"the request body may be at most {limit} bytes")
    return body


def _service_name(name: str) -> str:
    """A name from the path; one no service can have is simply not found."""
    if not definitions.NAME_SHAPE.match(name):
        raise registry.NoSuchService(name=name[:128])
    return name


async def _own_entries(conn, entries: list[dict], system: str) -> list[dict]:
    """A timeline without other systems' events and the deliveries they produced."""
    event_ids = [e["event_id"] for e in entries if e["kind"] == "delivery" and e.get("event_id")]
    own = await event_store.of_system(conn, event_ids, system) if event_ids else set()
    return [
        entry for entry in entries
        if (entry["kind"] != "event" or entry["source"] == system)
        and (entry["kind"] != "delivery" or not entry.get("event_id") or entry["event_id"] in own)
    ]


def _service_summary(row: dict) -> dict:
    return {k: row[k] for k in ("name", "version", "event_type", "state", "kind", "priority", "created_at")}
