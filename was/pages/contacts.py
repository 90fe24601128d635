"""Address books: personal, shared and organisation contacts in one view;
search; add and edit; CSV/vCard import with a per-row report; export."""

from __future__ import annotations

from datetime import datetime

from ums import advertising, contacts_io
from ums.store import addressbooks
from ums.web import HttpError, Router

from ..http import Page, Response, path_id, redirect
from ..roles import ALL_ROLES

router = Router(roles=ALL_ROLES)

EDITORS = ("admin", "operator", "marketer", "user")


def consent_state(consent: dict | None, now: datetime) -> str:
    """``current``, ``lapsed`` (granted over two years ago: counts as absent until
    reconfirmed), ``refused`` or ``none``."""
    if consent is None:
        return "none"
    if not consent["granted"] or consent.get("withdrawn_at") is not None:
        return "refused"
    if advertising.consent_is_current(consent, now, consent.get("channel") or "any"):
        return "current"
    return "lapsed"


def reconfirm_by(consent: dict | None) -> datetime | None:
    """When a granted consent lapses unless it is reconfirmed."""
    return consent["recorded_at"] + advertising.CONSENT_VALID_FOR if consent and consent["granted"] else None


def _book_id(page: Page, value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


async def _check_book(page: Page, conn, book_id: int | None, write: bool = False) -> dict | None:
    if book_id is None:
        return None
    book = await addressbooks.book(conn, book_id)
    if book is None or (book["scope"] == "personal" and book["owner_id"] != page.user["user_id"]):
        raise HttpError(404, "no such address book")
    if write and book["scope"] == "organisation" and page.user["role"] not in ("admin", "marketer"):
        raise HttpError(403, "only marketing staff change the organisation's address book")
    return book


@router.get("/contacts")
async def contact_list(page: Page):
    book_id = _book_id(page, page.query.get("book"))
    async with page.app.db.connect() as conn:
        book = await _check_book(page, conn, book_id)
        books = await addressbooks.visible_books(conn, page.user["user_id"])
        people = await addressbooks.search(conn, page.query.get("q"), book_id)
        consents = await addressbooks.latest_consents(conn, [p["id"] for p in people])
    now = page.app.now()
    states = {contact_id: consent_state(consent, now) for contact_id, consent in consents.items()}
    return page.app.render(page, "contacts.html", books=books, book=book, people=people, consents=consents,
                           consent_states=states, q=page.query.get("q", ""), flash=page.query.get("flash"))


@router.post("/contacts/books")
async def add_book(page: Page):
    name, scope = page.form.get("name", "").strip(), page.form.get("scope", "personal")
    if not name or len(name) > 128 or scope not in addressbooks.SCOPES:
        raise HttpError(400, "give the book a name (up to 128 characters) and a scope")
    if scope == "organisation" and page.user["role"] not in ("admin", "marketer"):
        raise HttpError(403, "only marketing staff create organisation books")
    async with page.app.db.begin() as conn:
        book_id = await addressbooks.ensure_book(conn, name, scope, page.user["user_id"] if scope == "personal" else None)
    return redirect(f"/contacts?book={book_id}")


@router.get("/contacts/new")
async def new_contact(page: Page):
    async with page.app.db.connect() as conn:
        books = await addressbooks.visible_books(conn, page.user["user_id"])
    return page.app.render(page, "contact.html", contact={}, consent=None, consent_state="none", books=books,
                           member_of=[])


@router.get("/contacts/{id}")
async def edit_contact(page: Page):
    async with page.app.db.connect() as conn:
        contact = await addressbooks.contact(conn, path_id(page.params["id"]) or -1)
        if contact is None:
            raise HttpError(404, "no such contact")
        consent = await addressbooks.latest_consent(conn, contact["id"])
        books = await addressbooks.visible_books(conn, page.user["user_id"])
        member_of = await addressbooks.books_of(conn, contact["id"])
    return page.app.render(page, "contact.html", contact=contact, consent=consent, books=books, member_of=member_of,
                           consent_state=consent_state(consent, page.app.now()), reconfirm_by=reconfirm_by(consent))


@router.post("/contacts/save")
async def save_contact(page: Page):
    form = page.form
    try:
        fields = contacts_io.check_fields(form)
        consent = contacts_io._consent(form.get("consent", ""), form.get("consent_source", ""),
                                       form.get("consent_date", ""), form.get("night_time", ""))
    except contacts_io.BadRow as exc:
        raise HttpError(400, str(exc)) from None
    contact_id = int(form["id"]) if form.get("id", "").isdigit() else None
    now = page.app.now()
    async with page.app.db.begin() as conn:
        contact_id = await addressbooks.save_contact(conn, fields, now, contact_id)
        for value in page.form_list("books"):
            book = await _check_book(page, conn, _book_id(page, value), write=True)
            if book:
                await addressbooks.add_to_book(conn, book["id"], contact_id)
        if consent is not None:
            granted, source, date, night = consent
            await addressbooks.record_consent(conn, contact_id, granted, source, date, night)
    return redirect(f"/contacts/{contact_id}?flash=Saved")


@router.post("/contacts/import")
async def import_contacts(page: Page):
    data = page.file("file")
    if not data:
        raise HttpError(400, "choose a CSV or vCard file to import")
    async with page.app.db.begin() as conn:
        book = await _check_book(page, conn, _book_id(page, page.form.get("book")), write=True)
        report = await contacts_io.import_file(conn, data, page.app.now(), book["id"] if book else None)
    return page.app.render(page, "import_report.html", report=report, book=book)


@router.get("/contacts/export")
async def export(page: Page):
    fmt = page.query.get("format", "csv")
    version = page.query.get("version", "4.0")
    book_id = _book_id(page, page.query.get("book"))
    async with page.app.db.connect() as conn:
        await _check_book(page, conn, book_id)
        text = await contacts_io.export(conn, "vcard" if fmt.startswith("vcard") else "csv", book_id,
                                        page.query.get("q"), version)
    kind, name = ("text/vcard", "contacts.vcf") if fmt.startswith("vcard") else ("text/csv", "contacts.csv")
    response = Response(text, 200, f"{kind}; charset=utf-8")
    response.headers["content-disposition"] = f'attachment; filename="{name}"'
    return response
