"""What a monitor and an operator see from `ums status --json` and `ums check`,
driving the installed `ums` command in child processes against a real relay
(aiosmtpd on loopback) and real ports: the LSB exit codes with the suite up,
paused and down; `ums check` clean on a healthy instance, one line per problem
with the relay down, a port taken and a template missing; `ums run` refusing
to start on the fatal one with the same line."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tests.acceptance.cli import spawn_run, stop, ums
from tests.acceptance.relay import sink  # noqa: F401 (fixture)
from tests.helpers import free_port, port_is_free

SERVICES = ("was", "eps", "mas", "pass")


def configure(home: Path, relay_port: int, mas_port: int | None = None, email: str = "") -> dict:
    ports = {"was": free_port(), "eps": free_port(), "telegram": free_port(), "mas": mas_port or free_port()}
    (home / "ums.cfg").write_text(
        f"[was]\nport = {ports['was']}\n[eps]\nhttp_port = {ports['eps']}\n"
        f"telegram_port = {ports['telegram']}\n[mas]\nport = {ports['mas']}\n"
        f"[email]\nrelay_port = {relay_port}\ntimeout = 5\n{email}"
        "[control]\npoll_interval = 0.2\n[ums]\nmin_free_mb = 1\n"
    )
    assert ums(home, "init").returncode == 0
    return ports


def status(home: Path) -> tuple[int, dict]:
    result = ums(home, "status", "--json")
    return result.returncode, json.loads(result.stdout)


def wait_for_states(home: Path, wanted: dict[str, str], timeout: float = 20) -> tuple[int, dict]:
    deadline = time.monotonic() + timeout
    while True:
        code, report = status(home)
        states = {service["name"]: service["state"] for service in report["services"]}
        if all(states[name] == state for name, state in wanted.items()) or time.monotonic() > deadline:
            return code, report
        time.sleep(0.2)


def register_service(home: Path, template: str) -> None:
    definition = {"name": "deposit-alert", "event_type": "deposit", "templates": {"email": template},
                  "policy": {"default": ["email"]}}
    (home / "service.json").write_text(json.dumps(definition), encoding="utf-8")
    registered = ums(home, "service", "register", "service.json")
    assert registered.returncode == 0, registered.stderr


def add_template(home: Path, name: str) -> None:
    template = {"name": name, "channel": "email", "subject": "입금 안내", "body_text": "{{ name }}님, 입금되었습니다."}
    (home / "template.json").write_text(json.dumps(template, ensure_ascii=False), encoding="utf-8")
    assert ums(home, "template", "add", "template.json").returncode == 0


def test_status_json_and_exit_codes_up_paused_down(tmp_path, sink):
    configure(tmp_path, relay_port=sink[0])
    code, report = status(tmp_path)
    assert (code, report["state"]) == (3, "stopped")
    assert [s["name"] for s in report["services"]] == list(SERVICES)
    assert ums(tmp_path, "status").returncode == 3  # the table exits the same way

    server = spawn_run(tmp_path)
    try:
        code, report = wait_for_states(tmp_path, {name: "running" for name in SERVICES})
        assert (code, report["state"]) == (0, "running"), report
        assert ums(tmp_path, "status").returncode == 0
        for service in report["services"]:
            (instance,) = service["instances"]
            assert instance["pid"] == server.pid and instance["state"] == "running"
            assert instance["heartbeat_at"].endswith("+09:00")  # ISO 8601 with the site's offset
        assert report["queue_pending"] == 0

        checked = ums(tmp_path, "check")  # its own ports and a live relay are no problem
        assert (checked.returncode, checked.stdout) == (0, ""), checked.stdout
        again = ums(tmp_path, "run", "mas")
        assert again.returncode == 1 and "Traceback" not in again.stderr
        assert "held by this instance's running mas" in again.stderr

        assert ums(tmp_path, "pause", "mas").returncode == 0
        code, report = wait_for_states(tmp_path, {"mas": "paused"})
        assert (code, report["state"]) == (1, "degraded")
        assert {s["name"]: s["desired"] for s in report["services"]}["mas"] == "paused"
        assert ums(tmp_path, "status").returncode == 1
        assert ums(tmp_path, "resume", "mas").returncode == 0
        assert wait_for_states(tmp_path, {"mas": "running"})[0] == 0
    finally:
        assert stop(tmp_path, server), "`ums run` did not end on `ums stop`"
    code, report = status(tmp_path)
    assert (code, report["state"]) == (3, "stopped")


def test_check_is_clean_on_a_healthy_instance(tmp_path, sink):
    configure(tmp_path, relay_port=sink[0])
    add_template(tmp_path, "deposit-email")
    register_service(tmp_path, "deposit-email")
    result = ums(tmp_path, "check")
    assert result.returncode == 0, result.stdout
    assert result.stdout == ""
    assert result.stderr.strip() == "ums check: no problems"
    report = json.loads(ums(tmp_path, "check", "--json").stdout)
    assert report == {"ok": True, "fatal": 0, "warnings": 0, "problems": []}


@pytest.fixture
def busy_port():
    """A program other than UMS listening on a loopback port."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def test_check_names_relay_down_busy_port_and_missing_template_and_run_refuses(tmp_path, busy_port):
    closed = free_port()  # nothing listens there: the relay is down
    ports = configure(tmp_path, relay_port=closed, mas_port=busy_port)
    register_service(tmp_path, "no-such-template")

    result = ums(tmp_path, "check")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 3, result.stdout
    port_line, relay_line, template_line = lines
    assert port_line == (f"fatal: port: MAS cannot listen on 127.0.0.1:{busy_port}: address in use — "
                         "is UMS already running? Set UMS_MAS_PORT or [mas] port.")
    assert relay_line.startswith("warning: relay: ") and f"127.0.0.1:{closed}" in relay_line
    assert template_line.startswith("warning: template: ")
    assert "'deposit-alert'" in template_line and "'no-such-template'" in template_line
    assert result.stderr.strip() == "ums check: 3 problems (1 fatal)"
    report = json.loads(ums(tmp_path, "check", "--json").stdout)
    assert [(p["check"], p["fatal"]) for p in report["problems"]] == [
        ("port", True), ("relay", False), ("template", False)]

    refused = ums(tmp_path, "run")  # it must exit by itself
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [port_line]  # the same line, and only the fatal ones
    assert relay_line not in refused.stderr and "Traceback" not in refused.stderr
    assert all(port_is_free(port) for name, port in ports.items() if name != "mas")  # nothing started



