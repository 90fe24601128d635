"""The rules page's "how new messages reach me" form over real HTTP: the
choices become the mailbox's read-to-me Sieve rule and are shown back; a bad
number is refused in place (400) and changes nothing; clearing the form
removes the rule; nobody sets another user's."""

from __future__ import annotations

from tests.integration.was.was_site import add_users
from ums.db.models import mailboxes
from ums.sieve import delivery as conversions
from ums.store import rules


async def _mailbox(site, owner: str, address: str) -> int:
    async with site.ctx.db.begin() as conn:
        return (await conn.execute(mailboxes.insert().values(address=address, owner_id=site.user_ids[owner]))
                ).inserted_primary_key[0]


async def _rule(site, box: int) -> str | None:
    async with site.ctx.db.connect() as conn:
        return (await rules.scripts_named(conn, conversions.RULE_NAME, [box])).get(box)


async def test_read_new_faxes_to_my_phone_is_saved_as_a_sieve_rule_and_shown_back(site):
    box = await _mailbox(site, "user", "user@ums.local")
    client = await site.logged_in("user")
    form = {"read_media": "fax", "read_phone": "010-1234-5678", "fax_copy_to": "", "fax_mail_to": "me@home.example"}
    saved = await client.post_form(f"/rules/{box}/read-to-me", form, page="/rules")
    assert saved.status == 303

    assert conversions.conversions_of(await _rule(site, box)) == [
        conversions.Conversion("fax", "tel:01012345678"), conversions.Conversion("fax", "mailto:me@home.example")]
    page = (await client.get("/rules")).text
    assert 'value="01012345678"' in page and 'value="me@home.example"' in page
    assert '<option value="fax" selected>' in page

    refused = await client.post_form(f"/rules/{box}/read-to-me", {**form, "read_phone": "call me maybe"},
                                     page="/rules")
    assert refused.status == 400 and "nothing was saved" in refused.text
    assert "a number has only digits" in refused.text
    assert "tel:01012345678" in await _rule(site, box)

    cleared = await client.post_form(f"/rules/{box}/read-to-me", {"read_media": "fax"}, page="/rules")
    assert cleared.status == 303 and await _rule(site, box) is None


async def test_nobody_sets_another_users_delivery_choices(site):
    box = await _mailbox(site, "operator", "ops@ums.local")
    client = await site.logged_in("user")
    reply = await client.post_form(f"/rules/{box}/read-to-me", {"read_media": "fax", "read_phone": "0101234"},
                                   page="/rules")
    assert reply.status == 404 and await _rule(site, box) is None


async def test_the_form_in_chromium_saves_and_shows_the_choice(tmp_path, sqlite_url, start_suite, browser):
    from tests.browser.test_was_browser import add_mailbox, login, start_was

    suite, base = await start_was(tmp_path, sqlite_url, start_suite)
    user_ids = await add_users(suite.ctx.db)
    await add_mailbox(suite.ctx.db, user_ids["user"])
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    try:
        await login(page, base, "user")
        await page.goto(base + "/rules")
        form = page.locator("form.read-to-me")
        await form.locator("select[name=read_media]").select_option("fax")
        await form.locator("input[name=read_phone]").fill("010-9876-5432")
        await form.locator("button[name=save]").click()
        await page.wait_for_load_state("networkidle")
        assert "Delivery choices saved" in await page.locator(".flash").inner_text()
        form = page.locator("form.read-to-me")
        assert await form.locator("input[name=read_phone]").input_value() == "01098765432"
        assert await form.locator("select[name=read_media]").input_value() == "fax"
    finally:
        await page.close()
