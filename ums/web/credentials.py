"""API keys on HTTP: the one parser of the key a request presents, and the
one key → credential lookup (EPS and WAS both use these).

A request presents a key as ``Authorization: Bearer KEY`` or, when there is
no Bearer authorization, as ``X-Api-Key: KEY``. :func:`presented_key` reads it
from the headers as sent (None: no key); :func:`checked_key` accepts only the
key alphabet (ASCII letters, digits, ``_`` and ``-``, 8–256 characters) and
refuses anything else — bytes that are not UTF-8 or not ASCII included — with
a 401 :class:`~ums.web.errors.Refusal`. A presented key never falls back to
anything else: the caller always learns that its key failed.

:class:`KeyCheck` looks a key up (:func:`ums.store.apikeys.credential_for`) and
remembers the answer for :data:`KEY_CACHE_SECONDS`, so a revoked key stops
working within that time; when a remembered answer runs out, one lookup
refreshes it for every request waiting on that key.
"""

from __future__ import annotations

import asyncio
import re
import time

from ums.store import apikeys

from .errors import Refusal

KEY_CACHE_SECONDS = 5.0
MAX_REMEMBERED = 10_000
KEY_SHAPE = re.compile(r"^[A-Za-z0-9_\-]{8,256}$")
#: sent with every 401 for a key
UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="ums"'}


def unauthorized(reason: str) -> Refusal:
    return Refusal(401, reason, "unauthorized", UNAUTHORIZED_HEADERS)


def judge(credential: apikeys.Credential | None, route) -> apikeys.Credential | Refusal:
    """The verdict on a looked-up key for ``route`` (a :class:`~ums.web.routing.Route`;
    None: no such route, and any key may hear its 404): 401 for an unknown or
    revoked key, 403 when the route needs a scope the key lacks or takes no key."""
    if credential is None:
        return unauthorized("unknown or revoked API key")
    if route is None:
        return credential
    if route.scope is None:
        return Refusal(403, "this API key may not do this: it needs a web login")
    if not credential.allows(route.scope):
        return Refusal(403, f"this API key lacks the {route.scope} scope")
    return credential


def presented_key(request) -> str | None:
    """The key in a twisted.web request's headers, as sent (latin-1 text), or None."""
    scheme, _, raw = (request.getHeader(b"authorization") or b"").strip().partition(b" ")
    if scheme.lower() != b"bearer":
        raw = request.getHeader(b"x-api-key") or b""
    raw = raw.strip()
    return raw.decode("latin-1") if raw else None


def checked_key(key: str) -> str:
    """``key`` if it can be a key; else a 401 :class:`Refusal`."""
    if not KEY_SHAPE.match(key):
        raise unauthorized("malformed API key")
    return key


class KeyCheck:
    """API key → :class:`~ums.store.apikeys.Credential` (None: unknown or
    revoked), remembered for :data:`KEY_CACHE_SECONDS`."""

    def __init__(self, db):
        self.db = db
        self.cache: dict[str, tuple[apikeys.Credential | None, float]] = {}
        self.lookups: dict[str, asyncio.Future] = {}

    def remembered(self, key: str) -> tuple[bool, apikeys.Credential | None]:
        """(True, credential or None) when the answer for ``key`` is fresh; else (False, None)."""
        cached = self.cache.get(key)
        if cached and cached[1] > time.monotonic():
            return True, cached[0]
        return False, None

    async def credential(self, key: str) -> apikeys.Credential | None:
        known, credential = self.remembered(key)
        if known:
            return credential
        lookup = self.lookups.get(key)
        if lookup is None:
            lookup = self.lookups[key] = asyncio.ensure_future(self._look_up(key))
            lookup.add_done_callback(lambda _: self.lookups.pop(key, None))
        return await asyncio.shield(lookup)

    async def _look_up(self, key: str) -> apikeys.Credential | None:
        async with self.db.connect() as conn:
            credential = await apikeys.credential_for(conn, key)
        if len(self.cache) > MAX_REMEMBERED:
            self.cache.clear()
        self.cache[key] = (credential, time.monotonic() + KEY_CACHE_SECONDS)
        return credential
