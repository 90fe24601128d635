"""``ums check``: is this instance fit to run? One line per problem, each
saying what is wrong and what to do, and a non-zero exit when there is one.

A problem is *fatal* when the suite cannot start or run with it — the
configuration does not load, the database cannot be read or is not at the
migration head, a port a service listens on is taken, ``[ums] timezone`` is
not a known zone. ``ums run`` runs exactly these checks first and refuses to
start on any, printing the same lines (:func:`refuse_to_start`). A *warning*
lets the suite start but something will not work: the relay PASS sends email
through does not answer (EHLO, then STARTTLS and AUTH as ``[email]`` asks),
a template named by an EPS service or by a scheduled, running or paused
campaign does not exist, or the file system under var/ has less free space
than ``[ums] min_free_mb``.

Each check is a small function returning its problems, so the report is the
list of them in the order checked.
"""

from __future__ import annotations

import errno
import re
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from .. import runtime
from ..config import Config
from ..db import Database
from ..db.migrate import current_revision, head_revision
from ..errors import UmsError
from ..service import cannot_listen
from ..store import campaigns as campaign_store
from ..store import control
from ..store import services as service_store
from ..store import templates as template_store
from .common import json_option, live_instances, pass_obj, run_async, write_json

#: campaigns whose template must exist: they send, or will
SENDING_CAMPAIGNS = ("scheduled", "running", "paused")
#: the longest the relay check waits for the relay (``[email] timeout`` when shorter)
RELAY_CHECK_TIMEOUT = 10.0
CHECK_FIELDS = ('{"ok": true when there is no problem, "fatal": count, "warnings": count, '
                '"problems": [{"check": config|database|port|timezone|relay|template|space, '
                '"fatal": true|false, "message"}]}')


@dataclass(frozen=True)
class Problem:
    check: str
    fatal: bool
    message: str

    @property
    def line(self) -> str:
        return f"{'fatal' if self.fatal else 'warning'}: {self.check}: {self.message}"

    def as_dict(self) -> dict:
        return {"check": self.check, "fatal": self.fatal, "message": self.message}


# --- fatal: the suite cannot start with these -------------------------------------------------

def check_services(config: Config, names: list[str]) -> list[Problem]:
    """Each service to run is known to ``[services]`` and its class loads."""
    found = []
    for name in names:
        try:
            runtime.load_service_class(config, name)
        except UmsError as exc:
            found.append(Problem("config", True, f"{exc} Name a service of [services] (to `ums run` or in "
                                                 f"[ums] run), or fix [services] {name}."))
    return found


def check_timezone(config: Config) -> list[Problem]:
    name = config.get("ums", "timezone")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return [Problem("timezone", True, f"[ums] timezone {name!r} is not a known time zone; "
                                          "set an IANA name such as Asia/Seoul.")]
    return []


async def check_database(db: Database) -> list[Problem]:
    """The database answers and its schema is at this version's migration head."""
    try:
        revision = await current_revision(db)
    except Exception as exc:
        reason = _first_line(exc)
        return [Problem("database", True, f"cannot reach {db.url} ({reason}); start the database "
                                          "or fix [database] url.")]
    head = head_revision()
    if revision is None:
        return [Problem("database", True, f"{db.url} is not initialised; run `ums init`.")]
    if revision != head:
        return [Problem("database", True, f"{db.url} is at migration {revision}, this UMS needs {head}; "
                                          "run `ums init` to migrate it.")]
    return []


async def running_here(db: Database, config: Config) -> dict[str, dict]:
    """This host's live instance of each service, as `ums status` sees them."""
    async with db.connect() as conn:
        instances = await control.instances(conn)
    host = socket.gethostname()
    here = {}
    for name in runtime.service_names(config):
        live = [i for i in live_instances(config, instances, name) if i["host"] == host]
        if live:
            here[name] = live[0]
    return here


