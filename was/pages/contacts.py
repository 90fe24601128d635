"""Address books: personal, shared and organisation contacts in one view;
search; add and edit; CSV/vCard import with a per-row report; export;
creating a book and choosing who it is shared with.

Every page shows and changes only what the viewer may (the rules and the one
answer to "which contacts may this viewer see" are in
:mod:`ums.store.addressbooks`): another's contact or book is a 404 as if it
did not exist, adding to a book the viewer may not write is a 403, and a
contact made without a book by someone who does not see the organisation's
contacts lands in their own personal book."""

from __future__ import annotations

from datetime import datetime

from ums import advertising, contacts_io
from ums.store import addressbooks
from ums.store import web as web_store
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
    return path_id(value) if value else None


def viewer(page: Page) -> addressbooks.Viewer:
    return addressbooks.Viewer.of(page.user)


async def _check_book(page: Page, conn, book_id: int | None, write: bool = False) -> dict | None:
    """The book the request names, as the viewer sees it: 404 when it is not
    theirs to see, 403 when ``write`` and they may not add to it."""
    if book_id is None:
        return None
    book = await addressbooks.book(conn, viewer(page), book_id)
    if book is None:
        raise HttpError(404, "no such address book")
    if write and not book["writable"]:
        raise HttpError(403, "only marketing staff change the organisation's address book")
    return book


async def share_choices(conn) -> dict:
    """What a sharing form offers: the roles and the enabled users."""
    people = [person for person in await web_store.all_users(conn) if not person["disabled"]]
    return {"share_roles": addressbooks.SHARE_ROLES, "share_people": people}


def share_form(page: Page) -> tuple[list[str], list[int]]:
    """The roles and user ids a sharing form chose (400 for anything else)."""
    roles = page.form_list("share_roles")
    if any(role not in addressbooks.SHARE_ROLES for role in roles):
        raise HttpError(400, "share with the roles " + ", ".join(addressbooks.SHARE_ROLES))
    user_ids = [path_id(value) for value in page.form_list("share_users")]
    if None in user_ids:
        raise HttpError(400, "share with users chosen from the list")
    return roles, user_ids


@router.get("/contacts")
async def contact_list(page: Page):
    book_id = _book_id(page, page.query.get("book"))
    async with page.app.db.connect() as conn:
        book = await _check_book(page, conn, book_id)
        books = await addressbooks.visible_books(conn, viewer(page))
        people = await addressbooks.search(conn, viewer(page), page.query.get("q"), book_id)
        consents = await addressbooks.latest_consents(conn, [p["id"] for p in people])
        choices = await share_choices(conn)
    now = page.app.now()
    states = {contact_id: consent_state(consent, now) for contact_id, consent in consents.items()}
    return page.app.render(page, "contacts.html", books=books, book=book, people=people, consents=consents,
                           consent_states=states, q=page.query.get("q", ""), flash=page.query.get("flash"),
                           **choices)


@router.post("/contacts/books")
async def add_book(page: Page):
    """A new book (``name``, ``scope`` and, unless personal, whom it is shared
    with), or — with ``id`` — new sharing for a book the viewer manages."""
    roles, user_ids = share_form(page)
    if page.form.get("id"):
        return await change_sharing(page, _book_id(page, page.form["id"]) or -1, roles, user_ids)
    name, scope = page.form.get("name", "").strip(), page.form.get("scope", "personal")
    if not name or len(name) > 128 or scope not in addressbooks.SCOPES:
        raise HttpError(400, "give the book a name (up to 128 characters) and a scope")
    if scope == "organisation" and page.user["role"] not in ("admin", "marketer"):
        raise HttpError(403, "only marketing staff create organisation books")
    if scope == "personal" and (roles or user_ids):
        raise HttpError(400, "a personal book is yours alone; make it a shared book to share it")
    owner_id = None if scope == "organisation" else page.user["user_id"]
    async with page.app.db.begin() as conn:
        existing = await addressbooks.find_book(conn, name, owner_id)
        if existing is not None:
            return redirect(f"/contacts?book={existing}&flash=That+book+already+exists")
        book_id = await addressbooks.ensure_book(conn, name, scope, owner_id)
        if scope != "personal":
            await addressbooks.share(conn, book_id, roles, user_ids)
    return redirect(f"/contacts?book={book_id}")


