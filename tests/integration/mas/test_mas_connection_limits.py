"""Issue #14: connection limits, with real sockets on loopback. Beyond
``[mas] max_connections_per_client`` from one address, or ``max_connections``
in all, a client is greeted with 421 4.7.0 and the connection is closed; a
slot freed by a closed connection is given to the next client."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import make_config
from tests.helpers import split_address


@pytest.fixture
async def limited_mas(tmp_path, database_url, start_suite):
    config = make_config(tmp_path, database_url, mas__max_connections="3", mas__max_connections_per_client="2")
    return await start_suite(config, ["mas"])


async def greeting(address: str, source: str = "127.0.0.1"):
    """(greeting line, reader, writer) of a new connection from ``source``."""
    host, port = split_address(address)
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    line = (await asyncio.wait_for(reader.readline(), 5)).decode()
    return line, reader, writer


async def closed_by_server(reader) -> bool:
    return await asyncio.wait_for(reader.read(), 5) == b""


async def test_too_many_connections_get_421_and_a_closed_connection(limited_mas):
    address = limited_mas.services["mas"].address
    first, _, first_writer = await greeting(address)
    second, _, second_writer = await greeting(address)  # kept: a dropped writer closes its connection
    assert first.startswith("220 ") and second.startswith("220 ")

    third, reader, _ = await greeting(address)
    assert third.startswith("421 4.7.0 ") and "from your address" in third
    assert await closed_by_server(reader)

    # another client still gets in, until the server as a whole is full
    other, _, other_writer = await greeting(address, source="127.0.0.2")
    assert other.startswith("220 ")
    full, reader, _ = await greeting(address, source="127.0.0.3")
    assert full.startswith("421 4.7.0 ") and "to this server" in full
    assert await closed_by_server(reader)

    # a closed connection frees its slot
    first_writer.close()
    await first_writer.wait_closed()
    await asyncio.sleep(0.1)
    again, reader, writer = await greeting(address)
    assert again.startswith("220 ")
    writer.write(b"EHLO client.customer.example\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"250")
    for open_writer in (writer, second_writer, other_writer):
        open_writer.close()
