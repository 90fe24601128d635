"""The login edge in a real headless Chromium: a crafted ``next`` lands on the
site itself, a login form posted from another origin is refused, and another
origin cannot frame WAS pages."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "was"))

from was_site import PASSWORD, add_users  # noqa: E402

from tests.browser.test_was_browser import start_was  # noqa: E402


class Attacker:
    """Another origin on loopback (another port) serving one HTML page."""

    def __init__(self, html: str):
        self.html = html.encode()
        self.server = None

    async def start(self) -> str:
        async def handle(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.0 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: %d\r\n\r\n"
                         % len(self.html) + self.html)
            await writer.drain()
            writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return "http://127.0.0.1:%d/" % self.server.sockets[0].getsockname()[1]

    def close(self):
        self.server.close()


async def test_a_crafted_next_lands_on_the_site(tmp_path, sqlite_url, start_suite, browser, shot):
    suite, base = await start_was(tmp_path, sqlite_url, start_suite)
    await add_users(suite.ctx.db)
    origin = urlsplit(base).netloc
    for target in ("/\\evil.example/x", "//evil.example/x", "/%5Cevil.example", "/%2F%2Fevil.example",
                   "https://evil.example/", "/\t/evil.example"):
        context = await browser.new_context()
        page = await context.new_page()
        try:
            await page.goto(f"{base}/login?next={quote(target, safe='')}")
            await page.fill("input[name=username]", "user")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button.primary")
            await page.wait_for_load_state("networkidle")
            assert urlsplit(page.url).netloc == origin, (target, page.url)
            assert urlsplit(page.url).path == "/inbox", (target, page.url)
        finally:
            await context.close()


async def test_a_login_posted_from_another_site_is_refused_and_framing_is_blocked(tmp_path, sqlite_url, start_suite,
                                                                                 browser, shot):
    suite, base = await start_was(tmp_path, sqlite_url, start_suite)
    await add_users(suite.ctx.db)
    attacker = Attacker(f"""<!doctype html><html><body>
<form id="f" method="post" action="{base}/login">
  <input name="username" value="user"><input name="password" value="{PASSWORD}"><input name="next" value="/">
  <input name="csrf" value="guessed-token-1234567890">
  <button id="go">win a prize</button>
</form>
<iframe name="victim" src="{base}/login" width="600" height="300"></iframe>
</body></html>""")
    evil = await attacker.start()
    context = await browser.new_context()
    page = await context.new_page()
    try:
        await page.goto(base + "/login")            # the browser holds a real login token cookie
        await page.goto(evil)
        await page.wait_for_timeout(500)
        victim = page.frame(name="victim")
        assert victim is not None
        assert await victim.locator("input[name=username]").count() == 0   # not rendered inside another site
        await page.click("#go")
        await page.wait_for_load_state("networkidle")
        assert "did not come from this site" in await page.locator("main").inner_text()
        await shot(page, "login-forged")
        await page.goto(base + "/inbox")
        assert urlsplit(page.url).path == "/login"   # no session was made
    finally:
        attacker.close()
        await context.close()