async def change_sharing(page: Page, book_id: int, roles: list[str], user_ids: list[int]):
    async with page.app.db.begin() as conn:
        book = await _check_book(page, conn, book_id)
        if not book["manageable"]:
            raise HttpError(403, "only an admin, or whoever made a shared book, changes whom it is shared with")
        await addressbooks.share(conn, book_id, roles, user_ids)
    return redirect(f"/contacts?book={book_id}&flash=Sharing+saved")


@router.get("/contacts/new")
async def new_contact(page: Page):
    async with page.app.db.connect() as conn:
        books = await addressbooks.visible_books(conn, viewer(page))
    return page.app.render(page, "contact.html", contact={}, consent=None, consent_state="none", books=books,
                           member_of=[])


@router.get("/contacts/{id}")
async def edit_contact(page: Page):
    async with page.app.db.connect() as conn:
        contact = await addressbooks.contact(conn, viewer(page), path_id(page.params["id"]) or -1)
        if contact is None:
            raise HttpError(404, "no such contact")
        consent = await addressbooks.latest_consent(conn, contact["id"])
        books = await addressbooks.visible_books(conn, viewer(page))
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
    contact_id = (path_id(form["id"]) or -1) if form.get("id") else None
    now = page.app.now()
    async with page.app.db.begin() as conn:
        if contact_id is not None and await addressbooks.contact(conn, viewer(page), contact_id) is None:
            raise HttpError(404, "no such contact")
        books = await books_to_add(page, conn, contact_id)
        try:
            contact_id = await addressbooks.save_contact(conn, fields, now, contact_id)
        except addressbooks.CustomerIdTaken as exc:
            raise HttpError(409, str(exc)) from None
        for book_id in books:
            await addressbooks.add_to_book(conn, book_id, contact_id)
        if consent is not None:
            granted, source, date, night = consent
            await addressbooks.record_consent(conn, contact_id, granted, source, date, night)
    return redirect(f"/contacts/{contact_id}?flash=Saved")


async def books_to_add(page: Page, conn, contact_id: int | None) -> list[int]:
    """The books the contact form adds the contact to: those chosen that it is
    not in yet (each one the viewer may write, else 403/404); a new contact
    with none chosen goes to :func:`ums.store.addressbooks.landing_book`."""
    member_of = await addressbooks.books_of(conn, contact_id) if contact_id is not None else []
    chosen = [_book_id(page, value) for value in page.form_list("books")]
    books = [await _check_book(page, conn, book_id, write=True) for book_id in chosen if book_id not in member_of]
    found = [book["id"] for book in books if book]
    if contact_id is None and not found:
        found = [book_id for book_id in [await addressbooks.landing_book(conn, viewer(page))] if book_id]
    return found


@router.post("/contacts/import")
async def import_contacts(page: Page):
    data = page.file("file")
    if not data:
        raise HttpError(400, "choose a CSV or vCard file to import")
    async with page.app.db.begin() as conn:
        book = await _check_book(page, conn, _book_id(page, page.form.get("book")), write=True)
        report = await contacts_io.import_file(conn, viewer(page), data, page.app.now(), book["id"] if book else None)
    return page.app.render(page, "import_report.html", report=report, book=book)


@router.get("/contacts/export")
async def export(page: Page):
    fmt = page.query.get("format", "csv")
    version = page.query.get("version", "4.0")
    book_id = _book_id(page, page.query.get("book"))
    async with page.app.db.connect() as conn:
        await _check_book(page, conn, book_id)
        text = await contacts_io.export(conn, viewer(page), "vcard" if fmt.startswith("vcard") else "csv", book_id,
                                        page.query.get("q"), version)
    kind, name = ("text/vcard", "contacts.vcf") if fmt.startswith("vcard") else ("text/csv", "contacts.csv")
    response = Response(text, 200, f"{kind}; charset=utf-8")
    response.headers["content-disposition"] = f'attachment; filename="{name}"'
    return response
