"""Login, logout and the login rate limit."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from ums.security import new_secret, verify_password
from ums.store import sessions, users

from ..app import ALL_ROLES, router
from ..http import Page, redirect

log = logging.getLogger("ums.was")


def safe_next(target: str) -> str:
    """Only local paths, so the login form cannot bounce users to another site."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


@router.get("/login", roles=None)
async def login_form(page: Page):
    return page.app.render(page, "login.html", next=safe_next(page.query.get("next", "/")))


async def lockout_left(page: Page, username: str) -> int:
    """Seconds until this user name / client may try again (0: now)."""
    cfg = page.app.config
    now = page.app.now()
    async with page.app.db.connect() as conn:
        count, latest = await sessions.recent_failures(
            conn, username, page.client, now - timedelta(seconds=cfg["login_window"])
        )
    if count < cfg["login_max_failures"] or latest is None:
        return 0
    left = (latest + timedelta(seconds=cfg["login_lockout"]) - now).total_seconds()
    return max(0, int(left + 0.999))


@router.post("/login", roles=None, csrf=False)
async def login(page: Page):
    form = page.form
    username, password = form.get("username", "").strip(), form.get("password", "")
    target = safe_next(form.get("next", "/"))
    wait = await lockout_left(page, username)
    if wait:
        log.warning("login refused: too many failures", extra={"username": username, "client": page.client})
        response = page.app.render(
            page, "login.html", status=429, next=target, username=username,
            message=f"Too many failed logins. Try again in {wait} seconds.",
        )
        response.headers["retry-after"] = str(wait)
        return response
    async with page.app.db.connect() as conn:
        user = await users.get_by_name(conn, username)
    ok = user is not None and not user["disabled"] and await asyncio.to_thread(
        verify_password, password, user["password_hash"]
    )
    now = page.app.now()
    if not ok:
        async with page.app.db.begin() as conn:
            await sessions.record_failure(conn, username, page.client, now)
        log.info("login failed", extra={"username": username, "client": page.client})
        return page.app.render(
            page, "login.html", status=401, next=target, username=username,
            message="Wrong user name or password.",
        )
    token = new_secret(32)
    async with page.app.db.begin() as conn:
        await sessions.create(conn, token, user["id"], new_secret(24), now, now + page.app.session_length)
        await sessions.clear_failures(conn, username)
        await sessions.purge_expired(conn, now)
    log.info("login", extra={"username": username, "client": page.client})
    response = redirect(target)
    response.cookies.append(page.app.cookie(page, token, int(page.app.session_length.total_seconds())))
    return response


@router.post("/logout", roles=ALL_ROLES)
async def logout(page: Page):
    token = page.raw.getCookie(b"ums_session")
    if token:
        async with page.app.db.begin() as conn:
            await sessions.delete_by_token(conn, token.decode("ascii", "replace"))
    response = redirect("/login")
    response.cookies.append(page.app.cookie(page, "", 0))
    return response


@router.get("/", roles=ALL_ROLES)
async def home(page: Page):
    role = page.user["role"]
    return redirect({"operator": "/services", "marketer": "/campaigns"}.get(role, "/inbox"))
