"""The guarded edge of the HTTP services (WAS and EPS), on twisted.web.

:class:`GuardedSite` is an HTTP edge that holds against hostile clients. Once
a request's headers are in, and before any of its body is read, the site's
:class:`Gate` says how large the body may be and whether the request is let in
(e.g. from its API key); a refusal (:class:`~ums.web.errors.Refusal`) is answered at once with the
error body of :mod:`ums.web.responses` and ``Connection: close``:

* 413 when ``Content-Length`` is over the limit; a chunked body is counted as
  it streams and cut at the limit the same way. At most the limit is ever
  held, in memory (twisted.web's spooling of large bodies to a temporary file
  is turned off);
* whatever the gate refuses (401, 403…), even while the body still streams;
* 408 when a request (headers and body) is not in within ``request_timeout``
  seconds of its first byte, however slowly it trickles; a connection idle for
  ``idle_timeout`` seconds is closed.

After a refusal the connection stops writing, reads and discards what the
client still sends for up to ``linger`` seconds, so the client sees the answer
rather than a reset, then closes. The resource reads the gate's verdict with
:func:`admission`.
"""

from __future__ import annotations

import asyncio
import io
import time

from twisted.internet.error import CannotListenError
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from ums.reactor import deferred_to_future

from .errors import Refusal, too_large
from .responses import json_body


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


# --- the guarded edge ----------------------------------------------------------------

class Gate:
    """What a :class:`GuardedSite` asks about each request once its headers
    are in. This one lets everything in with a body of up to ``max_body``."""

    def __init__(self, max_body: int = 1024 * 1024):
        self.max_body = max_body

    def body_limit(self, method: bytes, path: bytes) -> int:
        """The most bytes of body ``method path`` may carry."""
        return self.max_body

    def admit(self, request, method: bytes, path: bytes):
        """Judge the request from its headers. Raise :class:`Refusal` to refuse
        it at once (before even its size is looked at); else return a verdict
        for the resource (anything), or an asyncio future of one. A verdict
        that is a :class:`Refusal` refuses the request once its declared size
        passed — a future's as soon as it resolves, if the body is still coming."""
        return None


async def admission(request):
    """The gate's verdict on ``request`` (awaited if still pending); None when
    the request did not come through a :class:`GuardedSite`."""
    verdict = getattr(request, "admission", None)
    if isinstance(verdict, asyncio.Future):
        verdict = await asyncio.shield(verdict)
    return verdict


class GuardedRequest(Request):
    """A request that asks the site's gate about itself once its headers are
    in, keeps its body in memory up to the gate's limit, and is refused at once
    (see the module docstring) rather than read further."""

    admission = None
    body_limit = 0
    body_size = 0
    refused = False
    received = False

    def gotLength(self, length):
        self.content = io.BytesIO()
        method, path = self.channel.request_line()
        gate = self.channel.site.gate
        try:
            self.admission = gate.admit(self, method, path)
            if isinstance(self.admission, asyncio.Future):
                self.admission.add_done_callback(self._judged)
            self.body_limit = gate.body_limit(method, path)
            if length is not None and length > self.body_limit:
                raise too_large(self.body_limit)
        except Refusal as refusal:
            self.refuse(refusal)
            return
        if isinstance(self.admission, Refusal):
            self.refuse(self.admission)

    def _judged(self, verdict: asyncio.Future) -> None:
        if verdict.cancelled() or verdict.exception() is not None:
            return  # the resource meets the failure when it awaits the verdict
        if isinstance(verdict.result(), Refusal):
            self.refuse(verdict.result())

    def handleContentChunk(self, data):
        if self.refused:
            return
        self.body_size += len(data)
        if self.body_size > self.body_limit:
            self.refuse(too_large(self.body_limit))
            return
        self.content.write(data)

    def requestReceived(self, command, path, version):
        if self.refused:
            return
        self.received = True
        super().requestReceived(command, path, version)

    def refuse(self, refusal: Refusal) -> None:
        """Answer ``refusal`` now, unless the request is in (the resource answers it then)."""
        if self.refused or self.received or self.channel is None:
            return
        self.refused = True
        self.requestHeaders.removeHeader(b"expect")  # no "100 Continue" after the answer
        self.channel.refuse(refusal)


