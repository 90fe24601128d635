"""What the frequency caps cost PASS per claim batch: locking a batch's
contacts and reading what they were sent lately (one query), against a queue
holding a week of advertising history. Prints milliseconds per batch.

    .venv/bin/python bench/caps_query.py [--contacts 20000] [--per-contact 10] [--batch 400]
                                          [--database sqlite|postgresql|both]

PostgreSQL uses UMS_TEST_DATABASE_URL (a scratch database is created and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select  # noqa: E402

from bench.pass_campaign import drop_database, prepare_database  # noqa: E402
from ums import caps  # noqa: E402
from ums.db import connect  # noqa: E402
from ums.db.models import contacts, deliveries  # noqa: E402
from ums.store import caps as cap_store  # noqa: E402
from ums.store import contacts as contact_store  # noqa: E402

NOW = datetime(2026, 12, 3, 5, 0, tzinfo=timezone.utc)


async def seed(db, count: int, per_contact: int) -> list[int]:
    rng = random.Random(7)
    async with db.begin() as conn:
        await conn.execute(insert(contacts), [{"customer_id": f"C{n}", "email": f"u{n}@example.com"}
                                              for n in range(count)])
        ids = list((await conn.execute(select(contacts.c.id))).scalars())
        rows = []
        for contact_id in ids:
            for k in range(per_contact):
                finished = NOW - timedelta(seconds=rng.randrange(14 * 86400))
                kind = "advertising" if k % 2 == 0 else "transactional"
                rows.append({"channel": "email", "recipient": f"u{contact_id}@example.com", "contact_id": contact_id,
                             "kind": kind, "state": "sent", "due_at": finished, "finished_at": finished,
                             "created_at": finished, "message_id": f"<{contact_id}.{k}@bench>",
                             "token": f"{contact_id}x{k}"})
            if len(rows) >= 20000:
                await conn.execute(insert(deliveries), rows)
                rows = []
        if rows:
            await conn.execute(insert(deliveries), rows)
    return ids


def one_batch(conn, contact_ids, lock=True):
    if lock:
        contact_store.lock_for_decision(conn, contact_ids)
    return cap_store.advertising_sent(conn, contact_ids, NOW - caps.LOOKBACK, [], NOW)


async def measure(kind: str, args) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        url = await prepare_database(kind, Path(workdir))
        db = connect(url)
        try:
            ids = await seed(db, args.contacts, args.per_contact)
            rng = random.Random(11)
            for lock in (True, False):
                timings = []
                for _ in range(args.rounds):
                    batch = rng.sample(ids, args.batch)
                    async with db.begin() as conn:
                        started = time.perf_counter()
                        found = await conn.run_sync(one_batch, batch, lock)
                        timings.append((time.perf_counter() - started) * 1000)
                rows = sum(len(times) for times in found.values())
                print(f"{kind}: {args.contacts} contacts x {args.per_contact} deliveries; batch of {args.batch}"
                      f"{' (lock + read)' if lock else ' (read only)'}: median {statistics.median(timings):.1f} ms, "
                      f"max {max(timings):.1f} ms ({rows} rows read in the last batch)")
        finally:
            await db.close()
            await drop_database(kind, url)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=20000)
    parser.add_argument("--per-contact", type=int, default=10)
    parser.add_argument("--batch", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    for kind in (["sqlite", "postgresql"] if args.database == "both" else [args.database]):
        await measure(kind, args)


if __name__ == "__main__":
    asyncio.run(main())
