"""API keys for ``/api/…``: ``X-API-Key`` (or ``Authorization: Bearer``) names
a back-office system; only a hash of each key is stored."""

from __future__ import annotations

#: The role API callers act with; API routes list it among their roles.
API_ROLE = "api"


def presented_key(page) -> str:
    key = page.header("x-api-key")
    if not key and page.header("authorization").lower().startswith("bearer "):
        key = page.header("authorization")[7:]
    return key.strip()


async def from_api_key(app, page) -> dict | None:
    key = presented_key(page)
    if not key:
        return None
    from ums.store import apikeys

    async with app.db.connect() as conn:
        system = await apikeys.system_for(conn, key)
    if system is None:
        return None
    return {"id": None, "user_id": None, "username": f"api:{system}", "role": API_ROLE, "api": True, "csrf": ""}
