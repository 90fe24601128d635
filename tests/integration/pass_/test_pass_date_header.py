"""A message's Date is the application clock's time when PASS sends it, not the
machine's: under an injected clock (a replayed night, a test) the headers a
customer reads agree with the CDR."""

from __future__ import annotations

import email
import email.policy
from datetime import datetime, timezone

from sqlalchemy import select

from pass_support import add_template, pass_config, seed_audience
from tests.helpers import eventually
from ums.clock import Clock, as_utc
from ums.db.models import cdr
from ums.outbox import SendRequest, enqueue


async def test_date_header_is_the_application_clock(tmp_path, database_url, pass_db, sink, start_suite):
    [contact] = await seed_audience(pass_db, 1)
    await add_template(pass_db, name="alert", kind="transactional")
    clock = Clock(datetime(2026, 3, 1, 14, 30, tzinfo=timezone.utc))   # 23:30 in Seoul, years from today
    await start_suite(pass_config(tmp_path, database_url, sink.port), ["pass"], clock=clock)
    async with pass_db.begin() as conn:
        await enqueue(conn, SendRequest(channel="email", recipient="user0@example.com", template="alert",
                                        contact_id=contact), clock.now)
    await eventually(lambda: len(sink.handler.received) == 1, timeout=30)
    [(_, _, data)] = sink.handler.received
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert message["Date"].datetime == clock.now

    async def final_cdr_start():
        async with pass_db.connect() as conn:
            return await conn.scalar(select(cdr.c.start).where(cdr.c.final.is_(True)))

    assert as_utc(await eventually(final_cdr_start, timeout=10)) == clock.now
