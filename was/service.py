"""The WAS service: the web front end on twisted.web.

A request body larger than ``[was] max_body`` is refused before it is read
(:class:`BoundedRequest`): a larger ``Content-Length``, or a chunked body that
grows past the limit, is answered 413 at once (JSON with the reason and the
security headers) and the connection is closed; nothing of it reaches a page.
"""

from __future__ import annotations

import io
import json

from twisted.web.resource import Resource
from twisted.web.server import Request

from ums.service import Service
from ums.web import PauseGuard, ServiceSite, listen_tcp, port_address, stop_listening

MAINTENANCE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>UMS — maintenance</title></head><body>
<h1>UMS is paused for maintenance</h1><p>Please try again in a few minutes.</p></body></html>"""


class Maintenance(Resource):
    isLeaf = True

    def render(self, request):
        from .http import security_headers

        request.setResponseCode(503)
        request.setHeader(b"retry-after", b"60")
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        for name, value in security_headers().items():
            request.setHeader(name.encode(), value.encode())
        return MAINTENANCE.encode()


class BoundedRequest(Request):
    """A twisted.web request whose body may not exceed its site's ``max_body``."""

    refused = False
    received = 0

    def _limit(self) -> int:
        return self.channel.site.max_body

    def gotLength(self, length):
        if length is not None and length > self._limit():
            self._refuse()
            return
        super().gotLength(length)

    def handleContentChunk(self, data):
        if self.refused:
            return
        self.received += len(data)
        if self.received > self._limit():
            self._refuse()
            return
        super().handleContentChunk(data)

    def process(self):
        if not self.refused:
            super().process()

    def _refuse(self) -> None:
        from .http import security_headers

        self.refused = True
        self.content = io.BytesIO()
        body = json.dumps({"error": f"the request body is larger than {self._limit()} bytes", "status": 413}).encode()
        head = [b"HTTP/1.1 413 Payload Too Large", b"content-type: application/json; charset=utf-8",
                b"content-length: %d" % len(body), b"connection: close"]
        head += [f"{name}: {value}".encode() for name, value in security_headers().items()]
        self.channel.transport.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        self.channel.loseConnection()


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
        site = ServiceSite(PauseGuard(self.build_root(), self, Maintenance()), requestFactory=BoundedRequest)
        site.max_body = cfg["max_body"]
        self.listening = await listen_tcp(self.ctx, site, cfg["host"], cfg["port"])

    async def stop(self) -> None:
        await stop_listening(self.ctx, self.listening)
        self.listening = None

    @property
    def address(self) -> str:
        return port_address(self.listening) if self.listening else ""
