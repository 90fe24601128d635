"""PASS test support: a real SMTP sink on loopback (aiosmtpd on the test loop)
that records every message and can answer 4xx/5xx or drop connections, and
helpers to seed an audience and run a campaign."""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
from collections import Counter
from datetime import datetime, timedelta, timezone

from aiosmtpd.smtp import SMTP as SMTPServer
from sqlalchemy import insert, select

from tests.conftest import make_config
from ums import campaigns
from ums.db.models import address_book_entries, address_books, consents, contacts, deliveries
from ums.store import templates as template_store
from ums.clock import utcnow

MESSAGE_ID = re.compile(rb"^Message-ID: (<[^>]+>)", re.M | re.I)


class SinkHandler:
    """Accepts everything unless told to fail some of it."""

    def __init__(self, temp_fail=0.0, perm_fail=0.0, drop=0.0, seed=7, pipelining=False):
        self.temp_fail, self.perm_fail, self.drop = temp_fail, perm_fail, drop
        self.pipelining = pipelining
        self.random = random.Random(seed)
        self.received: list[tuple[str, str, bytes]] = []   # (recipient, message-id, data)
        self.answers: Counter = Counter()
        self.delay = 0.0

    def permanently_failing(self, address: str) -> bool:
        digest = hashlib.sha1(address.encode()).digest()[0] / 256
        return digest < self.perm_fail

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        """Announce PIPELINING (RFC 2920) when asked, as Postfix does: PASS then
        sends MAIL, RCPT and DATA together (aiosmtpd answers them in order)."""
        session.host_name = hostname
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.permanently_failing(address):
            self.answers["5xx"] += 1
            return "550 5.1.1 no such user here"
        if self.temp_fail and self.random.random() < self.temp_fail:
            self.answers["4xx"] += 1
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.drop and self.random.random() < self.drop:
            self.answers["dropped"] += 1
            server.transport.close()
            return "421 closing"
        if self.delay:
            await asyncio.sleep(self.delay)
        found = MESSAGE_ID.search(envelope.original_content or envelope.content)
        message_id = found.group(1).decode() if found else ""
        for rcpt in envelope.rcpt_tos:
            self.received.append((rcpt, message_id, envelope.original_content or envelope.content))
        self.answers["250"] += 1
        return "250 2.0.0 queued"

    def message_ids(self) -> list[str]:
        return [message_id for _, message_id, _ in self.received]


class Sink:
    def __init__(self, handler: SinkHandler):
        self.handler = handler
        self.server = None
        self.port = 0

    async def start(self) -> "Sink":
        return await self.start_on(0)

    async def start_on(self, port: int) -> "Sink":
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: SMTPServer(self.handler, hostname="sink.test", data_size_limit=None, timeout=30),
            "127.0.0.1", port,
        )
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        self.server.close()


def pass_config(tmp_path, database_url, sink_port, **overrides):
    values = dict(
        email__relay_port=str(sink_port), email__connections="8", pass__concurrency="16",
        pass__retry_base="0.05", pass__retry_max="0.3", pass__poll_interval="0.1",
        pass__write_interval="0.02",
    )
    values.update(overrides)
    return make_config(tmp_path, database_url, **values)


NOW = datetime(2026, 11, 23, 3, 0, tzinfo=timezone.utc)   # 12:00 in Seoul


async def seed_audience(db, count: int, book: str = "customers", consent: bool = True, night: bool = False,
                        domain: str = "example.com", grade: str = "NORMAL", start: int = 0) -> list[int]:
    """``count`` contacts in address book ``book``, each with a recent advertising consent."""
    async with db.begin() as conn:
        book_id = await conn.scalar(select(address_books.c.id).where(address_books.c.name == book))
        if book_id is None:
            book_id = (await conn.execute(insert(address_books).values(name=book))).inserted_primary_key[0]
        rows = [
            {"customer_id": f"C{start + n:07d}", "name": f"고객{start + n}", "email": f"user{start + n}@{domain}",
             "grade": grade, "timezone": "Asia/Seoul"}
            for n in range(count)
        ]
        await conn.execute(insert(contacts), rows)
        ids = (await conn.execute(
            select(contacts.c.id).where(contacts.c.customer_id.in_([r["customer_id"] for r in rows]))
        )).scalars().all()
        await conn.execute(insert(address_book_entries), [{"book_id": book_id, "contact_id": i} for i in ids])
        if consent:
            await conn.execute(insert(consents), [
                {"contact_id": i, "granted": True, "night_time": night, "source": "web",
                 "recorded_at": NOW - timedelta(days=30)} for i in ids
            ])
    return list(ids)


async def add_template(db, name="offer", channel="email", kind="advertising"):
    async with db.begin() as conn:
        await template_store.save(
            conn, name, channel, NOW, kind=kind, subject="{{ name }}님께 드리는 혜택",
            body_text="{{ name }}님, 안녕하세요. 이번 달 혜택을 안내드립니다.",
            body_html="<p>{{ name }}님, 안녕하세요.</p>", sender_name="UMS은행", sender_contact="1588-0000",
        )


async def start_campaign(db, name="spring", kind="advertising", book="customers", template="offer",
                         now=None, throttle=None) -> int:
    now = now or utcnow()
    spec = campaigns.from_dict({"name": name, "kind": kind, "template": template,
                                "audience": {"books": [book]}, "throttle": throttle or {},
                                "created_by": "marketing"})
    async with db.begin() as conn:
        campaign_id = await campaigns.create(conn, spec, now)
        await campaigns.schedule(conn, campaign_id, at=None, now=now)
    return campaign_id


async def states(db, campaign_id=None) -> Counter:
    async with db.connect() as conn:
        query = select(deliveries.c.state)
        if campaign_id:
            query = query.where(deliveries.c.campaign_id == campaign_id)
        return Counter((await conn.execute(query)).scalars().all())
