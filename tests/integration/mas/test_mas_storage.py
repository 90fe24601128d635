"""Issue #14, must-show 2 and 3, over real SMTP to MAS on loopback.

2. A message is stored once, however many mailboxes file it: a 1 MB message
   to 100 recipients grows the database by about 1 MB, not 100 MB (the figure
   is printed), every recipient's mailbox reads it back byte for byte, and
   the same message arriving again is not stored again either.
3. One heavy message never stalls other senders: while a 1 MB message to 100
   recipients is being stored, another client's small message gets its 250
   within a second (both times printed).
"""

from __future__ import annotations

import asyncio
import base64
import os
import time

import aiosmtplib
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.conftest import make_config
from tests.helpers import split_address
from tests.integration.mas.conftest import RawSMTP
from ums.store import mailbox, web

RECIPIENTS = [f"customer{n:03}@ums.local" for n in range(100)]


@pytest.fixture
async def big_mas(tmp_path, database_url, start_suite):
    config = make_config(tmp_path, database_url, mas__max_message_size=str(4 * 1024 * 1024))
    return await start_suite(config, ["mas"])


def megabyte_message(n: int = 0) -> bytes:
    """About 1 MB: a statement with a 750 kB attachment of random (incompressible) bytes."""
    attachment = base64.encodebytes(os.urandom(750 * 1024)).replace(b"\n", b"\r\n")
    return (
        f"From: Branch <branch{n}@customer.example>\r\nTo: customers@ums.local\r\n"
        f"Subject: statement {n}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0900\r\n"
        f"Message-ID: <statement-{n}.{time.time_ns()}@customer.example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n안녕하세요, 명세서를 보내드립니다.\r\n"
        '--b\r\nContent-Type: application/pdf; name="statement.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
    ).encode() + attachment + b"--b--\r\n"


async def database_bytes(suite) -> int:
    """The database's size on disk (SQLite: the file and its write-ahead log)."""
    db = suite.ctx.db
    if db.is_postgres:
        async with db.connect() as conn:
            return await conn.scalar(text("SELECT pg_database_size(current_database())"))
    async with db.connect() as conn:
        await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    path = make_url(suite.ctx.config.section("database")["url"]).database
    return sum(os.path.getsize(p) for p in (path, f"{path}-wal") if os.path.exists(p))


async def send_raw(address: str, mail_from: str, recipients: list[str], raw: bytes) -> tuple[int, str]:
    client = await RawSMTP.connect(address)
    try:
        assert (await client.command("EHLO client.customer.example"))[0] == 250
        assert (await client.command(f"MAIL FROM:<{mail_from}>"))[0] == 250
        for recipient in recipients:
            assert (await client.command(f"RCPT TO:<{recipient}>"))[0] == 250
        return await client.data(raw)
    finally:
        client.writer.close()


async def test_a_message_to_100_recipients_is_stored_once(big_mas):
    suite = big_mas
    address = suite.services["mas"].address
    raw = megabyte_message()
    before = await database_bytes(suite)
    code, reply = await send_raw(address, "branch0@customer.example", RECIPIENTS, raw)
    assert code == 250, reply
    grown = await database_bytes(suite) - before
    print(f"\n1 message of {len(raw):,} bytes to {len(RECIPIENTS)} recipients: database grew by {grown:,} bytes "
          f"({grown / len(raw):.2f} × the message; one copy per recipient would be {len(raw) * len(RECIPIENTS):,})")
    assert grown < 2 * len(raw)

    async with suite.ctx.db.connect() as conn:
        entries = await mailbox.messages(conn, limit=1000)
        assert sorted(entry["recipient"] for entry in entries) == RECIPIENTS
        assert len({entry["body_id"] for entry in entries}) == 1
        assert await mailbox.stored_bytes(conn) == len(raw)
        # every mailbox reads the message back exactly as received, through the store (MAS/PASS and WAS)
        first, last = entries[0], entries[-1]
        assert bytes((await mailbox.message(conn, first["id"]))["raw"]) == raw
        assert bytes((await web.message(conn, None, last["id"]))["raw"]) == raw

    # the same bytes again (a sender retrying after a lost 250): filed again, stored no second time
    code, _ = await send_raw(address, "branch0@customer.example", RECIPIENTS[:2], raw)
    assert code == 250
    async with suite.ctx.db.connect() as conn:
        assert await mailbox.count(conn) == len(RECIPIENTS) + 2
        assert await mailbox.stored_bytes(conn) == len(raw)


async def test_a_heavy_message_does_not_stall_another_sender(big_mas):
    suite = big_mas
    address = suite.services["mas"].address
    host, port = split_address(address)
    heavy = await RawSMTP.connect(address)
    assert (await heavy.command("EHLO branch.customer.example"))[0] == 250
    assert (await heavy.command("MAIL FROM:<branch1@customer.example>"))[0] == 250
    for recipient in RECIPIENTS:  # new mailboxes: created while the message is stored
        assert (await heavy.command(f"RCPT TO:<{recipient}>"))[0] == 250
    started = time.perf_counter()
    heavy_reply = asyncio.create_task(heavy.data(megabyte_message(1)))

    async def small() -> float:
        begun = time.perf_counter()
        async with aiosmtplib.SMTP(hostname=host, port=port, timeout=10, start_tls=False) as client:
            await client.sendmail("kim@customer.example", ["sales@ums.local"],
                                  b"From: kim@customer.example\r\nSubject: quick question\r\n\r\nhello\r\n")
        return time.perf_counter() - begun

    await asyncio.sleep(0.05)  # the heavy message is on the wire and being read
    small_seconds = await small()
    code, reply = await heavy_reply
    heavy_seconds = time.perf_counter() - started
    heavy.writer.close()
    print(f"\nheavy: 1 MB to 100 recipients answered {code} in {heavy_seconds:.3f} s; "
          f"small message sent meanwhile answered 250 in {small_seconds:.3f} s")
    assert code == 250, reply
    assert small_seconds < 1.0
    async with suite.ctx.db.connect() as conn:
        assert await mailbox.count(conn) == len(RECIPIENTS) + 1
