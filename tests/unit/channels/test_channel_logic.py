"""Outcome mapping and parsing logic of the fax and voice drivers (no peers needed)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ums.channels import ANSWERED, BUSY, FAILED, NO_ANSWER, PERMANENT, SENT, TEMPORARY
from ums.channels.fax.hylafax import HylafaxServer, parse_jobs
from ums.channels.fax.render import FaxDocument
from ums.channels.voice.asterisk import AsteriskSpool
from ums.channels.voice.sip import CallLog, outcome
from ums.media import BadNumber, international
from ums.clock import utcnow

T0 = datetime(2024, 5, 1, 1, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("number, expected", [
    ("02-1234-5678", "+82212345678"), ("+1 (202) 555-1212", "+12025551212"),
    ("0082-2-123-4567", "+8221234567"), ("fax:0311234567", "+82311234567"),
])
def test_international_numbers(number, expected):
    assert international(number, "82") == expected


@pytest.mark.parametrize("number", ["", "12", "call me", "1234567890123456", "02-123; rm -rf"])
def test_bad_numbers_are_refused(number):
    with pytest.raises(BadNumber):
        international(number, "82")


@pytest.mark.parametrize("reason, status, disposition", [
    ("486 Busy Here", TEMPORARY, BUSY), ("486 Rejected", TEMPORARY, BUSY), ("600 Busy Everywhere", TEMPORARY, BUSY),
    ("480 Temporarily Unavailable", TEMPORARY, NO_ANSWER), ("408 Request Timeout", TEMPORARY, NO_ANSWER),
    ("no answer (ring timeout)", TEMPORARY, NO_ANSWER), ("404 Not Found", PERMANENT, FAILED),
    ("603 Decline", PERMANENT, FAILED), ("503 Service Unavailable", TEMPORARY, FAILED),
    ("Connection refused", TEMPORARY, FAILED),
])
def test_sip_outcomes(reason, status, disposition):
    result = outcome(CallLog(started_at=T0, ended_at=T0 + timedelta(seconds=3), reason=reason), "sip:x@h")
    assert (result.status, result.disposition) == (status, disposition)
    assert result.billsec == 0


def test_answered_call_bills_connected_seconds():
    call = CallLog(started_at=T0, answered_at=T0 + timedelta(seconds=2), ended_at=T0 + timedelta(seconds=9))
    result = outcome(call, "sip:x@h")
    assert (result.status, result.disposition, result.billsec) == (SENT, ANSWERED, 7)


FAXSTAT = """HylaFAX scheduler on vm: Running

JID  Pri S  Owner Number       Pages Dials     TTS Status
12   127 R    ums +82212345678 0:3   0:1         Waiting for modem to come ready
13   126 F    ums +82299       1:3   1:1         Busy signal detected
14   126 D    ums +82288       3:3   1:1
15   126 F    ums +82277       0:3   0:1         Job aborted by request
"""


def test_faxstat_listing_and_outcomes(tmp_path):
    jobs = parse_jobs(FAXSTAT)
    assert jobs["12"].pages_total == 3 and not jobs["12"].finished
    server = HylafaxServer("127.0.0.1", 4559, "ums", wait=1)
    document = FaxDocument(tmp_path / "d.tif", 3, 100)
    assert server.outcome("13", jobs["13"], document).disposition == BUSY
    done = server.outcome("14", jobs["14"], document)
    assert (done.status, done.pages) == (SENT, 3)
    assert server.outcome("15", jobs["15"], document).status == PERMANENT
    waited = server.outcome("12", jobs["12"], document)
    assert waited.status == TEMPORARY and waited.code == "timeout"


async def test_asterisk_call_file_and_archived_status(tmp_path):
    spool = AsteriskSpool(tmp_path / "outgoing", tmp_path / "done", "PJSIP/{number}@trunk", '"UMS" <100>',
                          ring_timeout=20, wait=5, poll=0.05)

    async def pbx(status: str):
        # Asterisk's part, simulated: take the call file, archive it with a status
        while not list(spool.outgoing.glob("*.call")):
            await asyncio.sleep(0.02)
        call_file = next(spool.outgoing.glob("*.call"))
        text = call_file.read_text()
        spool.done.mkdir(exist_ok=True)
        (spool.done / call_file.name).write_text(text + f"Status: {status}\n")
        call_file.unlink()
        return text

    clock = lambda: utcnow()  # noqa: E731
    simulated = asyncio.ensure_future(pbx("Completed"))
    result = await spool.call("82212345678", Path("/var/audio/n1.wav"), 6.2, 41, 1, clock)
    text = await simulated
    assert "Channel: PJSIP/82212345678@trunk" in text and "Data: /var/audio/n1\n" in text
    assert "Archive: yes" in text and "WaitTime: 20" in text
    assert result.status == SENT and result.disposition == ANSWERED
    simulated = asyncio.ensure_future(pbx("Expired"))
    assert (await spool.call("8221", Path("/a.wav"), 1, 42, 1, clock)).disposition == NO_ANSWER
    await simulated
