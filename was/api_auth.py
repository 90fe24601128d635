"""API keys for ``/api/…``: a key names a back-office system; only a hash of
each key is stored.

The key is read by the one parser of :mod:`ums.web.credentials`
(``Authorization: Bearer KEY`` or ``X-Api-Key``) and looked up through the
app's :class:`ums.web.KeyCheck` (a revoked key stops working within
:data:`ums.web.credentials.KEY_CACHE_SECONDS`). A key acts as the
:data:`~was.roles.API_ROLE` and carries the scopes it was granted, and the
web user it was made for (``user_id``: whose mailboxes a ``mailbox`` key reads)
(:class:`ums.store.apikeys.Credential`); each API route names the one scope it
needs (``send``, ``contacts``, ``campaigns``, ``mailbox``) and
:meth:`was.app.WebApp.dispatch` refuses a key without it (403). A back-office
key made with the default scopes reaches EPS only, no WAS route.

A key that is presented but unknown, revoked, or malformed (anything but the
key alphabet, bytes that are not UTF-8 included) is a 401 — the request never
falls back to the session cookie, so a caller always learns that its key failed.
"""

from __future__ import annotations

from ums.web import checked_key, presented_key, unauthorized

from .roles import API_ROLE


async def from_api_key(app, page) -> dict | None:
    """The session of the key the request presents; None when it presents none."""
    key = presented_key(page.raw)
    if key is None:
        return None
    credential = await app.keys.credential(checked_key(key))
    if credential is None:
        raise unauthorized("unknown or revoked API key")
    return {"id": None, "user_id": credential.user_id, "username": f"api:{credential.system}", "role": API_ROLE,
            "api": True,
            "csrf": "", "system": credential.system, "scopes": credential.scopes,
            "owner": f"system:{credential.system}"}