def check_ports(config: Config, names: list[str], held: dict[str, dict] | None, starting: bool) -> list[Problem]:
    """Each port a service listens on can be bound — or, for ``ums check``
    (not ``starting``), is held by this instance's own running service.
    ``held`` is :func:`running_here` (None when the database cannot tell)."""
    found = []
    for name in names:
        try:
            listeners = runtime.load_service_class(config, name).listeners
        except UmsError:
            continue  # already reported by check_services
        for section, host_key, port_key in listeners:
            host, port = config.get(section, host_key), config.get(section, port_key)
            problem = _port_problem(name, host, port, section, port_key, held, starting)
            if problem:
                found.append(problem)
    return found


def _port_problem(service: str, host: str, port: int, section: str, port_key: str, held,
                  starting: bool) -> Problem | None:
    if port == 0:
        return None  # any free port, chosen when it starts
    error = _bind_error(host, port)
    if error is None:
        return None
    key = f"{section}.{port_key}"
    where = f"port {port} ({key}) on {host or 'every address'}"
    if error.errno != errno.EADDRINUSE:
        return Problem("port", True, str(cannot_listen(service, section, port_key, host, port, error)))
    if held is None:
        return Problem("port", True, f"{where} is in use (the database cannot tell whether by this instance); "
                                     f"free it or change {key}.")
    mine = held.get(service)
    if mine is None or port not in _ports_in(mine["address"] or ""):  # not this instance's: another program's
        return Problem("port", True, str(cannot_listen(service, section, port_key, host, port, error)))
    if starting:
        return Problem("port", True, f"{where} is held by this instance's running {service} (pid {mine['pid']}); "
                                     "it is already running — `ums stop` it first.")
    return None


def _ports_in(address: str) -> set[int]:
    """The port numbers in an instance's address ("127.0.0.1:8081 telegram 9100")."""
    return {int(number) for number in re.findall(r"(?<![\d.])\d{1,5}(?![\d.])", address)}


