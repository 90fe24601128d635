"""No traceback for a user's mistake: every `ums` command, given an unknown
option, a missing argument or a file that does not exist, answers with one
line and a non-zero exit; a busy port is one line naming the setting; outside
an instance `ums` says so and creates nothing.

The ~120 bad-input cases go through the CLI's own entry (``cli.main``,
standalone) in this process — a process each cost 48–140 s of start-up —
except `ums run`'s, which stay real processes, and the first case of each kind,
which runs both ways and must answer the same."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

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


def run_process(instance: Path, line: list[str]) -> tuple[int, str]:
    """`ums LINE` as a real process: its exit status and stderr."""
    result = subprocess.run([UMS, *line], cwd=instance, env=environment(instance), stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60)
    return result.returncode, result.stderr


def run_in_process(instance: Path, line: list[str], monkeypatch) -> tuple[int, str]:
    """`ums LINE` through the CLI's own entry (``cli.main``, standalone, as
    ``ums.cli.main`` calls it) in this process, with the process's environment
    and directory: its exit status and stderr — an exception escaping it is
    what a process would print as a traceback."""
    from ums.cli import cli

    wanted = environment(instance)
    monkeypatch.chdir(instance)
    result = CliRunner().invoke(cli, line, prog_name="ums", catch_exceptions=True,
                                env={**{key: None for key in os.environ if key not in wanted}, **wanted})
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "Traceback (most recent call last):\n" + "".join(traceback.format_exception(result.exception))
    return result.exit_code, stderr


def _wrong(line, what, status: int, stderr: str) -> str | None:
    lines = stderr.strip().splitlines()
    if status == 0 or "Traceback" in stderr or len(lines) != 1 or not lines[0].startswith("Error: "):
        return f"ums {' '.join(line)} ({what}) → exit {status}: {stderr[-400:]!r}"
    return None


def _needs_a_process(line: list[str]) -> bool:
    """`ums run` sets up logging and signal handlers and starts the reactor:
    it is only ever tried as a real process."""
    return line[0] == "run"


def real_process_cases(cases) -> list[tuple[list[str], str]]:
    """`ums run`'s cases, and the first case of each kind: these run as real
    `ums` processes, and the sampled ones also in-process, which must answer
    exactly as the process did."""
    firsts = {}
    for line, what in cases:
        firsts.setdefault(what.replace(MISSING, "MISSING"), (line, what))
    return [case for case in cases if _needs_a_process(case[0])] + list(firsts.values())


def test_every_command_given_bad_input_answers_one_line(instance, monkeypatch):
    cases = list(bad_inputs())
    assert len(LEAVES) > 40 and any("contacts export" in " ".join(line) for line, _ in cases)
    in_processes = real_process_cases(cases)
    with ThreadPoolExecutor(2) as pool:
        by_process = list(pool.map(lambda case: run_process(instance, case[0]), in_processes))
    wrong = [_wrong(line, what, *answer) for (line, what), answer in zip(in_processes, by_process)]
    for (line, what), answer in zip(in_processes, by_process):
        if not _needs_a_process(line):
            assert run_in_process(instance, line, monkeypatch) == answer, f"ums {' '.join(line)}: in-process differs"
    wrong += [_wrong(line, what, *run_in_process(instance, line, monkeypatch))
              for line, what in cases if not _needs_a_process(line)]
    wrong = [problem for problem in wrong if problem]
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
