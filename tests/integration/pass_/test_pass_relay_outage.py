"""A relay that does not answer is an outage operators see: one WARNING with
the reason, PASS degraded with the last error, the waiting deliveries held
as "relay unreachable" — and back to normal once the relay answers."""

import logging

from pass_support import Sink, SinkHandler, pass_config
from sqlalchemy import select

from tests.helpers import eventually, free_port
from ums.clock import utcnow, zone
from ums.db.models import deliveries
from ums.holds import describe, summarise
from ums.outbox import SendRequest, enqueue
from ums.store import deliveries as queue
from ums.store import templates as template_store


async def test_an_unreachable_relay_is_warned_once_and_shows_as_degraded(
        tmp_path, database_url, pass_db, start_suite, caplog):
    port = free_port()   # nothing listens here yet
    async with pass_db.begin() as conn:
        await template_store.save(conn, "notice", "email", utcnow(), kind="transactional",
                                  subject="안내", body_text="안내드립니다.")
        for n in range(3):
            await enqueue(conn, SendRequest(channel="email", recipient=f"c{n}@example.com", template="notice",
                                            kind="transactional"), utcnow())
    caplog.set_level(logging.INFO, logger="ums.pass")
    suite = await start_suite(pass_config(tmp_path, database_url, port, pass__retry_base="0.2",
                                          pass__retry_max="0.5"), ["pass"])
    service = suite.services["pass"]

    async def retried_a_few_times():
        async with pass_db.connect() as conn:
            attempts = (await conn.execute(select(deliveries.c.attempts))).scalars().all()
        return min(attempts) >= 3

    await eventually(retried_a_few_times, timeout=30, interval=0.2)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "relay unreachable" in r.getMessage()]
    assert len(warnings) == 1 and "unreachable" in warnings[0].error
    assert service.state == "degraded"
    assert f"127.0.0.1:{port}" in service.info()["last_error"]
    async with pass_db.connect() as conn:
        groups = summarise(await queue.pending_holds(conn), utcnow())
    line = " ".join(describe(group, utcnow(), zone("Asia/Seoul")) for group in groups)
    assert "relay unreachable" in line and "next send" in line, line

    sink = await Sink(SinkHandler()).start_on(port)
    try:
        await eventually(lambda: len(sink.handler.received) == 3, timeout=30, interval=0.2)
        await eventually(lambda: service.state == "running", timeout=5)
        assert "last_error" not in service.info()
        assert any("relay reachable again" in r.getMessage() for r in caplog.records)
        assert len([r for r in caplog.records if "relay unreachable" in r.getMessage()]) == 1
    finally:
        await sink.close()
