"""Suite commands: init, run, status, pause, resume, stop.

What only one command needs is imported inside it (rich for status's table,
logging set-up and the start-up checks for run, password hashing and
migrations for init): `ums status`, `ums stop` and `ums pause` are run often,
by operators, scripts and systemd, and start-up import is most of their cost.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from datetime import timedelta

import click

from .. import config as ums_config
from .. import runtime
from ..errors import UmsError
from ..store import control, deliveries
from .common import json_option, live_instances, pass_obj, ready_database, run_async, write_json


def _instance_config_text() -> str:
    shipped = ums_config.DEFAULTS_FILE.read_text(encoding="utf-8")
    lines = ["# This instance's settings. Uncomment a key to change it; the defaults",
             "# and their meaning are in the shipped config/ums.cfg.", ""]
    for line in shipped.splitlines():
        if line.startswith("[") or not line.strip():
            lines.append(line)
        elif not line.startswith("#"):
            lines.append("# " + line)
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--admin-password", envvar="UMS_ADMIN_PASSWORD",
              help="Password for the admin user created on first run (default: generated).")
@pass_obj
def init(obj, admin_password):
    """Create the configuration, migrate the database and create the admin user.

    Safe to run again: it only does what is missing and says so (an existing
    admin's password is reset with `ums user passwd admin`). Without --home or
    UMS_HOME the instance is the current directory.
    """
    obj.may_create = True  # the one command that may make a directory an instance
    changes = []
    cfg_path = ums_config.instance_config_file(obj.home_dir) if not obj.config_file else None
    if cfg_path is not None and not cfg_path.exists():
        cfg_path.parent.mkdir(parents=True, exist_ok=True)
        cfg_path.write_text(_instance_config_text(), encoding="utf-8")
        changes.append(f"wrote {cfg_path}")
    config = obj.config
    config.var_dir.mkdir(parents=True, exist_ok=True)
    changes += run_async(_init_database(obj, admin_password))
    if changes:
        for change in changes:
            click.echo(change)
    else:
        click.echo("Nothing to do: configuration, database schema and admin user are already in place.")


async def _init_database(obj, admin_password: str | None) -> list[str]:
    from ..db import migrate
    from ..security import hash_password, new_secret
    from ..store import users

    db = obj.database()
    changes = []
    try:
        before = await migrate.current_revision(db)
        head = migrate.head_revision()
        if before != head:
            await migrate.upgrade(db)
            changes.append(f"database {db.url}: migrated from {before or 'empty'} to {head}")
        async with db.begin() as conn:
            if await users.count_by_role(conn, "admin") == 0:
                password = admin_password or new_secret(12)
                await users.create(conn, "admin", hash_password(password), "admin", display_name="Administrator")
                shown = "(as given)" if admin_password else password
                changes.append(f"created user admin with password {shown}")
            elif admin_password:
                changes.append("an admin user exists: --admin-password changes nothing; "
                               "reset a password with `ums user passwd NAME`")
    except UmsError:
        raise
    except Exception as exc:
        raise UmsError(f"database {db.url}: {exc}") from None
    finally:
        await db.close()
    return changes


@click.command()
@click.argument("services", nargs=-1)
@click.option("--log-file", type=click.Path(dir_okay=False), metavar="PATH",
              help="Append log records to PATH instead of stderr (overrides [log] file); SIGHUP "
                   "reopens it, for logrotate. `ums logs` reads var/log/ums.log unless told otherwise.")
@pass_obj
def run(obj, services, log_file):
    """Run the suite, or only the named SERVICES (was, eps, mas, pass), in this process.

    Stops on SIGTERM, Ctrl-C or `ums stop`; SIGHUP reopens the log file.
    Refuses to start, with one line each, on the fatal problems `ums check`
    reports (configuration, database, ports, time zone). Runs under systemd
    with the units in deploy/systemd/ (see the README).
    """
    from .. import log as ums_log
    from .check import refuse_to_start

    refuse_to_start(obj, list(services) or None)
    config = obj.config
    ums_log.setup_from_config(config, file=log_file)
    runtime.run(config, list(services) or None)


STATUS_HELP = """Show each service: state, address, pid, uptime, and the queue depth.

\b
Exit status (as LSB init scripts and systemctl):
  0  every service `ums run` starts ([ums] run) is running
  1  one is degraded, paused or not running (and another runs)
  3  none of them runs
(and 1 with a one-line error when the database cannot be read).

A service's state is running, paused, degraded (PASS cannot reach a relay
or gateway) or stopped; several live instances (processes on other hosts)
are each listed.
"""

#: ``ums status`` exit codes (LSB): all configured services run / some do not / none does
RUNNING, DEGRADED, DOWN = 0, 1, 3
STATUS_WORDS = {RUNNING: "running", DEGRADED: "degraded", DOWN: "stopped"}
STATUS_FIELDS = ('{"state": running|degraded|stopped, "exit_code", "queue_pending", "services": '
                 '[{"name", "expected" (in [ums] run), "state", "desired" (running|paused), '
                 '"instances": [{"state", "address", "host", "pid", "started_at", "heartbeat_at", '
                 '"uptime_seconds", "info"}]}]}')


@click.command(help=STATUS_HELP)
@json_option(STATUS_FIELDS, shape="one object")
@pass_obj
def status(obj, as_json):
    report = run_async(_status(obj))
    if as_json:
        write_json(obj, report)
    else:
        _print_status(report)
    sys.exit(report["exit_code"])


def _print_status(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("SERVICE", "STATE", "ADDRESS", "HOST", "PID", "UPTIME", "DETAIL"):
        table.add_column(column)
    for service in report["services"]:
        if not service["instances"]:
            paused = " (paused)" if service["desired"] == "paused" else ""
            table.add_row(service["name"], "stopped" + paused, "-", "-", "-", "-", "")
        for inst in service["instances"]:
            detail = " ".join(f"{k}={v}" for k, v in inst["info"].items())
            table.add_row(service["name"], inst["state"], inst["address"] or "-", inst["host"], str(inst["pid"]),
                          _uptime(inst["uptime_seconds"]), detail)
    Console(width=120).print(table)
    click.echo(f"delivery queue: {report['queue_pending']} pending")


def _uptime(seconds) -> str:
    if seconds is None:
        return "-"
    return str(timedelta(seconds=int(seconds)))


async def _status(obj) -> dict:
    config = obj.config
    db = await ready_database(obj)
    try:
        async with db.connect() as conn:
            found = await control.instances(conn)
            desired = await control.desired_states(conn)
            depth = await deliveries.count_pending(conn)
    finally:
        await db.close()
    expected = config.get("ums", "run")
    services = [_service_status(name, name in expected, live_instances(config, found, name),
                                desired.get(name, "running"))
                for name in runtime.service_names(config)]
    code = _exit_code([s["state"] for s in services if s["expected"]])
    return {"state": STATUS_WORDS[code], "exit_code": code, "queue_pending": depth, "services": services}


def _service_status(name: str, expected: bool, live: list[dict], desired: str) -> dict:
    instances = []
    for inst in live:
        info = dict(inst["info"] or {})
        uptime = info.pop("uptime", None)
        instances.append({"state": inst["state"], "address": inst["address"], "host": inst["host"],
                          "pid": inst["pid"], "started_at": inst["started_at"], "heartbeat_at": inst["heartbeat_at"],
                          "uptime_seconds": uptime, "info": info})
    states = {inst["state"] for inst in instances}
    state = next((s for s in ("running", "degraded", "paused") if s in states), "stopped")
    return {"name": name, "expected": expected, "state": state, "desired": desired, "instances": instances}


def _exit_code(states: list[str]) -> int:
    """0 when every expected service runs, 3 when none has a live process, else 1."""
    if all(state == "running" for state in states):
        return RUNNING
    if all(state == "stopped" for state in states):
        return DOWN
    return DEGRADED


def _service_argument(obj, name: str) -> str:
    known = runtime.service_names(obj.config)
    if name not in known:
        raise click.BadParameter(f"unknown service {name!r}; choose from {', '.join(known)}")
    return name


async def _set_state(obj, service: str, desired: str) -> str:
    db = await ready_database(obj)
    try:
        async with db.begin() as conn:
            changed = await control.set_desired(conn, service, desired, by=os.environ.get("USER", "cli"))
        deadline = time.monotonic() + 5
        while True:
            async with db.connect() as conn:
                fresh = live_instances(obj.config, await control.instances(conn), service)
            if not fresh:
                note = "; it is not running now, the state applies when it starts"
                break
            if all(i["state"] == desired for i in fresh):
                note = ""
                break
            if time.monotonic() > deadline:
                note = "; the running process has not confirmed yet"
                break
            await asyncio.sleep(0.2)
    finally:
        await db.close()
    word = "paused" if desired == "paused" else "running"
    return f"{service} {'is now' if changed else 'was already'} {word}{note}"


@click.command()
@click.argument("service")
@pass_obj
def pause(obj, service):
    """Pause SERVICE: it stays up but takes no new work, until `ums resume`.

    The state is kept in the database, so it survives restarts.
    """
    click.echo(run_async(_set_state(obj, _service_argument(obj, service), "paused")))


@click.command()
@click.argument("service")
@pass_obj
def resume(obj, service):
    """Resume a paused SERVICE."""
    click.echo(run_async(_set_state(obj, _service_argument(obj, service), "running")))


def _alive(pid: int) -> bool:
    """True while the process exists and has not exited (a zombie has exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


async def _stop(obj, everywhere: bool) -> tuple[int, list[int]]:
    db = await ready_database(obj)
    host = socket.gethostname()
    try:
        async with db.begin() as conn:
            flagged = await control.request_stop(conn, None if everywhere else host)
    finally:
        await db.close()
    local_pids = sorted({i["pid"] for i in flagged if i["host"] == host and _alive(i["pid"])})
    for pid in local_pids:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + obj.config.get("control", "stop_timeout") + 2
    while time.monotonic() < deadline and any(_alive(pid) for pid in local_pids):
        await asyncio.sleep(0.1)
    return len(local_pids), [pid for pid in local_pids if _alive(pid)]


@click.command()
@click.option("--everywhere", is_flag=True, help="Also ask processes on other hosts (sharing the database) to stop.")
@pass_obj
def stop(obj, everywhere):
    """Stop the running suite gracefully: listeners close, in-flight work finishes
    or is released, and the processes exit."""
    count, survivors = run_async(_stop(obj, everywhere))
    if survivors:
        raise UmsError(f"processes {', '.join(map(str, survivors))} did not stop in time")
    if count == 0:
        click.echo("Nothing to stop: no UMS process is running on this host.")
    else:
        click.echo(f"Stopped {count} UMS process{'es' if count > 1 else ''}.")


COMMANDS = [init, run, status, pause, resume, stop]
