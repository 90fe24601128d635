"""twisted.web pieces shared by the HTTP services (WAS and EPS)."""

from __future__ import annotations

import json

from twisted.web.resource import Resource
from twisted.web.server import Site


def json_body(request, status: int, payload: dict) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    return json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")


class Health(Resource):
    """``GET /health``: 200 while running, 503 while paused; always answers."""

    isLeaf = True

    def __init__(self, service):
        super().__init__()
        self.service = service

    def render_GET(self, request):
        status = 503 if self.service.paused else 200
        return json_body(request, status, {"service": self.service.name, "state": self.service.state})


class PauseGuard(Resource):
    """Wraps a site's root: while the service is paused every path but
    ``/health`` gets the ``paused`` resource instead."""

    def __init__(self, root: Resource, service, paused: Resource):
        super().__init__()
        self.root = root
        self.service = service
        self.paused = paused
        self.health = Health(service)

    def getChildWithDefault(self, path, request):
        if path == b"health":
            return self.health
        if self.service.paused:
            return self.paused
        return self.root.getChildWithDefault(path, request)

    def render(self, request):
        return (self.paused if self.service.paused else self.root).render(request)


class ServiceSite(Site):
    """A Site that keeps its access log out of stdout (records go to our logger)."""

    noisy = False

    def log(self, request):  # access logging is the service's business
        pass


async def listen_tcp(ctx, factory, host: str, port: int):
    """Listen on the shared reactor; returns the listening port."""
    return ctx.reactor.listenTCP(port, factory, interface=host)


def port_address(listening) -> str:
    bound = listening.getHost()
    return f"{bound.host}:{bound.port}"


async def stop_listening(ctx, listening) -> None:
    from .reactor import deferred_to_future

    if listening is not None:
        await deferred_to_future(listening.stopListening(), ctx.loop)
