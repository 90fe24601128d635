"""Issue #14, parts 1 and 2, over real SMTP connections to MAS on loopback.

1. A failure ends its transaction cleanly: a 1,000-level nested multipart gets
   554 5.6.0 (never aiosmtpd's ``500 Error: (RecursionError)``), and the next
   MAIL/RCPT/DATA on the same connection works and reaches only its own
   recipient. What the message causes is 5xx; only what clears is 451.
2. RFC 5321 envelope: raw non-UTF-8 bytes → 553 5.1.3 at the command; NUL and
   control characters → 501; ``Postmaster`` without a domain is delivered to
   the postmaster mailbox; UTF-8 addresses need SMTPUTF8; at most
   ``[mas] max_recipients`` recipients (452 4.5.3 beyond); repeated RCPTs
   collapse into one stored copy.
"""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from tests.unit.mas import mas_samples as samples
from ums.store import mailbox

EUC_KR_NAME = "홍길동".encode("euc-kr")


async def stored(db, address: str) -> list[dict]:
    async with db.connect() as conn:
        box = await mailbox.by_address(conn, address)
        return await mailbox.messages(conn, box["id"]) if box else []


async def all_recipients(db) -> list[str]:
    async with db.connect() as conn:
        return sorted(row["recipient"] for row in await mailbox.messages(conn, limit=1000))


async def transaction(client, mail_from: str, recipients: list[str], message: bytes) -> tuple[int, str]:
    assert (await client.command(f"MAIL FROM:<{mail_from}>"))[0] == 250
    for recipient in recipients:
        assert (await client.command(f"RCPT TO:<{recipient}>"))[0] == 250
    return await client.data(message)


# --- 1. clean failures over one connection --------------------------------------------

async def test_deep_nesting_is_refused_and_the_next_message_reaches_only_its_own_recipient(mas, raw_smtp):
    client = await raw_smtp()
    code, text = await transaction(client, "deep@customer.example", ["first@bank.example"],
                                   samples.nested_multipart(1000, to="first@bank.example"))
    assert code == 554 and text.startswith("5.6.0") and "nest" in text
    assert "Error" not in text and "RecursionError" not in text

    # the same connection goes on: a fresh transaction (no "503 nested MAIL"), to its own recipient only
    code, text = await transaction(client, "next@customer.example", ["second@bank.example"],
                                   samples.reply("next@customer.example", "second@bank.example"))
    assert code == 250, text
    assert await all_recipients(mas.ctx.db) == ["second@bank.example"]

    # the limit itself: 100 levels of parts are read and stored, 101 are refused
    code, _ = await transaction(client, "deep@customer.example", ["third@bank.example"],
                                samples.nested_multipart(99, to="third@bank.example"))
    assert code == 250
    code, text = await transaction(client, "deep@customer.example", ["third@bank.example"],
                                   samples.nested_multipart(100, to="third@bank.example"))
    assert code == 554 and "more than 100 levels" in text
    assert [row["subject"] for row in await stored(mas.ctx.db, "third@bank.example")] == ["nested 99"]
    assert mas.services["mas"].info()["refused"] == 2
    await client.close()


async def test_what_the_message_causes_is_5xx_and_what_clears_is_451(mas, raw_smtp, monkeypatch):
    handler = mas.services["mas"].handler
    client = await raw_smtp()

    # a NUL smuggled into a header (PostgreSQL text cannot hold it) is stored, not deferred forever
    nul_subject = (b"From: nul@customer.example\r\nTo: sales@bank.example\r\nSubject: =?utf-8?b?AGJhZA==?=\r\n"
                   b"Date: Mon, 23 Nov 2026 10:00:00 +0900\r\n\r\nbody\r\n")
    assert (await transaction(client, "nul@customer.example", ["sales@bank.example"], nul_subject))[0] == 250
    [row] = await stored(mas.ctx.db, "sales@bank.example")
    assert row["subject"] == "\ufffdbad"

    async def broken(conn, message, rows):
        raise ValueError("cannot read this message")

    async def database_away(conn, message, rows):
        raise OperationalError("INSERT …", {}, ConnectionRefusedError("database away"))

    monkeypatch.setattr(handler.committer, "process", broken)
    code, text = await transaction(client, "a@customer.example", ["sales@bank.example"],
                                   samples.reply("a@customer.example", "sales@bank.example"))
    assert (code, text) == (554, "5.6.0 Message refused: its content cannot be processed")

    monkeypatch.setattr(handler.committer, "process", database_away)
    code, text = await transaction(client, "a@customer.example", ["sales@bank.example"],
                                   samples.reply("a@customer.example", "sales@bank.example"))
    assert code == 451 and text.startswith("4.3.0")

    monkeypatch.undo()
    code, _ = await transaction(client, "b@customer.example", ["other@bank.example"],
                                samples.reply("b@customer.example", "other@bank.example"))
    assert code == 250
    assert await all_recipients(mas.ctx.db) == ["other@bank.example", "sales@bank.example"]
    await client.close()


# --- 2. the RFC 5321 envelope -----------------------------------------------------------

