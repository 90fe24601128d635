"""Login, logout and the login rate limit.

The contract:

* ``next`` (where a login lands) is only ever a path on this site
  (:func:`safe_next`): it starts with one ``/`` and, however often it is
  percent-decoded, holds no second leading ``/``, no backslash, no scheme or
  host, no whitespace or control character; anything else lands on ``/``.
* The login form carries a token (login CSRF, double-submit): ``GET /login``
  sets it in the ``ums_login`` cookie (HttpOnly, SameSite=Lax, Secure when
  ``[was] public_url`` is https) and in the form; a ``POST /login`` whose form
  token is missing or differs from the cookie is refused with 403 and a fresh
  form, before the password is even looked at (and it is no failed login).
* A successful login replaces the token cookie by the session cookie.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from datetime import timedelta
from urllib.parse import quote, unquote, urlsplit

from ums.security import new_secret, verify_password
from ums.store import sessions, users
from ums.web import Router

from ..http import Page, redirect
from ..roles import ALL_ROLES

#: a login, logout or password form is small; a bigger body is refused from its headers
LOGIN_BODY = 64 * 1024
router = Router(roles=ALL_ROLES, limit=LOGIN_BODY)

log = logging.getLogger("ums.was")
LOGIN_COOKIE = "ums_login"
LOGIN_TOKEN_SECONDS = 3600
_TOKEN = re.compile(r"[A-Za-z0-9_\-]{16,128}")
_UNSAFE = re.compile(r"[\\\s\x00-\x1f\x7f]")
#: characters kept as they are when ``next`` goes into the Location header
_PATH_SAFE = "/?&=%#:@!$'()*+,;~-._"


def _is_local(target: str) -> bool:
    if not target.startswith("/") or target.startswith("//") or _UNSAFE.search(target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def safe_next(target) -> str:
    """``target`` when it is a path on this site (see the module docstring), else ``/``."""
    if not isinstance(target, str) or not target or len(target) > 2000:
        return "/"
    decoded = target
    for _ in range(4):          # %255C → %5C → \ : every layer must be local
        if not _is_local(decoded):
            return "/"
        deeper = unquote(decoded, errors="replace")
        if deeper == decoded:
            return quote(target, safe=_PATH_SAFE)
        decoded = deeper
    return "/"


def login_token(page: Page) -> str:
    """The token of this browser's login form: the one in its cookie, or a new one."""
    sent = (page.raw.getCookie(LOGIN_COOKIE.encode()) or b"").decode("ascii", "replace")
    return sent if _TOKEN.fullmatch(sent) else new_secret(24)


def token_matches(page: Page) -> bool:
    sent = page.form.get("csrf", "").encode()
    cookie = page.raw.getCookie(LOGIN_COOKIE.encode()) or b""
    return bool(sent) and bool(cookie) and hmac.compare_digest(sent, cookie)


def login_page(page: Page, status: int = 200, **values):
    """The login form with its token (cookie and hidden field)."""
    token = login_token(page)
    response = page.app.render(page, "login.html", status=status, login_token=token, **values)
    response.cookies.append(page.app.cookie(page, token, LOGIN_TOKEN_SECONDS, name=LOGIN_COOKIE))
    return response


@router.get("/login", roles=None)
async def login_form(page: Page):
    return login_page(page, next=safe_next(page.query.get("next", "/")))


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
    if not token_matches(page):
        log.warning("login refused: no or wrong form token", extra={"client": page.client})
        return login_page(page, 403, next=target, username=username,
                          message="This login form has expired or did not come from this site. Please log in again.")
    wait = await lockout_left(page, username)
    if wait:
        log.warning("login refused: too many failures", extra={"username": username, "client": page.client})
        response = login_page(
            page, 429, next=target, username=username,
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
        return login_page(
            page, 401, next=target, username=username,
            message="Wrong user name or password.",
        )
    token = new_secret(32)
    async with page.app.db.begin() as conn:
        await sessions.create(conn, token, user["id"], new_secret(24), now, now + page.app.session_length)
        await sessions.clear_failures(conn, username)
        await sessions.purge_expired(conn, now)
    log.info("login", extra={"username": username, "client": page.client})
    response = redirect(target)
    response.cookies.append(page.app.cookie(page, "", 0, name=LOGIN_COOKIE))
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
