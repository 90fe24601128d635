"""Structured logging: plain lines or JSON lines, secrets redacted, reopen on SIGHUP.

Code logs an event name plus fields, procrastinate-style::

    log.info("service started", extra={"service": "mas", "address": "127.0.0.1:2525"})

Field values whose key looks secret (password, token, key, authorization…) and
passwords inside URLs are replaced by ``***`` before any handler sees them.

The record format is this module's to define and to read back (``ums logs``
calls :func:`read_records`):

* plain: ``2026-12-02 19:22:05 KST INFO    ums.runtime: service started service=mas …``
  — the time in ``[ums] timezone`` naming its zone, the level padded to 7,
  the logger, the message, then ``key=value`` fields; a traceback follows on
  lines of its own, which belong to the record above them;
* json: one object a line, ``{"ts": unix seconds, "level", "logger", "msg", …fields}``.

A record's *service* is its ``service`` field, else the service its logger
belongs to (``ums.mas.notify`` → mas; the channels are PASS's).

With a file (``[log] file`` or ``ums run --log-file``) records are appended
(O_APPEND, so several ``ums run`` processes may share one file) and SIGHUP
reopens it: logrotate renames the file, then signals, and the next record
starts the new one.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import Iterable, Iterator

from .clock import site_zone

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_SECRET_KEY = re.compile(r"pass(word)?|secret|token|api_?key|authorization|credential", re.I)
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]*):[^@\s]*@", re.I)
PLAIN_TIME = "%Y-%m-%d %H:%M:%S %Z"
_PLAIN_RECORD = re.compile(
    r"^(?P<stamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+) (?P<level>[A-Z]+) +(?P<logger>\S+): (?P<msg>.*)$"
)
_SERVICE_FIELD = re.compile(r"(?:^| )service=(?P<service>\S+)")
#: core loggers that only one service uses
_LOGGER_SERVICE = {"channels": "pass"}
_INLINE_SECRET = re.compile(
    r"(?P<key>\b(?:password|passwd|secret|token|api_?key)\s*[=:]\s*)(?P<value>[^\s,;&]+)", re.I
)


def redact(text: str) -> str:
    """Hide passwords in URLs and ``password=…``-style pairs inside free text."""
    text = _URL_PASSWORD.sub(r"\g<scheme>:***@", text)
    return _INLINE_SECRET.sub(r"\g<key>***", text)


def fields_of(record: logging.LogRecord) -> dict:
    fields = {}
    for key, value in vars(record).items():
        if key in _STANDARD or key.startswith("_"):
            continue
        if _SECRET_KEY.search(key):
            value = "***"
        elif isinstance(value, str):
            value = redact(value)
        fields[key] = value
    return fields


class PlainFormatter(logging.Formatter):
    def __init__(self, tz: tzinfo | None = None):
        super().__init__()
        self.tz = tz

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, self.tz or timezone.utc).strftime(PLAIN_TIME)
        parts = [stamp, record.levelname.ljust(7), record.name + ":", redact(record.getMessage())]
        parts += [f"{key}={value}" for key, value in fields_of(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
            **fields_of(record),
        }
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class ReopenableFileHandler(logging.FileHandler):
    """A file handler that reopens its file on demand (SIGHUP after logrotate)."""

    def reopen(self) -> None:
        self.acquire()
        try:
            if self.stream:
                self.stream.close()
            self.stream = self._open()
        finally:
            self.release()


_handler: logging.Handler | None = None


def setup(level: str = "INFO", fmt: str = "plain", file: str = "", tz: tzinfo | None = None) -> logging.Handler:
    """Install the one root handler UMS uses; safe to call again (replaces it).
    Plain lines show times in ``tz`` (UTC when not given)."""
    global _handler
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
        _handler.close()
    if file:
        Path(file).parent.mkdir(exist_ok=True)   # var/log on first use; a mistyped deeper path is an error
        handler: logging.Handler = ReopenableFileHandler(file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else PlainFormatter(tz))
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("aiosqlite", "asyncio", "sqlalchemy.engine.Engine", "mail.log", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    _handler = handler
    return handler


def reopen() -> None:
    if isinstance(_handler, ReopenableFileHandler):
        _handler.reopen()


def setup_from_config(config, file: str | None = None) -> logging.Handler:
    """The handler ``[log]`` asks for; ``file`` (``ums run --log-file``) overrides ``[log] file``."""
    section = config.section("log")
    return setup(section["level"], section["format"], section["file"] if file is None else file, site_zone(config))


def default_file(config) -> Path:
    """Where ``ums logs`` looks: ``[log] file``, else var/log/ums.log (what the
    shipped systemd units pass to ``ums run --log-file``)."""
    return Path(config.get("log", "file") or config.var_dir / "log" / "ums.log")


# --- reading records back -----------------------------------------------------------------

@dataclass
class Record:
    """One record as read back from a log file: its first line and any
    continuation lines (a traceback)."""

    text: str
    level: str = ""
    logger: str = ""
    service: str = ""
    extra: list[str] = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        return [self.text, *self.extra]


def service_of(logger: str, fields_service: str | None = None) -> str:
    if fields_service:
        return fields_service
    parts = logger.split(".")
    if len(parts) >= 2 and parts[0] == "ums":
        return _LOGGER_SERVICE.get(parts[1], parts[1])
    return ""


def parse_line(line: str) -> Record | None:
    """The record a line starts, or None for a continuation line."""
    if line.startswith("{"):
        try:
            entry = json.loads(line)
        except ValueError:
            return None
        if isinstance(entry, dict) and "logger" in entry:
            logger = str(entry.get("logger", ""))
            service = entry.get("service")
            return Record(line, str(entry.get("level", "")).upper(), logger,
                          service_of(logger, service if isinstance(service, str) else None))
        return None
    match = _PLAIN_RECORD.match(line)
    if not match:
        return None
    found = _SERVICE_FIELD.search(match["msg"])
    return Record(line, match["level"], match["logger"],
                  service_of(match["logger"], found["service"] if found else None))


def read_records(lines: Iterable[str], pending: Record | None = None) -> Iterator[Record]:
    """Records from lines (without their newlines). Lines before the first
    record are kept as records of their own, so nothing in the file is hidden."""
    current = pending
    for line in lines:
        record = parse_line(line)
        if record is None and current is not None:
            current.extra.append(line)
            continue
        if current is not None:
            yield current
        current = record or Record(line)
    if current is not None:
        yield current
