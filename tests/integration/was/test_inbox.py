"""The unified inbox over real HTTP: listing, filters, fax pages, voice audio, flags, reply."""

from __future__ import annotations

import io

from PIL import Image
from was_site import add_mailbox

from ums.db.models import deliveries


async def test_inbox_lists_filters_and_opens_each_medium(site):
    ids = await add_mailbox(site.ctx.db, site.user_ids["user"])
    client = await site.logged_in("user")
    listing = await client.get("/inbox")
    assert all(subject in listing.text for subject in ("Your statement", "Fax from", "Voice mail from"))
    faxes = await client.get("/inbox?media=fax")
    assert "Fax from" in faxes.text and "Your statement" not in faxes.text

    fax_page = await client.get(f"/inbox/{ids['fax']}")
    assert fax_page.text.count('class="fax-page"') == 2
    png = await client.get(f"/inbox/{ids['fax']}/fax/1.png")
    assert png.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(png.body)).size == (850, 1100)

    audio = await client.get(f"/inbox/{ids['voice']}/audio")
    assert audio.headers["Content-Type"] == "audio/wav" and audio.body[:4] == b"RIFF"

    # opening marks read: the opened fax and voice mail drop out of the unread filter
    unread = await client.get("/inbox?flag=unseen")
    assert "Fax from" not in unread.text and "Your statement" in unread.text


async def test_another_user_cannot_open_my_messages(site):
    ids = await add_mailbox(site.ctx.db, site.user_ids["user"])
    other = await site.logged_in("marketer")
    assert (await other.get(f"/inbox/{ids['email']}")).status == 404
    assert "Your statement" not in (await other.get("/inbox")).text


async def test_body_is_sanitised_and_served_under_a_no_script_policy(site):
    ids = await add_mailbox(site.ctx.db, site.user_ids["user"], "http://tracker.example")
    client = await site.logged_in("user")
    body = await client.get(f"/inbox/{ids['email']}/body")
    assert "script-src" not in body.headers["Content-Security-Policy"]
    assert "default-src 'none'" in body.headers["Content-Security-Policy"]
    assert "sandbox" in body.headers["Content-Security-Policy"]
    assert "Hello from the bank" in body.text
    page = await client.get(f"/inbox/{ids['email']}")
    assert "1 remote image not loaded" in page.text


async def test_reply_and_fax_forward_queue_deliveries(site):
    ids = await add_mailbox(site.ctx.db, site.user_ids["user"])
    client = await site.logged_in("user")
    reply = await client.post_form(f"/inbox/{ids['email']}/respond",
                                   {"mode": "reply", "channel": "email", "to": "attacker@evil.example",
                                    "subject": "Re: Your statement", "body": "Thanks"},
                                   page=f"/inbox/{ids['email']}/respond?mode=reply")
    assert reply.status == 303
    forward = await client.post_form(f"/inbox/{ids['voice']}/respond",
                                     {"mode": "forward", "channel": "fax", "to": "+82 2 777 0200",
                                      "subject": "Fwd: voice mail", "body": "See attached"},
                                     page=f"/inbox/{ids['voice']}/respond?mode=forward")
    assert forward.status == 303
    async with site.ctx.db.connect() as conn:
        rows = [dict(r._mapping) for r in await conn.execute(deliveries.select().order_by(deliveries.c.id))]
    assert [(r["channel"], r["recipient"], r["state"]) for r in rows] == [
        ("email", "attacker@evil.example", "queued"), ("fax", "+82 2 777 0200", "queued")]
    assert rows[1]["variables"]["attach_mailbox_message"] == ids["voice"]
