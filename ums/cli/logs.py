"""``ums logs``: the instance's log records, as ``ums run`` wrote them.

It reads the file ``ums run`` logs to — ``--file``, else ``[log] file``, else
``var/log/ums.log``, where the shipped systemd units point ``ums run
--log-file`` — and prints its last records, whole (a traceback stays with its
record), optionally only one service's (:func:`ums.log.service_of` says which
service a record is). ``-f`` then follows the file as ``tail -F`` does: across
logrotate's rename (a new file at the path, or a shorter one, is read from its
start), until Ctrl-C. A suite logging to stderr (no file) is journald's:
``journalctl -u ums``.
"""

from __future__ import annotations

import os
import time
from collections import deque
from pathlib import Path

import click

from .. import log as ums_log
from .. import runtime
from ..errors import UmsError
from .common import pass_obj

FOLLOW_POLL_SECONDS = 0.25


class NoLogFile(UmsError):
    """No log file at {path}: `ums run` logs to stderr unless given --log-file or [log] file (the shipped systemd units log to var/log/ums.log); name another with --file PATH."""


def _known_service(obj, name: str | None) -> str | None:
    known = runtime.service_names(obj.config)
    if name is not None and name not in known:
        raise click.BadParameter(f"unknown service {name!r}; choose from {', '.join(known)}", param_hint="--service")
    return name


def _wanted(record: ums_log.Record, service: str | None) -> bool:
    return service is None or record.service == service


def _last_records(handle, service: str | None, count: int) -> list[ums_log.Record]:
    lines = (line.rstrip("\n") for line in iter(handle.readline, ""))   # not `for line in handle`: it stops tell()
    wanted = (record for record in ums_log.read_records(lines) if _wanted(record, service))
    return list(deque(wanted, maxlen=count) if count else wanted)


def _echo(lines) -> None:
    for line in lines:
        click.echo(line)


class _Follower:
    """New lines of a file as they are appended, across rotation; continuation
    lines go with their record's choice."""

    def __init__(self, path: Path, handle, service: str | None):
        self.path, self.handle, self.service = path, handle, service
        self.partial = ""
        self.keeping = True

    def _rotated(self) -> bool:
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return False   # renamed, the new one not there yet: keep reading the old
        opened = os.fstat(self.handle.fileno())
        return (now.st_ino, now.st_dev) != (opened.st_ino, opened.st_dev) or now.st_size < self.handle.tell()

    def _emit(self, line: str) -> None:
        record = ums_log.parse_line(line)
        if record is not None:
            self.keeping = _wanted(record, self.service)
        if self.keeping:
            click.echo(line)

    def poll(self) -> None:
        chunk = self.handle.read()
        if not chunk and self._rotated():
            self.handle.close()
            self.handle = open(self.path, encoding="utf-8", errors="replace")
            chunk = self.handle.read()
        if not chunk:
            return
        *complete, self.partial = (self.partial + chunk).split("\n")
        for line in complete:
            self._emit(line)

    def run(self) -> None:
        try:
            while True:
                self.poll()
                time.sleep(FOLLOW_POLL_SECONDS)
        except KeyboardInterrupt:
            pass
        finally:
            self.handle.close()


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing records as they are written (Ctrl-C ends).")
@click.option("--service", metavar="NAME", help="Only this service's records (was, eps, mas, pass).")
@click.option("-n", "--lines", "count", type=click.IntRange(min=0), default=50, show_default=True,
              help="How many of the last records to print first (0: all).")
@click.option("--file", "path", type=click.Path(dir_okay=False, path_type=Path),
              help="The log file (default: [log] file, else var/log/ums.log).")
@pass_obj
def logs(obj, follow, service, count, path):
    """Show the instance's log records (the file `ums run --log-file` writes).

    Records are printed whole, as written: in plain format
    `2026-12-02 19:22:05 KST INFO    ums.runtime: service started service=mas`
    (the time in [ums] timezone), or one JSON object a line with [log] format
    = json. A record's service is its service= field, else its logger's
    (ums.mas… is mas's; the channels are PASS's).
    """
    service = _known_service(obj, service)
    path = path or ums_log.default_file(obj.config)
    if not path.is_file():
        raise NoLogFile(path=path)
    handle = open(path, encoding="utf-8", errors="replace")
    for record in _last_records(handle, service, count):
        _echo(record.lines)
    if not follow:
        handle.close()
        return
    _Follower(path, handle, service).run()


COMMANDS = [logs]
