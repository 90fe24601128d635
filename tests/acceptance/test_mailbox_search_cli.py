"""`ums mailbox search` over the unified mailbox (issue #19): a 3-page Korean
fax rendered by UMS's fax path and received by MAS over SMTP is found by a
word of its second page, with the match shown; an EUC-KR email's Hangul is
found; ``--user`` finds only what that user may
read; a query with no words is one line and exit 2."""

from __future__ import annotations

import json
import subprocess
from email.mime.text import MIMEText

import aiosmtplib

from tests import korean_fax
from tests.acceptance.cli import UMS, environment, ums
from tests.conftest import make_config
from tests.helpers import eventually, split_address
from ums.store import mailbox as mailbox_store


async def test_a_fax_is_found_by_a_word_of_its_second_page_and_a_user_finds_only_theirs(tmp_path, start_suite):
    home = tmp_path / "home"
    home.mkdir()
    assert ums(home, "init", "--admin-password", "first-admin-pw").returncode == 0
    for name in ("agent", "other"):
        added = subprocess.run([UMS, "user", "add", name, "--role", "user", "--password-stdin"], cwd=home,
                               env=environment(home), input=f"{name}-password\n", capture_output=True, text=True)
        assert added.returncode == 0, added.stderr
    assert ums(home, "mailbox", "assign", "fax@ums.local", "agent").returncode == 0
    assert ums(home, "mailbox", "assign", "other@ums.local", "other").returncode == 0
    suite = await start_suite(make_config(home, f"sqlite+aiosqlite:///{home}/var/ums.db"), ["mas"])
    host, port = split_address(suite.services["mas"].address)

    tiff = await korean_fax.render(tmp_path / "render")
    euc_kr = MIMEText("고객님, 요청하신 환불신청서 처리가 끝났습니다.", "plain", "euc-kr")
    euc_kr["From"], euc_kr["To"], euc_kr["Subject"] = "bank@example.com", "other@ums.local", "처리 결과"
    async with aiosmtplib.SMTP(hostname=host, port=port, timeout=30, start_tls=False) as client:
        await client.sendmail("fax-gateway@fax.bank.example", ["fax@ums.local"],
                              korean_fax.gateway_mail("fax@ums.local", tiff))
        await client.sendmail("bank@example.com", ["other@ums.local"], euc_kr.as_bytes())

    async def read():
        async with suite.ctx.db.connect() as conn:
            return not await mailbox_store.pending_bodies(conn)

    await eventually(read, timeout=90, interval=0.25)
    word = korean_fax.SECOND_PAGE_WORD
    found = ums(home, "mailbox", "search", word, "--json")
    assert found.returncode == 0, found.stderr
    rows = json.loads(found.stdout)
    assert {(row["mailbox"], row["media"]) for row in rows} == {("fax@ums.local", "fax"), ("other@ums.local", "email")}
    fax = next(row for row in rows if row["media"] == "fax")
    assert fax["pages"] == 3 and f"<mark>{word}</mark>" in fax["snippet_html"]

    table = ums(home, "mailbox", "search", word, "--mailbox", "fax@ums.local")
    assert table.returncode == 0, table.stderr
    assert f"[{word}]" in table.stdout and "other@ums.local" not in table.stdout
    assert "1 of 1 matching" in table.stderr

    # each user finds only the mailbox they own
    mine = json.loads(ums(home, "mailbox", "search", word, "--user", "agent", "--json").stdout)
    assert [row["mailbox"] for row in mine] == ["fax@ums.local"]
    theirs = json.loads(ums(home, "mailbox", "search", "환불", "--user", "other", "--json").stdout)
    assert [row["mailbox"] for row in theirs] == ["other@ums.local"]
    # the fax's first page is not theirs to find
    assert json.loads(ums(home, "mailbox", "search", "고객님께", "--user", "other", "--json").stdout) == []

    nothing = ums(home, "mailbox", "search", "   ")
    assert nothing.returncode == 2 and len(nothing.stderr.strip().splitlines()) == 1
    assert "no words" in nothing.stderr
    ghost = ums(home, "mailbox", "search", word, "--user", "ghost")
    assert ghost.returncode != 0 and "No user named 'ghost'" in ghost.stderr
