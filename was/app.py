"""The WAS application: templates, routing, sessions and error pages.

:func:`create_app` is the application factory: each area (``was.pages.*``,
``was.api``) keeps its own :class:`ums.web.Router` (its module's ``router``,
which never imports this module), and the app mounts them all into one.
:class:`WebApp` checks login, role and CSRF for every route before its
handler runs — and, for a request made with an API key, the scope the route
names (:mod:`was.api_auth`). Anything that is not a deliberate refusal
(:class:`ums.web.HttpError`, :class:`UmsError`) is logged and answered 500;
client input must never get there.

Errors under ``/api/``, of ``/unsubscribe`` and for a client that accepts
JSON are the one error body of :mod:`ums.web.responses` —
``{"error": code, "reason": text, "status": n}``, in XML for an XML API
request; other errors are the HTML error page.
"""

from __future__ import annotations

import hmac
import logging
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape

from ums import clock
from ums.errors import UmsError
from ums.store import sessions
from ums.web import HttpError, KeyCheck, Router

from . import api, api_auth
from .http import Page, Response, error_response, redirect, split_url, write
from .pages import (admin, auth, campaigns, compose, contacts, inbox, journeys, metrics, operations, rules, static,
                    tracking, unsubscribe)
from .roles import ADMINS, ALL_ROLES, FINANCE, MARKETERS, OPERATORS

log = logging.getLogger("ums.was")
HERE = Path(__file__).resolve().parent
COOKIE = "ums_session"
#: every area of the site, each with its own ``router``
AREAS = (auth, inbox, compose, contacts, campaigns, journeys, operations, rules, admin, metrics, unsubscribe, tracking,
         static, api)

NAVIGATION = [
    ("Inbox", "/inbox", ALL_ROLES),
    ("Compose", "/compose", ALL_ROLES),
    ("Contacts", "/contacts", ALL_ROLES),
    ("Campaigns", "/campaigns", MARKETERS),
    ("Journeys", "/journeys", MARKETERS),
    ("Dashboard", "/dashboard", OPERATORS),
    ("Services", "/services", OPERATORS),
    ("Billing", "/billing", FINANCE),
    ("Rules", "/rules", ALL_ROLES),
    ("Users", "/admin/users", ADMINS),
]


