"""The login form and the headers of every response, over real HTTP: ``next``
never leaves the site, the login form's token is required, security headers
are on every answer (pages, errors, API, static files, the maintenance
page), cookies are Secure when the public address is https, and an oversized
body is refused before it is read."""

from __future__ import annotations

import re
import urllib.parse

import pytest
from was_site import PASSWORD, Site, add_users

from tests.conftest import make_config

OPEN_REDIRECTS = [
    "/\\evil.example/x", "//evil.example", "/%5Cevil.example", "%2F%2Fevil.example", "/%2F%2Fevil.example",
    "/%252F%252Fevil.example", "/%255Cevil.example", "http://evil.example/", "https://evil.example",
    "HTTPS://evil.example", "//evil.example:443/x", "\\\\evil.example", "/\\/evil.example", "/\t/evil.example",
    "/%09/evil.example", "/%0d%0aSet-Cookie:x=1", "javascript:alert(1)", "evil.example", "%2F%5Cevil.example",
    "///evil.example", "/ /evil.example",
]


def same_site(location: str) -> bool:
    parts = urllib.parse.urlsplit(location)
    return (not parts.scheme and not parts.netloc and location.startswith("/") and not location.startswith("//")
            and "\\" not in location and not re.search(r"[\x00-\x20]", location))


@pytest.mark.parametrize("target", OPEN_REDIRECTS)
async def test_next_never_leaves_the_site(sqlite_site, target):
    client = sqlite_site.client()
    reply = await client.login("user", next=target)
    assert reply.status == 303, reply.text
    assert reply.headers["Location"] == "/", (target, reply.headers["Location"])
    form = await client.get("/login?next=" + urllib.parse.quote(target, safe=""))
    found = re.search(r'name="next" value="([^"]*)"', form.text)
    assert found and found.group(1) == "/", (target, found and found.group(1))


async def test_a_local_next_is_kept(sqlite_site):
    client = sqlite_site.client()
    reply = await client.login("user", next="/inbox?folder=INBOX")
    assert reply.status == 303 and reply.headers["Location"] == "/inbox?folder=INBOX"
    bounced = await sqlite_site.client().get("/contacts/new")
    assert bounced.status == 303 and bounced.headers["Location"] == "/login?next=/contacts/new"
    assert same_site(bounced.headers["Location"])


async def test_a_login_post_without_the_forms_token_is_refused(site):
    client = site.client()
    fields = {"username": "user", "password": PASSWORD, "next": "/"}
    bare = await client.post("/login", fields)
    assert bare.status == 403 and not any(c.startswith("ums_session=") for c in bare.cookies)
    assert "did not come from this site" in bare.text
    token = (await client.get("/login")).csrf()
    wrong = await client.post("/login", {**fields, "csrf": token[::-1]})
    assert wrong.status == 403
    # a token from another browser (another cookie) does not count either
    other = site.client()
    theirs = (await other.get("/login")).csrf()
    assert theirs != token
    assert (await client.post("/login", {**fields, "csrf": theirs})).status == 403
    assert (await client.get("/inbox")).status == 303       # still not logged in
    good = await client.post("/login", {**fields, "csrf": token})
    assert good.status == 303 and any(c.startswith("ums_session=") for c in good.cookies)
    assert (await client.get("/inbox")).status == 200


def assert_security_headers(reply, what: str) -> None:
    headers = {name.lower(): value for name, value in reply.headers.items()}
    assert headers.get("x-content-type-options") == "nosniff", what
    assert headers.get("referrer-policy") in ("same-origin", "strict-origin-when-cross-origin", "no-referrer"), what
    assert "frame-ancestors 'self'" in headers.get("content-security-policy", ""), what
    assert headers.get("x-frame-options") == "SAMEORIGIN", what


async def test_every_response_carries_the_security_headers(site):
    anonymous = site.client()
    user = await site.logged_in("user")
    for client, path in ((anonymous, "/login"), (anonymous, "/inbox"), (anonymous, "/no/such/page"),
                         (anonymous, "/static/ums.css"), (anonymous, "/metrics"), (anonymous, "/api/openapi.json"),
                         (anonymous, "/api/v1/mailbox"), (anonymous, "/api/v1/deliveries/" + "9" * 30),
                         (user, "/inbox"), (user, "/admin/users"), (user, "/inbox/999999"), (user, "/api/v1/mailbox")):
        reply = await client.get(path)
        assert_security_headers(reply, f"{path} ({reply.status})")
    bad_json = await user.request("POST", "/api/v1/send", b"{", {"content-type": "application/json"})
    assert_security_headers(bad_json, "POST /api/v1/send")
    assert_security_headers(await anonymous.post("/login", {"username": "x"}), "POST /login")
    await site.suite.services["was"].pause()
    try:
        paused = await anonymous.get("/inbox")
        assert paused.status == 503
        assert_security_headers(paused, "maintenance page")
    finally:
        await site.suite.services["was"].resume()


async def test_cookies_are_secure_when_the_public_address_is_https(tmp_path, sqlite_url, start_suite):
    config = make_config(tmp_path, sqlite_url, was__public_url="https://ums.bank.example")
    suite = await start_suite(config, ["was"])
    site = Site(suite, "http://" + suite.services["was"].address)
    await add_users(suite.ctx.db)
    client = site.client()
    form = await client.get("/login")
    login_cookie = form.headers["Set-Cookie"]
    assert "Secure" in login_cookie and "HttpOnly" in login_cookie
    # a browser on https would send the Secure cookie back: do it by hand over this plain loopback
    value = re.search(r"ums_login=([^;]+)", login_cookie).group(1)
    fields = urllib.parse.urlencode({"username": "user", "password": PASSWORD, "next": "/", "csrf": form.csrf()})
    reply = await client.request("POST", "/login", fields.encode(), {
        "content-type": "application/x-www-form-urlencoded", "cookie": f"ums_login={value}"})
    assert reply.status == 303
    assert reply.cookies and all("Secure" in cookie for cookie in reply.cookies)
    assert any(cookie.startswith("ums_session=") for cookie in reply.cookies)


async def test_cookies_are_not_secure_on_a_plain_http_site(sqlite_site):
    reply = await sqlite_site.client().login("user")
    assert reply.status == 303 and reply.cookies
    assert not any("Secure" in cookie for cookie in reply.cookies)


async def test_an_oversized_body_is_refused_before_it_is_read(tmp_path, sqlite_url, start_suite):
    import asyncio
    import json

    config = make_config(tmp_path, sqlite_url, was__max_body="2000")
    suite = await start_suite(config, ["was"])
    host, port = suite.services["was"].address.split(":")

    async def send(head: bytes, body: bytes = b"") -> tuple[bytes, bytes]:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(head + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)   # the server answers and closes at once
        writer.close()
        return answer.partition(b"\r\n\r\n")[::2]

    # 10 MB announced, 10 bytes sent: the answer comes without waiting for the rest (nor for the key's lookup)
    head, body = await send(b"POST /api/v1/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            b"X-API-Key: " + b"k" * 40 + b"\r\n"
                            b"Content-Length: 10000000\r\n\r\n", b"{" * 10)
    assert head.startswith(b"HTTP/1.1 413") and b"x-frame-options: sameorigin" in head.lower()
    assert "2000 bytes" in json.loads(body)["reason"] and json.loads(body)["error"] == "too_large"
    chunk = b"%x\r\n%s\r\n" % (1500, b"a" * 1500)
    head, _ = await send(b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", chunk * 2)
    assert head.startswith(b"HTTP/1.1 413")
    reply = await Site(suite, "http://" + suite.services["was"].address).client().get("/login")
    assert reply.status == 200
