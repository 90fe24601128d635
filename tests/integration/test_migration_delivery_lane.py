"""Migration 0011: deliveries queued before it get a lane — a campaign's or an
advertising one ``marketing``, the rest ``notice`` — so an upgrade in the
middle of a campaign does not put its backlog ahead of alerts; the downgrade
drops only the lane."""

from sqlalchemy import text

from ums.db.migrate import downgrade, upgrade

BEFORE_LANES = "0010"


async def test_queued_deliveries_get_their_lane_and_the_downgrade_keeps_them(db):
    await downgrade(db, BEFORE_LANES)
    async with db.begin() as conn:
        await conn.execute(text("INSERT INTO campaigns (id, name, channel, template_name, kind, audience, state) "
                                "VALUES (1, 'spring', 'email', 'offer', 'advertising', '{}', 'running')"))
        for number, (campaign, kind) in enumerate(((1, "advertising"), (None, "transactional"),
                                                   (None, "advertising")), start=1):
            await conn.execute(text("INSERT INTO deliveries (id, channel, recipient, campaign_id, kind, state, "
                                    "message_id, token) VALUES (:id, 'email', :to, :campaign, :kind, 'queued', "
                                    ":mid, :token)"),
                               {"id": number, "to": f"c{number}@example.com", "campaign": campaign, "kind": kind,
                                "mid": f"<m{number}@ums.local>", "token": f"t{number}"})
    await upgrade(db)
    async with db.connect() as conn:
        lanes = dict((await conn.execute(text("SELECT id, lane FROM deliveries ORDER BY id"))).all())
    assert lanes == {1: "marketing", 2: "notice", 3: "marketing"}
    await downgrade(db, BEFORE_LANES)
    async with db.connect() as conn:
        assert await conn.scalar(text("SELECT count(*) FROM deliveries")) == 3
        columns = (await conn.execute(text("SELECT * FROM deliveries LIMIT 1"))).keys()
    assert "lane" not in columns
    await upgrade(db)
