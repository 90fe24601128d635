"""Address books in a real headless Chromium (issue #13, must-show 4): alice
makes a book shared with bob only, picking him on the contacts page, and keeps
a personal one; bob, logged in in his own browser context, lists, searches,
exports and opens only what alice shared with him."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "was"))

from was_site import PASSWORD, add_users  # noqa: E402

from tests.browser.test_was_browser import login, start_was  # noqa: E402
from ums.security import hash_password  # noqa: E402
from ums.store import users  # noqa: E402


async def add_contact(page, base: str, name: str, email: str, book: str) -> str:
    await page.goto(base + "/contacts/new")
    await page.fill("input[name=name]", name)
    await page.fill("input[name=email]", email)
    await page.select_option("select[name=books]", label=book)
    await page.click("button.primary")
    await page.wait_for_load_state("networkidle")
    return page.url.split("?")[0]


async def make_book(page, base: str, name: str, scope: str, share_with: str | None = None) -> None:
    await page.goto(base + "/contacts")
    form = page.locator("#new-book")
    await form.locator("input[name=name]").fill(name)
    await form.locator("select[name=scope]").select_option(scope)
    if share_with:
        await form.locator("select[name=share_users]").select_option(label=share_with)
    await form.locator("button").click()
    await page.wait_for_load_state("networkidle")


async def test_bob_sees_only_what_alice_shares_with_him_in_the_browser(tmp_path, sqlite_url, start_suite,
                                                                      browser, shot):
    suite, base = await start_was(tmp_path, sqlite_url, start_suite)
    await add_users(suite.ctx.db)
    async with suite.ctx.db.begin() as conn:
        for name in ("alice", "bob"):
            await users.create(conn, name, hash_password(PASSWORD), "user", display_name=name.title())
    alice_context, bob_context = await browser.new_context(), await browser.new_context(accept_downloads=True)
    alice, bob = await alice_context.new_page(), await bob_context.new_page()
    try:
        await login(alice, base, "alice")
        await make_book(alice, base, "Alice private", "personal")
        await make_book(alice, base, "For Bob", "shared", share_with="bob · Bob")
        assert "shared with bob" in await alice.locator("#book-sharing").inner_text()
        private = await add_contact(alice, base, "Private Park", "park@example.com", "Alice private · personal")
        await add_contact(alice, base, "Shared Seo", "seo@example.com", "For Bob · shared")
        await alice.goto(base + "/contacts")
        assert await alice.locator("#contacts a").all_inner_texts() == ["Private Park", "Shared Seo"]
        await shot(alice, "contacts-alice")

        await login(bob, base, "bob")
        await bob.goto(base + "/contacts")
        assert await bob.locator("#contacts a").all_inner_texts() == ["Shared Seo"]
        books = await bob.locator("li.book").all_inner_texts()
        assert len(books) == 1 and "For Bob" in books[0] and "shared with bob" in books[0]
        await shot(bob, "contacts-bob")
        await bob.fill("input[name=q]", "park")
        await bob.click("form.row button")
        await bob.wait_for_load_state("networkidle")
        assert "No contacts match." in await bob.locator("#contacts").inner_text()
        await bob.goto(base + "/contacts")
        async with bob.expect_download() as download_info:
            await bob.click("a[href*='format=csv']")
        exported = Path(await (await download_info.value).path()).read_text(encoding="utf-8")
        assert "Shared Seo" in exported and "Private Park" not in exported
        reply = await bob.goto(private)
        assert reply.status == 404 and "Private Park" not in await bob.content()
    finally:
        await alice_context.close()
        await bob_context.close()
