"""Structured logging: plain lines or JSON lines, secrets redacted, reopen on SIGHUP.

Code logs an event name plus fields, procrastinate-style::

    log.info("service started", extra={"service": "mas", "address": "127.0.0.1:2525"})

Field values whose key looks secret (password, token, key, authorization…) and
passwords inside URLs are replaced by ``***`` before any handler sees them.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from pathlib import Path

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_SECRET_KEY = re.compile(r"pass(word)?|secret|token|api_?key|authorization|credential", re.I)
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]*):[^@\s]*@", re.I)
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
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(record.created))
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


def setup(level: str = "INFO", fmt: str = "plain", file: str = "") -> logging.Handler:
    """Install the one root handler UMS uses; safe to call again (replaces it)."""
    global _handler
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
        _handler.close()
    if file:
        Path(file).parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = ReopenableFileHandler(file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else PlainFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("aiosqlite", "asyncio", "sqlalchemy.engine.Engine", "mail.log", "apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    _handler = handler
    return handler


def reopen() -> None:
    if isinstance(_handler, ReopenableFileHandler):
        _handler.reopen()


def setup_from_config(config) -> logging.Handler:
    section = config.section("log")
    return setup(section["level"], section["format"], section["file"])
