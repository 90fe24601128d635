"""Must show 3: an EPS event for a VIP customer goes out by voice (a real SIP
call placed by PASS through the voice channel); the callee's SIP server
answers 404 for the number, a permanent failure, so the delivery falls back to
email (an SMTP sink); both attempts are in the CDR and the customer timeline."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from sqlalchemy import select

from tests.conftest import make_config
from tests.helpers import eventually
from ums.db import connect
from ums.db.models import cdr, deliveries
from ums.store import templates as template_store
from ums.store import timeline, utcnow

from .conftest import need
from .peers import start_smtp_sink


def eps_support():
    """The EPS tests' client helpers (their folder is not a package)."""
    if "eps_support" not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "eps" / "eps_support.py"
        spec = importlib.util.spec_from_file_location("eps_support", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["eps_support"] = module
    return sys.modules["eps_support"]


class MailSink:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, envelope.content))
        return "250 OK"


async def test_vip_voice_fails_permanently_then_email_fallback(tmp_path, database_url, start_suite, sip_peer):
    need("espeak-ng", "sox", "baresip")
    support = eps_support()
    callee = await sip_peer("answer")   # its only user is "callee": any number gets 404 Not Found
    mail = MailSink()
    smtp, smtp_port = await start_smtp_sink(mail)
    config = make_config(tmp_path, database_url, email__relay_port=smtp_port,
                         voice__sip_uri=f"sip:{{number}}@127.0.0.1:{callee.port}", voice__ring_timeout="10")
    db = connect(database_url)
    try:
        now = utcnow()
        async with db.begin() as conn:
            await template_store.save(conn, "deposit-voice", "voice", now,
                                      body_text="{{ amount }}원이 입금되었습니다.")
            await template_store.save(conn, "deposit-email", "email", now, subject="입금 안내",
                                      body_text="{{ amount }}원이 입금되었습니다.")
        await support.add_customer(db, "VIP1", grade="VIP", email="vip@example.com", phone="010-555-0101")
        key = await support.new_key(db, "account")
        suite = await start_suite(config, ["eps", "pass"])
        eps = support.EpsClient(suite, db, key)
        status, _, _ = await eps.register(support.SAMPLES / "large-deposit-alert.json")
        assert status in (200, 201)
        status, _, reply = await eps.post_json({"type": "deposit", "customer_id": "VIP1",
                                                "data": {"amount": 5000000}})
        assert status in (200, 202), reply

        await eventually(lambda: mail.messages, timeout=60, interval=0.2)
        assert mail.messages[0][0] == ["vip@example.com"]

        async def both_final():
            async with db.connect() as conn:
                rows = (await conn.execute(select(deliveries).order_by(deliveries.c.id))).mappings().all()
            return rows if [r["state"] for r in rows] == ["failed", "sent"] else None

        voice, email = await eventually(both_final, timeout=30, interval=0.2)
        assert (voice["channel"], email["channel"]) == ("voice", "email")
        assert voice["last_code"] == "404"
        async with db.connect() as conn:
            attempts = (await conn.execute(select(cdr).order_by(cdr.c.id))).mappings().all()
            view = await timeline.for_customer(conn, "VIP1")
        assert [(a["medium"], a["disposition"], a["final"]) for a in attempts] == [
            ("voice", "FAILED", True), ("email", "ANSWERED", True)]
        assert attempts[0]["status_code"] == "404" and attempts[0]["billsec"] == 0
        steps = [(e["kind"], e.get("channel"), e.get("state")) for e in view["entries"]]
        assert steps == [("event", None, "dispatched"), ("delivery", "voice", "failed"),
                         ("delivery", "email", "sent")]
    finally:
        smtp.close()
        await db.close()
