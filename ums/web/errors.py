"""The one HTTP error type of the services (EPS and WAS).

:class:`HttpError` is a deliberate answer — a status, a one-line reason for
the client, a short machine-readable code and any headers (``Retry-After``,
``WWW-Authenticate``). Every service writes it with the same body
(:func:`ums.web.responses.error_body`)::

    {"error": "not_found", "reason": "no event 7", "status": 404}

``error`` is the code (stable, for programs), ``reason`` the text (for people),
``status`` repeats the HTTP status. :class:`Refusal` is the same error given
by the guarded edge before a request's body is read (:mod:`ums.web.edge`).
"""

from __future__ import annotations

from ums.errors import UmsError

from .responses import refusal_response

#: the code an error carries when it names none
CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    408: "timeout", 409: "conflict", 413: "too_large", 422: "invalid", 429: "too_many_requests",
    500: "internal", 503: "unavailable",
}


class HttpError(UmsError):
    """HTTP {status}: {reason}"""

    def __init__(self, status: int, reason: str, code: str | None = None, headers: dict | None = None):
        super().__init__(status=status, reason=reason)
        self.status, self.reason = status, reason
        self.code = code or CODES.get(status, "bad_request" if status < 500 else "internal")
        self.headers = dict(headers or {})


class Refusal(HttpError):
    """HTTP {status}: {reason} (answered before the request's body is read)"""

    def response(self, extra_headers: dict | None = None) -> bytes:
        """The whole HTTP/1.1 response, closing the connection."""
        return refusal_response(self, extra_headers)


def too_large(limit: int) -> Refusal:
    return Refusal(413, f"the request body may be at most {limit} bytes")
