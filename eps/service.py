"""The EPS service: HTTP event API and the telegram TCP listener.

The HTTP side is a :class:`ums.web.GuardedSite` with the EPS gate
(:class:`eps.http.EpsGate`): limits and keys are checked from the headers,
before a body is read; ``[eps] idle_timeout`` closes silent connections and
``[eps] request_timeout`` bounds how long one request may take to arrive.
"""

from __future__ import annotations

import asyncio

from twisted.web.resource import Resource

from ums.service import Service
from ums.store import events as event_store
from ums.web import GuardedSite, HttpError, KeyCheck, PauseGuard, listen_tcp, port_address, render_error, stop_listening

from ums.event_services import digests, registry
from .http import V1, EpsGate
from .ingest import Ingestor
from .telegrams import TelegramFactory, load_layouts


class Unavailable(Resource):
    """503 with Retry-After: back-office systems retry later, nothing is lost."""

    isLeaf = True

    def render(self, request):
        return render_error(request, HttpError(503, "EPS is paused; retry later", "paused", {"Retry-After": "30"}))


class NotFound(Resource):
    isLeaf = True

    def render(self, request):
        return render_error(request, HttpError(404, "no such resource"))


class ApiRoot(Resource):
    def __init__(self, service, gate: EpsGate | None = None):
        super().__init__()
        self.v1 = V1(service, gate)

    def getChild(self, path, request):
        if path == b"v1":
            return self.v1
        return NotFound()


class EventProcessingServer(Service):
    name = "eps"
    listeners = (("eps", "host", "http_port"), ("eps", "host", "telegram_port"))

    def __init__(self, ctx, name=None):
        super().__init__(ctx, name)
        self.http = None
        self.telegrams = None
        self.ingestor: Ingestor | None = None
        self.sweeper: asyncio.Task | None = None
        self.digester: asyncio.Task | None = None
        self.gate: EpsGate | None = None

    def build_root(self) -> Resource:
        return ApiRoot(self, self.gate)

    async def start(self) -> None:
        cfg = self.ctx.config.section("eps")
        layouts = load_layouts(cfg.get("telegram_layouts") or None)
        self.ingestor = Ingestor(self.ctx, max_batch=cfg.get("max_batch", 500))
        self.ingestor.start()
        self.gate = EpsGate(KeyCheck(self.ctx.db), paused=lambda: self.paused)
        # events come as JSON or XML, never as HTML forms: skip form parsing
        site = GuardedSite(PauseGuard(self.build_root(), self, Unavailable()), self.gate,
                           idle_timeout=cfg.get("idle_timeout", 60.0), request_timeout=cfg.get("request_timeout", 30.0),
                           parsePOSTFormSubmission=False)
        with self.listening_on("eps", "http_port") as (host, port):
            self.http = await listen_tcp(self.ctx, site, host, port)
        factory = TelegramFactory(self, layouts, cfg.get("max_frame", 8192))
        with self.listening_on("eps", "telegram_port") as (host, port):
            self.telegrams = await listen_tcp(self.ctx, factory, host, port)
        self.sweeper = asyncio.ensure_future(self._sweep_held(cfg.get("held_sweep_interval", 5.0)))
        self.digester = asyncio.ensure_future(self._release_digests(cfg.get("digest_poll", 5.0)))

    async def _sweep_held(self, interval: float) -> None:
        """Dispatch events held for a service that is active again — covers a
        resume that committed while a batch holding its events was in flight."""
        while True:
            await asyncio.sleep(interval)
            try:
                async with self.ctx.db.begin() as conn:
                    for name in await event_store.held_service_names(conn):
                        await registry.dispatch_held(conn, name, self.ctx.clock())
            except Exception as exc:
                self.log.warning("held-event sweep failed; retrying", extra={"error": str(exc)})

    async def _release_digests(self, interval: float) -> None:
        """Every ``[eps] digest_poll`` seconds, queue one message per digest
        window that closed (by the application clock); each release commits
        its delivery and marks its events in one transaction."""
        while True:
            await asyncio.sleep(interval)
            try:
                async with self.ctx.db.begin() as conn:
                    released = await conn.run_sync(digests.release_due, self.ctx.clock())
                if released:
                    self.log.info("digests released", extra={"deliveries": released})
            except Exception as exc:
                self.log.warning("digest release failed; retrying", extra={"error": str(exc)})

    async def stop(self) -> None:
        await stop_listening(self.ctx, self.http)
        await stop_listening(self.ctx, self.telegrams)
        for task in (self.sweeper, self.digester):
            if task:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self.ingestor:
            await self.ingestor.stop()
        self.http = self.telegrams = self.sweeper = self.digester = None

    def info(self) -> dict:
        if not self.ingestor:
            return {}
        return {"events_stored": self.ingestor.stored, "batches": self.ingestor.batches,
                "backlog": self.ingestor.backlog}

    @property
    def address(self) -> str:
        if not self.http:
            return ""
        return f"{port_address(self.http)} telegram {port_address(self.telegrams).rsplit(':', 1)[1]}"
