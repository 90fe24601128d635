"""Who-sees-which-contact cost: the contacts page and /api/v1/contacts for a
mailbox user, an admin, an operator, an API key and the CLI, over 50,000
contacts in 200 books (100 personal, 50 shared, 50 organisation; 5,000
contacts in no book), a 500-row page, a whole export and a search.

    .venv/bin/python bench/contact_visibility.py [DATABASE_URL]

The URL defaults to a new SQLite file; a PostgreSQL URL must name an empty
database.
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time

from sqlalchemy import insert

from ums.clock import utcnow
from ums.db import connect
from ums.db.migrate import upgrade
from ums.db.models import address_book_entries, address_book_shares, address_books, contacts, users
from ums.store import addressbooks

CONTACTS, BOOKS, USERS = 50_000, 200, 50
VIEWERS = [("user", addressbooks.Viewer(10, "user")), ("admin", addressbooks.Viewer(1, "admin")),
           ("operator", addressbooks.Viewer(2, "operator")), ("api", addressbooks.Viewer(None, "api", "crm")),
           ("cli", addressbooks.ADMINISTRATOR)]


def scope_of(book: int) -> str:
    return "personal" if book <= 100 else "shared" if book <= 150 else "organisation"


async def fill(conn) -> None:
    random.seed(1)
    now = utcnow()
    staff = ["admin", "operator", "marketer"]
    await conn.execute(insert(users), [{"id": i, "username": f"u{i}", "password_hash": "x",
                                        "role": staff[i - 1] if i <= 3 else "user"} for i in range(1, USERS + 1)])
    await conn.execute(insert(contacts), [{"id": i, "name": f"Name {i}", "email": f"c{i}@example.com",
                                           "created_at": now, "updated_at": now} for i in range(1, CONTACTS + 1)])
    await conn.execute(insert(address_books), [
        {"id": b, "name": f"book {b}", "scope": scope_of(b), "owner_id": (b % 47) + 4 if b <= 150 else None}
        for b in range(1, BOOKS + 1)])
    entries = {(random.randint(1, BOOKS), c) for c in range(1, CONTACTS - 5_000 + 1)}
    await conn.execute(insert(address_book_entries), [{"book_id": b, "contact_id": c} for b, c in entries])
    await conn.execute(insert(address_book_shares),
                       [{"book_id": b, "role": None, "user_id": 10} for b in range(101, 120)]
                       + [{"book_id": b, "role": "user", "user_id": None} for b in range(120, 125)])


async def timed(work) -> tuple[float, int]:
    started = time.perf_counter()
    rows = await work
    return (time.perf_counter() - started) * 1000, len(rows)


async def main(url: str) -> None:
    db = connect(url)
    try:
        await upgrade(db)
        async with db.begin() as conn:
            await fill(conn)
        print(f"{'viewer':9} {'page of 500':>12} {'export (rows)':>22} {'search':>10}")
        for name, viewer in VIEWERS:
            async with db.connect() as conn:
                page, _ = await timed(addressbooks.search(conn, viewer, limit=500))
                export, rows = await timed(addressbooks.search(conn, viewer, limit=10_000_000))
                search, _ = await timed(addressbooks.search(conn, viewer, "name 4999", limit=500))
            print(f"{name:9} {page:9.1f} ms {export:9.1f} ms ({rows:6}) {search:7.1f} ms")
    finally:
        await db.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else
                     f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='ums-bench-')}/contacts.db"))
