"""A campaign end to end: queue → render → SMTP sink → CDR rows, CSV files, billing."""

import csv
import os
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from pass_support import add_template, pass_config, seed_audience, start_campaign, states
from tests.helpers import eventually
from ums import billing
from ums.cdr import CSV_COLUMNS
from ums.db.models import cdr
from ums.clock import utcnow

#: the soak's size: the must-show 10,000 with UMS_SOAK=1, else 2,000 (``-m slow``)
SOAK_RECIPIENTS = int(os.environ.get("UMS_PASS_RECIPIENTS", "10000" if os.environ.get("UMS_SOAK") == "1" else "2000"))
#: the short form every run makes: the same checks on a campaign of 200
SHORT_RECIPIENTS = 200


@pytest.mark.parametrize("recipients", [
    pytest.param(SHORT_RECIPIENTS, id="short"),
    pytest.param(SOAK_RECIPIENTS, id="soak", marks=pytest.mark.slow),
])
async def test_campaign_reaches_every_recipient_once_with_cdr(tmp_path, database_url, pass_db, sink, start_suite,
                                                              recipients):
    await seed_audience(pass_db, recipients)
    await add_template(pass_db)
    config = pass_config(tmp_path, database_url, sink.port)
    await start_suite(config, ["pass"])
    campaign_id = await start_campaign(pass_db)

    async def all_sent():
        return (await states(pass_db, campaign_id)).get("sent", 0) == recipients

    await eventually(all_sent, timeout=120, interval=0.5)
    ids = sink.handler.message_ids()
    assert len(set(ids)) == recipients
    async with pass_db.connect() as conn:
        finals = await conn.scalar(select(func.count()).select_from(cdr).where(cdr.c.final.is_(True)))
        cost = await conn.scalar(select(func.sum(cdr.c.cost)))
    assert finals == recipients
    assert Decimal(cost) == Decimal("1.5") * recipients

    rcpt, message_id, data = sink.handler.received[0]
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in data
    assert b"Subject: =?utf-8?b?" in data  # (광고) label, encoded

    async def csv_complete():
        files = list((tmp_path / "var" / "cdr").glob("*.csv"))
        return files and sum(1 for f in files for _ in open(f)) - len(files) == recipients

    await eventually(csv_complete, timeout=20)
    for path in (tmp_path / "var" / "cdr").glob("*.csv"):
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            assert tuple(reader.fieldnames) == CSV_COLUMNS
            rows = list(reader)
    assert {row["disposition"] for row in rows} == {"ANSWERED"}

    period = utcnow().astimezone(ZoneInfo("Asia/Seoul")).strftime("%Y-%m")
    async with pass_db.connect() as conn:
        lines = await billing.report(conn, period, "campaign", "Asia/Seoul")
    assert [(line.key, line.delivered, line.cost) for line in lines] == [
        ("spring", recipients, Decimal("1.5") * recipients)
    ]
