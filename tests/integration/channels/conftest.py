"""Fixtures for the fax and voice channel tests: a channel context and real peers."""

from __future__ import annotations

import asyncio
import shutil
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from tests.conftest import make_config

from .peers import FaxGatewaySink, HylafaxPeer, SipPeer, start_smtp_sink
from ums.clock import utcnow

NEEDED = {"gs": "ghostscript", "tiffinfo": "libtiff-tools", "espeak-ng": "espeak-ng", "sox": "sox",
          "baresip": "baresip-core"}


def need(*tools: str) -> None:
    """Fail (not skip) when a tool the set-up installs is missing: these tests must run for real."""
    missing = [f"{tool} ({NEEDED.get(tool, tool)})" for tool in tools if not shutil.which(tool)]
    if missing:
        pytest.fail("missing tools; run scripts/bootstrap test: " + ", ".join(missing))


def channel_context(tmp_path, database_url: str, **overrides) -> SimpleNamespace:
    """What a channel is constructed with: config, loop and clock (the runtime Context's fields)."""
    config = make_config(tmp_path, database_url, **overrides)
    return SimpleNamespace(config=config, loop=asyncio.get_running_loop(),
                           clock=lambda: utcnow(), db=None, services={})


@pytest.fixture
async def fax_gateway():
    sink = FaxGatewaySink("fax.test")
    server, port = await start_smtp_sink(sink)
    sink.port = port
    yield sink
    server.close()
    await server.wait_closed()


@pytest.fixture
async def hylafax():
    need("faxq", "hfaxd", "sendfax", "faxstat", "faxrm", "faxmodem")
    peer = HylafaxPeer()
    try:
        await asyncio.to_thread(peer.start)
        yield peer
    finally:
        await asyncio.to_thread(peer.stop)


@pytest.fixture
async def sip_peer():
    """``await sip_peer("answer"|"reject"|"ring")`` → a started callee, stopped after the test."""
    need("baresip")
    started: list[SipPeer] = []

    async def start(mode: str = "answer") -> SipPeer:
        peer = SipPeer(mode)
        started.append(peer)
        await peer.start()
        return peer

    yield start
    for peer in started:
        await peer.stop()
