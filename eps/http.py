"""The EPS HTTP API (twisted.web), under ``/v1``.

Every call needs an API key (``Authorization: Bearer KEY`` or ``X-Api-Key``,
read by :mod:`ums.web.credentials`) with the scope of its route; the key names
the back-office system. The routes are those of :data:`router` (the one
:class:`ums.web.Router`), each with its scope and body limit:

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

Errors are the one error body of :mod:`ums.web.responses`, JSON
``{"error": code, "reason": text, "status": n}``: 4xx for anything the
client sent (bad JSON of any kind, wrong-typed fields, naming the field);
503 with Retry-After only when storage failed, so the sender retries and
nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
import re
from urllib.parse import unquote_to_bytes

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ums.errors import UmsError
from ums.store import events as event_store
from ums.store import services as service_store
from ums.store import timeline
from ums.web import (Gate, HttpError, KeyCheck, Match, Refusal, Router, admission, checked_key, error_payload, judge,
                     presented_key, unauthorized, write_json)

from ums.event_services import definitions, registry
from .events import MAX_EVENT_BYTES, from_json, from_xml, header_key

log = logging.getLogger("ums.eps.http")
#: the body limit of routes that take none
SMALL_BODY = 16 * 1024
_EVENT_ID = re.compile(r"^[0-9]{1,19}$")
_CUSTOMER_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
#: the routes of ``/v1``; the handlers are methods of :class:`V1`
router = Router(limit=SMALL_BODY)
#: how many request targets the gate remembers the match of
MAX_REMEMBERED_TARGETS = 1000


def segments(target: bytes) -> list[str]:
    """A request target's non-empty path segments, each percent-decoded."""
    path = target.split(b"?", 1)[0]
    return [unquote_to_bytes(p).decode("utf-8", "replace") for p in path.split(b"/") if p]


# --- keys and the gate -------------------------------------------------------------------

def required_key(request) -> str:
    """The API key the request presents (unchecked); a 401 :class:`Refusal` when there is none."""
    key = presented_key(request)
    if key is None:
        raise unauthorized("an API key is required (Authorization: Bearer KEY)")
    return key


class EpsGate(Gate):
    """The EPS edge: body limits and scopes from :data:`router`, keys from the headers."""

    def __init__(self, keys: KeyCheck, paused=lambda: False):
        super().__init__(SMALL_BODY)
        self.keys = keys
        #: while EPS is paused every caller gets its 503 with Retry-After (retry later), keys or not
        self.paused = paused
        self.matches: dict[tuple[bytes, bytes], tuple[bool, Match]] = {}

    def match(self, method: bytes, target: bytes) -> tuple[bool, Match]:
        """(is it under /v1, its match in :data:`router`), remembered for the targets seen lately."""
        found = self.matches.get((method, target))
        if found is None:
            parts = segments(target)
            under_v1 = parts[:1] == ["v1"]
            found = (under_v1, router.match_parts(method.decode("ascii", "replace"), parts) if under_v1
                     else Match(None, {}, False))
            if len(self.matches) > MAX_REMEMBERED_TARGETS:
                self.matches.clear()
            self.matches[(method, target)] = found
        return found

    def body_limit(self, method: bytes, path: bytes) -> int:
        route = self.match(method, path)[1].route
        return route.limit if route else SMALL_BODY

    def admit(self, request, method: bytes, path: bytes):
        under_v1, match = self.match(method, path)
        if not under_v1 or self.paused():
            return None  # /health, 404s, and the paused answer
        key = required_key(request)
        known, credential = self.keys.remembered(key)  # only well-formed keys are remembered
        if not known:
            return asyncio.ensure_future(self._verdict(checked_key(key), match))
        return judge(credential, match.route)

    async def _verdict(self, key: str, match: Match):
        return judge(await self.keys.credential(key), match.route)

    async def verdict(self, request, match: Match):
        """The whole check, for a request that did not pass the edge."""
        try:
            return await self._verdict(checked_key(required_key(request)), match)
        except Refusal as refusal:
            return refusal


def http_error(exc: Exception, request) -> HttpError:
    """The answer to what handling a request raised: 4xx for what the client
    sent, 503 with Retry-After for anything else (storage failed: retry)."""
    if isinstance(exc, HttpError):
        return exc
    if isinstance(exc, registry.NoSuchService):
        return HttpError(404, str(exc))
    if isinstance(exc, registry.ServiceNameTaken):
        return HttpError(409, str(exc))
    if isinstance(exc, UmsError):  # BadEvent, BadDefinition, XmlError…
        return HttpError(400, str(exc))
    log.error("request failed", extra={"path": request.path.decode("latin-1"), "error": str(exc)})
    return HttpError(503, "could not store; retry later", headers={"Retry-After": "5"})


# --- the resource -------------------------------------------------------------------------

