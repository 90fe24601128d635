"""Forwarding a fax or a voice mail by email from WAS delivers the original
document or recording as an attachment, through PASS to an SMTP sink."""

from __future__ import annotations

import email
import email.policy
import inspect

import pytest
from test_with_pass import Recorder, smtp_sink  # noqa: F401  (fixture)
from was_site import Client, add_mailbox, add_users, fax_tiff, voice_wav

import ums.channels.email as email_channel
from tests.conftest import make_config
from tests.helpers import eventually

pytestmark = pytest.mark.skipif(
    "attach_mailbox_message" not in inspect.getsource(email_channel),
    reason="the email channel does not send variables['attach_mailbox_message'] yet",
)


@pytest.fixture
async def forwarding_site(tmp_path, sqlite_url, start_suite, smtp_sink: Recorder):  # noqa: F811
    config = make_config(tmp_path, sqlite_url, email__relay_port=str(smtp_sink.port))
    suite = await start_suite(config, ["was", "pass"])
    ids = await add_mailbox(suite.ctx.db, (await add_users(suite.ctx.db))["user"])
    client = Client("http://" + suite.services["was"].address)
    assert (await client.login("user")).status == 303
    return client, ids


@pytest.mark.parametrize("media, content_type, original", [
    ("fax", "image/tiff", fax_tiff), ("voice", "audio/wav", voice_wav),
])
async def test_a_forward_by_email_carries_the_original(forwarding_site, smtp_sink, media, content_type, original):
    client, ids = forwarding_site
    sent = await client.post_form(f"/inbox/{ids[media]}/respond", {
        "mode": "forward", "channel": "email", "to": "boss@example.com", "subject": f"Fwd: {media}",
        "body": "Please look at this.",
    }, page=f"/inbox/{ids[media]}/respond?mode=forward")
    assert sent.status == 303, sent.text
    await eventually(lambda: "boss@example.com" in smtp_sink.recipients(), timeout=20, interval=0.2)
    [(_, data)] = smtp_sink.received
    message = email.message_from_bytes(data, policy=email.policy.default)
    [attached] = [part for part in message.iter_attachments() if part.get_content_type() == content_type]
    assert attached.get_content() == original()
    assert "Please look at this." in message.get_body(("plain",)).get_content()
