"""`ums journey` as an operator uses it (SQLite instance): create the sample
flow, enter customers, list and show it with the counts at each step, pause,
resume and stop — and bad input is one line and a non-zero exit."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.acceptance.cli import ums
from ums.db import connect
from ums.store import contacts as contact_store
from ums.clock import utcnow

SAMPLES = Path(__file__).resolve().parents[2] / "config" / "samples"


@pytest.fixture
def home(tmp_path):
    assert ums(tmp_path, "init", "--admin-password", "first-admin-pw").returncode == 0
    return tmp_path


def add_customers(home: Path, *customer_ids: str) -> None:
    async def work():
        db = connect(f"sqlite+aiosqlite:///{home}/var/ums.db")
        async with db.begin() as conn:
            for customer_id in customer_ids:
                await contact_store.create(conn, customer_id=customer_id, email=f"{customer_id}@example.com",
                                           timezone="Asia/Seoul", created_at=utcnow())
        await db.close()
    asyncio.run(work())


def ok(home, *args) -> str:
    result = ums(home, "journey", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_create_enter_show_pause_resume_stop(home):
    assert "journey 1 'winback' created with 7 steps, entered by dormant events" in ok(
        home, "create", str(SAMPLES / "journey-winback.xml"), "--by", "marketing")
    add_customers(home, "C1", "C2")
    assert "2 customers entered journey 'winback'" in ok(home, "enter", "winback", "--contacts", "C1,C2")
    assert "0 customers entered journey 'winback' (2 were in it already)" in ok(
        home, "enter", "winback", "--contacts", "C1,C2")

    listed = json.loads(ok(home, "list", "--json"))
    assert [(j["name"], j["state"], j["active"]) for j in listed] == [("winback", "active", 2)]
    assert listed[0]["created_at"].endswith("+09:00")
    shown = json.loads(ok(home, "show", "winback", "--json"))
    assert [(s["id"], s["at"]) for s in shown["steps"]][:2] == [("mail", 2), ("two-days", 0)]
    table = ok(home, "show", "winback")
    assert "opened → done; otherwise → call" in table and "email winback-email" in table

    assert "journey 'winback' paused" in ok(home, "pause", "winback")
    assert "journey 'winback' active" in ok(home, "resume", "winback")
    assert "journey 'winback' stopped; 2 runs ended" in ok(home, "stop", "winback")
    assert json.loads(ok(home, "show", "winback", "--json"))["ended"] == {"stopped": 2}


@pytest.mark.parametrize("args, message", [
    (("show", "nope"), "No journey named 'nope'; `ums journey list` shows them."),
    (("enter", "nope", "--contacts", "C1"), "No journey named 'nope'"),
    (("enter", "winback"), "name who enters: --book, --contacts or --campaign"),
    (("enter", "winback", "--contacts", "C9"), "no customer 'C9'"),
    (("create", "bad.json"), "Bad journey definition in bad.json: step 'a': unknown outcome 'teleported'"),
    (("create", str(SAMPLES / "journey-winback.json")), "A journey named 'winback' already exists"),
])
def test_bad_input_is_one_line(home, args, message):
    ok(home, "create", str(SAMPLES / "journey-winback.json"))
    (home / "bad.json").write_text(json.dumps({"name": "bad", "steps": [
        {"id": "m", "send": {"channel": "email", "template": "t"}},
        {"id": "a", "branch": {"cases": {"teleported": "m"}}}]}))
    result = ums(home, "journey", *args)
    assert result.returncode != 0
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_every_command_has_help(home):
    for command in ("create", "list", "show", "enter", "pause", "resume", "stop"):
        assert ums(home, "journey", command, "--help").returncode == 0
