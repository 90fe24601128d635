"""The working pages over real HTTP: Sieve rules with errors in place, EPS
services, billing (CDR search, CSV download, monthly report), address books
with consent reconfirmation, and campaigns with times in the site's zone and a
chart drawn from real deliveries."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta, timezone

from sqlalchemy import update

from ums.db.models import cdr, deliveries, mailboxes
from ums.outbox import SendRequest, enqueue
from ums.store import addressbooks
from ums.store import services as service_store
from ums.store import templates as template_store
from ums.store import web
from ums.clock import utcnow

UTC = timezone.utc
GOOD_RULE = 'require "fileinto";\nif header :contains "subject" "invoice" {\n  fileinto "Invoices";\n}\n'
BAD_RULE = 'require "fileinto";\nif header :contains "subject" "invoice" {\n  fileinto "Invoices"\n}\n'


async def _mailbox(site, owner: str, address: str) -> int:
    async with site.ctx.db.begin() as conn:
        return (await conn.execute(mailboxes.insert().values(address=address, owner_id=site.user_ids[owner]))
                ).inserted_primary_key[0]


# --- rules ----------------------------------------------------------------------------------

async def test_a_bad_sieve_script_is_refused_with_its_line_and_column_in_place(site):
    box = await _mailbox(site, "user", "user@ums.local")
    client = await site.logged_in("user")
    saved = await client.post_form(f"/rules/{box}", {"script": GOOD_RULE}, page="/rules")
    assert saved.status == 303 and "Rules+saved" in saved.headers["Location"]

    refused = await client.post_form(f"/rules/{box}", {"script": BAD_RULE}, page="/rules")
    assert refused.status == 400
    # the error names line 4 (the "}" where ";" was expected) and sits under the script, which is kept
    found = re.search(r"Line (\d+), column (\d+):", refused.text)
    assert found and found.group(1) == "4", refused.text
    assert f'data-error-line="4" data-error-column="{found.group(2)}"' in refused.text
    assert 'fileinto &#34;Invoices&#34;\n}' in refused.text or 'fileinto &quot;Invoices&quot;\n}' in refused.text
    assert "Nothing was saved" in refused.text
    # the rule in force is still the good one
    async with site.ctx.db.connect() as conn:
        [stored] = await web.rule_mailboxes(conn, site.user_ids["user"])
    assert stored["script"] == GOOD_RULE


async def test_nobody_edits_another_users_rules(site):
    box = await _mailbox(site, "operator", "ops@ums.local")
    client = await site.logged_in("user")
    assert "ops@ums.local" not in (await client.get("/rules")).text
    reply = await client.post_form(f"/rules/{box}", {"script": GOOD_RULE}, page="/rules")
    assert reply.status == 404


# --- services -------------------------------------------------------------------------------

async def test_an_operator_stops_and_resumes_a_service(site):
    now = utcnow()
    async with site.ctx.db.begin() as conn:
        await service_store.register(conn, "deposit-alert", "deposit", "transactional", 3,
                                     {"name": "deposit-alert", "channels": ["email"]}, now, "ops")
    client = await site.logged_in("operator")
    listing = await client.get("/services")
    assert "deposit-alert" in listing.text and ">active<" in listing.text
    detail = await client.get("/services/deposit-alert")
    assert '"channels"' in detail.text and "Stop" in detail.text

    stopped = await client.post_form("/services/deposit-alert/stop", page="/services/deposit-alert")
    assert stopped.status == 303
    async with site.ctx.db.connect() as conn:
        assert (await service_store.get(conn, "deposit-alert"))["state"] == "stopped"
    assert "Resume" in (await client.get("/services/deposit-alert")).text

    resumed = await client.post_form("/services/deposit-alert/resume", page="/services/deposit-alert")
    assert resumed.status == 303
    async with site.ctx.db.connect() as conn:
        assert (await service_store.get(conn, "deposit-alert"))["state"] == "active"
    assert (await client.get("/services/no-such-service")).status == 404


# --- billing --------------------------------------------------------------------------------

def _cdr_row(start: datetime, medium: str, dst: str, disposition: str = "ANSWERED", pages=None,
             billsec: int = 0, cost: str = "10", final: bool = True, source: str = "statement") -> dict:
    return {"attempt": 1, "final": final, "dst": dst, "start": start, "end": start, "duration": billsec,
            "billsec": billsec, "disposition": disposition, "medium": medium, "pages": pages, "cost": cost,
            "source": source, "uniqueid": f"{dst}-{start:%H%M}"}


async def _add_cdr(site) -> None:
    rows = [
        # 2026-05-01 in Seoul runs from 2026-04-30 15:00 UTC to 2026-05-01 15:00 UTC
        _cdr_row(datetime(2026, 4, 30, 14, 59, tzinfo=UTC), "email", "before@example.com"),
        _cdr_row(datetime(2026, 4, 30, 15, 0, tzinfo=UTC), "fax", "+82212345678", pages=3, cost="90"),
        _cdr_row(datetime(2026, 5, 1, 14, 59, tzinfo=UTC), "voice", "+821011112222", billsec=42, cost="40"),
        _cdr_row(datetime(2026, 5, 1, 15, 0, tzinfo=UTC), "email", "after@example.com", "FAILED", cost="0"),
        _cdr_row(datetime(2026, 5, 2, 1, 0, tzinfo=UTC), "email", "retry@example.com", "NO ANSWER", final=False),
    ]
    async with site.ctx.db.begin() as conn:
        await conn.execute(cdr.insert(), rows)


async def test_cdr_search_reads_dates_as_site_local_days(site):
    await _add_cdr(site)
    client = await site.logged_in("operator")
    page = await client.get("/billing?from=2026-05-01&to=2026-05-01")
    assert page.status == 200
    table = page.text.split('id="cdr"')[1]
    assert "+82212345678" in table and "+821011112222" in table
    assert "before@example.com" not in table and "after@example.com" not in table
    # shown in Seoul time: 15:00 UTC is midnight
    assert "2026-05-01 00:00" in table and "2026-05-01 23:59" in table

    faxes = await client.get("/billing?from=2026-05-01&to=2026-05-02&medium=fax")
    table = faxes.text.split('id="cdr"')[1]
    assert "+82212345678" in table and "+821011112222" not in table
    assert (await client.get("/billing?from=yesterday")).status == 400


async def test_the_cdr_csv_download_has_the_searched_rows_in_asterisk_order(site):
    await _add_cdr(site)
    client = await site.logged_in("operator")
    download = await client.get("/billing/cdr.csv?from=2026-05-01&to=2026-05-02")
    assert download.status == 200
    assert "attachment" in download.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert list(rows[0])[:5] == ["accountcode", "src", "dst", "dcontext", "clid"]
    assert [row["dst"] for row in rows] == ["+82212345678", "+821011112222", "after@example.com",
                                            "retry@example.com"]
    assert rows[0]["pages"] == "3" and rows[1]["billsec"] == "42"


async def test_the_monthly_report_sums_final_records_of_the_sites_month(site):
    await _add_cdr(site)
    client = await site.logged_in("admin")
    report = await client.get("/billing?month=2026-05")
    section = report.text.split('id="billing-report"')[1].split("</table>")[0]
    cells = [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<t[hd][^>]*>.*?</t[hd]>", section)]
    # May in Seoul: the fax, the voice call and the failed email; the April email and the retry are out
    total = cells[cells.index("Total"):]
    assert total == ["Total", "3", "2", "3", "42", "130.00"]
    assert (await client.get("/billing?month=May")).status == 400
    # a marketer sees none of it
    assert (await (await site.logged_in("marketer")).get("/billing/cdr.csv")).status == 403


# --- address books and consent ----------------------------------------------------------------

async def test_contacts_are_added_searched_and_consent_reconfirmed(site):
    client = await site.logged_in("marketer")
    created = await client.post_form("/contacts/books", {"name": "Branch customers", "scope": "shared"},
                                     page="/contacts")
    book_id = int(created.headers["Location"].split("book=")[1])
    old = (utcnow() - timedelta(days=800)).strftime("%Y-%m-%d")
    saved = await client.post_form("/contacts/save", {
        "name": "Park Jisoo", "email": "jisoo@example.com", "fax": "02-555-0101", "grade": "VIP",
        "consent": "yes", "consent_source": "branch", "consent_date": old, "books": str(book_id),
    }, page="/contacts/new")
    assert saved.status == 303
    contact_path = saved.headers["Location"].split("?")[0]

    listing = await client.get(f"/contacts?book={book_id}&q=jisoo")
    assert "Park Jisoo" in listing.text and ">reconfirm<" in listing.text
    assert "Park Jisoo" not in (await client.get("/contacts?q=nobody-like-this")).text
    view = await client.get(contact_path)
    assert "Reconfirmation needed" in view.text and "counts as absent" in view.text

    today = utcnow().strftime("%Y-%m-%d")
    contact_id = contact_path.rsplit("/", 1)[1]
    await client.post_form("/contacts/save", {
        "id": contact_id, "name": "Park Jisoo", "email": "jisoo@example.com", "fax": "02-555-0101",
        "grade": "VIP", "consent": "yes", "consent_source": "phone call", "consent_date": today,
    }, page=contact_path)
    view = await client.get(contact_path)
    assert "Consent is current" in view.text and "Reconfirmation needed" not in view.text
    async with site.ctx.db.connect() as conn:
        consent = await addressbooks.latest_consent(conn, int(contact_id))
    assert consent["source"] == "phone call" and consent["granted"]


async def test_a_bad_contact_is_refused_with_the_reason(site):
    client = await site.logged_in("user")
    refused = await client.post_form("/contacts/save", {"name": "No way", "email": "not-an-address"},
                                     page="/contacts/new")
    assert refused.status == 400 and "bad email address" in refused.text


async def test_a_personal_book_is_private(site):
    owner = await site.logged_in("user")
    made = await owner.post_form("/contacts/books", {"name": "My people", "scope": "personal"}, page="/contacts")
    book_id = made.headers["Location"].split("book=")[1]
    assert (await owner.get(f"/contacts?book={book_id}")).status == 200
    other = await site.logged_in("operator")
    assert (await other.get(f"/contacts?book={book_id}")).status == 404
    assert "My people" not in (await other.get("/contacts")).text


# --- campaigns ------------------------------------------------------------------------------

async def test_send_at_is_read_in_the_site_zone_and_the_chart_shows_outcomes(site):
    now = utcnow()
    async with site.ctx.db.begin() as conn:
        await template_store.save(conn, "notice", "email", now, kind="transactional", subject="Notice",
                                  body_text="Hello {{ name }}")
        await addressbooks.ensure_book(conn, "Everyone")
    client = await site.logged_in("marketer")
    made = await client.post_form("/campaigns", {"name": "may-notice", "kind": "transactional",
                                                 "template": "email:notice", "books": "Everyone",
                                                 "schedule_at": "2030-05-01T09:00"})
    assert made.status == 303, made.text
    campaign_id = int(made.headers["Location"].rsplit("/", 1)[1])
    async with site.ctx.db.connect() as conn:
        from ums import campaigns as campaign_api

        stored = await campaign_api.find(conn, str(campaign_id))
    schedule_at = stored["schedule_at"]
    assert (schedule_at if schedule_at.tzinfo else schedule_at.replace(tzinfo=UTC)) == datetime(2030, 5, 1, 0, 0,
                                                                                                tzinfo=UTC)
    page = await client.get(f"/campaigns/{campaign_id}")
    assert "2030-05-01 09:00" in page.text and "Nothing delivered yet" in page.text

    # finished deliveries at 01:10 and 02:20 UTC: 10:00 and 11:00 in Seoul
    async with site.ctx.db.begin() as conn:
        for index, (state, minute) in enumerate([("sent", 70), ("sent", 75), ("failed", 80), ("sent", 140)]):
            delivery = await enqueue(conn, SendRequest("email", f"p{index}@example.com", template="notice",
                                                       campaign_id=campaign_id), now)
            await conn.execute(update(deliveries).where(deliveries.c.id == delivery).values(
                state=state, finished_at=datetime(2030, 5, 1, tzinfo=UTC) + timedelta(minutes=minute)))
    page = await client.get(f"/campaigns/{campaign_id}")
    chart = page.text.split('id="chart"')[1].split("</svg>")[0]
    assert "2030-05-01 10:00: 2 sent" in chart and "2030-05-01 10:00: 1 failed" in chart
    assert "2030-05-01 11:00: 1 sent" in chart
    assert "by channel: email 4" in page.text
    assert (await client.post_form(f"/campaigns/{campaign_id}/schedule", {"at": "next week"},
                                   page=f"/campaigns/{campaign_id}")).status == 400
