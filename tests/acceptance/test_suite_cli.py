"""Drive the `ums` command the way an operator does: init, run, status,
pause/resume MAS with a real SMTP client, restart, stop."""

from __future__ import annotations

import signal
import smtplib
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.acceptance.cli import command_paths, spawn_run, ums
from tests.helpers import free_port, port_is_free
from ums.cli import cli


class Home(type(Path())):
    """The instance directory, plus the ports this test picked for it."""

    ports: dict


@pytest.fixture
def home(tmp_path) -> Path:
    ports = {"was": free_port(), "eps": free_port(), "telegram": free_port(), "mas": free_port()}
    (tmp_path / "ums.cfg").write_text(
        f"[was]\nport = {ports['was']}\n[eps]\nhttp_port = {ports['eps']}\n"
        f"telegram_port = {ports['telegram']}\n[mas]\nport = {ports['mas']}\n"
        "[control]\npoll_interval = 0.2\n"
    )
    instance = Home(tmp_path)
    instance.ports = ports
    return instance


def start(home: Path) -> subprocess.Popen:
    process = spawn_run(home)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if all(not port_is_free(port) for port in home.ports.values()):
            return process
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.1)
    return process


def registered_states(home: Path) -> set[tuple[str, str]]:
    """(service, state) of the instances registered in the instance's embedded
    database: what `ums status` reads, at the cost of a query, not a process."""
    try:
        with sqlite3.connect(f"file:{home / 'var' / 'ums.db'}?mode=ro", uri=True, timeout=1) as conn:
            return set(conn.execute("SELECT service, state FROM service_instances"))
    except sqlite3.Error:
        return set()


def wait_for_status(home: Path, names: tuple[str, ...], state: str, timeout: float = 15) -> str:
    """`ums status` until every service in ``names`` shows ``state`` (services
    register once all of them have started); returns the last output. Until
    the database has them all, it is polled with a query rather than with
    `ums status` processes, which would take the CPU the starting suite needs."""
    deadline = time.monotonic() + timeout
    while not all((name, state) in registered_states(home) for name in names) and time.monotonic() < deadline:
        time.sleep(0.05)
    while True:
        output = ums(home, "status").stdout
        shown = {tuple(line.split()[:2]) for line in output.splitlines()}
        if all((name, state) in shown for name in names) or time.monotonic() > deadline:
            return output
        time.sleep(0.2)


def smtp_code(port: int) -> int:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
            return client.noop()[0] and 220
    except smtplib.SMTPConnectError as error:
        return error.smtp_code


def test_init_twice_changes_nothing_the_second_time(home):
    first = ums(home, "init", "--admin-password", "s3cret-pw")
    assert first.returncode == 0, first.stderr
    assert "migrated from empty" in first.stdout and "created user admin" in first.stdout
    assert "s3cret-pw" not in first.stdout
    second = ums(home, "init")
    assert second.returncode == 0
    assert second.stdout.startswith("Nothing to do")


def test_bad_config_value_is_one_line_naming_the_key(home):
    with open(home / "ums.cfg", "a") as cfg:
        cfg.write("[pass]\nconcurrency = many\n")
    result = ums(home, "status")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "Error: Bad value for pass.concurrency: 'many' (not a whole number)."
    ]


def test_commands_before_init_say_what_to_do(home):
    result = ums(home, "status")
    assert result.returncode == 1
    assert "run `ums init` first" in result.stderr and "Traceback" not in result.stderr


def test_every_command_has_help(home):
    listing = ums(home, "--help")  # the installed entry point itself
    assert listing.returncode == 0 and "Commands:" in listing.stdout
    paths = [path for path, _command in command_paths()]
    assert {("init",), ("run",), ("status",), ("pause",), ("resume",), ("stop",)} <= set(paths)
    runner = CliRunner()
    for path in paths:  # every command and subcommand, in process for speed
        result = runner.invoke(cli, [*path, "--help"], prog_name="ums")
        assert result.exit_code == 0 and "Usage: ums " + " ".join(path) in result.output, path
        assert len(result.output.splitlines()) >= 3, f"{path} has no description"


def test_run_status_pause_restart_stop(home):
    assert ums(home, "init").returncode == 0
    started = time.monotonic()
    process = start(home)
    try:
        status = wait_for_status(home, ("was", "eps", "mas", "pass"), "running")
        for name in ("was", "eps", "mas", "pass"):
            assert any(line.split()[:2] == [name, "running"] for line in status.splitlines()), status
        assert time.monotonic() - started < 15
        assert smtp_code(home.ports["mas"]) == 220

        paused = ums(home, "pause", "mas")
        assert paused.returncode == 0 and "mas is now paused" in paused.stdout
        assert smtp_code(home.ports["mas"]) == 421
        assert "mas was already paused" in ums(home, "pause", "mas").stdout

        stop_started = time.monotonic()
        stopped = ums(home, "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert process.wait(timeout=10) == 0
        assert time.monotonic() - stop_started < 10
        output = process.stdout.read()
        assert "Traceback" not in output
        assert all(port_is_free(port) for port in home.ports.values())

        process = start(home)  # after a restart MAS is still paused
        assert smtp_code(home.ports["mas"]) == 421
        assert ums(home, "resume", "mas").returncode == 0
        assert smtp_code(home.ports["mas"]) == 220
        assert ums(home, "stop").returncode == 0
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)


def test_contacts_share_sets_whom_a_book_is_shared_with(home):
    assert ums(home, "init", "--admin-password", "s3cret-pw").returncode == 0
    (home / "branch.csv").write_text("name,email\nKim Minji,minji@example.com\n", encoding="utf-8")
    assert ums(home, "contacts", "import", "branch.csv", "--book", "Branch").returncode == 0
    shared = ums(home, "contacts", "share", "Branch", "--role", "user", "--user", "admin")
    assert shared.returncode == 0, shared.stderr
    assert shared.stdout.strip() == "Branch (organisation): shared with user, admin"
    again = ums(home, "contacts", "share", "Branch", "--scope", "shared", "--role", "api")
    assert again.stdout.strip() == "Branch (shared): shared with api"
    unknown = ums(home, "contacts", "share", "Branch", "--user", "nobody")
    assert unknown.returncode != 0 and unknown.stderr.strip().splitlines() == ["Error: No user named 'nobody'."]
    missing = ums(home, "contacts", "export", "--book", "No such book")
    assert missing.returncode != 0 and len(missing.stderr.strip().splitlines()) == 1, missing.stderr
    exported = ums(home, "contacts", "export", "--book", "Branch")
    assert exported.returncode == 0 and "minji@example.com" in exported.stdout
