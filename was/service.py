"""The WAS service: the web front end on twisted.web.

The site is the shared guarded edge (:class:`ums.web.GuardedSite`) with
:class:`was.edge.WasGate`: a request body over its limit (``[was] max_body``
for pages, less for ``/api/``) is refused before it is read — a larger
``Content-Length``, or a chunked body that grows past the limit, is answered
413 at once; an ``/api/`` request without a key or login is a 401 from its
headers (the one error body, with the security headers) and the
connection is closed; nothing of it reaches a page. A request whose headers
and body are not in within :data:`REQUEST_TIMEOUT` seconds is answered 408; a
connection silent for 60 seconds is closed (twisted.web's default, as before).
The application is built by :func:`was.app.create_app`.
"""

from __future__ import annotations

from twisted.web.resource import Resource

from ums.service import Service
from ums.web import GuardedSite, PauseGuard, listen_tcp, port_address, stop_listening

from .app import COOKIE, create_app
from .edge import WasGate
from .http import Dispatcher, security_headers

#: seconds a request (headers and body, e.g. a contact file upload) may take to arrive
REQUEST_TIMEOUT = 300.0

MAINTENANCE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>UMS — maintenance</title></head><body>
<h1>UMS is paused for maintenance</h1><p>Please try again in a few minutes.</p></body></html>"""


class Maintenance(Resource):
    isLeaf = True

    def render(self, request):
        request.setResponseCode(503)
        request.setHeader(b"retry-after", b"60")
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        for name, value in security_headers().items():
            request.setHeader(name.encode(), value.encode())
        return MAINTENANCE.encode()


class WebApplicationServer(Service):
    name = "was"
    listeners = (("was", "host", "port"),)

    def __init__(self, ctx, name=None):
        super().__init__(ctx, name)
        self.listening = None
        self.app = None

    def build_root(self) -> Resource:
        self.app = create_app(self)
        return Dispatcher(self.app)

    async def start(self) -> None:
        cfg = self.ctx.config.section("was")
        root = PauseGuard(self.build_root(), self, Maintenance())
        gate = WasGate(self.app.router, self.app.keys, cfg["max_body"], COOKIE)
        site = GuardedSite(root, gate,
                           request_timeout=REQUEST_TIMEOUT,
                           refusal_headers=security_headers())
        with self.listening_on("was", "port") as (host, port):
            self.listening = await listen_tcp(self.ctx, site, host, port)

    async def stop(self) -> None:
        await stop_listening(self.ctx, self.listening)
        self.listening = None

    @property
    def address(self) -> str:
        return port_address(self.listening) if self.listening else ""
