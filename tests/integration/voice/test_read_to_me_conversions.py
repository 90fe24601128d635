"""Read it to me, the other conversions (#19): with MAS and PASS running, a
mailbox's rule sends a fax copy of each new email (a real TIFF to a loopback
T.37 gateway, whose text Tesseract reads back) and mails each new fax with its
pages and text to the user's own address (a real SMTP sink). Each is a
delivery with its CDR row; neither fires for the other medium."""

from __future__ import annotations

import asyncio
import email
import email.policy
import io
import subprocess

from PIL import Image
from sqlalchemy import select

from tests.helpers import eventually
from tests.integration.channels.conftest import need
from tests.integration.channels.peers import FaxGatewaySink, start_smtp_sink
from tests.integration.pass_.pass_support import Sink, SinkHandler, pass_config
from ums.db.models import cdr, deliveries
from ums.sieve import delivery as conversions

from .test_read_to_me import FAX_TEXT, fax_tiff, gateway_mail, letter, mail_to_mas, start_with_rule

FAX_NUMBER = "+8225550100"
HOME = "me@home.example"
EMAIL_TEXT = "계약서 사본을 보내 드립니다. 계약번호 4711-2026 입니다."


def ocr(tiff: bytes) -> str:
    with Image.open(io.BytesIO(tiff)) as image:
        png = io.BytesIO()
        image.convert("L").save(png, "PNG")
    return subprocess.run(["tesseract", "stdin", "stdout", "-l", "kor+eng", "--psm", "4"], input=png.getvalue(),
                          capture_output=True, timeout=120).stdout.decode()


async def test_a_fax_copy_of_each_email_and_each_fax_mailed_with_its_pages(tmp_path, database_url, start_suite):
    need("gs", "tesseract")
    relay = await Sink(SinkHandler()).start()
    gateway = FaxGatewaySink("fax.test")
    gateway_server, gateway_port = await start_smtp_sink(gateway)
    try:
        config = pass_config(tmp_path, database_url, relay.port, mas__local_domains="bank.example",
                             fax__t37_port=str(gateway_port), fax__t37_domain="fax.test")
        suite = await start_with_rule(start_suite, config, conversions.Conversion("email", f"fax:{FAX_NUMBER}"),
                                      conversions.Conversion("fax", f"mailto:{HOME}"))
        await mail_to_mas(suite, letter("kim@customer.example", "계약서", EMAIL_TEXT),
                          gateway_mail(await fax_tiff(suite.ctx, tmp_path)))

        async def both_sent():
            async with suite.ctx.db.connect() as conn:
                rows = (await conn.execute(select(deliveries))).mappings().all()
                billed = (await conn.execute(select(cdr))).mappings().all()
            done = len(rows) == 2 and all(row["state"] == "sent" for row in rows)
            return (rows, billed) if done else None

        rows, billed = await eventually(both_sent, timeout=90, interval=0.5)
        assert sorted((row["channel"], row["recipient"]) for row in rows) == [("email", HOME), ("fax", FAX_NUMBER)]
        assert sorted(row["medium"] for row in billed if row["final"]) == ["email", "fax"]

        # the email, as a fax: one TIFF whose text is the email's
        [(fax_mailbox, fax_message)] = gateway.received
        assert fax_mailbox == "FAX=+8225550100@fax.test"
        [tiff] = [part.get_content() for part in fax_message.iter_attachments()]
        assert "4711" in await asyncio.to_thread(ocr, tiff)

        # the fax, as an email: its pages attached and its text in the body
        [(recipient, _, data)] = relay.handler.received
        mailed = email.message_from_bytes(data, policy=email.policy.default)
        assert recipient == HOME
        pages = [part for part in mailed.iter_attachments() if part.get_content_type() == "image/tiff"]
        assert len(pages) == 1 and pages[0].get_content().startswith((b"II*\x00", b"MM\x00*"))
        body = mailed.get_body(("plain",)).get_content()
        assert "상환 일정표" in body and FAX_TEXT.split()[0] in body
    finally:
        gateway_server.close()
        await relay.close()