def test_check_tries_auth_as_configured_and_never_prints_the_password(tmp_path, sink):
    configure(tmp_path, relay_port=sink[0], email="username = ums\npassword = s3cret-relay-pw\n")
    result = ums(tmp_path, "check")
    assert result.returncode == 1
    (line,) = result.stdout.splitlines()  # the sink offers no AUTH
    assert line.startswith(f"warning: relay: the email relay 127.0.0.1:{sink[0]} ") and "EHLO, AUTH" in line
    assert "s3cret-relay-pw" not in result.stdout + result.stderr


def test_every_list_and_show_command_prints_json(tmp_path, sink):
    """Each --json output parses, keeps its documented fields, writes times with
    the site's offset — and an API key list never shows the key."""
    from click.testing import CliRunner

    from ums.cli import cli

    configure(tmp_path, relay_port=sink[0])
    key = ums(tmp_path, "apikey", "create", "--system", "account").stdout.strip()
    add_template(tmp_path, "deposit-email")
    register_service(tmp_path, "deposit-email")
    assert ums(tmp_path, "suppress", "add", "kim@example.com").returncode == 0
    runner = CliRunner()

    def as_json(*args):
        result = runner.invoke(cli, ["--home", str(tmp_path), *args, "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    (listed_key,) = as_json("apikey", "list")
    assert listed_key["system"] == "account" and key.startswith(listed_key["prefix"])
    assert key not in json.dumps(listed_key)
    (template,) = as_json("template", "list")
    assert template["name"] == "deposit-email" and template["updated_at"].endswith("+09:00")
    (service,) = as_json("service", "list")
    assert (service["name"], service["state"], service["event_type"]) == ("deposit-alert", "active", "deposit")
    assert as_json("service", "show", "deposit-alert")["definition"]["templates"] == {"email": "deposit-email"}
    (entry,) = as_json("suppress", "list")
    assert (entry["address"], entry["temporary_bounces"]) == ("kim@example.com", 0)
    assert as_json("event", "list") == {"events": [], "counts": dict.fromkeys(
        ("received", "dispatched", "held", "unmatched", "failed"), 0)}
    assert as_json("rules", "list") == []
    sample = Path(__file__).resolve().parents[2] / "config" / "samples" / "campaign-notice.json"
    assert ums(tmp_path, "campaign", "create", str(sample)).returncode == 0
    (listed,) = as_json("campaign", "list")
    shown = as_json("campaign", "show", listed["name"])
    assert (shown["id"], shown["state"], shown["template_name"]) == (listed["id"], "draft", "terms-change")
    assert shown["created_at"].endswith("+09:00") and shown["waiting"] == ["not started (draft)"]
    assert as_json("queue", "stats") == {"deliveries": {}, "waiting": [],
                                         "lanes": {"urgent": 0, "notice": 0, "marketing": 0}}
    report = as_json("billing", "report", "--period", "2026-12")
    assert report["total"]["cost"] == "0.00" and report["lines"] == []