def make_environment(tz=None) -> Environment:
    """Templates with the ``when`` filter showing times in ``tz`` (the site's zone)."""
    env = Environment(
        loader=FileSystemLoader(str(HERE / "templates")),
        autoescape=select_autoescape(["html", "xml"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    zone = tz or ZoneInfo("UTC")
    env.filters["when"] = lambda value: clock.shown(value, zone)
    env.filters["day"] = lambda value: clock.shown(value, zone, "%Y-%m-%d")
    env.filters["picker"] = lambda value: clock.shown(value, zone, "%Y-%m-%dT%H:%M")
    return env


def site_router() -> Router:
    """One router with every area's routes."""
    return Router().include(*(area.router for area in AREAS))


def create_app(service) -> "WebApp":
    """The WAS application of ``service``, with every area mounted."""
    return WebApp(service, site_router())


class WebApp:
    def __init__(self, service, router: Router):
        self.service = service
        self.ctx = service.ctx
        self.config = self.ctx.config.section("was")
        #: the site's time zone: pickers are read in it and times are shown in it
        self.tz = clock.site_zone(self.ctx.config)
        self.templates = make_environment(self.tz)
        self.router = router
        #: API key → credential, remembered briefly (as EPS does)
        self.keys = KeyCheck(self.ctx.db)
        #: responses by status code, for /metrics
        self.request_counts: dict[int, int] = {}
        #: when this WAS last forgot old Idempotency-Key answers (:func:`was.api.forget_old_answers`)
        self.answers_purged_at = None

    @property
    def db(self):
        return self.ctx.db

    def now(self):
        return self.ctx.clock()

    def render(self, page: Page, template: str, status: int = 200, **values) -> Response:
        nav = [(label, href) for label, href, roles in NAVIGATION if page.user and page.user["role"] in roles]
        body = self.templates.get_template(template).render(
            user=page.user, csrf=(page.session or {}).get("csrf", ""), nav=nav, path=page.path,
            query=page.query, zone_name=str(self.tz), **values,
        )
        return Response(body, status)

    async def handle(self, request) -> None:
        path, query = split_url(request.uri)
        page = Page(request, self, request.method.decode("latin-1"), path, query)
        try:
            response = await self.dispatch(page)
        except HttpError as exc:
            response = self.error(page, exc)
        except UmsError as exc:
            response = self.error(page, HttpError(400, str(exc)))
        except Exception:
            log.exception("request failed", extra={"path": path})
            response = self.error(page, HttpError(500, "Something went wrong on our side; the error is logged."))
        self.request_counts[response.status] = self.request_counts.get(response.status, 0) + 1
        write(request, response)

    async def dispatch(self, page: Page) -> Response:
        if len(page.body) > self.config["max_body"]:
            raise HttpError(413, f"the request body may be at most {self.config['max_body']} bytes")
        if any("\x00" in key or "\x00" in value for key, value in page.query.items()):
            raise HttpError(400, "the query string holds a NUL character")
        route, params, known = self.router.match(page.method, page.path)
        if route is not None and route.limit is not None and len(page.body) > route.limit:
            raise HttpError(413, f"the request body may be at most {route.limit} bytes")
        if route is None:
            raise HttpError(405 if known else 404, "method not allowed" if known else "no such page")
        page.params = params
        if route.roles is not None:
            page.session = await self.load_session(page)
            if page.session is None:
                if page.path.startswith("/api/"):
                    raise HttpError(401, "log in or send an API key")
                return redirect("/login?next=" + quote(page.path, safe="/"))
            self.check_access(page, route)
            if page.method == "POST" and route.csrf and not page.session.get("api"):
                self.check_csrf(page)
        return await route.handler(page)

    @staticmethod
    def check_access(page: Page, route) -> None:
        """A key needs the route's scope; a person needs one of its roles."""
        session = page.session
        if session.get("api"):
            if route.scope is None or route.scope not in session["scopes"]:
                needed = f"the {route.scope!r} scope" if route.scope else "a web login"
                raise HttpError(403, f"this API key may not do this: it needs {needed}")
            return
        if session["role"] not in route.roles:
            raise HttpError(403, "your role may not open this page")

    def check_csrf(self, page: Page) -> None:
        sent = page.form.get("csrf") or page.header("x-csrf-token")
        if not sent or not hmac.compare_digest(sent.encode(), page.session["csrf"].encode()):
            raise HttpError(403, "the form's security token is missing or stale; reload the page and try again")

    async def load_session(self, page: Page) -> dict | None:
        if page.path.startswith("/api/"):
            key_user = await api_auth.from_api_key(self, page)
            if key_user is not None:
                return key_user
        token = page.raw.getCookie(COOKIE.encode())
        if not token:
            return None
        now = self.now()
        async with self.db.begin() as conn:
            found = await sessions.find(conn, token.decode("ascii", "replace"), now)
            if found is not None:
                await sessions.extend(conn, found["id"], now + self.session_length)
                found["owner"] = f"user:{found['user_id']}"
        return found

    @property
    def session_length(self) -> timedelta:
        return timedelta(hours=self.config["session_hours"])

    def cookie(self, page: Page, value: str, max_age: int, name: str = COOKIE) -> str:
        """A ``Set-Cookie`` value: HttpOnly, SameSite=Lax, and Secure when the
        request came over TLS or ``[was] public_url`` is https."""
        secure = page.raw.isSecure() or self.config["public_url"].lower().startswith("https:")
        parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Lax", f"Max-Age={max_age}"]
        if secure:
            parts.append("Secure")
        return "; ".join(parts)

    def error(self, page: Page, error: HttpError) -> Response:
        api_call = page.path.startswith("/api/")
        if api_call or page.path == "/unsubscribe" or "json" in page.header("accept"):
            return error_response(error, xml=api_call and page.wants_xml())
        response = self.render(page, "error.html", status=error.status, status_code=error.status, reason=error.reason)
        response.headers.update(error.headers)
        return response
