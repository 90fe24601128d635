"""STARTTLS: with a certificate configured, MAS offers STARTTLS and accepts mail
over the encrypted session; without one it does not offer it."""

from __future__ import annotations

import shutil
import ssl
import subprocess

import aiosmtplib
import pytest

from tests.conftest import make_config
from tests.helpers import split_address
from tests.unit.mas import mas_samples as samples
from ums.store import mailbox

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl (scripts/apt-test.txt)")


def self_signed(folder) -> tuple[str, str]:
    cert, key = folder / "mas.crt", folder / "mas.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ums.local",
         "-addext", "subjectAltName=DNS:ums.local,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return str(cert), str(key)


async def test_mail_is_accepted_over_starttls_with_a_configured_certificate(tmp_path, sqlite_url, start_suite):
    cert, key = self_signed(tmp_path)
    suite = await start_suite(make_config(tmp_path, sqlite_url, mas__tls_cert=cert, mas__tls_key=key), ["mas"])
    host, port = split_address(suite.services["mas"].address)
    trusting = ssl.create_default_context(cafile=cert)
    async with aiosmtplib.SMTP(hostname=host, port=port, timeout=10, start_tls=False, tls_context=trusting) as client:
        await client.ehlo()
        assert client.supports_extension("starttls")
        await client.starttls()
        assert client.get_transport_info("peercert")["subject"] == ((("commonName", "ums.local"),),)
        await client.sendmail("kim@customer.example", ["sales@ums.local"],
                              samples.reply("kim@customer.example", "sales@ums.local"))
    async with suite.ctx.db.connect() as conn:
        [stored] = await mailbox.messages(conn, (await mailbox.by_address(conn, "sales@ums.local"))["id"])
    assert stored["sender"] == "kim@customer.example"


async def test_a_client_that_does_not_trust_the_certificate_cannot_negotiate(tmp_path, sqlite_url, start_suite):
    cert, key = self_signed(tmp_path)
    suite = await start_suite(make_config(tmp_path, sqlite_url, mas__tls_cert=cert, mas__tls_key=key), ["mas"])
    host, port = split_address(suite.services["mas"].address)
    async with aiosmtplib.SMTP(hostname=host, port=port, timeout=10, start_tls=False) as client:
        await client.ehlo()
        with pytest.raises((ssl.SSLError, aiosmtplib.SMTPException)):
            await client.starttls()


async def test_no_starttls_without_a_certificate(tmp_path, sqlite_url, start_suite):
    suite = await start_suite(make_config(tmp_path, sqlite_url), ["mas"])
    host, port = split_address(suite.services["mas"].address)
    async with aiosmtplib.SMTP(hostname=host, port=port, timeout=10, start_tls=False) as client:
        await client.ehlo()
        assert not client.supports_extension("starttls")