def _bind_error(host: str, port: int) -> OSError | None:
    """None when a server could listen on ``host:port`` now (as UMS's servers
    do, with SO_REUSEADDR), else the error that binding gives."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        return OSError(errno.EADDRNOTAVAIL, f"unknown host ({exc.strerror})")
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
            probe.listen(1)
        except OSError as exc:
            return exc
    return None


# --- warnings: the suite starts, but something will not work ----------------------------------

async def check_relay(config: Config, names: list[str]) -> list[Problem]:
    """PASS's email relay answers EHLO, and STARTTLS and AUTH when configured —
    opened exactly as PASS opens it (:class:`ums.channels.email.RelayPool`)."""
    if "pass" not in names or "email" not in config.section("channels"):
        return []
    from ..channels.email import RelayPool

    options = config.section("email")
    options["timeout"] = min(options["timeout"], RELAY_CHECK_TIMEOUT)
    relay = f"{options['relay_host']}:{options['relay_port']}"
    steps = "EHLO" + (", STARTTLS" if options["starttls"] else "") + (", AUTH" if options["username"] else "")
    pool = RelayPool(options, 1)
    try:
        pool.release(await pool.acquire())
    except Exception as exc:  # aiosmtplib's errors, OSError, timeouts: all say the relay cannot be used
        reason = _first_line(exc)
        # aiosmtplib's connect errors, disconnects and timeouts are OSErrors; refusals are not
        what = "cannot be reached" if isinstance(exc, OSError) else f"did not complete {steps}"
        return [Problem("relay", False, f"the email relay {relay} ([email] relay_host, relay_port) {what}: "
                                        f"{reason}; PASS holds email until it answers — start the relay or "
                                        "fix [email].")]
    finally:
        await pool.close()
    return []


def _service_templates(definition: dict) -> list[tuple[str, str]]:
    """(channel, template name) pairs a service definition sends with: its
    templates, and its digest template on each of their channels."""
    named = list((definition.get("templates") or {}).items())
    digest = (definition.get("digest") or {}).get("template")
    return named + ([(channel, digest) for channel, _ in named] if digest else [])


async def check_templates(db: Database) -> list[Problem]:
    """Every template a live EPS service or a sending campaign names exists."""
    async with db.connect() as conn:
        users = [(f"EPS service {row['name']!r}", name, channel)
                 for row in await service_store.list_services(conn)
                 for channel, name in _service_templates(row["definition"] or {})]
        users += [(f"{row['state']} campaign {row['name']!r}", row["template_name"], row["channel"])
                  for row in await campaign_store.in_states(conn, SENDING_CAMPAIGNS)]
        existing = await template_store.by_names(conn, {(name, channel) for _, name, channel in users})
    return [Problem("template", False, f"{who} names the {channel} template {name!r}, which does not exist; "
                                       f"add it with `ums template add FILE`.")
            for who, name, channel in users if (name, channel) not in existing]


def check_space(config: Config) -> list[Problem]:
    """The file system holding var/ has at least ``[ums] min_free_mb`` free."""
    wanted = config.get("ums", "min_free_mb")
    place = _existing_parent(config.var_dir)
    free_mb = shutil.disk_usage(place).free / 2**20
    if free_mb >= wanted:
        return []
    return [Problem("space", False, f"only {free_mb:.0f} MB free under {place} ([ums] var_dir), less than "
                                    f"[ums] min_free_mb = {wanted:g}; free some space (old logs, CDR files).")]


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _first_line(exc: Exception) -> str:
    """An exception as a clause of one line (its first line, no final stop)."""
    text = str(exc).strip()
    return text.splitlines()[0].rstrip(".") if text else type(exc).__name__


# --- running them -----------------------------------------------------------------------------

async def find_problems(obj, names: list[str] | None = None, starting: bool = False) -> list[Problem]:
    """Every problem, in the order checked; only the fatal ones when ``starting``
    (``ums run``). ``names``: the services to run (default ``[ums] run``)."""
    try:
        config = obj.config
    except UmsError as exc:
        return [Problem("config", True, f"{exc} Fix the file or the UMS_* variable.")]
    names = names or list(config.get("ums", "run"))
    found = check_services(config, names) + check_timezone(config)
    try:
        db = obj.database()
    except UmsError as exc:
        return found + [Problem("database", True, f"{exc} Fix [database] url.")]
    try:
        unreadable = await check_database(db)
        found += unreadable
        held = None if unreadable else await running_here(db, config)
        found += check_ports(config, names, held, starting)
        if starting:
            return found
        found += await check_relay(config, names)
        if not unreadable:
            found += await check_templates(db)
        found += check_space(config)
    finally:
        await db.close()
    return found


def refuse_to_start(obj, names: list[str] | None) -> None:
    """``ums run``'s gate: the fatal problems' lines on stderr and exit 1, else nothing."""
    fatal = run_async(find_problems(obj, names, starting=True))
    if fatal:
        for problem in fatal:  # one line each, and nothing more: the lines say what to do
            click.echo(problem.line, err=True)
        raise SystemExit(1)


@click.command()
@json_option(CHECK_FIELDS, shape="one object")
@pass_obj
def check(obj, as_json):
    """Check that this instance can run, one line per problem.

    Fatal (`ums run` refuses to start on them): configuration, database
    (reachable and migrated), ports (free or held by this instance), [ums]
    timezone. Warnings: the email relay (EHLO, STARTTLS and AUTH as
    configured), the templates that EPS services and scheduled, running or
    paused campaigns name, and free space under var/.

    Prints one line per problem ("fatal: port: …", "warning: relay: …"), each
    saying what to do, and a summary on stderr. Exits 0 when there is no
    problem, 1 otherwise."""
    found = run_async(find_problems(obj))
    fatal = sum(problem.fatal for problem in found)
    if as_json:
        write_json(obj, {"ok": not found, "fatal": fatal, "warnings": len(found) - fatal,
                         "problems": [problem.as_dict() for problem in found]})
    else:
        for problem in found:
            click.echo(problem.line)
    summary = (f"{len(found)} problem{'s' if len(found) != 1 else ''} ({fatal} fatal)" if found
               else "no problems")
    click.echo(f"ums check: {summary}", err=True)
    raise SystemExit(1 if found else 0)


COMMANDS = [check]
