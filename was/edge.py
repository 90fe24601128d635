"""WAS's gate on the shared guarded edge (:class:`ums.web.GuardedSite`).

Judged from the headers, before any of the body is read:

* the body limit: the route's own ``limit``, else :data:`API_BODY` under
  ``/api/`` (a JSON or XML document) and ``[was] max_body`` for pages (file
  uploads such as contact imports) — never more than ``[was] max_body``;
* for a route that needs a login, under ``/api/`` and for every POST to a
  page: a request with neither an API key (``/api/`` only) nor a session
  cookie is a 401 at once; a key is looked up (the
  app's :class:`ums.web.KeyCheck`) and an unknown or revoked key is a 401, a
  key lacking the route's scope a 403 — while a body may still be streaming.

A session cookie is only noticed here; :class:`was.app.WebApp` checks it, and
checks everything again for the request it routes.
"""

from __future__ import annotations

import asyncio
from urllib.parse import unquote_to_bytes

from ums.web import Gate, KeyCheck, Router, checked_key, judge, presented_key, unauthorized

#: the most bytes of an /api/ request body (a send's text may be 1,000,000 characters)
API_BODY = 4 * 1024 * 1024


def _path(target: bytes) -> str:
    return unquote_to_bytes(target.split(b"?", 1)[0]).decode("utf-8", "replace")


class WasGate(Gate):
    def __init__(self, router: Router, keys: KeyCheck, max_body: int, cookie: str):
        super().__init__(max_body)
        self.router = router
        self.keys = keys
        self.cookie = cookie.encode("ascii") + b"="

    def _route(self, method: bytes, target: bytes):
        return self.router.match(method.decode("ascii", "replace"), _path(target)).route

    def body_limit(self, method: bytes, path: bytes) -> int:
        route = self._route(method, path)
        if route is not None and route.limit is not None:
            limit = route.limit
        else:
            limit = API_BODY if path.startswith(b"/api/") else self.max_body
        return min(limit, self.max_body)

    def admit(self, request, method: bytes, path: bytes):
        api = path.startswith(b"/api/")
        if not api and method != b"POST":
            return None  # a page asked for without a login is redirected to the login page
        route = self._route(method, path)
        if route is None or route.roles is None:
            return None  # a 404, 405 or public route: the app answers it
        key = presented_key(request) if api else None
        if key is None:
            if self._has_session_cookie(request):
                return None
            raise unauthorized("log in or send an API key")
        known, credential = self.keys.remembered(key)
        if not known:
            return asyncio.ensure_future(self._verdict(checked_key(key), route))
        return judge(credential, route)

    async def _verdict(self, key: str, route):
        return judge(await self.keys.credential(key), route)

    def _has_session_cookie(self, request) -> bool:
        for header in request.requestHeaders.getRawHeaders(b"cookie") or ():
            if any(part.strip().startswith(self.cookie) for part in header.split(b";")):
                return True
        return False