async def test_raw_8bit_and_control_characters_are_refused_at_the_command(mas, raw_smtp):
    client = await raw_smtp()
    assert (await client.command(b"MAIL FROM:<" + EUC_KR_NAME + b"@customer.example>"))[0] == 553
    code, text = await client.command(b"MAIL FROM:<kim\x00@customer.example>")
    assert code == 501 and text.startswith("5.5.2")
    assert (await client.command(b"MAIL FROM:<kim\x01x@customer.example>"))[0] == 501
    assert (await client.command("MAIL FROM:<kim@customer.example>"))[0] == 250  # nothing half-open

    code, text = await client.command(b"RCPT TO:<" + EUC_KR_NAME + b"@bank.example>")
    assert code == 553 and text.startswith("5.1.3")
    assert (await client.command(b"RCPT TO:<sales\x00@bank.example>"))[0] == 501
    assert (await client.command(b"RCPT TO:<sales\x1b[0m@bank.example>"))[0] == 501
    assert (await client.command("RCPT TO:<sales@bank.example>"))[0] == 250
    code, _ = await client.data(samples.reply("kim@customer.example", "sales@bank.example"))
    assert code == 250  # the message went through, to the one good recipient only
    assert await all_recipients(mas.ctx.db) == ["sales@bank.example"]
    await client.close()


async def test_postmaster_without_a_domain_is_delivered_to_the_postmaster_mailbox(mas, raw_smtp):
    client = await raw_smtp()
    assert (await client.command("MAIL FROM:<lost@customer.example>"))[0] == 250
    assert (await client.command("RCPT TO:<Postmaster>"))[0] == 250
    assert (await client.command("RCPT TO:<POSTMASTER>"))[0] == 250        # the same recipient again
    assert (await client.command("RCPT TO:<postmaster@ums.local>"))[0] == 250
    code, _ = await client.data(samples.reply("lost@customer.example", "postmaster"))
    assert code == 250
    [row] = await stored(mas.ctx.db, "postmaster@ums.local")  # ums.local: the first local domain
    assert row["recipient"] == "postmaster@ums.local"
    await client.close()


async def test_utf8_addresses_need_smtputf8(mas, raw_smtp):
    client = await raw_smtp()
    assert (await client.command("MAIL FROM:<홍길동@customer.example>"))[0] == 553
    assert (await client.command("MAIL FROM:<kim@customer.example>"))[0] == 250
    code, text = await client.command("RCPT TO:<홍길동@bank.example>")
    assert code == 553 and text.startswith("5.6.7")
    assert (await client.command("RSET"))[0] == 250

    # MAS advertises SMTPUTF8, and with it UTF-8 addresses are accepted and delivered
    code, text = await client.command("EHLO client.customer.example")
    assert "SMTPUTF8" in text.split("\n")
    assert (await client.command("MAIL FROM:<홍길동@customer.example> SMTPUTF8"))[0] == 250
    assert (await client.command("RCPT TO:<상담@bank.example>"))[0] == 250
    message = ("From: 홍길동 <홍길동@customer.example>\r\nTo: 상담@bank.example\r\nSubject: 문의\r\n"
               "Date: Mon, 23 Nov 2026 10:00:00 +0900\r\n\r\n안녕하세요\r\n").encode()
    assert (await client.data(message))[0] == 250
    [row] = await stored(mas.ctx.db, "상담@bank.example")
    assert row["sender"] == "홍길동@customer.example"
    await client.close()


async def test_recipients_beyond_the_limit_get_452_and_the_rest_are_delivered(mas, raw_smtp):
    client = await raw_smtp()
    assert (await client.command("MAIL FROM:<list@customer.example>"))[0] == 250
    for n in range(100):  # [mas] max_recipients defaults to 100
        assert (await client.command(f"RCPT TO:<user{n}@bank.example>"))[0] == 250
    code, text = await client.command("RCPT TO:<user100@bank.example>")
    assert (code, text) == (452, "4.5.3 Too many recipients")
    assert (await client.command("RCPT TO:<user5@bank.example>"))[0] == 250  # a repeat adds no one
    assert (await client.data(samples.reply("list@customer.example", "user0@bank.example")))[0] == 250
    recipients = await all_recipients(mas.ctx.db)
    assert len(recipients) == 100 and "user100@bank.example" not in recipients
    await client.close()


async def test_max_recipients_is_configurable(tmp_path, sqlite_url, start_suite):
    from tests.conftest import make_config
    from tests.integration.mas.conftest import RawSMTP

    suite = await start_suite(make_config(tmp_path, sqlite_url, mas__max_recipients="2"), ["mas"])
    client = await RawSMTP.connect(suite.services["mas"].address)
    await client.command("EHLO client.customer.example")
    await client.command("MAIL FROM:<a@customer.example>")
    replies = [(await client.command(f"RCPT TO:<r{n}@ums.local>"))[0] for n in range(3)]
    assert replies == [250, 250, 452]
    await client.close()


async def test_one_hundred_copies_of_one_rcpt_store_one_copy(mas, raw_smtp):
    client = await raw_smtp()
    assert (await client.command("MAIL FROM:<kim@customer.example>"))[0] == 250
    replies = {(await client.command("RCPT TO:<Sales@Bank.Example>"))[0] for _ in range(100)}
    assert replies == {250}
    assert (await client.data(samples.reply("kim@customer.example", "sales@bank.example")))[0] == 250
    assert len(await stored(mas.ctx.db, "sales@bank.example")) == 1
    await client.close()


@pytest.mark.parametrize("command", [b"MAIL FROM:<a\x7fb@b.example>", "MAIL FROM:<a\u0085@b.example>"])
async def test_other_control_characters_get_501(mas, raw_smtp, command):
    client = await raw_smtp()
    assert (await client.command(command))[0] == 501
    await client.close()
