"""A campaign never reaches into somebody's personal address book: naming
alice's personal book in the audience reaches nobody, and a campaign without
books reaches the organisation's contacts (in an organisation or shared book,
or in none) but not the contacts alice keeps only for herself."""

from __future__ import annotations

from sqlalchemy import insert, select

from ums.db.models import deliveries, users
from ums.store import addressbooks, campaigns, utcnow


async def _setup(conn):
    alice = (await conn.execute(insert(users).values(username="alice", password_hash="x", role="marketer"))
             ).inserted_primary_key[0]
    now = utcnow()
    private = await addressbooks.ensure_book(conn, "Alice private", "personal", alice)
    customers = await addressbooks.ensure_book(conn, "Customers", "organisation")
    team = await addressbooks.ensure_book(conn, "Team", "shared")
    for name, book in [("secret", private), ("kim", customers), ("lee", None), ("both", private), ("park", team)]:
        contact = await addressbooks.save_contact(conn, {"name": name, "email": f"{name}@example.com"}, now)
        if book is not None:
            await addressbooks.add_to_book(conn, book, contact)
        if name == "both":  # also in an organisation book: the organisation knows this customer
            await addressbooks.add_to_book(conn, customers, contact)


async def _reached(conn, name: str, audience: dict) -> set[str]:
    campaign_id = await campaigns.insert_campaign(conn, name=name, kind="transactional", channel="email",
                                                  template_name="offer", audience=audience, state="running")
    campaign = await campaigns.get(conn, campaign_id)
    await campaigns.expand_batch(conn, campaign, utcnow(), 1000, "ums.test")
    rows = await conn.execute(select(deliveries.c.recipient).where(deliveries.c.campaign_id == campaign_id))
    return {row.recipient for row in rows}


async def test_campaigns_reach_the_organisations_contacts_and_no_personal_book(db):
    async with db.begin() as conn:
        await _setup(conn)
        assert await _reached(conn, "to-alice-private", {"books": ["Alice private"]}) == set()
        assert await _reached(conn, "to-customers", {"books": ["Customers"]}) == {"kim@example.com",
                                                                                   "both@example.com"}
        assert await _reached(conn, "to-team", {"books": ["Team"]}) == {"park@example.com"}
        assert await _reached(conn, "to-everyone", {}) == {"kim@example.com", "lee@example.com",
                                                           "both@example.com", "park@example.com"}
