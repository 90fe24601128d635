"""Mailboxes per user over real HTTP, on SQLite and PostgreSQL: who sees which
mailbox in the pages and the API, the inbox's paging, sort and search (Korean
included), conversations, the Sent folder's delivery states, and the Users
page's assignment with its refusals."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from email.message import EmailMessage
from urllib.parse import quote

from sqlalchemy import update
from was_site import api_key

from ums.db.models import deliveries
from ums.store import apikeys, bounces
from ums.store import mailbox as mailbox_store


def message(subject: str, text: str, sender: str = "kim@example.com", message_id: str | None = None,
            in_reply_to: str | None = None, html: str | None = None) -> bytes:
    found = EmailMessage()
    found["From"], found["To"], found["Subject"] = sender, "support@ums.local", subject
    if message_id:
        found["Message-ID"] = message_id
    if in_reply_to:
        found["In-Reply-To"] = in_reply_to
    found.set_content(text)
    if html:
        found.add_alternative(html, subtype="html")
    return found.as_bytes()


async def assign(site, address: str, role: str) -> None:
    admin = await site.logged_in("admin")
    reply = await admin.post_form("/admin/mailboxes", {"address": address, "username": role}, page="/admin/users")
    assert reply.status == 303, reply.text


async def file(site, address: str, raws: list[bytes], start=None) -> list[int]:
    """Store messages in ``address``'s mailbox, one a minute from ``start`` (oldest first)."""
    start = start or site.ctx.clock() - timedelta(days=1)
    ids = []
    async with site.ctx.db.begin() as conn:
        box = await mailbox_store.ensure(conn, address, site.ctx.clock())
        for number, raw in enumerate(raws):
            subject = re.search(rb"Subject: (.*)", raw).group(1).decode()
            ids.append(await mailbox_store.store_message(
                conn, mailbox_id=box["id"], sender="kim@example.com", recipient=address, subject=subject,
                size=len(raw), raw=raw, received_at=start + timedelta(minutes=number)))
    return ids


def count_line(text: str) -> str:
    return re.search(r'id="count">([^<]*)<', text).group(1)


async def test_a_user_reads_only_the_mailboxes_given_to_them_in_pages_and_the_api(site):
    await assign(site, "support@ums.local", "user")
    await assign(site, "sales@ums.local", "marketer")
    support = await file(site, "support@ums.local", [message("Card question", "카드 문의")])
    sales = await file(site, "sales@ums.local", [message("Sales lead", "견적 문의")])
    user = await site.logged_in("user")
    listing = await user.get("/inbox")
    assert "Card question" in listing.text and "Sales lead" not in listing.text
    assert (await user.get(f"/inbox/{sales[0]}")).status == 404
    assert (await user.get(f"/inbox/{sales[0]}/body")).status == 404
    assert count_line((await user.get("/inbox?mailbox=sales@ums.local")).text) == "0 messages"
    assert "Sales lead" not in (await user.get("/inbox?q=" + quote("문의"))).text

    admin = await site.logged_in("admin")
    everything = await admin.get("/inbox")
    assert "Card question" in everything.text and "Sales lead" in everything.text
    assert '<td class="mailbox">sales@ums.local</td>' in everything.text
    assert "Card question" not in (await admin.get("/inbox?mailbox=sales@ums.local")).text

    # the API: a mailbox key made for a user reads that user's mailboxes, a key made for nobody none
    async with site.ctx.db.begin() as conn:
        _, users_key = await apikeys.create(conn, "crm", site.ctx.clock(), ["mailbox"], user_id=site.user_ids["user"])
    nobodys_key = await api_key(site.ctx, "crm", ["mailbox"])
    read = json.loads((await user.get("/api/v1/mailbox", **{"x-api-key": users_key})).body)
    assert [(row["id"], row["mailbox"]) for row in read["message"]] == [(support[0], "support@ums.local")]
    assert read["total"] == 1
    assert json.loads((await site.client().get("/api/v1/mailbox", **{"x-api-key": users_key,
                                                                      "accept": "application/json"})).body)[
        "message"][0]["subject"] == "Card question"
    none = json.loads((await site.client().get("/api/v1/mailbox", **{"x-api-key": nobodys_key})).body)
    assert none == {"total": 0, "message": []}
    as_user = json.loads((await user.get("/api/v1/mailbox?q=" + quote("견적"))).body)
    assert as_user["total"] == 0
    as_admin = json.loads((await admin.get("/api/v1/mailbox")).body)
    assert {row["mailbox"] for row in as_admin["message"]} == {"support@ums.local", "sales@ums.local"}


