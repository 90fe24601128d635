"""One search over the unified mailbox in WAS (issue #19, must-show 2), on
SQLite and PostgreSQL, with mail arriving at MAS over SMTP: a Hangul word in
an EUC-KR email body is found (a two-syllable word too); results come best
match first with the matches marked in an escaped snippet; and a user never
finds a message of a mailbox that is not theirs — in the inbox, in the
message view, nor through their ``mailbox`` API key."""

from __future__ import annotations

import json
import re
from email.mime.text import MIMEText
from urllib.parse import quote

import aiosmtplib
import pytest
from was_site import Site, add_users

from tests.helpers import split_address
from ums.store import apikeys

WORD = "연회비환불"


@pytest.fixture
async def site(config, start_suite):
    suite = await start_suite(config, ["was", "mas"])
    site = Site(suite, "http://" + suite.services["was"].address)
    site.user_ids = await add_users(suite.ctx.db)
    return site


def euc_kr(to: str, subject: str, text: str) -> bytes:
    message = MIMEText(text, "plain", "euc-kr")
    message["From"], message["To"], message["Subject"] = "customer@example.com", to, subject
    return message.as_bytes()


async def deliver(site, messages: list[tuple[str, bytes]]) -> None:
    host, port = split_address(site.suite.services["mas"].address)
    async with aiosmtplib.SMTP(hostname=host, port=port, timeout=30, start_tls=False) as client:
        for to, raw in messages:
            errors, _ = await client.sendmail("customer@example.com", [to], raw)
            assert errors == {}


def subjects(page_text: str) -> list[str]:
    return re.findall(r'<a href="/inbox/\d+">([^<]*)</a>', page_text)


async def test_an_euc_kr_hangul_word_is_found_ranked_and_marked_and_only_in_ones_own_mailboxes(site):
    admin = await site.logged_in("admin")
    for address, role in (("support@ums.local", "user"), ("sales@ums.local", "marketer")):
        reply = await admin.post_form("/admin/mailboxes", {"address": address, "username": role}, page="/admin/users")
        assert reply.status == 303, reply.text
    await deliver(site, [
        ("support@ums.local", euc_kr("support@ums.local", "카드 문의", f"지난달 {WORD} 요청합니다. <b>급함</b>")),
        ("support@ums.local", euc_kr("support@ums.local", "다시 문의", f"{WORD} {WORD} {WORD}: 세 번째 요청입니다")),
        ("support@ums.local", euc_kr("support@ums.local", "잔액 확인", "잔액을 알려주세요")),
        ("sales@ums.local", euc_kr("sales@ums.local", "견적 요청", f"{WORD} 관련 견적입니다")),
    ])

    user = await site.logged_in("user")
    found = await user.get("/inbox?q=" + quote(WORD))
    assert found.status == 200
    # the message saying it three times first, then the other; never sales@'s
    assert subjects(found.text) == ["다시 문의", "카드 문의"]
    assert f"<mark>{WORD}</mark>" in found.text
    assert "&lt;b&gt;급함&lt;/b&gt;" in found.text and "<b>급함</b>" not in found.text
    # a two-syllable word, shorter than a trigram, inside a longer one
    assert subjects((await user.get("/inbox?q=" + quote("환불"))).text) == ["다시 문의", "카드 문의"]
    # every word must match; in arrival order when asked
    assert subjects((await user.get("/inbox?q=" + quote(f"{WORD} 세"))).text) == ["다시 문의"]
    assert subjects((await user.get(f"/inbox?sort=received&dir=asc&q={quote(WORD)}")).text) == ["카드 문의", "다시 문의"]

    marketer = await site.logged_in("marketer")
    assert subjects((await marketer.get("/inbox?q=" + quote(WORD))).text) == ["견적 요청"]
    assert subjects((await marketer.get("/inbox?q=" + quote("환불") + "&mailbox=support@ums.local")).text) == []
    # equal matches: the newest first
    assert subjects((await admin.get("/inbox?q=" + quote(WORD))).text) == ["다시 문의", "견적 요청", "카드 문의"]

    # through the API: a user's key finds its user's mail only
    async with site.ctx.db.begin() as conn:
        _, key = await apikeys.create(conn, "crm", site.ctx.clock(), ["mailbox"], user_id=site.user_ids["marketer"])
    read = json.loads((await site.client().get("/api/v1/mailbox?q=" + quote(WORD), **{"x-api-key": key})).body)
    assert [row["mailbox"] for row in read["message"]] == ["sales@ums.local"] and read["total"] == 1
    assert (await site.client().get("/api/v1/mailbox?q=" + quote("x" * 201), **{"x-api-key": key})).status == 400

    # a search of 200+ characters is a 400 with the reason
    long = await user.get("/inbox?q=" + quote("가" * 201))
    assert long.status == 400 and "at most 200 characters" in long.text
