"""Must show 2 (451 while the database is away) and 4 (malformed MIME on one connection)."""

import asyncio

import aiosmtplib
import pytest

from tests.conftest import make_config
from tests.helpers import split_address
from tests.unit.mas import mas_samples as samples
from ums.store import mailbox

BROKEN_BOUNDARY = (b"From: a@customer.example\r\nTo: sales@bank.example\r\nSubject: broken boundary\r\n"
                   b"Date: Mon, 23 Nov 2026 10:00:00 +0900\r\n"
                   b'Content-Type: multipart/mixed; boundary="NEVER"\r\n\r\n--OTHER\r\nhello\r\n--OTHER--\r\n')
BAD_BASE64 = (b"From: b@customer.example\r\nTo: sales@bank.example\r\nSubject: bad base64\r\n"
              b"Date: Mon, 23 Nov 2026 10:00:00 +0900\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
              b"--XX\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n@@@not*base64!!\r\n"
              b"--XX\r\nContent-Type: image/tiff\r\nContent-Transfer-Encoding: base64\r\n\r\n%%%%\r\n--XX--\r\n")
MISSING_HEADERS = b"Subject: only a subject\r\n\r\nno From, no Date, no Message-ID\r\n"
EIGHT_BIT_HEADERS = ("From: 홍길동 <c@customer.example>\r\nTo: sales@bank.example\r\nSubject: 수신거부 요청\r\n"
                     "\r\n본문\r\n").encode("euc-kr")
NO_HEADERS = b"just some text without any header\r\n"
UNKNOWN_CHARSET = (b"From: d@customer.example\r\nTo: sales@bank.example\r\n"
                   b"Subject: =?x-unknown-charset?b?7JWI64WV?=\r\nContent-Type: text/plain; charset=x-bogus\r\n\r\n\xec\x95\x88\r\n")


async def test_malformed_mime_is_stored_or_refused_and_the_connection_goes_on(mas, smtp_client):
    outcomes = []
    async with smtp_client() as client:
        for raw in (BROKEN_BOUNDARY, BAD_BASE64, MISSING_HEADERS, EIGHT_BIT_HEADERS, NO_HEADERS,
                    UNKNOWN_CHARSET, samples.reply("e@customer.example", "sales@bank.example")):
            try:
                await client.sendmail("x@customer.example", ["sales@bank.example"], raw)
                outcomes.append(250)
            except aiosmtplib.SMTPResponseException as error:
                outcomes.append((error.code, error.message))
    assert outcomes[:4] == [250] * 4 and outcomes[5:] == [250, 250]
    assert outcomes[4][0] == 550 and "no header fields" in outcomes[4][1]
    async with mas.ctx.db.connect() as conn:
        box = await mailbox.by_address(conn, "sales@bank.example")
        rows = {row["subject"]: row for row in await mailbox.messages(conn, box["id"])}
    assert "CloseBoundaryNotFoundDefect" in rows["broken boundary"]["defects"] or \
        "StartBoundaryNotFoundDefect" in rows["broken boundary"]["defects"]
    assert "bad base64" in rows["bad base64"]["defects"]
    assert "missing From header" in rows["only a subject"]["defects"]
    refusal = rows["수신거부 요청"]  # raw EUC-KR header bytes decoded, and recognised as a refusal
    assert "not UTF-8" in refusal["defects"] and refusal["classification"] == "refusal"
    assert "안녕" in rows  # an unknown charset label falls back to UTF-8
    assert rows["Re: 대출 상담 문의"]["classification"] == "reply"
    assert len(rows) == 6


class Proxy:
    """A TCP proxy to PostgreSQL that the test can cut and restore, like a network outage."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.server = None
        self.links: list[asyncio.StreamWriter] = []

    async def start(self, port: int = 0) -> int:
        self.server = await asyncio.start_server(self.link, "127.0.0.1", port)
        return self.server.sockets[0].getsockname()[1]

    async def link(self, reader, writer):
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.links += [writer, up_writer]
        await asyncio.gather(self.pipe(reader, up_writer), self.pipe(up_reader, writer), return_exceptions=True)

    async def pipe(self, reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def cut(self):
        self.server.close()
        await self.server.wait_closed()
        for writer in self.links:
            writer.close()
        self.links.clear()


async def test_database_outage_answers_451_and_the_message_is_accepted_after(tmp_path, postgres_url, start_suite):
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url)
    proxy = Proxy(url.port or 5432)
    port = await proxy.start()
    config = make_config(tmp_path, url.set(port=port).render_as_string(hide_password=False))
    suite = await start_suite(config, ["mas"])
    host, smtp_port = split_address(suite.services["mas"].address)
    message = samples.reply("f@customer.example", "sales@ums.local")

    await proxy.cut()
    with pytest.raises(aiosmtplib.SMTPResponseException) as deferred:
        await aiosmtplib.send(message, sender="f@customer.example", recipients=["sales@ums.local"],
                              hostname=host, port=smtp_port, timeout=30)
    assert deferred.value.code == 451

    await proxy.start(port)  # the database is back
    await aiosmtplib.send(message, sender="f@customer.example", recipients=["sales@ums.local"],
                          hostname=host, port=smtp_port, timeout=30)
    async with suite.ctx.db.connect() as conn:
        box = await mailbox.by_address(conn, "sales@ums.local")
        assert len(await mailbox.messages(conn, box["id"])) == 1
    await proxy.cut()
