"""Drive the EPS commands the way an operator does, against an initialised and
running instance: `ums apikey create|list|revoke` and
`ums service register|list|stop|resume`, with events posted over HTTP by the
key the CLI printed."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.acceptance.cli import stop, ums
from tests.acceptance.test_suite_cli import Home, home, start  # noqa: F401 (home is a fixture)
from tests.helpers import free_port
from ums.config import SHIPPED_CONFIG_DIR

SAMPLE = SHIPPED_CONFIG_DIR / "samples" / "services" / "large-deposit-alert.json"
SERVICE = "large-deposit-alert"


@pytest.fixture
def instance(home) -> Home:
    """The suite tests' instance directory, plus a mail relay port nothing
    listens on (mail just waits in the queue) and a customer file."""
    with open(home / "ums.cfg", "a") as cfg:
        cfg.write(f"[email]\nrelay_port = {free_port()}\n")
    (home / "customers.csv").write_text("customer_id,name,email,grade\nC100,홍길동,hong@example.com,NORMAL\n")
    return home


def post_event(home: Home, key: str, event: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{home.ports['eps']}/v1/events", data=json.dumps(event).encode(), method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def event_state(home: Home, event_id: int) -> dict:
    return json.loads(ok(ums(home, "event", "show", str(event_id))))


def service_row(home: Home) -> list[str]:
    lines = [line for line in ok(ums(home, "service", "list")).splitlines() if SERVICE in line]
    assert len(lines) == 1, lines
    return lines[0].replace("│", " ").split()


def test_operator_registers_stops_and_resumes_a_service_while_the_suite_runs(instance):
    home = instance
    ok(ums(home, "init", "--admin-password", "s3cret-pw"))
    ok(ums(home, "contacts", "import", str(home / "customers.csv")))

    created = ums(home, "apikey", "create", "--system", "account")
    key = ok(created).strip()
    assert key.startswith("ums_") and len(key.splitlines()) == 1
    assert "cannot be shown again" in created.stderr and key not in created.stderr
    listed = ok(ums(home, "apikey", "list"))
    assert "account" in listed and key not in listed
    with sqlite3.connect(home / "var" / "ums.db") as db:  # only a hash of the key is stored
        stored = db.execute("select * from api_keys").fetchall()
    assert stored and not any(key in str(value) for row in stored for value in row)

    server = start(home)
    try:
        # before any service is registered, a deposit is stored as unmatched
        status, before = post_event(home, key, {"type": "deposit", "customer_id": "C100",
                                                "data": {"amount": 2000000}})
        assert status == 202 and before["state"] == "unmatched"

        registered = ok(ums(home, "service", "register", str(SAMPLE)))
        assert f"registered {SERVICE} version 1" in registered
        assert service_row(home)[:4] == [SERVICE, "1", "deposit", "active"]

        # the running server uses it at once, no restart
        status, after = post_event(home, key, {"type": "deposit", "customer_id": "C100",
                                               "data": {"amount": 3000000}})
        assert status == 202 and after["state"] == "dispatched"
        shown = event_state(home, after["id"])
        assert [(d["channel"], d["recipient"]) for d in shown["deliveries"]] == [("email", "hong@example.com")]
        assert event_state(home, before["id"])["state"] == "unmatched"  # nothing before the commit

        assert "held until" in ok(ums(home, "service", "stop", SERVICE))
        assert service_row(home)[3] == "stopped"
        held = []
        for amount in (1100000, 1200000, 1300000):
            status, reply = post_event(home, key, {"type": "deposit", "customer_id": "C100",
                                                   "data": {"amount": amount}})
            assert status == 202 and reply["state"] == "held"
            held.append(reply["id"])

        resumed = ok(ums(home, "service", "resume", SERVICE))
        assert "dispatched 3 held event(s)" in resumed
        assert service_row(home)[3] == "active"
        for event_id in held:
            shown = event_state(home, event_id)
            assert shown["state"] == "dispatched" and len(shown["deliveries"]) == 1

        # a second registration of the same name is a new version
        assert f"registered {SERVICE} version 2" in ok(ums(home, "service", "register", str(SAMPLE)))
        assert service_row(home)[:2] == [SERVICE, "2"]

        # a revoked key is refused by the running server within seconds
        key_id = next(line.replace("│", " ").split()[0] for line in listed.splitlines() if "account" in line)
        assert f"revoked key {key_id}" in ok(ums(home, "apikey", "revoke", key_id))
        deadline = time.monotonic() + 15
        while post_event(home, key, {"type": "deposit", "customer_id": "C100", "data": {}})[0] != 401:
            assert time.monotonic() < deadline, "the revoked key still works"
            time.sleep(0.5)
        missing = ums(home, "service", "stop", "no-such-service")
        assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
    finally:
        stop(home, server)


def test_service_register_refuses_a_bad_file_in_one_line(home, tmp_path: Path):
    ok(ums(home, "init", "--admin-password", "s3cret-pw"))
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x", "event_type": "deposit", "policy": {"default": ["pigeon"]}}')
    result = ums(home, "service", "register", str(bad))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "x" not in ok(ums(home, "service", "list")).split()
