"""A bounce that MAS records before PASS has written the send's result keeps its code."""

from datetime import datetime, timedelta, timezone

from ums.queue.states import StateChange
from ums import cdr as ums_cdr
from ums.channels import Outcome, SENT
from ums.outbox import SendRequest, enqueue
from ums.store import bounces, deliveries


async def test_send_result_written_after_the_bounce_keeps_the_bounce(db, config):
    now = datetime(2026, 11, 23, 3, 0, tzinfo=timezone.utc)
    async with db.begin() as conn:
        delivery_id = await enqueue(conn, SendRequest("email", "gone@bank.example", "notice"), now)
        [claimed] = await conn.run_sync(deliveries.claim, "worker-1", now, now + timedelta(minutes=1), 10)

    async with db.begin() as conn:  # the receiving MTA bounced fast: MAS got the DSN first
        await bounces.mark_bounced(conn, delivery_id, "5.1.1", "user unknown", now)

    outcome = Outcome(SENT, "250", "queued as 1234")
    async with db.begin() as conn:  # then PASS records its (successful) SMTP transaction
        change = StateChange(delivery_id, "sent", 1, now, outcome.code, outcome.detail, now, now)
        row = ums_cdr.attempt_row(claimed, outcome, 1, True, ums_cdr.rate_table(config), now, source="test")
        await conn.run_sync(deliveries.finish, [change], [row])
        stored = await deliveries.get(conn, delivery_id)

    assert stored["state"] == "sent"
    assert stored["bounced_at"] is not None
    assert (stored["last_code"], stored["last_error"]) == ("5.1.1", "user unknown")
