"""Issue #14: a refusal whose From domain passes DMARC acts at once, over real
SMTP. The DKIM, SPF and DMARC checks are the libraries' own (dkimpy, pyspf,
authheaders); only DNS is replaced, by a zone this test serves: the DKIM
public key generated here, the domain's DMARC policy and its SPF record.

A refusal signed by the customer's domain, or sent from an address its SPF
record allows, suppresses advertising at once with its evidence; one signed
by another domain, or altered after signing, suppresses nobody and the From
address is asked to confirm. A trusted upstream's topmost
``Authentication-Results`` is believed; anyone else's is ignored.
"""

from __future__ import annotations

import base64
import subprocess

import dkim
import pytest
from sqlalchemy import select

from tests.conftest import make_config
from tests.integration.mas.conftest import send_to_mas as send
from tests.unit.mas import mas_samples as samples
from ums.db.models import deliveries
from ums.store import addressbooks, suppression

VICTIM = "victim@bigcustomer.example"
ATTACKER = "attacker@evil.example"
GATEWAY = "mx.bank-gateway.example"


def rsa_key(tmp_path, name: str) -> tuple[bytes, str]:
    """(private key PEM, DKIM public key record) of a new 1024-bit RSA key."""
    private = tmp_path / f"{name}.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(private), "1024"], check=True, capture_output=True)
    public = subprocess.run(["openssl", "rsa", "-in", str(private), "-pubout", "-outform", "DER"],
                            check=True, capture_output=True).stdout
    return private.read_bytes(), f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"


@pytest.fixture
def zone(tmp_path):
    """DNS TXT records: bigcustomer.example and evil.example each sign with their own key."""
    customer_key, customer_record = rsa_key(tmp_path, "customer")
    evil_key, evil_record = rsa_key(tmp_path, "evil")
    records = {
        "mail._domainkey.bigcustomer.example": customer_record,
        "_dmarc.bigcustomer.example": "v=DMARC1; p=reject",
        "bigcustomer.example": "v=spf1 ip4:127.0.0.1 -all",
        "mail._domainkey.evil.example": evil_record,
        "_dmarc.evil.example": "v=DMARC1; p=none",
    }
    return {"records": records, "keys": {"bigcustomer.example": customer_key, "evil.example": evil_key}}


@pytest.fixture
async def mas(tmp_path, database_url, start_suite, zone):
    config = make_config(tmp_path, database_url, mas__local_domains="ums.local", mas__trusted_authserv_id=GATEWAY)
    suite = await start_suite(config, ["mas"])
    records = zone["records"]
    suite.services["mas"].handler.authenticity.txt = lambda name: records.get(name.rstrip(".").lower())
    now = suite.ctx.clock()
    async with suite.ctx.db.begin() as conn:
        await addressbooks.save_contact(conn, {"name": "Victim", "email": VICTIM}, now)
    return suite


def signed(raw: bytes, zone, domain: str) -> bytes:
    signature = dkim.sign(raw, b"mail", domain.encode(), zone["keys"][domain],
                          include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return signature + raw


def refusal(**headers) -> bytes:
    return samples.text_message(f"Victim <{VICTIM}>", "news@ums.local", "수신거부", "광고 보내지 마세요\n", **headers)


async def entry(suite) -> dict | None:
    async with suite.ctx.db.connect() as conn:
        found = [e for e in await suppression.entries(conn, "email") if e["address"] == VICTIM]
    return found[0] if found else None


async def confirmations(suite) -> int:
    async with suite.ctx.db.connect() as conn:
        rows = await conn.execute(select(deliveries.c.id).where(
            deliveries.c.recipient == VICTIM, deliveries.c.template_name == "mas-refusal-confirm"))
        return len(rows.all())


async def test_a_refusal_signed_by_the_from_domain_acts_at_once(mas, zone):
    await send(mas, signed(refusal(), zone, "bigcustomer.example"), ATTACKER, ["news@ums.local"])
    found = await entry(mas)
    assert found is not None
    assert (found["reason"], found["scope"], found["source"]) == ("refusal", "advertising", "mas:dmarc")
    assert found["evidence"] == "dkim=pass d=bigcustomer.example aligned"
    assert await confirmations(mas) == 0


@pytest.mark.parametrize("case", ["signed by another domain", "altered after signing", "unsigned"])
async def test_an_unauthenticated_refusal_suppresses_nobody_and_asks(mas, zone, case):
    if case == "signed by another domain":
        raw = signed(refusal(), zone, "evil.example")
    elif case == "altered after signing":
        raw = signed(refusal(), zone, "bigcustomer.example").replace(b"To: news@ums.local", b"To: ads@ums.local")
        assert b"To: ads@ums.local" in raw
    else:
        raw = refusal()
    await send(mas, raw, ATTACKER, ["news@ums.local"])
    assert await entry(mas) is None
    assert await confirmations(mas) == 1


async def test_spf_pass_for_an_aligned_envelope_sender_acts_at_once(mas):
    # from 127.0.0.1, which bigcustomer.example's SPF record allows
    await send(mas, refusal(), "bounces@bigcustomer.example", ["news@ums.local"])
    found = await entry(mas)
    assert found is not None and found["evidence"] == "spf=pass smtp.mailfrom=bigcustomer.example aligned"


async def test_only_the_trusted_upstreams_topmost_authentication_results_counts(mas):
    # someone else's Authentication-Results, and a lower one of the gateway's, are ignored
    forged = refusal(**{"Authentication-Results": "mx.evil.example; dmarc=pass header.from=bigcustomer.example"})
    await send(mas, forged, ATTACKER, ["news@ums.local"])
    below = (f"Authentication-Results: {GATEWAY}; dmarc=fail header.from=bigcustomer.example\r\n"
             f"Authentication-Results: {GATEWAY}; dmarc=pass header.from=bigcustomer.example\r\n").encode()
    await send(mas, below + refusal(), ATTACKER, ["news@ums.local"])
    assert await entry(mas) is None

    trusted = f"Authentication-Results: {GATEWAY}; dmarc=pass header.from=bigcustomer.example\r\n".encode()
    await send(mas, trusted + refusal(), ATTACKER, ["news@ums.local"])
    found = await entry(mas)
    assert found is not None and found["evidence"] == f"dmarc=pass header.from=bigcustomer.example by {GATEWAY}"
