"""The unified mailbox's search: how fast it answers over 10,000 messages, and
what keeping its full-text index costs MAS's ingest.

    .venv/bin/python bench/mailbox_search.py [--messages 10000] [--repeat 5]
                                             [--ingest 2000] [--connections 32] [--rounds 3] [--database URL]

Search: ``--messages`` Korean and English messages (varied words, a few
hundred characters each) in 10 mailboxes of 10 users; a mix of queries —
a rare word, a common one, a two-syllable Korean word shorter than a trigram
(matched without the index), two words, a sender — each asked as the owner
of one mailbox and as an admin over all, ranked (``sort=relevance``) with
snippets, the first page of 50 and the total, as WAS asks it
(:func:`ums.store.web.inbox_page`). Prints the median answer.

Ingest: MAS over SMTP on loopback (as ``bench/mas_inbound.py`` measures it)
with the index (the migrated schema: on SQLite the FTS5 table, filled by one
statement per stored batch; on PostgreSQL the pg_trgm GIN index) and without
(that table or index dropped, and the batch without its statement: MAS as it
was before the index), alternating, ``--rounds`` each; the ratio is of the
medians. The machine is shared: figures are noisy.

The output ends with ``median search N ms`` and ``ingest with index: 0.NNx``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mas_inbound import smtp_run  # noqa: E402
from sqlalchemy import text  # noqa: E402

from ums import reactor as ums_reactor  # noqa: E402
from ums.db import connect  # noqa: E402
from ums.db.migrate import upgrade  # noqa: E402
from ums.store import mailbox, utcnow, web  # noqa: E402

WORDS = ("안녕하세요 문의 카드 연회비 계좌 이체 잔액 확인 요청 대출 상환 금리 적금 예금 해지 신청 발급 분실 "
         "재발급 주소 변경 고객 센터 상담 감사합니다 부탁드립니다 결제 승인 취소 한도 조회 수수료 "
         "account card balance transfer loan statement branch payment refund please thanks").split()
RARE = "환불신청서"
BOXES = 10


def body(rng: random.Random, n: int) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(40, 120))]
    if n % 997 == 0:  # a word in about ten messages
        words.insert(rng.randrange(len(words)), RARE)
    return " ".join(words)


def raw_message(n: int, rng: random.Random) -> tuple[str, bytes]:
    box = f"box{n % BOXES}@ums.local"
    raw = (f"From: Customer {n} <c{n}@customer.example>\r\nTo: {box}\r\nSubject: 문의 {n}\r\n"
           f"Message-ID: <s{n}@customer.example>\r\nMIME-Version: 1.0\r\n"
           f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body(rng, n)}\r\n").encode()
    return box, raw


async def fill(db, messages: int) -> dict[str, int]:
    """``messages`` messages in :data:`BOXES` mailboxes, each owned by its own user; user ids by mailbox."""
    from ums.store import users

    rng, now, owners = random.Random(19), utcnow(), {}
    async with db.begin() as conn:
        for number in range(BOXES):
            address = f"box{number}@ums.local"
            owners[address] = await users.create(conn, f"user{number}", "x", "user")
            await mailbox.assign(conn, address, owners[address], now)
        boxes = {box["address"]: box["id"] for box in await mailbox.with_owners(conn)}
    for start in range(0, messages, 500):
        rows = []
        for n in range(start, min(messages, start + 500)):
            address, raw = raw_message(n, rng)
            rows.append({"mailbox_id": boxes[address], "folder": "INBOX", "sender": f"c{n}@customer.example",
                         "recipient": address, "subject": f"문의 {n}", "size": len(raw), "raw": raw,
                         "received_at": now})
        async with db.begin() as conn:
            await mailbox.store_messages(conn, rows)
    return owners


QUERIES = [RARE, "연회비", "환불", "잔액 확인", "c4242@customer", "statement", "재발급"]


async def search_times(db, owners: dict[str, int], repeat: int) -> dict[str, list[float]]:
    """Seconds of each answer, by query (as an admin and as box3@'s owner)."""
    viewers = [None, owners["box3@ums.local"]]
    times: dict[str, list[float]] = {query: [] for query in QUERIES}
    for _ in range(repeat):
        for query in QUERIES:
            for viewer in viewers:
                started = time.perf_counter()
                async with db.connect() as conn:
                    rows, total = await web.inbox_page(conn, viewer, web.InboxQuery(search=query, sort=web.RELEVANCE))
                times[query].append(time.perf_counter() - started)
                assert total >= len(rows)
    return times


async def search_bench(url: str, messages: int, repeat: int) -> float:
    db = connect(url)
    await upgrade(db)
    started = time.perf_counter()
    owners = await fill(db, messages)
    print(f"stored {messages:,} messages in {time.perf_counter() - started:.1f} s")
    async with db.begin() as conn:  # the statistics autovacuum (or SQLite's optimizer) keeps in service
        await conn.execute(text("ANALYZE"))
    async with db.connect() as conn:
        for query in (RARE, "환불", "연회비"):
            _, total = await web.inbox_page(conn, None, web.InboxQuery(search=query))
            print(f"  {query!r} matches {total:,} messages")
    await search_times(db, owners, 1)  # warm the caches
    by_query = await search_times(db, owners, repeat)
    await db.close()
    for query, seconds in by_query.items():
        print(f"  query {query!r}: median {statistics.median(seconds) * 1000:.1f} ms")
    times = sorted(second for seconds in by_query.values() for second in seconds)
    print(f"{len(times)} searches: min {times[0] * 1000:.1f} ms, p90 {times[int(len(times) * 0.9)] * 1000:.1f} ms, "
          f"max {times[-1] * 1000:.1f} ms")
    return statistics.median(times)


async def drop_index(url: str) -> None:
    """The schema without the full-text index (what MAS's ingest costs without it)."""
    db = connect(url)
    await upgrade(db)
    async with db.begin() as conn:
        if conn.dialect.name == "sqlite":
            for trigger in ("delete", "update"):
                await conn.execute(text(f"DROP TRIGGER message_search_{trigger}"))
            await conn.execute(text("DROP TABLE message_search"))
        else:
            await conn.execute(text("DROP INDEX ix_message_bodies_search_trgm"))
    await db.close()


def skip_indexing(conn, digests) -> list:
    """:func:`ums.store.mailbox.search_index_steps` for a schema without the index."""
    return []


#: the PostgreSQL databases this run made (dropped at its end)
MADE: list[str] = []


async def _pg_admin(base: str, *statements: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    conn = await asyncpg.connect(make_url(base).set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def fresh_postgres(base: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    await _pg_admin(base, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
    MADE.append(name)
    return make_url(base).set(database=name).render_as_string(hide_password=False)


async def ingest_rates(args, tmp: Path) -> tuple[float, float]:
    rates: dict[str, list[float]] = {"with index": [], "without index": []}
    for number in range(args.rounds):
        for label in ("without index", "with index") if number % 2 else ("with index", "without index"):
            home = tmp / f"ingest-{number}-{label.replace(' ', '-')}"
            home.mkdir()
            if args.database:
                url = await fresh_postgres(args.database, f"ums_bench_search_{os.getpid()}_{number}_{label.split()[0]}")
            else:
                url = f"sqlite+aiosqlite:///{home}/ums.db"
            indexing = mailbox.search_index_steps
            if label == "without index":  # the schema and the batch as they were before the index
                await drop_index(url)
                mailbox.search_index_steps = skip_indexing
            try:
                rate = await smtp_run(url, home, False, args.ingest, args.connections)
            finally:
                mailbox.search_index_steps = indexing
            rates[label].append(rate)
            print(f"round {number + 1}: MAS ingest {label:13}: {rate:6.0f} messages/s")
    return statistics.median(rates["with index"]), statistics.median(rates["without index"])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5, help="times each query is asked (per viewer)")
    parser.add_argument("--ingest", type=int, default=2000, help="messages per MAS ingest run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="ingest runs with and without the index, alternating")
    parser.add_argument("--database", default="", help="a PostgreSQL URL (fresh databases are made on its server); "
                                                       "default: fresh SQLite files")
    args = parser.parse_args()
    ums_reactor.install(asyncio.get_running_loop())
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores "
          f"(a shared machine: noisy figures)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        url = await fresh_postgres(args.database, f"ums_bench_search_{os.getpid()}") if args.database else \
            f"sqlite+aiosqlite:///{tmp}/search.db"
        try:
            median = await search_bench(url, args.messages, args.repeat)
            with_index, without = await ingest_rates(args, tmp)
        finally:
            if MADE:
                await _pg_admin(args.database, *(f'DROP DATABASE IF EXISTS "{name}"' for name in MADE))
    print(f"MAS ingest, median of {args.rounds}: with index {with_index:.0f} messages/s, "
          f"without {without:.0f} messages/s")
    print(f"median search {median * 1000:.0f} ms")
    print(f"ingest with index: {with_index / without:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
