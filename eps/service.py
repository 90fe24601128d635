"""The EPS service: HTTP event API and the telegram TCP listener."""

from __future__ import annotations

from twisted.internet.protocol import Factory, Protocol
from twisted.web.resource import Resource

from ums.service import Service
from ums.web import PauseGuard, ServiceSite, json_body, listen_tcp, port_address, stop_listening


class Unavailable(Resource):
    """503 with Retry-After: back-office systems retry later, nothing is lost."""

    isLeaf = True

    def render(self, request):
        request.setHeader(b"retry-after", b"30")
        return json_body(request, 503, {"error": "paused", "reason": "EPS is paused; retry later"})


class NotFound(Resource):
    isLeaf = True

    def render(self, request):
        return json_body(request, 404, {"error": "not_found", "reason": "no such resource"})


class ApiRoot(Resource):
    def getChild(self, path, request):
        return NotFound()


class TelegramProtocol(Protocol):
    """Placeholder until the telegram codec lands: drops connections while paused."""

    def connectionMade(self):
        if self.factory.service.paused:
            self.transport.loseConnection()


class TelegramFactory(Factory):
    protocol = TelegramProtocol
    noisy = False

    def __init__(self, service):
        self.service = service


class EventProcessingServer(Service):
    name = "eps"

    def __init__(self, ctx, name=None):
        super().__init__(ctx, name)
        self.http = None
        self.telegrams = None

    def build_root(self) -> Resource:
        return ApiRoot()

    async def start(self) -> None:
        cfg = self.ctx.config.section("eps")
        site = ServiceSite(PauseGuard(self.build_root(), self, Unavailable()))
        self.http = await listen_tcp(self.ctx, site, cfg["host"], cfg["http_port"])
        self.telegrams = await listen_tcp(self.ctx, TelegramFactory(self), cfg["host"], cfg["telegram_port"])

    async def stop(self) -> None:
        await stop_listening(self.ctx, self.http)
        await stop_listening(self.ctx, self.telegrams)
        self.http = self.telegrams = None

    @property
    def address(self) -> str:
        if not self.http:
            return ""
        return f"{port_address(self.http)} telegram {port_address(self.telegrams).rsplit(':', 1)[1]}"
