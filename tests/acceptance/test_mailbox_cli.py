"""`ums mailbox` as an admin uses it: mailboxes given to users and taken back,
listed as a table and as JSON, searched (Korean too), and every mistake one
line with a non-zero exit; a `mailbox` API key made `--user` reads that
user's mailboxes only (shown in WAS's API tests)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from email.message import EmailMessage

import pytest

from tests.acceptance.cli import UMS, environment, ums
from ums.db import connect
from ums.store import mailbox as mailbox_store


@pytest.fixture
def home(tmp_path):
    assert ums(tmp_path, "init", "--admin-password", "first-admin-pw").returncode == 0
    added = subprocess.run([UMS, "user", "add", "agent", "--role", "user", "--password-stdin"], cwd=tmp_path,
                           env=environment(tmp_path), input="agent-password\n", capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    return tmp_path


def file_message(home, address: str, subject: str, text: str) -> None:
    """Store one message in ``address``'s mailbox, as MAS files it."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "kim@example.com", address, subject
    message.set_content(text)
    raw = message.as_bytes()

    async def store():
        db = connect(f"sqlite+aiosqlite:///{home}/var/ums.db")
        async with db.begin() as conn:
            box = await mailbox_store.by_address(conn, address)
            await mailbox_store.store_message(conn, mailbox_id=box["id"], sender="kim@example.com",
                                              recipient=address, subject=subject, size=len(raw), raw=raw)
        await db.close()

    asyncio.run(store())


def test_assign_list_search_unassign(home):
    assigned = ums(home, "mailbox", "assign", "Support@UMS.local", "agent")
    assert assigned.returncode == 0, assigned.stderr
    assert assigned.stdout.strip() == "support@ums.local now belongs to agent"
    assert ums(home, "mailbox", "assign", "sales@ums.local", "agent").returncode == 0
    file_message(home, "support@ums.local", "Card fee", "연회비 환불을 요청합니다.")

    listed = json.loads(ums(home, "mailbox", "list", "--json").stdout)
    assert [(box["address"], box["owner"], box["messages"]) for box in listed] == [
        ("sales@ums.local", "agent", 0), ("support@ums.local", "agent", 1)]
    assert all(box["created_at"].endswith("+09:00") for box in listed)
    table = ums(home, "mailbox", "list").stdout
    assert "support@ums.local" in table and "agent" in table

    found = ums(home, "mailbox", "search", "환불", "--json")
    assert found.returncode == 0, found.stderr
    assert [row["subject"] for row in json.loads(found.stdout)] == ["Card fee"]
    assert json.loads(ums(home, "mailbox", "search", "환불", "--mailbox", "sales@ums.local", "--json").stdout) == []

    taken = ums(home, "mailbox", "unassign", "sales@ums.local")
    assert taken.returncode == 0 and "belongs to nobody" in taken.stdout
    listed = json.loads(ums(home, "mailbox", "list", "--json").stdout)
    assert [(box["address"], box["owner"]) for box in listed] == [("sales@ums.local", None),
                                                                   ("support@ums.local", "agent")]


@pytest.mark.parametrize("args, says", [
    (("assign", "support@elsewhere.example", "agent"), "not at a domain MAS receives mail for (ums.local)"),
    (("assign", "support+vip@ums.local", "agent"), "files user+tag@domain into user@domain"),
    (("assign", "not an address", "agent"), "is not a valid email address"),
    (("assign", "support@ums.local", "nobody"), "No user named 'nobody'"),
    (("unassign", "never@ums.local"), "No mailbox never@ums.local"),
])
def test_a_mistake_is_one_line_and_changes_nothing(home, args, says):
    result = ums(home, "mailbox", *args)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and says in result.stderr, result.stderr
    assert json.loads(ums(home, "mailbox", "list", "--json").stdout) == []


def test_every_mailbox_command_has_help(home):
    for args in ((), ("assign",), ("unassign",), ("list",), ("search",)):
        result = ums(home, "mailbox", *args, "--help")
        assert result.returncode == 0 and "Usage:" in result.stdout, args
