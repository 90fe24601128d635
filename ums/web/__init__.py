"""The HTTP layer shared by the services (EPS and WAS), on twisted.web.

* :mod:`ums.web.edge` — the guarded site (limits and credentials judged from
  the headers before the body; timeouts), health, pause guard, listening;
* :mod:`ums.web.routing` — the one :class:`Router`;
* :mod:`ums.web.errors` — the one :class:`HttpError` (and :class:`Refusal`,
  the same error answered before the body);
* :mod:`ums.web.responses` — the one JSON writer and the one error body;
* :mod:`ums.web.credentials` — the one API-key parser and key lookup.

Why not Klein: its routing (werkzeug) runs when a resource renders, after the
body is in; the edge needs the route's limit and scope from the headers
first, and the handlers are asyncio coroutines on the shared loop, so Klein
would have added a second router to keep in step rather than replace one.
"""

from .credentials import KeyCheck, checked_key, presented_key, unauthorized
from .edge import (Gate, GuardedChannel, GuardedRequest, GuardedSite, Health, PauseGuard, ServiceSite, admission,
                   listen_tcp, port_address, stop_listening)
from .errors import HttpError, Refusal, too_large
from .responses import JSON_TYPE, XML_TYPE, error_body, error_payload, json_body, json_bytes, render_error, write_json, xml_document
from .routing import Match, Route, Router

__all__ = [
    "JSON_TYPE", "XML_TYPE",
    "Gate", "GuardedChannel", "GuardedRequest", "GuardedSite", "Health", "HttpError", "KeyCheck", "Match",
    "PauseGuard", "Refusal", "Route", "Router", "ServiceSite", "admission", "checked_key", "error_body",
    "error_payload", "json_body", "json_bytes", "listen_tcp", "port_address", "presented_key", "render_error", "stop_listening", "too_large",
    "unauthorized", "write_json", "xml_document",
]