async def test_the_inbox_pages_sorts_and_searches_body_text_in_korean(site):
    await assign(site, "support@ums.local", "user")
    raws = [message(f"Ticket {n:03d}", f"문의 {n}번: 잔액 확인 요청입니다. 100% sure_thing") for n in range(1, 121)]
    raws[41] = message("Ticket 042", "", html="<p>카드 <b>연회비를</b> 환불해 주세요</p><script>x=1</script>")
    await file(site, "support@ums.local", raws)
    user = await site.logged_in("user")
    first = await user.get("/inbox")
    assert count_line(first.text) == "1–50 of 120" and "Ticket 120" in first.text and "Ticket 070" not in first.text
    last = await user.get("/inbox?page=3")
    assert count_line(last.text) == "101–120 of 120" and "Ticket 001" in last.text
    oldest_first = await user.get("/inbox?sort=received&dir=asc")
    assert oldest_first.text.index("Ticket 001") < oldest_first.text.index("Ticket 002")
    by_subject = await user.get("/inbox?sort=subject&dir=desc")
    assert by_subject.text.index("Ticket 120") < by_subject.text.index("Ticket 119")

    # a word of an HTML-only body, with its particle (연회비를), and words that must all match
    for query, expected in (("연회비", "1–1 of 1"), ("환불해 카드", "1–1 of 1"), ("잔액", "1–50 of 119"),
                            ("ticket 042", "1–1 of 1"), ("KIM@EXAMPLE", "1–50 of 120"),
                            ("x=1", "0 messages"), ("100%", "1–50 of 119"), ("%", "1–50 of 119"),
                            ("e_t", "1–50 of 119"), ("s_re", "0 messages")):
        found = await user.get("/inbox?q=" + quote(query))
        assert count_line(found.text) == expected, query
    assert "Ticket 042" in (await user.get("/inbox?q=" + quote("연회비"))).text

    for bad in ("page=0", "page=abc", "sort=colour", "dir=sideways", "media=pigeon", "flag=odd", "q=" + "x" * 201):
        reply = await user.get("/inbox?" + bad)
        assert reply.status == 400, bad
    assert (await user.get("/inbox?page=9")).status == 404
    assert site.suite.services["was"].app.request_counts.get(500, 0) == 0


