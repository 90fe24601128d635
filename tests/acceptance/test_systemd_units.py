"""The shipped systemd units, run as systemd would run them.

The units name their install places: the checkout with its virtualenv at
/opt/ums and the instance (StateDirectory) at /var/lib/ums. Each test lays
that out in a private mount namespace (``unshare -m``: this checkout bound
on /opt/ums, the test's instance on /var/lib/ums, nothing changed outside
the namespace, which also has a system user ``ums``) and then runs the
unit's own lines unchanged: ``systemd-analyze verify`` on the unit files, and
ExecStart in WorkingDirectory with exactly the unit's Environment (plus
systemd's default PATH). It stops as systemd stops it (SIGTERM); logrotate
with the shipped deploy/logrotate/ums rotates its log and ExecReload (SIGHUP)
makes it reopen the file; ``ums logs`` reads what it wrote, and follows it
across the rotation.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.acceptance.cli import UMS, ums
from tests.helpers import free_port, port_is_free
from ums.config import PROJECT_DIR

UNITS = PROJECT_DIR / "deploy" / "systemd"
INSTALL_DIR, STATE_DIR = "/opt/ums", "/var/lib/ums"
#: the PATH systemd gives a service
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"
#: the system user the units run as, only inside the namespace
UMS_UID = 64123
#: make the install places inside a private mount namespace, then run "$@" there
LAYOUT = """set -e
mount -t tmpfs ums-opt /opt; mkdir /opt/ums; mount --bind "$1" /opt/ums
mount -t tmpfs ums-lib /var/lib; mkdir /var/lib/ums; mount --bind "$2" /var/lib/ums
mount --bind "$3/passwd" /etc/passwd; mount --bind "$3/group" /etc/group
cd "$4"; shift 4; exec "$@"
"""

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="systemd units are for Linux")


def service_settings(unit: Path, instance: str = "") -> dict[str, list[str]]:
    """The [Service] keys of a unit file, each with its values in order, with
    ``%i`` (the template's instance name) filled in."""
    settings: dict[str, list[str]] = {}
    section = None
    for line in unit.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        if section == "Service":
            settings.setdefault(key.strip(), []).append(value.strip().replace("%i", instance))
    return settings


#: what gives a process the test run's clock (libfaketime, as .ci/run uses it): kept in the
#: unit's otherwise clean environment, so the unit and the `ums` commands share one time
CLOCK_VARIABLES = ("LD_PRELOAD", "FAKETIME", "FAKETIME_SHARED", "FAKETIME_DONT_RESET", "FAKETIME_NO_CACHE",
                   "DONT_FAKE_MONOTONIC", "TZ")


def unit_environment(settings: dict[str, list[str]]) -> dict[str, str]:
    env = {"PATH": SYSTEMD_PATH}
    env.update({name: os.environ[name] for name in CLOCK_VARIABLES if name in os.environ})
    for line in settings.get("Environment", []):
        env.update(assignment.split("=", 1) for assignment in shlex.split(line))
    return env


def system_files(home: Path) -> Path:
    """/etc/passwd and /etc/group with the user ``ums`` added, for the namespace."""
    etc = home.parent / "etc"
    if not etc.exists():
        etc.mkdir()
        (etc / "passwd").write_text(Path("/etc/passwd").read_text()
                                    + f"ums:x:{UMS_UID}:{UMS_UID}::{STATE_DIR}:/usr/sbin/nologin\n")
        (etc / "group").write_text(Path("/etc/group").read_text() + f"ums:x:{UMS_UID}:\n")
    return etc


def in_install_layout(home: Path, workdir: str, argv: list[str], env: dict | None = None, **popen) -> subprocess.Popen:
    """``argv`` in a mount namespace where /opt/ums is this checkout and
    /var/lib/ums is ``home``; the process becomes ``argv[0]`` (exec), so its
    pid is the service's MAINPID."""
    assert (PROJECT_DIR / ".venv" / "bin" / "ums").exists(), "the checkout's .venv (scripts/bootstrap) is missing"
    return subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", LAYOUT, "layout",
                             str(PROJECT_DIR), str(home), str(system_files(home)), workdir, *argv], env=env, **popen)


class Home(type(Path())):
    """The instance directory, plus the ports this test picked for it."""

    ports: dict


@pytest.fixture
def instance(tmp_path) -> Path:
    """A fresh instance with free ports, made by `ums init`."""
    home = Home(tmp_path / "lib-ums")
    home.mkdir()
    home.ports = {"was": free_port(), "eps": free_port(), "telegram": free_port(), "mas": free_port()}
    (home / "ums.cfg").write_text(
        f"[was]\nport = {home.ports['was']}\n[eps]\nhttp_port = {home.ports['eps']}\n"
        f"telegram_port = {home.ports['telegram']}\n[mas]\nport = {home.ports['mas']}\n"
        "[control]\npoll_interval = 0.2\n[pass]\ndatabase_process = no\n")
    made = ums(home, "init", "--admin-password", "unit-test-pw")
    assert made.returncode == 0, made.stderr
    return home


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    """`ums …` on the instance, on the same clock as the unit's process (no test shift)."""
    return ums(home, *args, shift=0)


