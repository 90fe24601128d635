"""No traceback for a user's mistake: every `ums` command, given an unknown
option, a missing argument or a file that does not exist, answers with one
line and a non-zero exit; a busy port is one line naming the setting; outside
an instance `ums` says so and creates nothing."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import pytest

from tests.acceptance.cli import UMS, command_paths, environment, ums
from tests.helpers import free_port

#: a file two directory levels below anything that exists (unique per run; `ums run --log-file`
#: makes one missing level, never two)
MISSING = str(Path(tempfile.gettempdir()) / f"ums-absent-{uuid.uuid4().hex}" / "dir" / "x")


@pytest.fixture(scope="module")
def instance(tmp_path_factory) -> Path:
    """One initialised instance, so each command gets past `ums init first` to its own work."""
    home = tmp_path_factory.mktemp("instance")
    (home / "ums.cfg").write_text(f"[was]\nport = {free_port()}\n")
    assert ums(home, "init", "--admin-password", "admin-password").returncode == 0
    return home


LEAVES = [(path, command) for path, command in command_paths() if not isinstance(command, click.Group)]


def _stand_in(param: click.Parameter) -> str:
    """A value a required parameter accepts at parse time, but names nothing that exists."""
    if isinstance(param.type, (click.Path, click.File)):
        return MISSING
    if isinstance(param.type, click.Choice):
        return str(param.type.choices[0])
    if isinstance(param.type, (click.types.IntParamType, click.types.FloatParamType)):
        return "999999"
    return "no-such-thing"


def _args(command: click.Command, wanted) -> list[str]:
    args = []
    for param in command.params:
        if not wanted(param):
            continue
        value = _stand_in(param)
        if isinstance(param, click.Argument):
            args.append(value)
        elif not param.is_flag:
            args += [param.opts[0], value]
    return args


def _takes_files(param) -> bool:
    return isinstance(param.type, (click.Path, click.File))


def bad_inputs():
    """(command line, what is wrong) for every command."""
    for path, command in LEAVES:
        yield [*path, "--no-such-option"], "an unknown option"
        if any(param.required for param in command.params):
            yield list(path), "missing required arguments"
        if any(_takes_files(param) for param in command.params):
            yield [*path, *_args(command, lambda p: p.required or _takes_files(p))], f"{MISSING} as every file"


def test_every_command_given_bad_input_answers_one_line(instance):
    cases = list(bad_inputs())
    assert len(LEAVES) > 40 and any("contacts export" in " ".join(line) for line, _ in cases)

    def run(line):
        return subprocess.run([UMS, *line], cwd=instance, env=environment(instance), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=60)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, [line for line, _ in cases]))
    wrong = []
    for (line, what), result in zip(cases, results):
        lines = result.stderr.strip().splitlines()
        if result.returncode == 0 or "Traceback" in result.stderr or len(lines) != 1 or not lines[0].startswith("Error: "):
            wrong.append(f"ums {' '.join(line)} ({what}) → exit {result.returncode}: {result.stderr[-400:]!r}")
    assert not wrong, "\n".join(wrong)


def test_contacts_export_to_a_missing_directory_is_one_line(instance):
    result = ums(instance, "contacts", "export", "-o", MISSING)
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: {MISSING}: No such file or directory"


def test_busy_port_is_one_line_naming_the_setting(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "ums.cfg").write_text(f"[was]\nport = {port}\n")
        assert ums(tmp_path, "init").returncode == 0
        result = ums(tmp_path, "run", "was", timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [  # ums run's check of its ports, before anything starts
        f"fatal: port: WAS cannot listen on 127.0.0.1:{port}: address in use — is UMS already running? "
        "Set UMS_WAS_PORT or [was] port."
    ]


def test_outside_an_instance_ums_says_so_and_creates_nothing(tmp_path):
    env = environment(tmp_path)
    del env["UMS_HOME"]
    for args in (["status"], ["user", "list"], ["contacts", "export"]):
        result = subprocess.run([UMS, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 1
        assert result.stderr.strip() == (f"Error: No UMS instance in {tmp_path.resolve()} (no ums.cfg there); "
                                         "use --home DIR, UMS_HOME or cd into one.")
    elsewhere = tmp_path / "typo"
    mistyped = subprocess.run([UMS, "--home", str(elsewhere), "status"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
    assert mistyped.returncode == 1 and f"No UMS instance in {elsewhere}" in mistyped.stderr
    assert subprocess.run([UMS, "--help"], cwd=tmp_path, env=env, capture_output=True).returncode == 0
    assert list(tmp_path.iterdir()) == []
    created = subprocess.run([UMS, "init"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    assert (tmp_path / "ums.cfg").is_file() and (tmp_path / "var" / "ums.db").is_file()
    assert subprocess.run([UMS, "user", "list"], cwd=tmp_path, env=env, capture_output=True).returncode == 0
