from datetime import timedelta

import aiosmtplib
import pytest

from tests.conftest import make_config
from tests.helpers import eventually, split_address
from ums import outbox
from ums.store import addressbooks, deliveries, templates


@pytest.fixture
async def mas(tmp_path, database_url, start_suite):
    """A running MAS for ``ums.local`` and ``bank.example`` on a fresh database."""
    config = make_config(tmp_path, database_url, mas__local_domains="ums.local bank.example",
                         mas__max_message_size="500000")
    suite = await start_suite(config, ["mas"])
    return suite


@pytest.fixture
def smtp_client(mas):
    """``async with smtp_client() as client`` → a connected aiosmtplib client to MAS."""
    host, port = split_address(mas.services["mas"].address)

    def connect():
        return aiosmtplib.SMTP(hostname=host, port=port, timeout=10, start_tls=False)

    return connect


class RawSMTP:
    """A byte-exact SMTP client on loopback: sends command lines as given (raw
    8-bit, control characters) and returns each reply as (code, text)."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, address: str) -> "RawSMTP":
        import asyncio

        host, port = split_address(address)
        client = cls(*await asyncio.open_connection(host, port))
        await client.reply()  # the greeting
        return client

    async def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            line = (await self.reader.readline()).decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line[4:])
            if line[3:4] != "-":
                return int(line[:3]), "\n".join(lines)

    async def command(self, line: bytes | str) -> tuple[int, str]:
        self.writer.write((line.encode() if isinstance(line, str) else line) + b"\r\n")
        await self.writer.drain()
        return await self.reply()

    async def data(self, message: bytes) -> tuple[int, str]:
        code, text = await self.command("DATA")
        assert code == 354, (code, text)
        body = message.replace(b"\r\n.", b"\r\n..")
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        self.writer.write(body + b".\r\n")
        await self.writer.drain()
        return await self.reply()

    async def close(self) -> None:
        await self.command("QUIT")
        self.writer.close()


@pytest.fixture
def raw_smtp(mas):
    """``client = await raw_smtp()`` → a :class:`RawSMTP` connected to MAS (after EHLO)."""
    opened: list[RawSMTP] = []

    async def connect(ehlo: str = "client.customer.example") -> RawSMTP:
        client = await RawSMTP.connect(mas.services["mas"].address)
        opened.append(client)
        code, _ = await client.command(f"EHLO {ehlo}")
        assert code == 250
        return client

    yield connect
    for client in opened:
        client.writer.close()


@pytest.fixture
async def relay_sink():
    """The SMTP relay PASS sends through: records every message it is given."""
    from tests.integration.pass_.pass_support import Sink, SinkHandler

    sink = await Sink(SinkHandler()).start()
    yield sink
    await sink.close()


@pytest.fixture
async def mas_with_pass(tmp_path, database_url, start_suite, relay_sink):
    """MAS and PASS together on a fresh database; PASS relays into ``relay_sink``."""
    config = make_config(
        tmp_path, database_url, email__relay_port=str(relay_sink.port), mas__local_domains="ums.local",
        pass__poll_interval="0.1", pass__write_interval="0.02", pass__retry_base="0.05", pass__retry_max="0.3",
    )
    return await start_suite(config, ["mas", "pass"])


def sent_to(sink, address: str):
    """The messages the relay got for ``address``, parsed."""
    import email

    return [email.message_from_bytes(data) for rcpt, _, data in sink.handler.received if rcpt == address]


# --- helpers for tests that run MAS and PASS together ---------------------------------

async def send_to_mas(suite, raw: bytes, mail_from: str, recipients: list[str]):
    host, port = suite.services["mas"].address.rsplit(":", 1)
    async with aiosmtplib.SMTP(hostname=host, port=int(port), timeout=10, start_tls=False) as client:
        return await client.sendmail(mail_from, recipients, raw)


async def customer(suite, email: str, fax: str | None = None, phone: str | None = None) -> int:
    now = suite.ctx.clock()
    async with suite.ctx.db.begin() as conn:
        contact = await addressbooks.save_contact(conn, {"name": email, "email": email, "fax": fax,
                                                         "phone": phone}, now)
        await addressbooks.record_consent(conn, contact, True, "web form", now - timedelta(days=1), night_time=True)
        for name, kind in (("offer", "advertising"), ("deposit-alert", "transactional")):
            if await templates.get(conn, name, "email") is None:
                await templates.save(conn, name, "email", now, kind=kind, subject=f"{name} for you",
                                     body_text="안녕하세요.", sender_name="UMS은행", sender_contact="1588-0000")
    return contact


async def queue(suite, channel: str, recipient: str, template: str, kind: str, contact: int) -> int:
    async with suite.ctx.db.begin() as conn:
        return await outbox.enqueue(conn, outbox.SendRequest(channel, recipient, template=template, kind=kind,
                                                             contact_id=contact), suite.ctx.clock())


async def finished(suite, delivery_id: int) -> dict:
    async def done():
        async with suite.ctx.db.connect() as conn:
            row = await deliveries.get(conn, delivery_id)
        return row if row["state"] in ("sent", "failed", "suppressed", "expired") else None

    return await eventually(done, timeout=30, interval=0.1)
