"""`ums user` as an operator uses it: users and roles from the command line,
and a lost admin password reset so that the new one logs in to a running WAS."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

import pytest

from tests.acceptance.cli import UMS, environment, running, ums
from tests.helpers import free_port, port_is_free
from tests.integration.was.was_site import Client
from ums.db import connect
from ums.store import addressbooks, users


@pytest.fixture
def home(tmp_path):
    (tmp_path / "ums.cfg").write_text(f"[was]\nport = {free_port()}\n[control]\npoll_interval = 0.2\n")
    assert ums(tmp_path, "init", "--admin-password", "first-admin-pw").returncode == 0
    return tmp_path


def ums_with_stdin(home, text: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([UMS, *args], cwd=home, env=environment(home), input=text,
                          capture_output=True, text=True, timeout=60)


def listing(home) -> dict[str, str]:
    """`ums user list` as {name: role}, read from the table and from --json (they agree)."""
    result = ums(home, "user", "list")
    assert result.returncode == 0, result.stderr
    table = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[1:] if line.strip()}
    as_json = ums(home, "user", "list", "--json")
    assert as_json.returncode == 0, as_json.stderr
    people = json.loads(as_json.stdout)
    assert all(person["created_at"].endswith("+09:00") and "password_hash" not in person for person in people)
    assert {person["username"]: person["role"] for person in people} == table
    return table


def test_add_role_passwd_remove_round_trip(home):
    added = ums_with_stdin(home, "carol-password\n", "user", "add", "carol", "--role", "operator", "--password-stdin")
    assert added.returncode == 0, added.stderr
    assert listing(home) == {"admin": "admin", "carol": "operator"}

    taken = ums_with_stdin(home, "carol-password\n", "user", "add", "carol", "--role", "user", "--password-stdin")
    assert taken.returncode == 1 and taken.stderr.strip() == "Error: The user name 'carol' is taken."
    weak = ums_with_stdin(home, "short\n", "user", "add", "dave", "--role", "user", "--password-stdin")
    assert weak.stderr.strip() == "Error: The password must have at least 10 characters."
    no_terminal = ums(home, "user", "passwd", "carol")  # stdin is not a terminal: never a hanging prompt
    assert no_terminal.returncode == 1 and "--password-stdin" in no_terminal.stderr

    assert ums(home, "user", "role", "carol", "marketer").stdout.strip() == "carol is now marketer"
    assert listing(home)["carol"] == "marketer"
    last = ums(home, "user", "role", "admin", "user")
    assert last.returncode == 1 and "last admin" in last.stderr
    assert ums(home, "user", "remove", "admin").returncode == 1
    assert listing(home)["admin"] == "admin"

    assert ums(home, "user", "remove", "carol").returncode == 0
    assert listing(home) == {"admin": "admin"}
    gone = ums(home, "user", "passwd", "carol", "--password-stdin")
    assert gone.returncode == 1 and gone.stderr.strip() == "Error: No user named 'carol'."


async def give_personal_book(home, username: str) -> None:
    """A personal address book owned by ``username`` (WAS makes these; no command does)."""
    db = connect(f"sqlite+aiosqlite:///{home}/var/ums.db")
    try:
        async with db.begin() as conn:
            owner = await users.existing(conn, username)
            await addressbooks.ensure_book(conn, "Mine", scope="personal", owner_id=owner["id"])
    finally:
        await db.close()


def test_user_owning_address_books_is_removed_only_with_them(home):
    assert ums_with_stdin(home, "erin-password\n", "user", "add", "erin", "--role", "user",
                          "--password-stdin").returncode == 0
    asyncio.run(give_personal_book(home, "erin"))
    refused = ums(home, "user", "remove", "erin")
    assert refused.returncode == 1
    assert refused.stderr.strip() == "Error: 'erin' owns 1 address book(s); remove with --with-books to delete them too."
    assert "erin" in listing(home)
    assert ums(home, "user", "remove", "erin", "--with-books").returncode == 0
    assert "erin" not in listing(home)


async def log_in(port: int, username: str, password: str) -> int:
    reply = await Client(f"http://127.0.0.1:{port}").login(username, password)
    return reply.status


def test_passwd_admin_resets_a_lost_password_and_the_new_one_logs_in(home):
    port = int((home / "ums.cfg").read_text().split("port = ")[1].split()[0])
    reset = ums_with_stdin(home, "the-new-admin-pw\n", "user", "passwd", "admin", "--password-stdin")
    assert reset.returncode == 0, reset.stderr
    with running(home, "was"):
        deadline = time.monotonic() + 15
        while port_is_free(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert asyncio.run(log_in(port, "admin", "first-admin-pw")) == 401
        assert asyncio.run(log_in(port, "admin", "the-new-admin-pw")) == 303


def test_init_again_with_a_password_says_how_to_reset_it(home):
    again = ums(home, "init", "--admin-password", "another-password")
    assert again.returncode == 0
    assert "ums user passwd" in again.stdout
