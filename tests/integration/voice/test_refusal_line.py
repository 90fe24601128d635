"""Must show 4 (#19): the free refusal line. A real baresip caller dials the
line that MAS runs, hears the Korean prompt and presses 1: its number — and
the addresses of the contact with that phone — are suppressed for
advertising, with the call as evidence and a CDR row of the call. A caller
pressing 2, one who presses nothing, and one whose call comes from a network
that is not the trusted trunk change nothing."""

from __future__ import annotations


import pytest
from sqlalchemy import select

from tests.conftest import make_config
from tests.helpers import eventually, free_port
from tests.integration.channels.conftest import need
from ums.db.models import cdr, suppressions
from ums.store import contacts, suppression

from .audio import rms
from .callers import SipCaller

LINE = "0800001234"
CALLER = "01012345678"




@pytest.fixture
async def line(tmp_path, database_url, start_suite):
    """MAS with a refusal line on a free loopback port; → (suite, line URI)."""
    need("baresip", "espeak-ng", "sox")

    async def start(**overrides):
        uri = f"sip:{LINE}@127.0.0.1:{free_port()}"
        config = make_config(tmp_path, database_url, voice__refusal_line=uri, voice__refusal_wait="2",
                             **overrides)
        suite = await start_suite(config, ["mas"])
        return suite, uri

    return start


async def _contact(suite) -> int:
    async with suite.ctx.db.begin() as conn:
        return await contacts.create(conn, name="홍길동", email="hong@customer.example", phone="010-1234-5678")


async def _state(suite):
    async with suite.ctx.db.connect() as conn:
        entries = (await conn.execute(select(suppressions))).mappings().all()
        rows = (await conn.execute(select(cdr))).mappings().all()
    return entries, rows


async def _dial(uri: str, key: str | None, number: str = CALLER) -> tuple[SipCaller, float]:
    caller = SipCaller(number)
    seconds = await caller.call(uri, key)
    return caller, seconds


async def test_key_1_suppresses_the_callers_number_for_advertising_with_a_cdr_row(line):
    suite, uri = await line()
    await _contact(suite)

    caller, seconds = await _dial(uri, "1")

    async def recorded():
        entries, rows = await _state(suite)
        return (entries, rows) if rows else None

    entries, rows = await eventually(recorded, timeout=10)
    by_address = {(entry["channel"], entry["address"]): entry for entry in entries}
    voice = by_address[("voice", CALLER)]
    assert voice["scope"] == suppression.ADVERTISING and voice["source"] == "refusal-line"
    assert "from trusted 127.0.0.1:" in voice["evidence"] and "key 1" in voice["evidence"]
    # matched to the contact by phone number: its other addresses stop advertising too
    assert by_address[("email", "hong@customer.example")]["scope"] == suppression.ADVERTISING
    [row] = rows
    assert (row["src"], row["dst"], row["disposition"], row["medium"]) == (CALLER, LINE, "ANSWERED", "voice")
    assert row["delivery_id"] is None and row["source"] == "refusal-line" and row["final"]
    assert abs(row["duration"] - seconds) <= 2
    # the caller heard the prompt, then the confirmation (the line hung up when it ended)
    [heard] = caller.heard()
    print(f"key 1: call {seconds:.2f} s, CDR duration {row['duration']} s, heard rms {rms(heard):.3f}, "
          f"entries {sorted(by_address)}")
    assert rms(heard) > 0.01
    assert seconds < 1.5 + 6 + 2          # key after 1.5 s, a confirmation of ~3 s, no goodbye wait
    caller.remove()


async def test_key_2_and_silence_end_the_call_politely_and_change_nothing(line):
    suite, uri = await line()
    await _contact(suite)

    pressed_two, two_seconds = await _dial(uri, "2")
    silent, silent_seconds = await _dial(uri, None)

    entries, rows = await _state(suite)
    assert entries == [] and rows == []
    assert suite.ctx.services["mas"].refusal_line.calls == 2
    # both heard speech and were hung up on by the line: 2 after a goodbye, silence after prompt + wait + goodbye
    for caller in (pressed_two, silent):
        [heard] = caller.heard()
        assert rms(heard) > 0.01
        caller.remove()
    print(f"key 2: call {two_seconds:.2f} s; no key: call {silent_seconds:.2f} s; nothing recorded")
    assert two_seconds < silent_seconds
    assert silent_seconds >= 2 + 2


async def test_a_call_not_from_the_trusted_trunk_changes_nothing(line):
    suite, uri = await line(voice__refusal_trusted="192.0.2.0/24")
    await _contact(suite)

    caller, _ = await _dial(uri, "1")

    entries, rows = await _state(suite)
    assert entries == [] and rows == []
    caller.remove()
