"""The WAS service: the web front end on twisted.web."""

from __future__ import annotations

from twisted.web.resource import Resource

from ums.service import Service
from ums.web import PauseGuard, ServiceSite, listen_tcp, port_address, stop_listening

MAINTENANCE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>UMS — maintenance</title></head><body style="font-family:sans-serif;margin:4em">
<h1>UMS is paused for maintenance</h1><p>Please try again in a few minutes.</p></body></html>"""


class Maintenance(Resource):
    isLeaf = True

    def render(self, request):
        request.setResponseCode(503)
        request.setHeader(b"retry-after", b"60")
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return MAINTENANCE.encode()


class WebApplicationServer(Service):
    name = "was"

    def __init__(self, ctx, name=None):
        super().__init__(ctx, name)
        self.listening = None
        self.app = None

    def build_root(self) -> Resource:
        from .app import WebApp
        from .http import Dispatcher
        from . import routes  # noqa: F401  (registers every page and API route)

        self.app = WebApp(self)
        return Dispatcher(self.app)

    async def start(self) -> None:
        cfg = self.ctx.config.section("was")
        site = ServiceSite(PauseGuard(self.build_root(), self, Maintenance()))
        self.listening = await listen_tcp(self.ctx, site, cfg["host"], cfg["port"])

    async def stop(self) -> None:
        await stop_listening(self.ctx, self.listening)
        self.listening = None

    @property
    def address(self) -> str:
        return port_address(self.listening) if self.listening else ""
