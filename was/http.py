"""WAS's request and response on twisted.web, for its async handlers.

Handlers are coroutines ``async def handler(page: Page) -> Response``, routed
by the shared :class:`ums.web.Router` (a route names its roles, CSRF and the
API-key scope it needs); the app (:mod:`was.app`) checks login, role, scope
and CSRF, runs the handler on the shared loop and :func:`write` writes its
response. JSON is written by :func:`ums.web.json_bytes`, errors with the one
error body (:func:`error_response`). Every response — an error, a crash or
the maintenance page too — carries :data:`SECURITY_HEADERS` (CSP with
``frame-ancestors 'self'``, ``X-Frame-Options``, no sniffing, a same-origin
referrer policy, no caching).

Nothing a client sends makes this layer fail: header values are bytes that
:meth:`Page.header` decodes without raising, and :func:`path_id` turns a path
segment into a database id or None (not digits, or too large for a BIGINT).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, urlsplit

from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ums.web import JSON_TYPE, HttpError, error_body, json_bytes

log = logging.getLogger("ums.was")

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-src 'self'; frame-ancestors 'self'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
#: sent with every response (a response's own headers may add to the CSP, never drop frame-ancestors)
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "SAMEORIGIN",
    "cache-control": "no-store",
}
#: the largest id a BIGINT column holds
MAX_ID = 2**63 - 1
_ID = re.compile(r"[0-9]{1,19}")


def path_id(text: str) -> int | None:
    """``text`` as a row id: ASCII digits within a BIGINT, else None (a 404 for the caller)."""
    if not _ID.fullmatch(text or ""):
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None


def security_headers(csp: str | None = None) -> dict[str, str]:
    """:data:`SECURITY_HEADERS` with ``csp`` (default :data:`CSP`), which always
    forbids framing by other sites."""
    policy = csp or CSP
    if "frame-ancestors" not in policy:
        policy = policy.rstrip("; ") + "; frame-ancestors 'self'"
    return {**SECURITY_HEADERS, "content-security-policy": policy}


@dataclass
class Response:
    body: bytes | str = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    cookies: list[str] = field(default_factory=list)

    @property
    def data(self) -> bytes:
        return self.body.encode("utf-8") if isinstance(self.body, str) else self.body


def redirect(location: str, status: int = 303) -> Response:
    return Response(b"", status, headers={"location": location})


def json_response(payload, status: int = 200) -> Response:
    return Response(json_bytes(payload), status, JSON_TYPE)


def error_response(error: HttpError, xml: bool = False) -> Response:
    """``error`` as the one error body (:func:`ums.web.error_body`), JSON or XML, with its headers."""
    body, content_type = error_body(error, xml)
    return Response(body, error.status, content_type, headers=dict(error.headers))


@dataclass
class Page:
    """One request as the handlers see it."""

    raw: object                      # the twisted.web request
    app: object                      # the WebApp (config, db, templates)
    method: str
    path: str
    query: dict[str, str]
    params: dict[str, str] = field(default_factory=dict)
    session: dict | None = None

    @property
    def user(self) -> dict | None:
        return self.session

    @property
    def client(self) -> str:
        peer = self.raw.getClientAddress()
        return getattr(peer, "host", "") or "unknown"

    def header_bytes(self, name: str) -> bytes:
        """The last value of header ``name`` as sent (b"" when absent)."""
        values = self.raw.requestHeaders.getRawHeaders(name.lower().encode("ascii"))
        return values[-1] if values else b""

    def header(self, name: str) -> str:
        """Header ``name`` as text; bytes that are not UTF-8 become U+FFFD."""
        return self.header_bytes(name).decode("utf-8", "replace")

    @property
    def body(self) -> bytes:
        self.raw.content.seek(0)
        return self.raw.content.read()

    @property
    def form(self) -> dict[str, str]:
        """Form fields (urlencoded or multipart), the last value of each name."""
        fields = {}
        for key, values in (self.raw.args or {}).items():
            name = key.decode("utf-8", "replace")
            if name in self.query and self.method != "POST":
                continue
            fields[name] = values[-1].decode("utf-8", "replace") if values else ""
        return fields

    def form_list(self, name: str) -> list[str]:
        return [v.decode("utf-8", "replace") for v in (self.raw.args or {}).get(name.encode(), [])]

    def file(self, name: str) -> bytes | None:
        values = (self.raw.args or {}).get(name.encode())
        return values[-1] if values else None

    def wants_xml(self) -> bool:
        kind = self.header("content-type").lower()
        accept = self.header("accept").lower()
        return "xml" in kind or ("xml" in accept and "json" not in accept) or self.query.get("format") == "xml"


class Dispatcher(Resource):
    """The twisted.web leaf that hands every request to the app's router."""

    isLeaf = True

    def __init__(self, app):
        super().__init__()
        self.app = app

    def getChildWithDefault(self, path, request):
        return self  # the router sees the whole path

    def render(self, request):
        future = asyncio.ensure_future(self.app.handle(request))
        Deferred.fromFuture(future).addErrback(self._crash, request)
        return NOT_DONE_YET

    def _crash(self, failure, request):
        log.error("unhandled error", extra={"error": failure.getErrorMessage()})
        if not request.finished and not request._disconnected:
            request.setResponseCode(500)
            for name, value in security_headers().items():
                request.setHeader(name.encode(), value.encode())
            request.write(b"Internal error")
            request.finish()


def write(request, response: Response) -> None:
    if request._disconnected:
        return
    request.setResponseCode(response.status)
    request.setHeader(b"content-type", response.content_type.encode())
    own = {name.lower(): value for name, value in response.headers.items()}
    headers = security_headers(own.pop("content-security-policy", None))
    headers.update(own)   # a response may loosen caching (static files), never the CSP's frame-ancestors
    for name, value in headers.items():
        request.setHeader(name.encode(), value.encode("latin-1", "replace"))
    for cookie in response.cookies:
        request.responseHeaders.addRawHeader(b"set-cookie", cookie.encode())
    data = response.data
    request.setHeader(b"content-length", str(len(data)).encode())
    if request.method != b"HEAD":
        request.write(data)
    request.finish()


def split_url(uri: bytes) -> tuple[str, dict[str, str]]:
    parts = urlsplit(uri.decode("utf-8", "replace"))
    return parts.path or "/", dict(parse_qsl(parts.query, keep_blank_values=True))


def quoted(text: str) -> str:
    return quote(text, safe="")
