"""The HTTP layer shared by the services (EPS and WAS), on twisted.web.

* :mod:`ums.web.edge` — the guarded site (limits and credentials judged from
  the headers before the body; timeouts), health, pause guard, listening;
* :mod:`ums.web.routing` — the one :class:`Router`;
* :mod:`ums.web.errors` — the one :class:`HttpError` (and :class:`Refusal`,
  the same error answered before the body);
* :mod:`ums.web.responses` — the one JSON writer and the one error body;
* :mod:`ums.web.credentials` — the one API-key parser and key lookup.

Why not Klein (werkzeug routing on twisted.web): its routing runs when its
resource renders, after the body is in, while the edge must know a route's
body limit and scope from the headers first — the gate would have had to
call werkzeug's map itself and keep the per-route facts (roles, CSRF, scope,
limit) beside it, and every handler would have been wrapped from asyncio
coroutines into Deferreds and out again. Klein would have replaced the
smallest part (matching) and added a second way to answer errors; one
shared module is smaller and keeps the edge and the router one thing.
"""

from .credentials import KeyCheck, checked_key, judge, presented_key, unauthorized
from .edge import (Gate, GuardedChannel, GuardedRequest, GuardedSite, Health, PauseGuard, ServiceSite, admission,
                   listen_tcp, port_address, stop_listening)
from .errors import HttpError, Refusal, too_large
from .responses import JSON_TYPE, XML_TYPE, error_body, error_payload, json_body, json_bytes, render_error, write_json, xml_document
from .routing import Match, Route, Router

__all__ = [
    "JSON_TYPE", "XML_TYPE",
    "Gate", "GuardedChannel", "GuardedRequest", "GuardedSite", "Health", "HttpError", "KeyCheck", "Match",
    "PauseGuard", "Refusal", "Route", "Router", "ServiceSite", "admission", "checked_key", "error_body",
    "error_payload", "json_body", "json_bytes", "listen_tcp", "port_address", "judge", "presented_key", "render_error", "stop_listening", "too_large",
    "unauthorized", "write_json", "xml_document",
]
