"""Must show 1: a 3-page Korean fax renders to TIFF Class F, goes through a
loopback T.37 gateway with a CDR row of 3 pages, and waits in a real HylaFAX
queue with 3 pages until it is cancelled."""

from __future__ import annotations

import asyncio
import re
import subprocess

from sqlalchemy import select

from ums.queue.states import StateChange
from ums import cdr as ums_cdr
from ums.channels import ANSWERED, FAILED, PERMANENT, SENT, TEMPORARY, Delivery
from ums.channels.fax import FaxChannel
from ums.db.models import cdr
from ums.outbox import SendRequest, enqueue
from ums.store import deliveries as delivery_store
from ums.store import templates as template_store

from tests.helpers import eventually

from .conftest import channel_context, need
from ums.clock import utcnow

STATEMENT = """
<h1>{{ name }} 고객님께</h1>
<p>이번 달 <b>거래 내역</b>을 알려 드립니다. 계좌번호 {{ account }}.</p>
<div style="page-break-before: always"><h2>2쪽: 입출금 내역</h2>
<table><tr><td>2024-05-01</td><td>입금</td><td>1,000,000원</td></tr></table></div>
<div class="page-break"><h2>3쪽: 안내 사항</h2><p>문의: 고객센터 1588-0000</p></div>
"""


def statement_template() -> dict:
    return {"name": "statement", "channel": "fax", "kind": "advertising", "subject": "{{ name }} 고객님 5월 거래 안내",
            "body_html": STATEMENT, "body_text": None, "sender_name": "한빛은행",
            "sender_contact": "02-123-4567", "options": {"refusal_number": "080-123-4567"}}


def delivery_for(row: dict, template: dict, attempt: int = 1) -> Delivery:
    return Delivery(id=row["id"], channel=row["channel"], recipient=row["recipient"], kind=row["kind"],
                    message_id=row["message_id"], token=row["token"], attempt=attempt, template=template,
                    variables=row["variables"] or {}, source=row.get("template_name") or "")


async def record(db, row: dict, outcome, config, final: bool = True) -> None:
    """Write the attempt's CDR row the way PASS does (ums.cdr + store.deliveries.finish)."""
    now = utcnow()
    state = "sent" if outcome.ok else "failed"
    change = StateChange(row["id"], state, 1, row["due_at"], outcome.code, outcome.detail, now, now)
    cdr_row = ums_cdr.attempt_row(row, outcome, 1, final, ums_cdr.rate_table(config), now, source="statement")
    async with db.begin() as conn:
        await conn.run_sync(delivery_store.finish, [change], [cdr_row])


def tiffinfo(path) -> str:
    return subprocess.run(["tiffinfo", str(path)], capture_output=True, text=True, timeout=30).stdout


async def test_korean_three_page_fax_through_t37_gateway_with_cdr(db, database_url, tmp_path, fax_gateway):
    need("gs", "tiffinfo")
    ctx = channel_context(tmp_path, database_url, fax__t37_port=fax_gateway.port, fax__t37_domain="fax.test")
    now = utcnow()
    async with db.begin() as conn:
        template = statement_template()
        await template_store.save(conn, "statement", "fax", now, **{k: template[k] for k in template_store.FIELDS})
        request = SendRequest("fax", "02-1234-5678", template="statement", kind="advertising",
                              variables={"name": "홍길동", "account": "110-222-333333"})
        delivery_id = await enqueue(conn, request, now)
        row = await delivery_store.get(conn, delivery_id)
        stored_template = await template_store.get(conn, "statement", "fax")

    outcome = await FaxChannel(ctx).send(delivery_for(row, stored_template))

    assert outcome.status == SENT, outcome.detail
    assert outcome.pages == 3 and outcome.disposition == ANSWERED and outcome.dstchannel == "fax.test"
    mailbox, message = fax_gateway.received[0]
    assert mailbox == "FAX=+82212345678@fax.test"
    assert str(message["Subject"]) == "(광고) 홍길동 고객님 5월 거래 안내"
    assert message["Message-ID"] == row["message_id"]
    image = next(part for part in message.iter_attachments() if part.get_content_type() == "image/tiff")
    assert image.get_param("application") == "faxbw"
    received = tmp_path / "received.tif"
    received.write_bytes(image.get_content())
    info = tiffinfo(received)
    assert info.count("TIFF Directory") == 3
    assert info.count("Compression Scheme: CCITT Group 3") == 3
    assert info.count("Resolution: 204, 196 pixels/inch") == 3
    assert info.count("Image Width: 1728") == 3

    await record(db, row, outcome, ctx.config)
    async with db.connect() as conn:
        rows = (await conn.execute(select(cdr).where(cdr.c.delivery_id == delivery_id))).mappings().all()
    assert len(rows) == 1
    assert rows[0]["pages"] == 3 and rows[0]["medium"] == "fax" and rows[0]["disposition"] == ANSWERED
    assert rows[0]["dst"] == "02-1234-5678" and rows[0]["final"]


async def test_fax_gateway_refusals_and_bad_numbers(sqlite_url, tmp_path, fax_gateway):
    need("gs")
    ctx = channel_context(tmp_path, sqlite_url, fax__t37_port=fax_gateway.port, fax__t37_domain="fax.test")
    channel = FaxChannel(ctx)
    row = {"id": 7, "channel": "fax", "recipient": "02-1234-5678", "kind": "transactional",
           "message_id": "<x@ums>", "token": "t", "variables": {"name": "김"}}
    template = {**statement_template(), "kind": "transactional"}

    fax_gateway.reject_code = "451 4.3.0 gateway busy"
    assert (await channel.send(delivery_for(row, template))).status == TEMPORARY
    fax_gateway.reject_code = "550 5.1.1 no such fax number"
    refused = await channel.send(delivery_for(row, template))
    assert refused.status == PERMANENT and refused.code == "550" and refused.disposition == FAILED
    bad = await channel.send(delivery_for({**row, "recipient": "call me"}, template))
    assert bad.status == PERMANENT and bad.code == "invalid number"
    assert fax_gateway.received == []


async def test_fax_waits_in_real_hylafax_queue_with_three_pages_until_cancelled(sqlite_url, tmp_path, hylafax):
    need("gs")
    ctx = channel_context(tmp_path, sqlite_url, fax__driver="hylafax", fax__hylafax_port=hylafax.port,
                          fax__hylafax_poll="0.3", fax__hylafax_wait="60")
    row = {"id": 8, "channel": "fax", "recipient": "02-1234-5678", "kind": "advertising",
           "message_id": "<y@ums>", "token": "t", "variables": {"name": "홍길동", "account": "1"}}
    sending = asyncio.ensure_future(FaxChannel(ctx).send(delivery_for(row, statement_template())))
    try:
        def queued_with_three_pages():
            listing = hylafax.client("faxstat", "-s")
            return re.search(r"^\s*(\d+)\s+\d+\s+[A-Z]\s+ums\s+\S+\s+0:3\b", listing, re.M)

        job = await eventually(lambda: asyncio.to_thread(queued_with_three_pages), timeout=30, interval=0.3)
        await asyncio.sleep(1)  # it stays queued: no modem answers
        assert queued_with_three_pages(), "the job left the queue on its own"
        assert "removed" in hylafax.client("faxrm", job[1])
        outcome = await asyncio.wait_for(sending, 30)
    finally:
        sending.cancel()
    assert outcome.status == PERMANENT and outcome.code == "cancelled"
    assert outcome.extra["hylafax_job"] == job[1] and outcome.disposition == FAILED
