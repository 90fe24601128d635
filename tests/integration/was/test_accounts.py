"""Login, roles, CSRF and the login rate limit, over real HTTP."""

from __future__ import annotations

from was_site import PASSWORD


async def test_pages_need_a_login_and_the_login_works(site):
    client = site.client()
    reply = await client.get("/inbox")
    assert reply.status == 303 and reply.headers["Location"].startswith("/login")
    bad = await client.login("user", "wrong")
    assert bad.status == 401 and "Wrong user name or password" in bad.text
    good = await client.login("user")
    assert good.status == 303
    cookie = good.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert (await client.get("/inbox")).status == 200


async def test_logout_ends_the_session(site):
    client = await site.logged_in("user")
    page = await client.get("/inbox")
    await client.post("/logout", {"csrf": page.csrf()})
    assert (await client.get("/inbox")).status == 303


async def test_a_marketer_cannot_reach_operator_or_admin_pages(site):
    client = await site.logged_in("marketer")
    for path in ("/services", "/billing", "/admin/users"):
        reply = await client.get(path)
        assert reply.status == 403, path
        assert "your role may not open this page" in reply.text
    assert (await client.get("/campaigns")).status == 200


async def test_a_form_posted_without_its_csrf_token_is_refused(site):
    client = await site.logged_in("admin")
    reply = await client.post("/admin/users", {"username": "intruder", "password": "x" * 12, "role": "admin"})
    assert reply.status == 403 and "security token" in reply.text
    wrong = await client.post("/admin/users", {"username": "intruder", "password": "x" * 12, "role": "admin",
                                               "csrf": "forged"})
    assert wrong.status == 403
    listing = await client.get("/admin/users")
    assert "intruder" not in listing.text
    made = await client.post_form("/admin/users", {"username": "newbie", "password": "x" * 12, "role": "user"})
    assert made.status == 303
    assert "newbie" in (await client.get("/admin/users")).text


async def test_ten_bad_logins_slow_the_next_attempt(sqlite_site):
    client = sqlite_site.client()
    for _ in range(10):
        assert (await client.login("user", "guess")).status == 401
    locked = await client.login("user", PASSWORD)
    assert locked.status == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert "Too many failed logins" in locked.text
    # another user from another client is not affected by this user's lockout... but the
    # same client address is, so a password sprayer cannot just switch names
    assert (await client.login("operator", PASSWORD)).status == 429
