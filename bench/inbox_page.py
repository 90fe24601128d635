"""How fast the inbox answers over a big mailbox: MESSAGES messages (default
1,070) filed in one mailbox and 1,000 in another, then the median of 20 runs
of each query a page makes — the first page, the last page (the oldest), a
search for a Korean word that is in one body, a word in every body — each
with its count, as :func:`ums.store.web.inbox_page` runs them for a mailbox
user. On SQLite, or on PostgreSQL with UMS_BENCH_DATABASE_URL.

    python bench/inbox_page.py [MESSAGES]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from email.message import EmailMessage

from ums.clock import utcnow
from ums.db import connect
from ums.db.migrate import upgrade
from ums.store import mailbox, users, web

RUNS = 20


def raw(number: int, unique: str = "") -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = f"customer{number}@example.com", "support@ums.local"
    message["Subject"], message["Message-ID"] = f"Ticket {number:05d}", f"<t{number}@example.com>"
    message.set_content(f"문의 {number}번: 지난달 카드 명세서의 잔액을 확인해 주세요. {unique}\n" * 20)
    return message.as_bytes()


async def fill(db, count: int, owner_id: int) -> None:
    now = utcnow()
    async with db.begin() as conn:
        support = await mailbox.assign(conn, "support@ums.local", owner_id, now)
        sales = await mailbox.ensure(conn, "sales@ums.local", now)
        for start in range(0, count, 500):
            await mailbox.store_messages(conn, [
                {"mailbox_id": support["id"], "sender": f"customer{n}@example.com", "recipient": "support@ums.local",
                 "subject": f"Ticket {n:05d}", "raw": (body := raw(n, "환불신청서" if n == 1 else "")),
                 "size": len(body), "received_at": now - timedelta(minutes=count - n)}
                for n in range(start + 1, min(count, start + 500) + 1)])
        await mailbox.store_messages(conn, [
            {"mailbox_id": sales["id"], "sender": "lead@example.com", "recipient": "sales@ums.local",
             "subject": f"Lead {n}", "raw": (body := raw(100_000 + n)), "size": len(body), "received_at": now}
            for n in range(1000)])


async def median_ms(db, owner_id: int, wanted: web.InboxQuery) -> tuple[float, int]:
    times, total = [], 0
    for _ in range(RUNS):
        started = time.perf_counter()
        async with db.connect() as conn:
            _, total = await web.inbox_page(conn, owner_id, wanted)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, total


async def main(count: int) -> None:
    url = os.environ.get("UMS_BENCH_DATABASE_URL")
    with tempfile.TemporaryDirectory() as folder:
        db = connect(url or f"sqlite+aiosqlite:///{folder}/bench.db")
        await upgrade(db)
        async with db.begin() as conn:
            owner_id = await users.create(conn, f"agent{time.time_ns()}", "x", "user")
        started = time.perf_counter()
        await fill(db, count, owner_id)
        print(f"{db.engine.dialect.name}: filed {count + 1000:,} messages (indexed) in {time.perf_counter() - started:.1f} s")
        last = (count - 1) // 50 * 50
        for name, wanted in (("first page", web.InboxQuery()), ("last page", web.InboxQuery(offset=last)),
                             ("search 환불신청서 (1 body)", web.InboxQuery(search="환불신청서")),
                             ("search 잔액 (every body)", web.InboxQuery(search="잔액"))):
            ms, total = await median_ms(db, owner_id, wanted)
            print(f"  {name}: {ms:.1f} ms (median of {RUNS}), {total:,} matching")
        await db.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1070))
