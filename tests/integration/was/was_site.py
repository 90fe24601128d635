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
    #: every Set-Cookie header (``headers`` keeps only the last)
    cookies: list = field(default_factory=list)

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
                    return Reply(response.status, dict(response.headers), response.read(),
                                 response.headers.get_all("Set-Cookie") or [])
            except urllib.error.HTTPError as error:
                return Reply(error.code, dict(error.headers), error.read(), error.headers.get_all("Set-Cookie") or [])

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

    async def login(self, username: str, password: str = PASSWORD, next: str = "/") -> Reply:
        """Log in through the form, with the token the login page hands out."""
        token = (await self.get("/login")).csrf()
        return await self.post("/login", {"username": username, "password": password, "next": next, "csrf": token})


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


#: every WAS scope, for tests that use the API with a key
WAS_SCOPES = ["send", "contacts", "campaigns", "mailbox"]


async def api_key(ctx, system: str = "account", scopes=WAS_SCOPES) -> str:
    """A new API key for ``system`` with ``scopes`` (default: every WAS scope)."""
    from ums.store import apikeys

    async with ctx.db.begin() as conn:
        _, key = await apikeys.create(conn, system, ctx.clock(), scopes=scopes)
    return key


async def add_users(db) -> dict[str, int]:
    hashed = hash_password(PASSWORD)
    ids = {}
    async with db.begin() as conn:
        for role in ROLES:
            ids[role] = await users.create(conn, role, hashed, role, display_name=f"{role.title()} Kim",
                                           email=f"{role}@bank.example")
    return ids




# --- mailbox content ------------------------------------------------------------------------

EVIL_HTML = """<html><body>
<h1 id="greeting">Hello from the bank</h1>
<script>window.parent.postMessage('script-ran', '*'); document.title = 'pwned';</script>
<img src="REMOTE/pixel.png" alt="tracker" onerror="window.parent.postMessage('onerror-ran', '*')">
<img src="x" onerror="window.parent.postMessage('onerror-ran', '*')">
<a id="bad-link" href="javascript:window.parent.postMessage('link-ran', '*')">click me</a>
<p onmouseover="alert(1)">Your statement is ready.</p>
</body></html>"""


def evil_email(remote_base: str) -> bytes:
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = "attacker@evil.example"
    message["To"] = "user@ums.local"
    message["Subject"] = "Your statement"
    message["Message-ID"] = "<evil-1@evil.example>"
    message.set_content("Plain version")
    message.add_alternative(EVIL_HTML.replace("REMOTE", remote_base), subtype="html")
    return message.as_bytes()


def fax_tiff(pages: int = 2) -> bytes:
    import io

    from PIL import Image, ImageDraw

    frames = []
    for number in range(pages):
        image = Image.new("1", (850, 1100), 1)
        draw = ImageDraw.Draw(image)
        draw.rectangle((40, 40, 810, 1060), outline=0, width=4)
        draw.text((80, 80), f"FAX PAGE {number + 1}", fill=0)
        frames.append(image)
    out = io.BytesIO()
    frames[0].save(out, "TIFF", save_all=True, append_images=frames[1:], compression="group4")
    return out.getvalue()


def voice_wav(seconds: float = 1.0) -> bytes:
    import io
    import math
    import struct
    import wave

    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 8000)))
                          for i in range(int(8000 * seconds)))
        wav.writeframes(frames)
    return out.getvalue()


def with_attachment(subject: str, sender: str, content_type: str, filename: str, data: bytes) -> bytes:
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, "user@ums.local", subject
    message.set_content(f"{subject} attached.")
    maintype, subtype = content_type.split("/")
    message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes()


async def add_mailbox(db, owner_id: int, remote_base: str = "http://127.0.0.1:9") -> dict[str, int]:
    """A mailbox for ``owner_id`` with an evil HTML email, a 2-page fax and a voice mail."""
    from ums.db.models import mailboxes
    from ums.store import mailbox as mailbox_store

    async with db.begin() as conn:
        box = (await conn.execute(mailboxes.insert().values(address="user@ums.local", owner_id=owner_id))
               ).inserted_primary_key[0]
        ids = {}
        for media, subject, sender, raw, extra in (
            ("email", "Your statement", "attacker@evil.example", evil_email(remote_base), {}),
            ("fax", "Fax from +82 2 555 0100", "+8225550100",
             with_attachment("Fax", "+8225550100", "image/tiff", "fax.tif", fax_tiff()), {"pages": 2}),
            ("voice", "Voice mail from +82 10 1234 5678", "+821012345678",
             with_attachment("Voice mail", "+821012345678", "audio/wav", "message.wav", voice_wav()),
             {"duration": 1.0}),
        ):
            ids[media] = await mailbox_store.store_message(
                conn, mailbox_id=box, media=media, subject=subject, sender=sender, recipient="user@ums.local",
                size=len(raw), raw=raw, folder="INBOX", flags=[], **extra,
            )
    return ids
