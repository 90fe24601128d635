"""Must show 5 (#19): a mailbox user's "read new faxes to my phone" rule. A
fax (a real TIFF rendered by UMS's fax channel) reaches MAS by SMTP; MAS
queues a voice delivery; PASS places the SIP call to a real baresip callee
that records it. The recording is speech, about as long as tts.py's WAV of the
fax's text (plus the short "새 팩스입니다." before it), and the call has its
CDR row. An email to the same mailbox is not read: the rule is for faxes."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib
from sqlalchemy import select

from tests.conftest import make_config
from tests.helpers import eventually, split_address
from tests.integration.channels.conftest import need
from tests.integration.channels.peers import SipPeer
from ums.channels import Delivery
from ums.channels.fax import FaxChannel
from ums.channels import readout
from ums.channels.voice.tts import synthesize
from ums.clock import utcnow
from ums.db.models import cdr, deliveries
from ums.sieve import delivery as conversions
from ums.store import mailbox as mailbox_store
from ums.store import rules

from .audio import rms, soxi_seconds

PHONE = "+821012345678"
FAX_TEXT = ("한빛은행 여신부 귀하. 요청하신 대출 상환 일정표를 보내 드립니다. "
            "다음 달 십오일까지 서명하여 회신해 주십시오. 감사합니다.")
MAILBOX = "loans@bank.example"


class NumberCallee(SipPeer):
    """The user's phone: a recording baresip callee whose user part is their number."""

    def _write_config(self) -> None:
        super()._write_config()
        self.uri = f"sip:{PHONE}@127.0.0.1:{self.port}"
        (self.home / "accounts").write_text(f"<{self.uri}>;regint=0;answermode=auto;audio_codecs=PCMU,PCMA\n")




async def fax_tiff(ctx, tmp_path) -> bytes:
    """The fax page, rendered by the fax channel from FAX_TEXT."""
    template = {"name": "page", "channel": "fax", "kind": "transactional", "subject": "상환 일정",
                "body_html": None, "body_text": FAX_TEXT, "sender_name": "", "options": {}}
    delivery = Delivery(1, "fax", "+8225550100", "transactional", "<f@t>", "t", 1, template, {})
    document = await FaxChannel(ctx).render(delivery, tmp_path / "render")
    return document.path.read_bytes()


def gateway_mail(tiff: bytes) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "fax-gateway@carrier.example"
    message["To"] = MAILBOX
    message["Subject"] = "Fax from +8225550100 (1 page)"
    message.set_content(FAX_TEXT)    # the gateway's text of the fax (what is read when Tesseract finds none)
    message.add_attachment(tiff, maintype="image", subtype="tiff", filename="fax.tif")
    return message


