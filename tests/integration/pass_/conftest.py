"""PASS fixtures: a loopback SMTP sink and a database handle."""

import pytest

from pass_support import Sink, SinkHandler
from ums.db import connect


@pytest.fixture
async def sink():
    server = await Sink(SinkHandler()).start()
    yield server
    await server.close()


@pytest.fixture
async def faulty_sink():
    # pipelining, so refusals and drops are met on the pipelined path (`sink` is lockstep)
    server = await Sink(SinkHandler(temp_fail=0.3, perm_fail=0.05, drop=0.02, pipelining=True)).start()
    yield server
    await server.close()


@pytest.fixture
async def pass_db(database_url):
    db = connect(database_url)
    yield db
    await db.close()


@pytest.fixture
async def pass_db_sqlite(sqlite_url):
    db = connect(sqlite_url)
    yield db
    await db.close()
