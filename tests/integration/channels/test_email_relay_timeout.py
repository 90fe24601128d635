"""A relay that stops answering mid-message: the email channel gives the
connection up after ``[email] timeout`` instead of waiting for ever."""

import asyncio
import time

import pytest

from ums.channels.email import RelayPool


async def silent_after_ehlo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Greets and answers EHLO (with PIPELINING), then reads and never replies."""
    writer.write(b"220 stalled.test ESMTP\r\n")
    await writer.drain()
    while line := await reader.readline():
        if line.upper().startswith((b"EHLO", b"HELO")):
            writer.write(b"250-stalled.test\r\n250 PIPELINING\r\n")
            await writer.drain()
    writer.close()


@pytest.fixture
async def stalled_relay():
    server = await asyncio.start_server(silent_after_ehlo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_a_relay_that_stops_answering_times_out_and_the_connection_is_dropped(stalled_relay):
    pool = RelayPool({"relay_host": "127.0.0.1", "relay_port": stalled_relay, "timeout": 0.5,
                      "starttls": False}, 1)
    session = await pool.acquire()
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError, match="no reply from the relay within 0.5 s"):
        await asyncio.wait_for(session.transmit("bounce@ums.test", "user@example.com", b"Subject: x\r\n\r\nbody\r\n"), 10)
    assert 0.4 <= time.monotonic() - started < 3
    assert not session.is_connected   # its replies could no longer be matched to commands
    await pool.discard(session)


async def test_messages_sent_back_to_back_keep_one_watchdog_running(stalled_relay):
    """Each message moves the deadline on; the session's single timer still fires
    for the message that stalls, counted from that message's start."""
    pool = RelayPool({"relay_host": "127.0.0.1", "relay_port": stalled_relay, "timeout": 0.6,
                      "starttls": False}, 1)
    session = await pool.acquire()
    session._arm()                 # an earlier message armed the watchdog...
    await asyncio.sleep(0.4)       # ...and finished 0.4 s later
    session.deadline = None
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(session.transmit("bounce@ums.test", "user@example.com", b"x\r\n"), 10)
    assert time.monotonic() - started >= 0.55   # not cut short by the earlier message's deadline
    await pool.discard(session)