def letter(sender: str, subject: str, text: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, MAILBOX, subject
    message.set_content(text)
    return message


async def start_with_rule(start_suite, config, *choices: conversions.Conversion):
    """MAS and PASS running, the mailbox's read-to-me rule set to ``choices``."""
    suite = await start_suite(config, ["mas", "pass"])
    async with suite.ctx.db.begin() as conn:
        box = await mailbox_store.ensure(conn, MAILBOX, utcnow())
        await rules.save(conn, conversions.RULE_NAME, conversions.script(list(choices)), utcnow(),
                         mailbox_id=box["id"])
    return suite


async def mail_to_mas(suite, *messages: EmailMessage) -> None:
    host, port = split_address(suite.services["mas"].address)
    async with aiosmtplib.SMTP(hostname=host, port=port, timeout=10, start_tls=False) as client:
        for message in messages:
            await client.send_message(message)


def phone_config(tmp_path, database_url, callee, **overrides):
    return make_config(tmp_path, database_url, mas__local_domains="bank.example",
                       voice__sip_uri=f"sip:{{number}}@127.0.0.1:{callee.port}", voice__ring_timeout="10",
                       voice__max_call_seconds="60", **overrides)


def recording_of(callee):
    async def closed():
        files = callee.received_audio()
        return files if files and soxi_seconds(files[0]) > 0 else None
    return closed


async def test_read_new_faxes_to_my_phone_calls_and_reads_the_fax(tmp_path, database_url, start_suite):
    need("baresip", "espeak-ng", "sox", "gs")
    callee = NumberCallee("answer")
    await callee.start()
    try:
        suite = await start_with_rule(start_suite, phone_config(tmp_path, database_url, callee),
                                      conversions.Conversion("fax", f"tel:{PHONE}"))
        await mail_to_mas(suite, gateway_mail(await fax_tiff(suite.ctx, tmp_path)),
                          letter("someone@customer.example", "안녕하세요", "이 메일은 읽어 드리지 않습니다."))

        async def finished():
            async with suite.ctx.db.connect() as conn:
                rows = (await conn.execute(select(deliveries))).mappings().all()
            return rows if rows and all(row["state"] in ("sent", "failed") for row in rows) else None

        [call] = await eventually(finished, timeout=90, interval=0.5)
        assert call["channel"] == "voice" and call["recipient"] == PHONE and call["state"] == "sent"

        [recording] = await eventually(recording_of(callee), timeout=10)
        async with suite.ctx.db.connect() as conn:
            [fax_entry] = [entry for entry in await mailbox_store.messages(conn, limit=10) if entry["media"] == "fax"]
            pages = await readout.fax_pages(conn, fax_entry["id"])
            # attempts made while the fax was still being recognised were retried ("text pending")
            [billed] = (await conn.execute(select(cdr).where(cdr.c.delivery_id == call["id"],
                                                              cdr.c.final.is_(True)))).mappings().all()
        spoken = await synthesize(" ".join(pages), tmp_path / "expected.wav")
        intro = await synthesize("새 팩스입니다.", tmp_path / "intro.wav")
        heard = soxi_seconds(recording)
        print(f"fax text spoken by tts.py {spoken.seconds:.2f} s, intro {intro.seconds:.2f} s, "
              f"callee heard {heard:.2f} s, rms {rms(recording):.3f}, billsec {billed['billsec']}")
        assert spoken.seconds > 5                                   # the fax's text, not a one-line notice
        assert spoken.seconds - 1 <= heard <= spoken.seconds + intro.seconds + 3
        assert rms(recording) > 0.01                                # speech, not silence
        assert billed["disposition"] == "ANSWERED" and billed["medium"] == "voice" and billed["final"]
        assert billed["billsec"] >= spoken.seconds - 2
    finally:
        await callee.stop()


async def test_a_fax_without_text_yet_is_not_called_and_is_tried_again(tmp_path, sqlite_url, start_suite):
    """No silent call: while the fax has no text, each attempt is TEMPORARY (a retry CDR row) and the phone never rings."""
    need("baresip", "gs")
    callee = NumberCallee("answer")
    await callee.start()
    try:
        config = phone_config(tmp_path, sqlite_url, callee, pass__retry_base="0.05", pass__retry_max="0.3",
                              pass__poll_interval="0.1")
        suite = await start_with_rule(start_suite, config, conversions.Conversion("fax", f"tel:{PHONE}"))
        bare = gateway_mail(await fax_tiff(suite.ctx, tmp_path))
        bare.get_body(("plain",)).set_content("")        # the gateway sends the image only
        await mail_to_mas(suite, bare)

        async def retried():
            async with suite.ctx.db.connect() as conn:
                rows = (await conn.execute(select(cdr))).mappings().all()
            return rows if len(rows) >= 2 else None

        rows = await eventually(retried, timeout=30, interval=0.2)
        assert all(row["status_code"] == "text pending" and not row["final"] for row in rows)
        async with suite.ctx.db.connect() as conn:
            [call] = (await conn.execute(select(deliveries))).mappings().all()
        assert call["state"] not in ("sent", "failed") and call["channel"] == "voice"
        assert b"Incoming call" not in callee.output
    finally:
        await callee.stop()


async def test_read_new_emails_to_my_phone_reads_the_email(tmp_path, sqlite_url, start_suite):
    need("baresip", "espeak-ng", "sox")
    callee = NumberCallee("answer")
    await callee.start()
    text = "내일 오전 열 시 회의는 본점 삼층 대회의실에서 열립니다. 자료를 미리 읽어 오십시오."
    try:
        suite = await start_with_rule(start_suite, phone_config(tmp_path, sqlite_url, callee, pass__poll_interval="0.1"),
                                      conversions.Conversion("email", f"tel:{PHONE}"))
        await mail_to_mas(suite, letter("lee@bank.example", "회의", text))
        [recording] = await eventually(recording_of(callee), timeout=60, interval=0.5)
        spoken = await synthesize(text, tmp_path / "expected.wav")
        intro = await synthesize("새 메일입니다. 회의.", tmp_path / "intro.wav")
        heard = soxi_seconds(recording)
        assert spoken.seconds - 1 <= heard <= spoken.seconds + intro.seconds + 3
        assert rms(recording) > 0.01
    finally:
        await callee.stop()