class GuardedChannel(HTTPChannel):
    """HTTP/1.1 with a deadline for each request and a lingering close after a refusal.

    The deadline costs no timer per request: one check per connection runs at
    most every ``request_timeout`` seconds while requests keep coming, and
    compares against when the current request's first byte came."""

    request_timeout = 30.0
    linger = 2.0
    _started: float | None = None  # monotonic time of the current request's first byte
    _deadline = None
    _lingering = None
    _host = None

    def request_line(self) -> tuple[bytes, bytes]:
        """Method and target of the request whose headers are being read."""
        return getattr(self, "_command", b""), getattr(self, "_path", b"")

    def getHost(self):
        """The local address, asked of the socket once (every request asks for it)."""
        if self._host is None:
            self._host = super().getHost()
        return self._host

    def dataReceived(self, data):
        if self._started is None and not self._handlingRequest:
            self._started = time.monotonic()
            if self._deadline is None:
                self._deadline = self.callLater(self.request_timeout, self._check_deadline)
        super().dataReceived(data)

    def allContentReceived(self):
        self._started = None
        super().allContentReceived()

    def _check_deadline(self) -> None:
        self._deadline = None
        if self._started is None or self._handlingRequest or self._lingering is not None or self.transport is None:
            return  # between requests: the next one's first byte sets a new check
        left = self._started + self.request_timeout - time.monotonic()
        if left > 0:
            self._deadline = self.callLater(left, self._check_deadline)
            return
        refusal = Refusal(408, f"the request was not in within {self.request_timeout:g} seconds")
        self.dataReceived = _drop
        self.transport.write(refusal.response(self.site.refusal_headers))
        self.timeoutConnection()  # closes, and aborts if the client does not let go

    def _disarm(self) -> None:
        self._started = None
        if self._deadline is not None:
            if self._deadline.active():
                self._deadline.cancel()
            self._deadline = None

    def refuse(self, refusal: Refusal) -> None:
        """Answer now, stop writing, drop what still comes in, close after ``linger``."""
        if self._lingering is not None or self.transport is None:
            return
        self._disarm()
        self.setTimeout(None)
        # from now on everything that comes in is dropped, whichever way it comes
        self.dataReceived = self.lineReceived = self.rawDataReceived = self.allContentReceived = _drop
        self._lingering = self.callLater(self.linger, self.transport.abortConnection)
        self.transport.write(refusal.response(self.site.refusal_headers))
        self._networkProducer.resumeProducing()
        self.transport.loseWriteConnection()

    def connectionLost(self, reason):
        self._disarm()
        if self._lingering is not None and self._lingering.active():
            self._lingering.cancel()
        super().connectionLost(reason)


def _drop(*_) -> None:
    pass


class GuardedSite(ServiceSite):
    """A :class:`ServiceSite` whose requests pass ``gate`` (see the module
    docstring); ``refusal_headers`` go with every refusal (a refusal's own
    headers win)."""

    requestFactory = GuardedRequest

    def __init__(self, resource, gate: Gate, idle_timeout: float = 60.0, request_timeout: float = 30.0,
                 linger: float = 2.0, refusal_headers: dict | None = None, **kwargs):
        super().__init__(resource, timeout=idle_timeout, **kwargs)
        self.gate = gate
        self.refusal_headers = dict(refusal_headers or {})
        self.request_timeout = request_timeout
        self.linger = linger

    def protocol(self):  # plain HTTP/1.1 (no TLS here, so no HTTP/2 negotiation)
        return GuardedChannel()

    def buildProtocol(self, addr):
        channel = super().buildProtocol(addr)
        channel.request_timeout = self.request_timeout
        channel.linger = self.linger
        return channel


async def listen_tcp(ctx, factory, host: str, port: int):
    """Listen on the shared reactor; returns the listening port. An address that
    cannot be bound raises the ``OSError`` itself (as asyncio's servers do)."""
    try:
        return ctx.reactor.listenTCP(port, factory, interface=host)
    except CannotListenError as error:
        if isinstance(error.socketError, OSError):
            raise error.socketError from None
        raise OSError(str(error)) from None


def port_address(listening) -> str:
    bound = listening.getHost()
    return f"{bound.host}:{bound.port}"


async def stop_listening(ctx, listening) -> None:
    if listening is not None:
        await deferred_to_future(listening.stopListening(), ctx.loop)
