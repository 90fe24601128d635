"""Call detail records: one per delivery attempt, for billing.

The column order of the CSV files (``var/cdr/YYYY-MM-DD.csv``, one per day in
the ``[ums] timezone``) is Asterisk's Master.csv first, so existing billing
tools read them, then the UMS columns (:data:`CSV_COLUMNS`). Costs come from
the ``[billing]`` rate table: per message, per page and per started minute,
charged for delivered attempts (disposition ANSWERED) only.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from xml.sax.saxutils import escape

from .channels import ANSWERED, FAILED, Outcome

ASTERISK_COLUMNS = (
    "accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata",
    "start", "answer", "end", "duration", "billsec", "disposition", "amaflags", "uniqueid", "userfield",
)
UMS_COLUMNS = ("delivery_id", "source", "medium", "pages", "bytes", "attempt", "status_code", "cost")
CSV_COLUMNS = ASTERISK_COLUMNS + UMS_COLUMNS
LASTAPP = {"email": "SMTP", "fax": "FAX", "voice": "DIAL"}


@dataclass(frozen=True)
class Rates:
    """The ``[billing]`` rate table for one medium."""

    per_message: Decimal = Decimal(0)
    per_page: Decimal = Decimal(0)
    per_minute: Decimal = Decimal(0)

    def cost(self, disposition: str, pages: int | None, billsec: int) -> Decimal:
        if disposition != ANSWERED:
            return Decimal(0)
        minutes = math.ceil(billsec / 60) if billsec else 0
        return self.per_message + self.per_page * (pages or 0) + self.per_minute * minutes


def rate_table(config) -> dict[str, Rates]:
    section = config.section("billing")

    def rate(key: str) -> Decimal:
        return Decimal(str(section.get(key) or 0))

    return {
        medium: Rates(rate(f"{medium}_message"), rate(f"{medium}_page"), rate(f"{medium}_minute"))
        for medium in ("email", "fax", "voice")
    }


def attempt_row(delivery: dict, outcome: Outcome, attempt: int, final: bool, rates: dict[str, Rates],
                now: datetime, account: str = "", source: str = "", sender: str = "") -> dict:
    """The ``cdr`` table row for one finished attempt of ``delivery``."""
    medium = delivery["channel"]
    started = outcome.started_at or now
    ended = outcome.ended_at or now
    pages = outcome.pages
    return {
        "delivery_id": delivery["id"], "attempt": attempt, "final": final,
        "accountcode": account[:64], "src": sender[:320], "dst": delivery["recipient"],
        "dcontext": delivery.get("kind", ""), "clid": sender[:320],
        "channel": f"{medium}/{outcome.dstchannel or medium}"[:128], "dstchannel": (outcome.dstchannel or "")[:128],
        "lastapp": LASTAPP.get(medium, medium.upper()), "lastdata": (outcome.detail or "")[:255],
        "start": started, "answer": outcome.answered_at or (started if outcome.disposition == ANSWERED else None),
        "end": ended, "duration": max(0, round((ended - started).total_seconds())), "billsec": outcome.billsec,
        "disposition": outcome.disposition, "amaflags": "BILLING",
        "uniqueid": f"{delivery['id']}.{attempt}", "userfield": (delivery.get("message_id") or "")[:255],
        "source": source[:160], "medium": medium, "pages": pages, "bytes": outcome.bytes,
        "status_code": (outcome.code or "")[:16],
        "cost": rates.get(medium, Rates()).cost(outcome.disposition, pages, outcome.billsec),
    }


def inbound_call_row(call_id: str, caller: str, line: str, answered: datetime, ended: datetime,
                     source: str, channel: str, dstchannel: str, lastapp: str, lastdata: str) -> dict:
    """The ``cdr`` row of an answered inbound call that belongs to no delivery
    (the free refusal line): ``src`` is the caller, ``dst`` the line, no
    delivery id, attempt 1 and final, ANSWERED, cost 0 (the line is free to
    the caller, and what the carrier charges the line is not a send)."""
    seconds = max(0, round((ended - answered).total_seconds()))
    return {
        "delivery_id": None, "attempt": 1, "final": True, "accountcode": "", "src": caller[:320],
        "dst": line[:320], "dcontext": source[:64], "clid": caller[:320], "channel": channel[:128],
        "dstchannel": dstchannel[:128], "lastapp": lastapp[:64], "lastdata": lastdata[:255],
        "start": answered, "answer": answered, "end": ended, "duration": seconds, "billsec": seconds,
        "disposition": ANSWERED, "amaflags": "BILLING", "uniqueid": f"in.{call_id}"[:64], "userfield": "",
        "source": source[:160], "medium": "voice", "pages": None, "bytes": None, "status_code": "200",
        "cost": Decimal(0),
    }


def policy_outcome(code: str, detail: str, now: datetime) -> Outcome:
    """The outcome recorded when PASS ends a delivery without trying it
    (suppressed, expired, cancelled)."""
    return Outcome(status="permanent", code=code, detail=detail, disposition=FAILED, started_at=now, ended_at=now)


def _format(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat(" ", "seconds")[:19]   # YYYY-MM-DD HH:MM:SS, cheaper than strftime
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def csv_line(row: dict) -> list[str]:
    return [_format(row.get(column)) for column in CSV_COLUMNS]


def to_csv(rows, header: bool = True) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(csv_line(row))
    return buffer.getvalue()


def to_xml(rows) -> str:
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<cdrs>\n']
    for row in rows:
        fields = "".join(f"<{c}>{escape(_format(row.get(c)))}</{c}>" for c in CSV_COLUMNS)
        parts.append(f"  <cdr>{fields}</cdr>\n")
    parts.append("</cdrs>\n")
    return "".join(parts)


class DailyFiles:
    """Appends CDR rows to ``var/cdr/YYYY-MM-DD.csv`` (day in ``tz``).

    The database is the record; the files follow it. PASS appends rows with
    ids above the last one written. After a crash the position is recovered
    from the files themselves (the ``uniqueid`` of the last complete line),
    so no row is written twice and none is skipped.
    """

    def __init__(self, directory: Path, tz):
        self.directory = Path(directory)
        self.tz = tz
        self._paths: dict[datetime, Path] = {}

    def path_for(self, moment: datetime) -> Path:
        """The day file of ``moment`` (naive values, as SQLite returns them, are UTC)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        # days change on a quarter hour in every zone: one lookup per quarter hour
        quarter = moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)
        path = self._paths.get(quarter)
        if path is None:
            if len(self._paths) > 1000:
                self._paths.clear()
            path = self._paths[quarter] = self.directory / f"{quarter.astimezone(self.tz):%Y-%m-%d}.csv"
        return path

    def last_written(self) -> list[str]:
        """``uniqueid`` values of the last complete line of the newest two files
        (a partial last line, from a crash mid-write, is cut off)."""
        if not self.directory.exists():
            return []
        found = []
        for path in sorted(self.directory.glob("????-??-??.csv"))[-2:]:
            line = _repair_tail(path)
            if line:
                fields = next(csv.reader([line]))
                if len(fields) == len(CSV_COLUMNS) and fields[0] != "accountcode":
                    found.append(fields[CSV_COLUMNS.index("uniqueid")])
        return found

    def append(self, rows: list[dict]) -> None:
        by_file: dict[Path, list[dict]] = {}
        for row in rows:
            by_file.setdefault(self.path_for(row["start"]), []).append(row)
        self.directory.mkdir(parents=True, exist_ok=True)
        for path, file_rows in by_file.items():
            new = not path.exists() or path.stat().st_size == 0
            with open(path, "a", encoding="utf-8", newline="") as handle:
                handle.write(to_csv(file_rows, header=new))
                handle.flush()
                os.fsync(handle.fileno())


def _repair_tail(path: Path) -> str:
    data = path.read_bytes()
    if not data:
        return ""
    if not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "r+b") as handle:
            handle.truncate(cut)
        data = data[:cut]
    lines = data.rstrip(b"\n").rsplit(b"\n", 1)
    return lines[-1].decode("utf-8") if lines and lines[-1] else ""
