"""Contacts in and out: CSV and vCard (3.0 and 4.0) import with a per-row
report of what was refused and why, and export in the same formats.

Import matches each record to an existing contact (customer id, else email,
else fax or phone) and updates it, so exporting and importing again changes
nothing. A bad row is refused with its line number; the good rows still land.

CSV columns (header row, any order; unknown columns are ignored):
``customer_id, name, email, fax, phone, grade, timezone, locale, consent,
consent_source, consent_date, night_time`` — ``consent`` is yes/no; a "yes"
needs a source and a date (ISO 8601).

vCard: FN, EMAIL, TEL (TYPE=fax for fax, otherwise phone), UID as customer
id, and ``X-UMS-GRADE``, ``X-UMS-CONSENT`` (``yes;source;date``),
``X-UMS-NIGHT-TIME`` for the UMS fields.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import datetime

from .addresses import is_valid, normalize
from .clock import BadTime, parse_time, zone
from .errors import UmsError
from .store import addressbooks

CSV_COLUMNS = ["customer_id", "name", "email", "fax", "phone", "grade", "timezone", "locale",
               "consent", "consent_source", "consent_date", "night_time"]
YES, NO = {"yes", "y", "true", "1", "granted"}, {"no", "n", "false", "0", "withdrawn", "refused"}


class ContactsFormatError(UmsError):
    """Cannot read the contacts file: {reason}."""


@dataclass
class Record:
    """One contact as read from a file, before it is stored."""

    line: int
    fields: dict
    consent: tuple[bool, str, datetime, bool] | None = None   # granted, source, date, night time


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.created + self.updated


class BadRow(ValueError):
    pass


# --- reading ---------------------------------------------------------------------------

def detect_format(data: bytes) -> str:
    head = data.lstrip(b"\xef\xbb\xbf \r\n\t")[:64].upper()
    return "vcard" if head.startswith(b"BEGIN:VCARD") else "csv"


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "euc-kr"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ContactsFormatError(reason="the file is neither UTF-8 nor EUC-KR text")


def _flag(text: str, name: str) -> bool | None:
    lowered = (text or "").strip().lower()
    if not lowered:
        return None
    if lowered in YES:
        return True
    if lowered in NO:
        return False
    raise BadRow(f"{name} must be yes or no, not {text!r}")


def _date(text: str) -> datetime:
    """A consent date: a day or a time, without an offset in the site's default zone."""
    try:
        return parse_time(text, zone(None))
    except BadTime:
        raise BadRow(f"bad consent date {text!r} (use YYYY-MM-DD or ISO 8601)") from None


def _consent(granted_text: str, source: str, date_text: str, night_text: str):
    granted = _flag(granted_text, "consent")
    if granted is None:
        return None
    if not (source or "").strip():
        raise BadRow("consent without a source (where was it given?)")
    if not (date_text or "").strip():
        raise BadRow("consent without a date")
    return granted, source.strip(), _date(date_text), bool(_flag(night_text, "night_time"))


def check_fields(fields: dict) -> dict:
    """Validate and normalise one record's contact fields; raises BadRow."""
    cleaned = {key: (fields.get(key) or "").strip() for key in addressbooks.CONTACT_FIELDS}
    if not (cleaned["email"] or cleaned["fax"] or cleaned["phone"]):
        raise BadRow("no email, fax or phone number")
    if cleaned["email"]:
        if not is_valid("email", cleaned["email"]):
            raise BadRow(f"bad email address {cleaned['email']!r}")
        cleaned["email"] = normalize("email", cleaned["email"])
    for key, channel in (("fax", "fax"), ("phone", "voice")):
        if cleaned[key]:
            if not is_valid(channel, cleaned[key]) or re.search(r"[A-Za-z]", cleaned[key]):
                raise BadRow(f"bad {key} number {cleaned[key]!r}")
            cleaned[key] = normalize(channel, cleaned[key])
    for key, limit in (("name", 200), ("grade", 32), ("customer_id", 64), ("timezone", 64), ("locale", 16)):
        if len(cleaned[key]) > limit:
            raise BadRow(f"{key} is longer than {limit} characters")
    return {key: value or None for key, value in cleaned.items()}


