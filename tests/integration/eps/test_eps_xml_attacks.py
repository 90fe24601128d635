"""Must-show 4: hostile XML gets a 400 with a reason; file contents never leak."""

from sqlalchemy import func, select

from ums.db.models import events

SECRET = "EPS-SECRET-7f3a9c"

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE event [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
]>
<event><type>deposit</type><customer>C1</customer><data><memo>&e;</memo></data></event>"""


async def test_hostile_xml_is_refused_and_the_server_keeps_serving(eps, tmp_path, caplog):
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(SECRET)
    external = (
        f'<?xml version="1.0"?><!DOCTYPE event [<!ENTITY x SYSTEM "file://{secret_file}">]>'
        "<event><type>deposit</type><customer>C1</customer><data><memo>&x;</memo></data></event>"
    ).encode()
    invalid = b"<event><type>deposit</type><customer>C1</customer><occurred>soon</occurred></event>"

    replies = [await eps.post_xml(document) for document in (BOMB, external, invalid)]
    for status, _, body in replies:
        assert status == 400, body
        assert body["reason"]
        assert SECRET not in str(body)
    assert "DTD" in replies[0][2]["reason"] and "DTD" in replies[1][2]["reason"]
    assert "occurred" in replies[2][2]["reason"] and "line 1" in replies[2][2]["reason"]
    assert SECRET not in caplog.text

    status, _, good = await eps.post_xml(b"<event><type>deposit</type><customer>C1</customer></event>")
    assert status == 202
    async with eps.db.connect() as conn:
        stored = [row[0] for row in await conn.execute(select(events.c.payload))]
        assert await conn.scalar(select(func.count()).select_from(events)) == 1
    assert SECRET not in str(stored)
