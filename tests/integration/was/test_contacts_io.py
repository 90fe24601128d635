"""CSV and vCard import with a per-row report, and export/re-import round trips."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from tests.conftest import fresh_database_url
from ums import contacts_io
from ums.db import connect
from ums.store import addressbooks
from ums.store.addressbooks import ADMINISTRATOR
from ums.clock import utcnow

DATA = Path(__file__).parent / "data"


async def _import(db, name: str, book: str = "Imported"):
    async with db.begin() as conn:
        book_id = await addressbooks.ensure_book(conn, book)
        return await contacts_io.import_file(conn, ADMINISTRATOR, (DATA / name).read_bytes(), utcnow(), book_id)


async def _snapshot(db) -> list[tuple]:
    async with db.connect() as conn:
        contacts = await addressbooks.search(conn, ADMINISTRATOR)
        consents = await addressbooks.latest_consents(conn, [c["id"] for c in contacts])
    rows = []
    for contact in contacts:
        consent = consents.get(contact["id"])
        rows.append(tuple(contact[key] for key in addressbooks.CONTACT_FIELDS) + (
            (consent["granted"], consent["source"], consent["recorded_at"], consent["night_time"]) if consent else None,
        ))
    return sorted(rows, key=str)


async def test_vcard_30_imports_and_reports_the_bad_card_by_line(db):
    report = await _import(db, "contacts-3.0.vcf")
    assert report.created == 2
    assert report.refused == [(12, "no email, fax or phone number")]
    async with db.connect() as conn:
        minji = await addressbooks.find_match(conn, ADMINISTRATOR, {"customer_id": "C-1001"})
        consent = await addressbooks.latest_consent(conn, minji["id"])
    assert (minji["email"], minji["phone"], minji["fax"], minji["grade"]) == (
        "minji.kim@example.com", "+821012345678", "+8225550100", "VIP")
    assert consent["granted"] and consent["source"] == "branch Gangnam"


async def test_vcard_40_imports_uri_numbers_and_ums_fields(db):
    report = await _import(db, "contacts-4.0.vcf")
    assert report.created == 1
    assert report.refused == [(13, "bad email address 'not-an-address'")]
    async with db.connect() as conn:
        seoyeon = await addressbooks.find_match(conn, ADMINISTRATOR, {"customer_id": "C-2001"})
        consent = await addressbooks.latest_consent(conn, seoyeon["id"])
    assert (seoyeon["phone"], seoyeon["fax"], seoyeon["grade"]) == ("+821098765432", "+8227770200", "GOLD")
    assert consent["night_time"] is True


async def test_csv_with_bad_rows_reports_each_by_line_and_keeps_the_good_ones(db):
    report = await _import(db, "contacts.csv")
    assert report.created == 3
    assert report.refused == [
        (3, "bad email address 'dahye@@example'"),
        (5, "consent without a source (where was it given?)"),
        (6, "no email, fax or phone number"),
        (7, "bad consent date 'yesterday' (use YYYY-MM-DD or ISO 8601)"),
    ]


async def test_export_and_reimport_give_the_same_contacts(db, tmp_path, tmp_path_factory):
    for name in ("contacts-3.0.vcf", "contacts-4.0.vcf", "contacts.csv"):
        await _import(db, name)
    before = await _snapshot(db)
    assert len(before) == 6
    async with db.connect() as conn:
        exports = {
            "csv": await contacts_io.export(conn, ADMINISTRATOR, "csv"),
            "vcard3": await contacts_io.export(conn, ADMINISTRATOR, "vcard", version="3.0"),
            "vcard4": await contacts_io.export(conn, ADMINISTRATOR, "vcard", version="4.0"),
        }
    # into the same database: nothing changes
    for text in exports.values():
        async with db.begin() as conn:
            report = await contacts_io.import_file(conn, ADMINISTRATOR, text.encode(), utcnow())
        assert report.refused == [] and report.updated == 6 and report.created == 0
        assert await _snapshot(db) == before
    # each export alone rebuilds the same contacts in an empty database
    for kind, text in exports.items():
        fresh_dir = tmp_path / kind
        fresh_dir.mkdir()
        fresh = connect(await fresh_database_url("sqlite", fresh_dir, tmp_path_factory))
        try:
            async with fresh.begin() as conn:
                report = await contacts_io.import_file(conn, ADMINISTRATOR, text.encode(), utcnow())
            assert report.created == 6 and report.refused == []
            assert await _snapshot(fresh) == before, kind
        finally:
            await fresh.close()