def read_csv(text: str) -> tuple[list[Record], list[tuple[int, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise ContactsFormatError(reason="the CSV file is empty")
    header = [name.strip().lower() for name in reader.fieldnames]
    if not {"email", "fax", "phone"} & set(header):
        raise ContactsFormatError(reason="the CSV header names no email, fax or phone column")
    reader.fieldnames = header
    records, refused = [], []
    for row in reader:
        line = reader.line_num
        try:
            if None in row:
                raise BadRow("more fields than the header has")
            fields = check_fields(row)
            consent = _consent(row.get("consent", ""), row.get("consent_source", ""),
                               row.get("consent_date", ""), row.get("night_time", ""))
            records.append(Record(line, fields, consent))
        except BadRow as exc:
            refused.append((line, str(exc)))
    return records, refused


def _cards(text: str):
    """Split a vCard file into (first line number, card text)."""
    start, lines = None, []
    for number, line in enumerate(text.splitlines(), start=1):
        upper = line.strip().upper()
        if upper == "BEGIN:VCARD":
            start, lines = number, [line]
        elif start is not None:
            lines.append(line)
            if upper == "END:VCARD":
                yield start, "\r\n".join(lines) + "\r\n"
                start = None
    if start is not None:
        yield start, None


def _param_types(prop) -> set[str]:
    types = set()
    for value in prop.params.get("TYPE", []):
        types |= {part.strip().strip('"').lower() for part in value.split(",")}
    return types


def _card_record(line: int, card_text: str) -> Record:
    import vobject

    try:
        card = vobject.readOne(card_text, allowQP=True)
    except Exception as exc:  # vobject raises many kinds on malformed input
        raise BadRow(f"malformed vCard ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    contents = card.contents
    fields = {"name": str(card.fn.value) if "fn" in contents else ""}
    if "email" in contents:
        fields["email"] = str(contents["email"][0].value)
    for tel in contents.get("tel", []):
        number = str(tel.value).removeprefix("tel:")
        key = "fax" if "fax" in _param_types(tel) else "phone"
        fields.setdefault(key, number)
    if "uid" in contents:
        fields["customer_id"] = str(contents["uid"][0].value)
    if "x-ums-grade" in contents:
        fields["grade"] = str(contents["x-ums-grade"][0].value)
    elif "categories" in contents:
        value = contents["categories"][0].value
        fields["grade"] = value[0] if isinstance(value, list) and value else str(value)
    if not fields["name"] and "n" in contents:
        n = contents["n"][0].value
        fields["name"] = " ".join(part for part in (n.given, n.family) if part)
    consent = None
    if "x-ums-consent" in contents:
        parts = (str(contents["x-ums-consent"][0].value).replace("\\;", ";").split(";") + ["", "", ""])[:3]
        night = str(contents["x-ums-night-time"][0].value) if "x-ums-night-time" in contents else ""
        consent = _consent(parts[0], parts[1], parts[2], night)
    return Record(line, check_fields(fields), consent)


def read_vcards(text: str) -> tuple[list[Record], list[tuple[int, str]]]:
    records, refused = [], []
    for line, card_text in _cards(text):
        if card_text is None:
            refused.append((line, "vCard without END:VCARD"))
            continue
        try:
            records.append(_card_record(line, card_text))
        except BadRow as exc:
            refused.append((line, str(exc)))
    if not records and not refused:
        raise ContactsFormatError(reason="no vCard found (BEGIN:VCARD … END:VCARD)")
    return records, refused


def read(data: bytes) -> tuple[list[Record], list[tuple[int, str]]]:
    text = _decode(data)
    return read_vcards(text) if detect_format(data) == "vcard" else read_csv(text)


# --- storing ----------------------------------------------------------------------------

async def import_records(conn, viewer: addressbooks.Viewer, records: list[Record], now: datetime,
                         book_id: int | None = None, report: ImportReport | None = None) -> ImportReport:
    """Store ``records`` for ``viewer`` into ``book_id`` (a book the caller checked
    the viewer may write; without one, :func:`addressbooks.landing_book`). A
    record updates the contact it matches among those the viewer sees; a
    customer number held by a contact the viewer cannot see refuses the row."""
    report = report or ImportReport()
    if book_id is None:
        book_id = await addressbooks.landing_book(conn, viewer)
    for record in records:
        existing = await addressbooks.find_match(conn, viewer, record.fields)
        try:
            if existing is None:
                contact_id = await addressbooks.save_contact(conn, record.fields, now)
                report.created += 1
            else:
                merged = {key: record.fields.get(key) or existing.get(key) for key in addressbooks.CONTACT_FIELDS}
                contact_id = await addressbooks.save_contact(conn, merged, now, existing["id"])
                report.updated += 1
        except addressbooks.CustomerIdTaken as exc:
            report.refused.append((record.line, str(exc)))
            continue
        if book_id is not None:
            await addressbooks.add_to_book(conn, book_id, contact_id)
        if record.consent is not None:
            granted, source, date, night = record.consent
            await addressbooks.record_consent(conn, contact_id, granted, source, date, night)
    report.refused.sort()
    return report


async def import_file(conn, viewer: addressbooks.Viewer, data: bytes, now: datetime,
                      book_id: int | None = None) -> ImportReport:
    """Read ``data`` (CSV or vCard, told apart by content) and store the good rows for ``viewer``."""
    records, refused = read(data)
    report = ImportReport(refused=refused)
    return await import_records(conn, viewer, records, now, book_id, report)


# --- writing ----------------------------------------------------------------------------

def _consent_columns(consent: dict | None) -> dict:
    if not consent:
        return {"consent": "", "consent_source": "", "consent_date": "", "night_time": ""}
    return {
        "consent": "yes" if consent["granted"] else "no",
        "consent_source": consent["source"],
        "consent_date": consent["recorded_at"].isoformat(),
        "night_time": "yes" if consent["night_time"] else "no",
    }


def to_csv(contacts: list[dict], consents: dict[int, dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for contact in contacts:
        row = {key: contact.get(key) or "" for key in addressbooks.CONTACT_FIELDS}
        writer.writerow({**row, **_consent_columns(consents.get(contact["id"]))})
    return out.getvalue()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def to_vcards(contacts: list[dict], consents: dict[int, dict], version: str = "4.0") -> str:
    """vCard 3.0 or 4.0 text, one card per contact (CRLF line ends, RFC 6350/2426)."""
    if version not in ("3.0", "4.0"):
        raise ContactsFormatError(reason=f"vCard version must be 3.0 or 4.0, not {version!r}")
    lines = []
    for contact in contacts:
        name = contact.get("name") or contact.get("email") or contact.get("phone") or contact.get("fax") or ""
        lines += ["BEGIN:VCARD", f"VERSION:{version}", f"FN:{_escape(name)}", f"N:{_escape(name)};;;;"]
        if contact.get("customer_id"):
            lines.append(f"UID:{_escape(contact['customer_id'])}")
        if contact.get("email"):
            lines.append(f"EMAIL;TYPE=internet:{contact['email']}" if version == "3.0" else f"EMAIL:{contact['email']}")
        if contact.get("phone"):
            lines.append(f"TEL;TYPE=voice:{contact['phone']}")
        if contact.get("fax"):
            lines.append(f"TEL;TYPE=fax:{contact['fax']}")
        if contact.get("grade"):
            lines.append(f"X-UMS-GRADE:{_escape(contact['grade'])}")
        consent = consents.get(contact["id"])
        if consent:
            columns = _consent_columns(consent)
            lines.append("X-UMS-CONSENT:" + "\\;".join(
                _escape(columns[key]) for key in ("consent", "consent_source", "consent_date")))
            lines.append(f"X-UMS-NIGHT-TIME:{columns['night_time']}")
        lines.append("END:VCARD")
    return "".join(line + "\r\n" for line in lines)


async def export(conn, viewer: addressbooks.Viewer, fmt: str = "csv", book_id: int | None = None,
                 text: str | None = None, version: str = "4.0") -> str:
    """The contacts ``viewer`` sees (of one book, matching ``text``) as CSV or vCard."""
    contacts = await addressbooks.search(conn, viewer, text, book_id, limit=10_000_000)
    consents = await addressbooks.latest_consents(conn, [contact["id"] for contact in contacts])
    if fmt == "csv":
        return to_csv(contacts, consents)
    if fmt == "vcard":
        return to_vcards(contacts, consents, version)
    raise ContactsFormatError(reason=f"unknown format {fmt!r} (csv or vcard)")
