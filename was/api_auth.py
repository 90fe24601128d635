"""API keys for ``/api/…``: ``X-API-Key`` (or ``Authorization: Bearer``) names
a back-office system; only a hash of each key is stored.

A key acts as the :data:`API_ROLE` and carries the scopes it was granted
(:class:`ums.store.apikeys.Credential`); each API route names the one scope it
needs (``send``, ``contacts``, ``campaigns``, ``mailbox``) and
:meth:`was.app.WebApp.dispatch` refuses a key without it (403). A back-office
key made with the default scopes reaches EPS only, no WAS route.

A key that is presented but unknown, revoked, or not plain ASCII text (bytes
that are not UTF-8 included) is a 401 — the request never falls back to the
session cookie, so a caller always learns that its key failed.
"""

from __future__ import annotations

from .http import HttpError

#: The role API callers act with; API routes list it among their roles.
API_ROLE = "api"
MAX_KEY = 256


def presented_key(page) -> str:
    """The key the request presents ("" for none); 401 when it is not printable ASCII."""
    raw = page.header_bytes("x-api-key")
    authorization = page.header_bytes("authorization")
    if not raw and authorization[:7].lower() == b"bearer ":
        raw = authorization[7:]
    raw = raw.strip()
    if not raw:
        return ""
    if len(raw) > MAX_KEY or not all(0x21 <= byte <= 0x7E for byte in raw):
        raise HttpError(401, "the API key is not a valid key (printable ASCII)")
    return raw.decode("ascii")


async def from_api_key(app, page) -> dict | None:
    """The session of the key the request presents; None when it presents none."""
    key = presented_key(page)
    if not key:
        return None
    from ums.store import apikeys

    async with app.db.connect() as conn:
        credential = await apikeys.credential_for(conn, key)
    if credential is None:
        raise HttpError(401, "unknown or revoked API key")
    return {"id": None, "user_id": None, "username": f"api:{credential.system}", "role": API_ROLE, "api": True,
            "csrf": "", "system": credential.system, "scopes": credential.scopes,
            "owner": f"system:{credential.system}"}
