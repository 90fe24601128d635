"""Call detail records: one per delivery attempt, for billing.

The column order of the CSV files (``var/cdr/YYYY-MM-DD.csv``, one per day in
the ``[ums] timezone``) is Asterisk's Master.csv first, so existing billing
tools read them, then the UMS columns (:data:`CSV_COLUMNS`). Costs come from
the ``[billing]`` rate table (:func:`rate_table`): per message, per page and
per started minute, charged for delivered attempts (disposition ANSWERED)
only. The rows are built by :mod:`ums.queue.records`, the one owner.
"""

from __future__ import annotations

import csv
import io
import os
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from xml.sax.saxutils import escape

# the rows themselves are built by the delivery core; re-exported for billing and tests
from .queue.records import LASTAPP, Rates, attempt_row, inbound_call_row, policy_outcome

__all__ = ["LASTAPP", "Rates", "attempt_row", "inbound_call_row", "policy_outcome", "rate_table", "DailyFiles"]

ASTERISK_COLUMNS = (
    "accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata",
    "start", "answer", "end", "duration", "billsec", "disposition", "amaflags", "uniqueid", "userfield",
)
UMS_COLUMNS = ("delivery_id", "source", "medium", "pages", "bytes", "attempt", "status_code", "cost")
CSV_COLUMNS = ASTERISK_COLUMNS + UMS_COLUMNS


def rate_table(config) -> dict[str, Rates]:
    section = config.section("billing")

    def rate(key: str) -> Decimal:
        return Decimal(str(section.get(key) or 0))

    return {
        medium: Rates(rate(f"{medium}_message"), rate(f"{medium}_page"), rate(f"{medium}_minute"))
        for medium in ("email", "fax", "voice")
    }


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