class V1(Resource):
    """Routes ``/v1/...``; each handler is a coroutine returning (status, payload)."""

    isLeaf = True

    def __init__(self, service, gate: EpsGate | None = None):
        super().__init__()
        self.service = service
        self.gate = gate or EpsGate(KeyCheck(service.ctx.db))
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
        try:
            status, payload = await self._route(request)
            headers = None
        except Exception as exc:
            error = http_error(exc, request)
            status, payload, headers = error.status, error_payload(error), error.headers
        if getattr(request, "channel", None) is not None:  # None: the client went away meanwhile
            write_json(request, status, payload, headers)

    async def _route(self, request):
        match = self.gate.match(request.method, request.uri)[1]
        verdict = await admission(request) or await self.gate.verdict(request, match)
        if not isinstance(verdict, Refusal):  # the scope again, for the route as routed here
            verdict = judge(verdict, match.route)
        if isinstance(verdict, Refusal):
            raise verdict
        if match.route is None:
            target = request.path.decode("utf-8", "replace")
            raise HttpError(404, f"no route for {request.method.decode('ascii', 'replace')} {target}"[:200])
        return await match.route.handler(self, request, verdict.system, **match.params)

    # --- events ------------------------------------------------------------------

    @router.post("/v1/events", scope="events:write", limit=MAX_EVENT_BYTES)
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
            raise HttpError(409, f"the idempotency key {event.idempotency_key!r} was used for a "
                                   f"different event (id {accepted.event_id}); a new event needs a new key")
        payload = {"id": accepted.event_id, "duplicate": accepted.duplicate}
        if accepted.state:
            payload["state"] = accepted.state
        return (200 if accepted.duplicate else 202), payload

    @router.get("/v1/events/{raw_id}", scope="events:read")
    async def get_event(self, request, system: str, raw_id: str):
        event = None
        if _EVENT_ID.match(raw_id):
            async with self.ctx.db.connect() as conn:
                event = await event_store.get(conn, int(raw_id), source_system=system)
                if event is not None:
                    event["deliveries"] = await event_store.deliveries_of(conn, event["id"])
        if event is None:
            raise HttpError(404, f"no event {raw_id[:40]}")
        return 200, event

    # --- services ----------------------------------------------------------------

    @router.get("/v1/services", scope="services:manage")
    async def list_services(self, request, system: str):
        async with self.ctx.db.connect() as conn:
            rows = await service_store.list_services(conn, system=system)
        return 200, {"services": [_service_summary(row) for row in rows]}

    @router.post("/v1/services", scope="services:manage", limit=definitions.MAX_DEFINITION_BYTES)
    async def register_service(self, request, system: str):
        hint = (request.getHeader(b"content-type") or b"").decode("latin-1")
        body = _body(request, definitions.MAX_DEFINITION_BYTES)
        definition = definitions.parse(body, "in the request", hint)
        async with self.ctx.db.begin() as conn:
            version = await registry.register(conn, definition, self.ctx.clock(), f"api:{system}"[:64], system)
        return 201, {"name": definition.name, "version": version}

    @router.get("/v1/services/{name}", scope="services:manage")
    async def show_service(self, request, system: str, name: str):
        async with self.ctx.db.connect() as conn:
            row = await registry.get(conn, _service_name(name), system)
        return 200, {**_service_summary(row), "definition": row["definition"]}

    @router.delete("/v1/services/{name}", scope="services:manage")
    async def remove_service(self, request, system: str, name: str):
        async with self.ctx.db.begin() as conn:
            released = await registry.remove(conn, _service_name(name), self.ctx.clock(), system)
        return 200, {"name": name, "state": "removed", "released": released}

    @router.post("/v1/services/{name}/stop", scope="services:manage")
    async def stop_service(self, request, system: str, name: str):
        async with self.ctx.db.begin() as conn:
            await registry.stop(conn, _service_name(name), system)
        return 200, {"name": name, "state": "stopped"}

    @router.post("/v1/services/{name}/resume", scope="services:manage")
    async def resume_service(self, request, system: str, name: str):
        async with self.ctx.db.begin() as conn:
            count = await registry.resume(conn, _service_name(name), self.ctx.clock(), system)
        return 200, {"name": name, "state": "active", "dispatched": count}

    # --- customers -------------------------------------------------------------------

    @router.get("/v1/customers/{customer_id}/timeline", scope="events:read")
    async def customer_timeline(self, request, system: str, customer_id: str):
        view = None
        if _CUSTOMER_ID.match(customer_id):
            async with self.ctx.db.connect() as conn:
                view = await timeline.for_customer(conn, customer_id)
                if view is not None:
                    view["entries"] = await _own_entries(conn, view["entries"], system)
        if view is None:
            raise HttpError(404, f"no customer {customer_id[:64]}")
        return 200, view


def _body(request, limit: int) -> bytes:
    """The request body; 413 past ``limit`` (the edge has refused those already)."""
    body = request.content.read(limit + 1)
    if len(body) > limit:
        raise HttpError(413, f"the request body may be at most {limit} bytes")
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
