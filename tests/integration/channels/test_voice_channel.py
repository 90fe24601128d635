"""Must show 2: a voice notice becomes 8 kHz mono audio of the expected
length; a SIP call on loopback to an auto-answering user agent is answered and
the audio arrives; a callee that rejects the call ends it as BUSY; each
attempt has its CDR row with duration and billsec."""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone

from sqlalchemy import select

from ums.channels import ANSWERED, BUSY, NO_ANSWER, SENT, TEMPORARY, Delivery
from ums.channels.voice import VoiceChannel, script_for
from ums.channels.voice.tts import synthesize
from ums.db.models import cdr
from ums.outbox import SendRequest, enqueue
from tests.helpers import eventually
from ums.store import deliveries as delivery_store

from .conftest import channel_context, need
from .test_fax_channel import record
from ums.clock import utcnow

NOTICE = "{{ name }} 고객님, 계좌에 {{ amount }}원이 입금되었습니다. 감사합니다."


def voice_template(kind: str = "transactional") -> dict:
    return {"name": "deposit", "channel": "voice", "kind": kind, "subject": None, "body_html": None,
            "body_text": NOTICE, "sender_name": "한빛은행", "sender_contact": "1588-0000", "options": {}}


def soxi(path, flag: str) -> str:
    return subprocess.run(["soxi", flag, str(path)], capture_output=True, text=True, timeout=30).stdout.strip()


async def test_notice_renders_to_8khz_mono_audio_of_expected_length(tmp_path):
    need("espeak-ng", "sox")
    short = await synthesize("입금 안내입니다.", tmp_path / "short.wav")
    text = "홍길동 고객님, 계좌에 100,000원이 입금되었습니다. 자세한 내용은 고객센터로 문의해 주십시오. 감사합니다."
    audio = await synthesize(text, tmp_path / "notice.wav")
    assert soxi(audio.path, "-r") == "8000"
    assert soxi(audio.path, "-c") == "1"
    assert soxi(audio.path, "-b") == "16"
    measured = float(soxi(audio.path, "-D"))
    assert abs(measured - audio.seconds) < 0.05
    # about 2.5 Korean syllables a second at 150 wpm: the length follows the text
    syllables = sum(1 for char in text if "\uac00" <= char <= "\ud7a3")
    assert syllables / 6 < measured < syllables / 1.5
    assert float(soxi(short.path, "-D")) < measured / 2


def test_advertising_script_says_label_first_and_refusal_number():
    delivery = Delivery(1, "voice", "0101234", "advertising", "<m>", "t", 1, voice_template("advertising"),
                        {"name": "김", "amount": "5"})
    script = script_for(delivery, "080-123-4567")
    assert script.startswith("(광고) 김 고객님")
    assert script.endswith("무료수신거부 080-123-4567")


async def _delivery(db, recipient: str) -> dict:
    async with db.begin() as conn:
        request = SendRequest("voice", recipient, template="deposit", variables={"name": "홍길동", "amount": "5만"})
        delivery_id = await enqueue(conn, request, utcnow())
        return await delivery_store.get(conn, delivery_id)


def _delivery_object(row: dict) -> Delivery:
    return Delivery(row["id"], "voice", row["recipient"], row["kind"], row["message_id"], row["token"], 1,
                    voice_template(), row["variables"])


async def _cdr_rows(db, delivery_id: int):
    async with db.connect() as conn:
        return (await conn.execute(select(cdr).where(cdr.c.delivery_id == delivery_id))).mappings().all()


async def test_sip_call_answered_and_audio_arrives_with_cdr(db, database_url, tmp_path, sip_peer):
    need("espeak-ng", "sox", "soxi")
    callee = await sip_peer("answer")
    ctx = channel_context(tmp_path, database_url, voice__ring_timeout="10", voice__max_call_seconds="30")
    row = await _delivery(db, callee.uri)

    outcome = await VoiceChannel(ctx).send(_delivery_object(row))

    assert outcome.status == SENT, outcome.detail
    assert outcome.disposition == ANSWERED and outcome.dstchannel == callee.uri
    played = outcome.extra["audio_seconds"]
    assert played - 1 <= outcome.billsec <= played + 2
    assert outcome.started_at <= outcome.answered_at < outcome.ended_at
    async def recording_closed():
        # the callee finalises its WAV header when its side of the call ends, a moment
        # after the caller hangs up; until then the file reads as 0 s long
        files = callee.received_audio()
        return files if files and float(soxi(files[0], "-D")) > 0 else None

    recordings = await eventually(recording_closed, timeout=5)
    heard = float(soxi(recordings[0], "-D"))
    assert heard >= played - 1
    # what arrived is speech, not silence
    stats = subprocess.run(["sox", str(recordings[0]), "-n", "stat"], capture_output=True, text=True, timeout=30)
    rms = float(next(line for line in stats.stderr.splitlines() if line.startswith("RMS     amplitude")).split()[-1])
    assert rms > 0.01

    await record(db, row, outcome, ctx.config)
    [cdr_row] = await _cdr_rows(db, row["id"])
    assert cdr_row["disposition"] == ANSWERED and cdr_row["medium"] == "voice"
    assert cdr_row["billsec"] == outcome.billsec and cdr_row["duration"] >= cdr_row["billsec"]
    assert cdr_row["answer"] is not None


async def test_sip_call_rejected_by_callee_ends_busy_with_cdr(db, database_url, tmp_path, sip_peer):
    need("espeak-ng", "sox")
    callee = await sip_peer("reject")
    ctx = channel_context(tmp_path, database_url, voice__ring_timeout="10")
    row = await _delivery(db, callee.uri)

    outcome = await VoiceChannel(ctx).send(_delivery_object(row))

    assert outcome.status == TEMPORARY and outcome.disposition == BUSY and outcome.code == "486"
    assert outcome.billsec == 0 and outcome.answered_at is None
    await record(db, row, outcome, ctx.config, final=False)
    [cdr_row] = await _cdr_rows(db, row["id"])
    assert cdr_row["disposition"] == BUSY and cdr_row["billsec"] == 0 and cdr_row["duration"] >= 0
    assert cdr_row["status_code"] == "486"


async def test_sip_call_nobody_answers_ends_no_answer(sqlite_url, tmp_path, sip_peer):
    need("espeak-ng", "sox")
    callee = await sip_peer("ring")
    ctx = channel_context(tmp_path, sqlite_url, voice__ring_timeout="2")
    delivery = Delivery(3, "voice", callee.uri, "transactional", "<m3>", "t", 1, voice_template(), {"name": "이"})
    outcome = await VoiceChannel(ctx).send(delivery)
    assert outcome.status == TEMPORARY and outcome.disposition == NO_ANSWER
    assert 2 <= (outcome.ended_at - outcome.started_at).total_seconds() < 15
