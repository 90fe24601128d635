"""A fax reply from WAS goes out through the fax channel: WAS and PASS running,
the fax channel pointed at a loopback T.37 gateway (an SMTP sink), and the
gateway receives a TIFF fax for FAX=+<sender's number>@gateway."""

from __future__ import annotations

import io
import shutil

import pytest
from PIL import Image
from was_site import Client, add_mailbox, add_users

from tests.conftest import make_config
from tests.helpers import eventually
from tests.integration.channels.peers import FaxGatewaySink, start_smtp_sink
from ums.db.models import cdr, deliveries


@pytest.fixture
async def fax_gateway():
    sink = FaxGatewaySink("fax.test")
    server, sink.port = await start_smtp_sink(sink)
    yield sink
    server.close()
    await server.wait_closed()


@pytest.fixture
async def was_and_pass(tmp_path, sqlite_url, start_suite, fax_gateway):
    if not shutil.which("gs"):
        pytest.fail("Ghostscript (gs) is missing; run scripts/bootstrap test")
    config = make_config(tmp_path, sqlite_url, fax__t37_port=str(fax_gateway.port), fax__t37_domain="fax.test")
    suite = await start_suite(config, ["was", "pass"])
    user_ids = await add_users(suite.ctx.db)
    ids = await add_mailbox(suite.ctx.db, user_ids["user"])
    client = Client("http://" + suite.services["was"].address)
    assert (await client.login("user")).status == 303
    return suite, client, ids


async def test_a_fax_reply_is_faxed_to_the_senders_number(was_and_pass, fax_gateway):
    suite, client, ids = was_and_pass
    form = await client.get(f"/inbox/{ids['fax']}/respond?mode=reply")
    # a fax is answered by fax, to the number it came from, unless the user changes it
    assert '<option value="fax" selected>' in form.text
    assert 'name="to" value="+8225550100"' in form.text

    sent = await client.post(f"/inbox/{ids['fax']}/respond", {
        "csrf": form.csrf(), "mode": "reply", "channel": "fax", "to": "+8225550100",
        "subject": "Re: your fax", "body": "Thank you for your fax.\nWe will call you back today.",
    })
    assert sent.status == 303 and "Queued" in sent.headers["Location"]

    await eventually(lambda: fax_gateway.received, timeout=30, interval=0.2)
    [(mailbox, message)] = fax_gateway.received
    assert mailbox == "FAX=+8225550100@fax.test"
    assert message["Subject"] == "Fax to +8225550100"
    [tiff] = [part for part in message.iter_attachments() if part.get_content_type() == "image/tiff"]
    with Image.open(io.BytesIO(tiff.get_content())) as image:
        assert image.n_frames >= 1
        assert image.size[0] == 1728                      # a fax page's width in pixels
        assert tuple(round(v) for v in image.info["dpi"]) == (204, 196)
        assert image.convert("L").histogram()[0] > 500     # the typed text is printed on the page

    async def recorded():
        async with suite.ctx.db.connect() as conn:
            row = (await conn.execute(deliveries.select().where(deliveries.c.channel == "fax"))).one()
            billed = (await conn.execute(cdr.select().where(cdr.c.delivery_id == row.id))).all()
        return row.state == "sent" and billed and billed[0].medium == "fax" and billed[0].pages >= 1

    await eventually(recorded, timeout=10, interval=0.2)


async def test_a_fax_forwarded_as_a_fax_sends_its_own_pages(was_and_pass, fax_gateway):
    suite, client, ids = was_and_pass
    forwarded = await client.post_form(f"/inbox/{ids['fax']}/respond", {
        "mode": "forward", "channel": "fax", "to": "031-222-3333", "subject": "Fwd: fax", "body": "",
    }, page=f"/inbox/{ids['fax']}/respond?mode=forward")
    assert forwarded.status == 303, forwarded.text

    await eventually(lambda: fax_gateway.received, timeout=30, interval=0.2)
    [(mailbox, message)] = fax_gateway.received
    assert mailbox == "FAX=+82312223333@fax.test"
    [tiff] = [part for part in message.iter_attachments() if part.get_content_type() == "image/tiff"]
    with Image.open(io.BytesIO(tiff.get_content())) as image:
        assert image.n_frames == 2                        # the original fax had two pages
        assert image.size[0] == 1728
