"""The DATA section as MAS reads it, over real SMTP connections on loopback:
stored byte for byte as the sender meant it (dot-stuffing undone), however the
bytes are split across writes; commands pipelined behind the closing dot still
answered; a line or a section over its limit refused once the section is over,
with the next transaction on the connection unharmed; a client gone mid-section
stores nothing and stops nobody else."""

from __future__ import annotations

import asyncio

from ums.store import mailbox

MESSAGE = (b"From: Customer <c@customer.example>\r\nTo: sales@ums.local\r\nSubject: dots\r\n"
           b"Date: Mon, 23 Nov 2026 10:00:00 +0900\r\nMessage-ID: <dots@customer.example>\r\n\r\n"
           b".leading dot\r\n..two dots\r\n.\r\n\r\n" + "안녕하세요, 문의드립니다.\r\n".encode() * 40
           + b"last line\r\n")


def stuffed(message: bytes) -> bytes:
    """The section a client sends for ``message`` (RFC 5321 4.5.2), closing dot included."""
    return (b"\r\n" + message).replace(b"\r\n.", b"\r\n..")[2:] + b".\r\n"


async def stored_raw(db, address: str) -> list[bytes]:
    async with db.connect() as conn:
        box = await mailbox.by_address(conn, address)
        entries = await mailbox.messages(conn, box["id"]) if box else []
        return [(await mailbox.message(conn, entry["id"]))["raw"] for entry in entries]


async def begin(client, recipient: str = "sales@ums.local") -> None:
    assert (await client.command("MAIL FROM:<c@customer.example>"))[0] == 250
    assert (await client.command(f"RCPT TO:<{recipient}>"))[0] == 250
    assert (await client.command("DATA"))[0] == 354


async def test_a_dot_stuffed_message_is_stored_as_the_sender_wrote_it(mas, raw_smtp):
    client = await raw_smtp()
    await begin(client)
    client.writer.write(stuffed(MESSAGE))
    assert (await client.reply())[0] == 250
    assert await stored_raw(mas.ctx.db, "sales@ums.local") == [MESSAGE]


async def test_a_section_sent_a_few_bytes_at_a_time_is_stored_whole(mas, raw_smtp):
    client = await raw_smtp()
    await begin(client)
    section = stuffed(MESSAGE)
    for start in range(0, len(section), 3):   # the closing CRLF . CRLF split across writes too
        client.writer.write(section[start:start + 3])
        await client.writer.drain()
        await asyncio.sleep(0)
    assert (await client.reply())[0] == 250
    assert await stored_raw(mas.ctx.db, "sales@ums.local") == [MESSAGE]


async def test_commands_sent_behind_the_closing_dot_are_answered_in_order(mas, raw_smtp):
    client = await raw_smtp()
    await begin(client)
    client.writer.write(stuffed(MESSAGE) + b"MAIL FROM:<d@customer.example>\r\nRCPT TO:<other@ums.local>\r\n")
    replies = [await asyncio.wait_for(client.reply(), 10) for _ in range(3)]
    assert [code for code, _ in replies] == [250, 250, 250], replies
    second = MESSAGE.replace(b"dots@", b"second@")
    assert (await client.data(second))[0] == 250
    assert await stored_raw(mas.ctx.db, "sales@ums.local") == [MESSAGE]
    assert await stored_raw(mas.ctx.db, "other@ums.local") == [second]


async def test_an_empty_section_is_refused_and_the_connection_serves_on(mas, raw_smtp):
    client = await raw_smtp()
    await begin(client)
    client.writer.write(b".\r\n")
    code, text = await client.reply()
    assert code == 550 and "no header fields" in text
    await begin(client)
    client.writer.write(stuffed(MESSAGE))
    assert (await client.reply())[0] == 250


async def test_a_line_over_1000_bytes_gets_500_after_the_section_and_the_next_message_works(mas, raw_smtp):
    client = await raw_smtp()
    await begin(client)
    client.writer.write(stuffed(MESSAGE.replace(b"last line", b"x" * 1000)))
    code, text = await client.reply()
    assert code == 500 and "Line too long" in text
    await begin(client, "other@ums.local")
    client.writer.write(stuffed(MESSAGE))
    assert (await client.reply())[0] == 250
    assert await stored_raw(mas.ctx.db, "sales@ums.local") == []
    assert await stored_raw(mas.ctx.db, "other@ums.local") == [MESSAGE]


async def test_a_section_with_an_over_long_line_ends_where_its_closing_dot_is_split(mas, raw_smtp):
    client = await raw_smtp()
    await begin(client)
    section = stuffed(MESSAGE.replace(b"last line", b"x" * 1000))
    client.writer.write(section[:-2])   # everything up to the closing dot, then its CRLF
    await client.writer.drain()
    await asyncio.sleep(0.05)
    client.writer.write(section[-2:])
    code, text = await asyncio.wait_for(client.reply(), 5)
    assert code == 500 and "Line too long" in text


async def test_a_line_of_exactly_1000_bytes_is_accepted(mas, raw_smtp):
    client = await raw_smtp()
    await begin(client)
    longest = MESSAGE.replace(b"last line", b"y" * 998)   # 998 + CRLF: RFC 5321's 1000 octets
    client.writer.write(stuffed(longest))
    assert (await client.reply())[0] == 250
    assert await stored_raw(mas.ctx.db, "sales@ums.local") == [longest]


async def test_an_oversized_section_gets_552_once_read_and_the_next_message_works(mas, raw_smtp):
    client = await raw_smtp()   # the fixture's MAS takes at most 500,000 bytes
    await begin(client)
    big = MESSAGE + (b"z" * 900 + b"\r\n") * 600
    client.writer.write(stuffed(big))
    code, text = await client.reply()
    assert code == 552 and "Too much mail data" in text
    await begin(client, "other@ums.local")
    client.writer.write(stuffed(MESSAGE))
    assert (await client.reply())[0] == 250
    assert await stored_raw(mas.ctx.db, "other@ums.local") == [MESSAGE]
    assert await stored_raw(mas.ctx.db, "sales@ums.local") == []


async def test_a_client_gone_mid_section_stores_nothing_and_others_are_served(mas, raw_smtp):
    client = await raw_smtp()
    await begin(client)
    client.writer.write(stuffed(MESSAGE)[:200])
    await client.writer.drain()
    client.writer.close()
    other = await raw_smtp()
    await begin(other, "other@ums.local")
    other.writer.write(stuffed(MESSAGE))
    assert (await asyncio.wait_for(other.reply(), 10))[0] == 250
    assert await stored_raw(mas.ctx.db, "sales@ums.local") == []