async def test_a_conversation_and_the_sent_folder_follow_the_delivery(site):
    await assign(site, "support@ums.local", "user")
    [question] = await file(site, "support@ums.local", [
        message("Where is my card?", "Ordered two weeks ago.", message_id="<q1@customer.example>")])
    user = await site.logged_in("user")
    form = await user.get(f"/inbox/{question}/respond?mode=reply")
    assert "From <strong>support@ums.local</strong>" in form.text
    sent = await user.post_form(f"/inbox/{question}/respond", {
        "mode": "reply", "channel": "email", "to": "kim@example.com", "subject": "Re: Where is my card?",
        "body": "Posted yesterday."}, page=f"/inbox/{question}/respond?mode=reply")
    assert sent.status == 303
    async with site.ctx.db.connect() as conn:
        [delivery] = [dict(row._mapping) for row in await conn.execute(deliveries.select())]
    assert delivery["variables"]["in_reply_to"] == "<q1@customer.example>"
    assert delivery["variables"]["personal"] is True
    # the customer answers the reply with In-Reply-To only: it joins the same conversation
    [answer] = await file(site, "support@ums.local", [
        message("Re: Re: Where is my card?", "Got it, thanks.", in_reply_to=delivery["message_id"])],
        start=site.ctx.clock())

    box = await user.get("/inbox?folder=Sent")
    [entry] = [int(found) for found in re.findall(r'data-sent="(\d+)"', box.text)]
    assert '<span class="state queued"' in box.text and "kim@example.com" in box.text
    page = await user.get(f"/inbox/{answer}")
    assert page.text.count('<tr class="') >= 3 and "Conversation" in page.text
    thread = re.search(r'href="(/inbox\?[^"]*thread=[^"]+)"', (await user.get("/inbox")).text).group(1)
    assert count_line((await user.get(thread.replace("&amp;", "&"))).text) == "1–3 of 3"

    async def state() -> dict:
        return json.loads((await user.get(f"/inbox/states?ids={entry}")).body)[str(entry)]

    assert (await state())["state"] == "queued"
    async with site.ctx.db.begin() as conn:
        await conn.execute(update(deliveries).where(deliveries.c.id == delivery["id"]).values(
            state="sent", finished_at=site.ctx.clock()))
    assert (await state())["state"] == "sent"
    async with site.ctx.db.begin() as conn:
        await bounces.mark_bounced(conn, delivery["id"], "550 5.1.1", "550 5.1.1 no such user", site.ctx.clock())
    assert await state() == {"state": "bounced", "detail": "550 5.1.1 no such user"}
    assert '<span class="state bounced"' in (await user.get("/inbox?folder=Sent")).text

    # another user learns nothing of it
    other = await site.logged_in("marketer")
    assert json.loads((await other.get(f"/inbox/states?ids={entry}")).body) == {}
    assert (await other.get(f"/inbox/{entry}")).status == 404
    assert (await user.get("/inbox/states?ids=1,x")).status == 400


async def test_the_users_page_assigns_and_refuses_with_a_reason(site):
    admin = await site.logged_in("admin")
    for fields, says in (
        ({"address": "help@elsewhere.example", "username": "user"}, "not at a domain MAS receives mail for"),
        ({"address": "help+vip@ums.local", "username": "user"}, "assign that address"),
        ({"address": "help@ums.local", "username": "ghost"}, "No user named"),
        ({"address": "", "username": "user"}, "email address"),
    ):
        reply = await admin.post_form("/admin/mailboxes", fields, page="/admin/users")
        assert reply.status == 400 and says in reply.text, (fields, reply.status)
    assert (await admin.post_form("/admin/mailboxes/unassign", {"address": "ghost@ums.local"},
                                  page="/admin/users")).status == 400
    await assign(site, "help@ums.local", "user")
    await assign(site, "billing@ums.local", "user")
    page = await admin.get("/admin/users")
    assert '<td class="mailboxes" data-user="user">billing@ums.local, help@ums.local</td>' in page.text
    user = await site.logged_in("user")
    assert (await user.post_form("/admin/mailboxes", {"address": "x@ums.local", "username": "user"},
                                 page="/inbox")).status == 403
    assert (await admin.post_form("/admin/mailboxes/unassign", {"address": "help@ums.local"},
                                  page="/admin/users")).status == 303
    assert "help@ums.local" not in re.search(r'data-user="user">([^<]*)<', (await admin.get("/admin/users")).text
                                             ).group(1)


async def test_an_api_send_cannot_set_what_only_was_sets(site):
    key = await api_key(site.ctx)
    client = site.client()
    for name, value in (("attach_mailbox_message", 1), ("document", "/etc/passwd"), ("personal", True)):
        body = json.dumps({"channel": "email", "recipient": "a@example.com", "subject": "Hi", "body": "x",
                           "variables": {name: value}}).encode()
        reply = await client.request("POST", "/api/v1/send", body, {"content-type": "application/json",
                                                                     "x-api-key": key})
        assert reply.status == 422 and name in json.loads(reply.body)["reason"], name
    async with site.ctx.db.connect() as conn:
        assert (await conn.execute(deliveries.select())).first() is None
