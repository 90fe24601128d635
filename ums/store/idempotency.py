"""Answers remembered under a client's ``Idempotency-Key`` (WAS ``/api/v1`` POSTs).

A request is remembered per *owner* — ``"system:<name>"`` for an API key,
``"user:<id>"`` for a web session — under the key the client chose, with the
SHA-256 of its method, path and body (:func:`request_hash`) and the answer it
got (status and a JSON payload). The contract:

* :func:`find` gives the remembered request of (owner, key), or None;
* :func:`remember` stores one in the caller's transaction, so the answer is
  remembered exactly when the work it answers for is committed. When a twin
  request committed the same (owner, key) first, it raises
  :class:`AlreadyRemembered` (from a savepoint, so the caller's transaction
  is still usable — but the caller should roll back its own work and answer
  from :func:`find`);
* :func:`purge` forgets requests older than a cut-off.

Replaying or refusing (same key, other body) is the caller's decision: this
module only stores and finds.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import idempotent_requests
from ..errors import UmsError
from . import as_utc

MAX_KEY = 128
MAX_OWNER = 128


class AlreadyRemembered(UmsError):
    """A request under idempotency key {key!r} was committed meanwhile."""


def request_hash(method: str, path: str, body: bytes) -> str:
    """SHA-256 (hex) of a request's method, path (with its query) and body."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode("utf-8", "replace")):
        digest.update(part + b"\n")
    digest.update(body)
    return digest.hexdigest()


async def find(conn: AsyncConnection, owner: str, key: str) -> dict | None:
    """The remembered request of ``owner`` under ``key``: request_hash, status,
    response, created_at (aware UTC) — or None."""
    row = (await conn.execute(
        select(idempotent_requests.c.request_hash, idempotent_requests.c.status,
               idempotent_requests.c.response, idempotent_requests.c.created_at)
        .where(idempotent_requests.c.owner == owner[:MAX_OWNER], idempotent_requests.c.idempotency_key == key)
    )).first()
    if row is None:
        return None
    found = dict(row._mapping)
    found["created_at"] = as_utc(found["created_at"])
    return found


async def remember(conn: AsyncConnection, owner: str, key: str, digest: str, status: int, response,
                   now: datetime) -> None:
    """Store the answer to ``owner``'s request under ``key``; raises
    :class:`AlreadyRemembered` when that (owner, key) is already stored."""
    try:
        async with conn.begin_nested():
            await conn.execute(insert(idempotent_requests).values(
                owner=owner[:MAX_OWNER], idempotency_key=key, request_hash=digest, status=status,
                response=response, created_at=now))
    except IntegrityError:
        raise AlreadyRemembered(key=key) from None


async def purge(conn: AsyncConnection, before: datetime) -> int:
    """Forget requests remembered before ``before``; returns how many."""
    result = await conn.execute(delete(idempotent_requests).where(idempotent_requests.c.created_at < before))
    return result.rowcount
