"""Helpers for WAS tests: a cookie-keeping HTTP client and users for every role."""

from __future__ import annotations

import asyncio
import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from ums.security import hash_password
from ums.store import users

PASSWORD = "correct horse battery"
ROLES = ("admin", "operator", "marketer", "user")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def csrf(self) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', self.text)
        assert found, "no CSRF field on the page"
        return found.group(1)


@dataclass
class Client:
    """A real HTTP client (urllib in a thread) that keeps cookies like a browser."""

    base: str
    jar: http.cookiejar.CookieJar = field(default_factory=http.cookiejar.CookieJar)

    def _opener(self):
        return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect)

    async def request(self, method: str, path: str, data: bytes | None = None, headers: dict | None = None) -> Reply:
        def call():
            request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
            try:
                with self._opener().open(request, timeout=15) as response:
                    return Reply(response.status, dict(response.headers), response.read())
            except urllib.error.HTTPError as error:
                return Reply(error.code, dict(error.headers), error.read())

        return await asyncio.to_thread(call)

    async def get(self, path: str, **headers) -> Reply:
        return await self.request("GET", path, headers=headers)

    async def post(self, path: str, fields: dict | None = None, **headers) -> Reply:
        data = urllib.parse.urlencode(fields or {}, doseq=True).encode()
        headers.setdefault("content-type", "application/x-www-form-urlencoded")
        return await self.request("POST", path, data, headers)

    async def post_form(self, path: str, fields: dict | None = None, page: str | None = None) -> Reply:
        """POST a form with the CSRF token taken from ``page`` (default: the same path)."""
        token = (await self.get(page or path)).csrf()
        return await self.post(path, {**(fields or {}), "csrf": token})

    async def login(self, username: str, password: str = PASSWORD) -> Reply:
        return await self.post("/login", {"username": username, "password": password, "next": "/"})


@dataclass
class Site:
    suite: object
    base: str

    @property
    def ctx(self):
        return self.suite.ctx

    def client(self) -> Client:
        return Client(self.base)

    async def logged_in(self, role: str) -> Client:
        client = self.client()
        reply = await client.login(role)
        assert reply.status == 303, reply.text
        return client


async def add_users(db) -> dict[str, int]:
    hashed = hash_password(PASSWORD)
    ids = {}
    async with db.begin() as conn:
        for role in ROLES:
            ids[role] = await users.create(conn, role, hashed, role, display_name=f"{role.title()} Kim",
                                           email=f"{role}@bank.example")
    return ids


