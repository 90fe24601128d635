"""An outbound fax's text (issue #19): the 3-page Korean statement the fax
channel renders and sends through a loopback T.37 gateway is recognised page
by page in the background, after the send, and kept with its delivery."""

from __future__ import annotations

import time

from ums.channels import SENT
from ums.channels.fax import FaxChannel
from ums.outbox import SendRequest, enqueue
from ums.store import deliveries as delivery_store
from ums.store import mailbox as mailbox_store
from ums.store import templates as template_store
from ums.clock import utcnow

from tests.helpers import eventually

from .conftest import channel_context, need
from .test_fax_channel import delivery_for, statement_template


async def test_a_sent_fax_is_recognised_after_it_is_sent_and_kept_page_by_page(db, database_url, tmp_path, fax_gateway):
    need("gs", "tesseract")
    ctx = channel_context(tmp_path, database_url, fax__t37_port=fax_gateway.port, fax__t37_domain="fax.test")
    ctx.db = db
    async with db.begin() as conn:
        template = statement_template()
        await template_store.save(conn, "statement", "fax", utcnow(), **{k: template[k] for k in template_store.FIELDS})
        delivery_id = await enqueue(conn, SendRequest("fax", "02-1234-5678", template="statement", kind="advertising",
                                                      variables={"name": "홍길동", "account": "110-222-333333"}),
                                    utcnow())
        row = await delivery_store.get(conn, delivery_id)
        stored_template = await template_store.get(conn, "statement", "fax")

    started = time.monotonic()
    outcome = await FaxChannel(ctx).send(delivery_for(row, stored_template))
    sent_in = time.monotonic() - started
    assert outcome.status == SENT and outcome.pages == 3, outcome.detail

    async def pages():
        async with db.connect() as conn:
            return await mailbox_store.sent_fax_text(conn, delivery_id)

    assert await pages() == [], f"the send took {sent_in:.1f}s and waited for the recognition"
    found = await eventually(pages, timeout=90, interval=0.25)
    assert len(found) == 3
    assert "홍길동" in found[0] and "입출금" in found[1] and "고객센터" in found[2]
    assert "입출금" not in found[0] + found[2]
    assert not list((tmp_path / "var" / "spool" / "ocr").glob("*.tif"))  # its copy is gone once read