def start_unit(home: Path, unit: str, instance: str = "") -> tuple[subprocess.Popen, dict]:
    settings = service_settings(UNITS / unit, instance)
    [exec_start] = settings["ExecStart"]
    [workdir] = settings["WorkingDirectory"]
    process = in_install_layout(home, workdir, shlex.split(exec_start), unit_environment(settings),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return process, settings


def wait_for_ports(process: subprocess.Popen, ports, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not all(not port_is_free(port) for port in ports):
        assert process.poll() is None, f"the unit's command exited: {process.stdout.read()}"
        assert time.monotonic() < deadline, "the unit's command did not open its ports"
        time.sleep(0.1)


def wait_for_status(home: Path, code: int, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        result = cli(home, "status", "--json")
        if result.returncode == code or time.monotonic() > deadline:
            assert result.returncode == code, result.stdout + result.stderr
            return json.loads(result.stdout)
        time.sleep(0.2)


def reload_as_unit(settings: dict, pid: int) -> None:
    """The unit's ExecReload, with $MAINPID."""
    [reload] = settings["ExecReload"]
    subprocess.run(shlex.split(reload.replace("$MAINPID", str(pid))), check=True, env={"PATH": SYSTEMD_PATH})


def rotate_with_the_shipped_logrotate(home: Path) -> None:
    os.chown(home / "var" / "log", UMS_UID, UMS_UID)   # as installed: the instance is the ums user's
    rotate = in_install_layout(home, "/", ["logrotate", "--force", "--state", str(home.parent / "logrotate.state"),
                                           f"{INSTALL_DIR}/deploy/logrotate/ums"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = rotate.communicate(timeout=60)
    assert rotate.returncode == 0 and "error" not in output, output


def wait_for_line(stream, wanted: str, timeout: float = 20) -> list[str]:
    """Lines read from ``stream`` up to one containing ``wanted``."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line.rstrip("\n"))
        if wanted in line:
            return seen
    pytest.fail(f"no line with {wanted!r} in {seen}")


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze missing: apt-get install systemd "
                                                                 "(scripts/apt-test.txt)")
def test_the_shipped_units_pass_systemd_analyze_verify(tmp_path):
    (tmp_path / "home").mkdir()
    units = [f"{INSTALL_DIR}/deploy/systemd/{name}" for name in ("ums.service", "ums@.service")]
    verify = in_install_layout(tmp_path / "home", "/", ["systemd-analyze", "verify", *units],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = verify.communicate(timeout=60)
    assert verify.returncode == 0 and output == "", output


def test_a_broken_unit_fails_that_verification(tmp_path):
    """The check above can fail: a unit whose ExecStart is missing does."""
    (tmp_path / "home").mkdir()
    broken = tmp_path / "broken.service"
    broken.write_text((UNITS / "ums.service").read_text().replace(".venv/bin/ums", ".venv/bin/no-such-ums"))
    verify = in_install_layout(tmp_path / "home", "/", ["systemd-analyze", "verify", str(broken)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = verify.communicate(timeout=60)
    assert verify.returncode != 0 and "no-such-ums" in output


def test_the_suite_unit_starts_reloads_its_log_and_stops_on_sigterm(instance):
    process, settings = start_unit(instance, "ums.service")
    follower = None
    try:
        wait_for_ports(process, instance.ports.values())
        report = wait_for_status(instance, 0)
        assert {s["name"] for s in report["services"] if s["state"] == "running"} == {"was", "eps", "mas", "pass"}
        assert {i["pid"] for s in report["services"] for i in s["instances"]} == {process.pid}

        shown = cli(instance, "logs")
        assert shown.returncode == 0, shown.stderr
        assert "UMS is up" in shown.stdout and "KST" in shown.stdout
        for name in ("was", "eps", "mas", "pass"):
            assert f"service started service={name}" in shown.stdout
        only_mas = cli(instance, "logs", "--service", "mas").stdout.splitlines()
        assert "service started service=mas" in "\n".join(only_mas)
        assert all(" ums.mas" in line or "service=mas" in line for line in only_mas), only_mas

        follower = subprocess.Popen([UMS, "logs", "-f", "-n", "0"], cwd=instance, text=True, stdout=subprocess.PIPE,
                                    env={"PATH": SYSTEMD_PATH, "UMS_HOME": str(instance), "UMS_CLOCK_SHIFT": "0"})
        rotate_with_the_shipped_logrotate(instance)
        reload_as_unit(settings, process.pid)   # what its postrotate asks systemd to do
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)   # systemctl stop
        assert process.wait(timeout=30) == 0, process.stdout.read()
        followed = wait_for_line(follower.stdout, "service stopped service=was")
        assert any("stopping" in line for line in followed)
    finally:
        if process.poll() is None:
            process.kill()
        if follower is not None:
            follower.kill()
            follower.wait()
    assert all(port_is_free(port) for port in instance.ports.values())
    assert wait_for_status(instance, 3)["state"] == "stopped"
    rotated = (instance / "var" / "log" / "ums.log.1").read_text()
    fresh = (instance / "var" / "log" / "ums.log").read_text()
    assert "UMS is up" in rotated and "stopping" not in rotated
    assert "stopping" in fresh and "UMS is up" not in fresh


def test_the_template_unit_runs_one_service(instance):
    process, _settings = start_unit(instance, "ums@.service", "mas")
    try:
        wait_for_ports(process, [instance.ports["mas"]])
        report = wait_for_status(instance, 1)   # one of [ums] run's four services runs
        running = {s["name"] for s in report["services"] if s["state"] == "running"}
        assert running == {"mas"}
        assert all(port_is_free(instance.ports[name]) for name in ("was", "eps", "telegram"))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
    records = cli(instance, "logs", "--service", "mas").stdout
    assert "service started service=mas" in records and "service stopped service=mas" in records
