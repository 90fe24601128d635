"""The parameter-passing API: ``/api/v1/…`` in JSON and in XML.

A request in XML (``Content-Type: application/xml``) is parsed by the hardened
parser of :mod:`ums.xml` and validated against ``config/xsd/api-*.xsd``; the
answer comes back in the format asked for (XML when the request was XML or
``Accept`` prefers it). Sending goes through :func:`ums.outbox.enqueue`; the
202 answer comes after the commit, so an acknowledged request is durable.

Who may call what: an API key (``Authorization: Bearer`` or ``X-Api-Key``,
:mod:`was.api_auth`) reaches a route only with the scope the route names —
``send`` (send, delivery status),
``contacts``, ``campaigns``, ``mailbox``; a logged-in session reaches the
routes its role reaches on the pages (campaigns belong to marketers and
admins; sending, the own mailbox and contacts to everyone — each person sees
only the contacts the sharing model of :mod:`ums.store.addressbooks` gives
them, a key those of organisation books, of books shared with role ``api``
and in no book). A
delivery's status is shown only to whoever queued it (admins and operators
see every delivery).

Bad input is never a 500 (:mod:`was.api_input`): malformed JSON or XML is a
400 with the reason; a JSON field of the wrong type, out of range or unknown
is a 422 naming the field (the schemas are those of :mod:`was.openapi`); a
recipient that is not one valid address for its channel
(:func:`ums.addresses.check`) or a priority outside 0–9 is a 422 and nothing
is queued; a bad query parameter (``?limit=abc``) is a 400; an id that is not
a number or is too large for the database is a 404.

Idempotency: a POST carrying ``Idempotency-Key`` (1–128 printable ASCII
characters) is remembered per caller (:mod:`ums.store.idempotency`) in the
same transaction as its work. The same key with the same method, path and
body gets the first answer again, marked ``Idempotent-Replayed: true``, and
does nothing twice; the same key with anything else is a 409. Refusals are
not remembered. An answer is remembered for :data:`KEEP_ANSWERS` (24 hours,
as Stripe does); WAS forgets older ones at most once per
:data:`PURGE_EVERY`, in the transaction of a request that remembers one.

Times: every time in a request (``due_at``, a campaign's ``schedule``/``at``,
an action's ``at``) is ISO 8601 read by :func:`ums.clock.parse_time` — an
offset (``+09:00``, ``Z``) is honoured, a time without one is wall-clock time
in the site's zone (``[ums] timezone``). A bad time, or a campaign start in
the past (:class:`ums.campaigns.PastStart`), is a 400 with the reason. Times
in answers are ISO 8601 with their offset (UTC). A campaign view counts its
deliveries by state and says why the waiting ones wait (``holds``, see
:mod:`ums.holds`). ``POST …/campaigns/{id}/schedule`` takes ``at`` and
``now`` (start at once) from the query string or a JSON body; it runs the
pre-send check first, as WAS and ``ums campaign schedule`` do, and a
blocking problem is a 409 naming them all unless ``force`` is sent;
``resume`` keeps the due time of a campaign that never started.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError

from ums import addresses, campaigns as campaign_api
from ums import clock, contacts_io
from ums import xml as ums_xml
from ums.config import SHIPPED_CONFIG_DIR
from ums.outbox import SendRequest, enqueue
from ums.store import addressbooks, idempotency, web
from ums.web import XML_TYPE, HttpError, Router, xml_document

from .api_input import header_token, json_body, query_int, short
from .http import Page, Response, json_response, path_id
from .openapi import DOCUMENT
from .outgoing import FREE_FORM, ensure_free_form_template
from .pages import campaigns as campaign_pages
from .roles import ALL_ROLES, MARKETERS

#: the routes of ``/api``
router = Router(roles=ALL_ROLES)
XSD = SHIPPED_CONFIG_DIR / "xsd"
#: web roles per area (API keys are checked by scope instead)
SEND_ROLES = ALL_ROLES
#: every person; what each one sees and changes is the sharing model's (ums.store.addressbooks)
CONTACT_ROLES = ALL_ROLES
CAMPAIGN_ROLES = MARKETERS
MAILBOX_ROLES = ALL_ROLES
#: who sees every delivery's status, not only the ones they queued
ALL_DELIVERIES = ("admin", "operator")
MEDIA = ("email", "fax", "voice")
MAX_NAME = 128
#: bounds of a campaign made from XML (the JSON side has them in its schema)
MAX_EXPIRY_SECONDS = 366 * 24 * 3600
MAX_THROTTLE = 100_000_000


# --- formats -----------------------------------------------------------------------------

def answer(page: Page, root_name: str, payload: dict, status: int = 200) -> Response:
    if page.wants_xml():
        return Response(xml_document(root_name, payload), status, XML_TYPE)
    return json_response(payload, status)


def is_xml(page: Page) -> bool:
    return "xml" in page.header("content-type").lower()


def parse_xml(page: Page, schema: str):
    try:
        return ums_xml.parse_valid(page.body, XSD / schema, max_bytes=page.app.config["max_body"])
    except ums_xml.XmlError as exc:
        raise HttpError(400, short(str(exc), 300)) from None


def _time(page: Page, text) -> datetime | None:
    """A time from a request as aware UTC (``None`` when absent); without an
    offset it is read in the site's zone. A bad one is a 400 with the reason."""
    try:
        return clock.parse_time(text, page.app.tz)
    except clock.BadTime as exc:
        raise HttpError(400, str(exc)) from None


def _flag(value) -> bool:
    """A yes/no request value: JSON true, or 1/true/yes in a query string."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return value is True or value == 1


# --- idempotency ---------------------------------------------------------------------------

#: how long an answer is remembered under its Idempotency-Key
KEEP_ANSWERS = timedelta(hours=24)
#: how often (by the application clock) one WAS forgets the answers older than that
PURGE_EVERY = timedelta(hours=1)


async def idempotent(page: Page, work) -> Response:
    """Run ``work(conn)`` → (status, root name, payload) in one transaction and
    answer with it; under an ``Idempotency-Key``, once per caller and key (see
    the module docstring)."""
    key = header_token(page, "Idempotency-Key")
    if key is None:
        status, root, payload = await _run(page, work)
        return answer(page, root, payload, status)
    owner = page.user["owner"]
    digest = idempotency.request_hash(page.method, page.raw.uri.decode("latin-1"), page.body)
    async with page.app.db.connect() as conn:
        found = await idempotency.find(conn, owner, key)
    if found is None:
        try:
            status, root, payload = await _run(page, work, (owner, key, digest))
            return answer(page, root, payload, status)
        except idempotency.AlreadyRemembered:   # a twin request committed first
            async with page.app.db.connect() as conn:
                found = await idempotency.find(conn, owner, key)
    return replay(page, found, digest)


async def _run(page: Page, work, remember: tuple | None = None) -> tuple[int, str, dict]:
    try:
        async with page.app.db.begin() as conn:
            status, root, payload = await work(conn)
            if remember is not None:
                owner, key, digest = remember
                await idempotency.remember(conn, owner, key, digest, status, {"root": root, "payload": payload},
                                           page.app.now())
                await forget_old_answers(conn, page.app)
    except IntegrityError:
        raise HttpError(409, "the request conflicts with a change made at the same time; try again") from None
    return status, root, payload


async def forget_old_answers(conn, app) -> None:
    """Forget answers older than :data:`KEEP_ANSWERS`, unless this WAS did so within
    :data:`PURGE_EVERY` (so the table holds about a day of keys, not all of them)."""
    now = app.now()
    if app.answers_purged_at is not None and now - app.answers_purged_at < PURGE_EVERY:
        return
    await idempotency.purge(conn, now - KEEP_ANSWERS)
    app.answers_purged_at = now


def replay(page: Page, found: dict, digest: str) -> Response:
    if found["request_hash"] != digest:
        raise HttpError(409, "this Idempotency-Key was already used for a different request")
    stored = found["response"]
    response = answer(page, stored["root"], stored["payload"], found["status"])
    response.headers["idempotent-replayed"] = "true"
    return response


# --- send ---------------------------------------------------------------------------------

def send_from_xml(root) -> dict:
    text = ums_xml.text_of
    variables = {var.get("name"): (var.text or "") for var in root.iterfind("variables/var")}
    return {
        "channel": text(root, "channel"), "recipient": text(root, "recipient"),
        "template": text(root, "template"), "kind": text(root, "kind", "transactional"),
        "subject": text(root, "subject"), "body": text(root, "body"), "variables": variables,
        "due_at": text(root, "due-at"), "priority": text(root, "priority", "5"),
    }


def _priority(value) -> int:
    """0 to 9 (5 when absent); anything else is a 422."""
    if value is None or value == "":
        return 5
    if isinstance(value, str) and re.fullmatch(r"\s*[0-9]\s*", value):
        return int(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value in range(10):
        return int(value)
    raise HttpError(422, "priority must be a whole number from 0 to 9")


def _recipient(channel: str, recipient) -> str:
    try:
        return addresses.check(channel, recipient)
    except addresses.BadAddress as exc:
        raise HttpError(422, f"recipient: {short(str(exc))}") from None


#: variables only WAS's own pages set (the mailbox message a forward carries, threading):
#: a caller naming one could attach another mailbox's message
RESERVED_VARIABLES = ("attach_mailbox_message", "document", "in_reply_to", "references", "personal")


def send_request(data: dict, page: Page) -> SendRequest:
    variables = dict(data.get("variables") or {})
    reserved = sorted(set(variables) & set(RESERVED_VARIABLES))
    if reserved:
        raise HttpError(422, f"variables: {reserved[0]!r} is set by UMS itself, not by a caller")
    if not data.get("template") and not (data.get("body") or data.get("subject")):
        raise HttpError(422, "name a template, or give a subject and body")
    if data.get("template") and len(data["template"]) > MAX_NAME:
        raise HttpError(422, f"template must be at most {MAX_NAME} characters")
    for key in ("subject", "body"):
        if data.get(key):
            variables.setdefault("body_text" if key == "body" else key, data[key])
    channel = data.get("channel") or ""
    return SendRequest(
        channel=channel, recipient=_recipient(channel, data.get("recipient")),
        template=data.get("template") or None, kind=data.get("kind") or "transactional",
        variables=variables, due_at=_time(page, data.get("due_at")), priority=_priority(data.get("priority")),
        service_name=page.user["username"][:128],
    )


@router.post("/api/v1/send", roles=SEND_ROLES, scope="send")
async def send(page: Page):
    data = send_from_xml(parse_xml(page, "api-send.xsd")) if is_xml(page) else json_body(page, "Send")
    request = send_request(data, page)

    async def work(conn):
        now = page.app.now()
        if not request.template:
            await free_form(conn, request, now)
        delivery_id = await enqueue(conn, request, now)
        return 202, "queued", {"delivery": delivery_id, "state": "queued"}

    return await idempotent(page, work)


async def free_form(conn, request: SendRequest, now: datetime) -> None:
    """Make a send with its own subject and body travel in the free-form
    template (as :func:`was.outgoing.queue_message` does), keeping its
    ``due_at`` and priority."""
    request.validate()
    await ensure_free_form_template(conn, request.channel, now)
    variables = dict(request.variables)
    request.template = FREE_FORM
    request.variables = {"subject": variables.pop("subject", ""), "body_text": variables.pop("body_text", ""),
                         "body_html": "", **variables}


def own_senders(page: Page) -> tuple[str, ...] | None:
    """The ``service_name`` values of deliveries this caller queued (None: may see all)."""
    if page.user["role"] in ALL_DELIVERIES:
        return None
    username = page.user["username"]
    return (username[:128], f"was:{username}"[:128])


@router.get("/api/v1/deliveries/{id}", roles=SEND_ROLES, scope="send")
async def delivery(page: Page):
    delivery_id = path_id(page.params["id"])
    found = None
    if delivery_id is not None:
        async with page.app.db.connect() as conn:
            found = await web.delivery(conn, delivery_id, own_senders(page))
    if found is None:
        raise HttpError(404, "no such delivery")
    return answer(page, "delivery", found)


# --- contacts -------------------------------------------------------------------------------

def contact_from_xml(root) -> dict:
    text = ums_xml.text_of
    data = {key.replace("-", "_"): text(root, key) for key in
            ("customer-id", "name", "email", "fax", "phone", "grade", "book")}
    consent = root.find("consent")
    if consent is not None:
        data["consent"] = {
            "granted": consent.get("granted") in ("true", "1"), "source": consent.get("source"),
            "date": consent.get("date"), "night_time": consent.get("night-time") in ("true", "1"),
        }
    return data


def query_text(page: Page, name: str, limit: int = 200) -> str | None:
    """A free-text query parameter of at most ``limit`` characters (400 otherwise)."""
    value = page.query.get(name)
    if value is not None and len(value) > limit:
        raise HttpError(400, f"{name} must be at most {limit} characters")
    return value or None


def contact_viewer(page: Page) -> addressbooks.Viewer:
    """Who asks: a person sees their own and what is shared with them; a key
    (``contacts`` scope) sees organisation books, books shared with role
    ``api`` and contacts in no book (:mod:`ums.store.addressbooks`)."""
    return addressbooks.Viewer.of(page.user)


@router.get("/api/v1/contacts", roles=CONTACT_ROLES, scope="contacts")
async def contacts(page: Page):
    """The contacts the caller sees; ``q`` searches, ``book`` (an id) and ``id``
    narrow to one book or one contact (a book the caller does not see is a 404)."""
    text, limit = query_text(page, "q"), query_int(page, "limit", 200)
    book_id, contact_id = query_id(page, "book"), query_id(page, "id")
    async with page.app.db.connect() as conn:
        if book_id is not None and await addressbooks.book(conn, contact_viewer(page), book_id) is None:
            raise HttpError(404, "no such address book")
        found = await addressbooks.search(conn, contact_viewer(page), text, book_id, limit=limit,
                                          contact_id=contact_id)
    if contact_id is not None and not found:
        raise HttpError(404, "no such contact")
    fields = ("id",) + addressbooks.CONTACT_FIELDS
    return answer(page, "contacts", {"contact": [{key: row[key] for key in fields} for row in found]})


def query_id(page: Page, name: str) -> int | None:
    """A row id from the query string (None when absent; 404 when it cannot be one)."""
    value = page.query.get(name)
    if value is None or value == "":
        return None
    found = path_id(value)
    if found is None:
        raise HttpError(404, f"no such {'address book' if name == 'book' else 'contact'}")
    return found


def contact_record(data: dict) -> contacts_io.Record:
    """The contact fields and consent of a request, checked as an import row is (422 otherwise)."""
    try:
        fields = contacts_io.check_fields(data)
        consent = data.get("consent")
        return contacts_io.Record(0, fields, None if not consent else contacts_io._consent(
            "yes" if consent.get("granted") else "no", consent.get("source") or "", consent.get("date") or "",
            "yes" if consent.get("night_time") else "no"))
    except contacts_io.BadRow as exc:
        raise HttpError(422, short(str(exc))) from None


async def contact_book(page: Page, conn, name: str | None) -> int | None:
    """The id of a book named ``name`` the caller may add to (made when the
    caller sees none: an organisation book for a key, else a shared book of
    the caller's); one they see but may not add to is a 403."""
    if not name:
        return None
    if len(name) > MAX_NAME:
        raise HttpError(422, f"book must be at most {MAX_NAME} characters")
    try:
        return await addressbooks.writable_book_named(conn, contact_viewer(page), name)
    except addressbooks.BookNotWritable as exc:
        raise HttpError(403, str(exc)) from None


@router.post("/api/v1/contacts", roles=CONTACT_ROLES, scope="contacts")
async def add_contact(page: Page):
    data = contact_from_xml(parse_xml(page, "api-contact.xsd")) if is_xml(page) else json_body(page, "Contact")
    record = contact_record(data)

    async def work(conn):
        book_id = await contact_book(page, conn, data.get("book"))
        report = await contacts_io.import_records(conn, contact_viewer(page), [record], page.app.now(), book_id)
        if report.refused:
            raise HttpError(409, short(report.refused[0][1]))
        found = await addressbooks.find_match(conn, contact_viewer(page), record.fields)
        return 201 if report.created else 200, "contact", {"id": found["id"], "created": bool(report.created)}

    return await idempotent(page, work)


# --- campaigns --------------------------------------------------------------------------------

def _iso(value):
    return value.isoformat() if isinstance(value, datetime) else value


def campaign_summary(row: dict) -> dict:
    return {key: _iso(row.get(key)) for key in ("id", "name", "kind", "channel", "template_name", "state",
                                                 "schedule_at", "total")}


def campaign_view(page: Page, row: dict, progress: campaign_api.Progress) -> dict:
    """A campaign with its progress, as of now: ``counts`` by delivery state;
    ``sent``, ``failed``, ``suppressed`` and ``waiting``, which add up to
    ``total`` (``recipients`` is the audience expanded so far); ``holds``, why
    the waiting ones wait and until when; ``hold_lines``, the same in words."""
    now, tz = page.app.now(), page.app.tz
    times = {key: _iso(row.get(key)) for key in ("started_at", "finished_at", "cron")}
    return {**campaign_summary(row), **times, "timezone": tz.key, "recipients": row.get("total"),
            "counts": progress.counts, **campaign_pages.figures(progress),
            "holds": [group.as_dict(now, tz) for group in progress.holds], "hold_lines": progress.hold_lines(now, tz)}


def campaign_ref(page: Page) -> int | str:
    """The campaign the path names (:func:`was.pages.campaigns.reference`; 404 otherwise)."""
    return campaign_pages.reference(page.params["id"])


def check_spec(spec: campaign_api.CampaignSpec) -> campaign_api.CampaignSpec:
    """Refuse (422) what the columns cannot hold; the JSON schema already
    bounds a JSON campaign, this bounds one from XML too."""
    if len(spec.template or "") > MAX_NAME:
        raise HttpError(422, f"template name must be at most {MAX_NAME} characters")
    if spec.cron and len(spec.cron) > 64:
        raise HttpError(422, "cron must be at most 64 characters")
    if spec.expires_after is not None and spec.expires_after > MAX_EXPIRY_SECONDS:
        raise HttpError(422, "expiry must be at most 366 days")
    for key, value in (spec.throttle or {}).items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= MAX_THROTTLE:
            raise HttpError(422, f"throttle.{key} must be a positive number up to {MAX_THROTTLE}")
    if any(len(str(book)) > MAX_NAME for book in (spec.audience or {}).get("books") or []):
        raise HttpError(422, f"audience.books: a book name is at most {MAX_NAME} characters")
    if spec.audience.get("csv"):
        raise HttpError(400, "an API campaign names address books or a segment, not a server CSV path")
    return spec


@router.get("/api/v1/campaigns", roles=CAMPAIGN_ROLES, scope="campaigns")
async def campaigns(page: Page):
    async with page.app.db.connect() as conn:
        rows = await campaign_api.list_campaigns(conn)
    return answer(page, "campaigns", {"campaign": [campaign_summary(row) for row in rows]})


@router.post("/api/v1/campaigns", roles=CAMPAIGN_ROLES, scope="campaigns")
async def create_campaign(page: Page):
    try:
        if is_xml(page):
            spec = campaign_api.from_xml(page.body, page.app.tz)
        else:
            spec = campaign_api.from_dict(json_body(page, "Campaign"), page.app.tz)
    except (OverflowError, ValueError) as exc:   # e.g. an expiry of 10^400 hours in XML
        raise HttpError(422, short(f"a number in the campaign is out of range ({exc})")) from None
    check_spec(spec)

    async def work(conn):
        campaign_id = await campaign_pages.create_campaign(page, spec, conn)
        return 201, "campaign", {"id": campaign_id, "state": "draft", "schedule_at": _iso(spec.schedule_at)}

    return await idempotent(page, work)


@router.get("/api/v1/campaigns/{id}", roles=CAMPAIGN_ROLES, scope="campaigns")
async def campaign(page: Page):
    async with page.app.db.connect() as conn:
        row = await campaign_pages.find(conn, page.params["id"])
        progress = await campaign_api.progress(conn, row["id"], page.app.now())
    return answer(page, "campaign", campaign_view(page, row, progress))


def action_arguments(page: Page) -> tuple[str | None, bool, bool]:
    """``at``, ``now`` and ``force`` of a campaign action, from a JSON body, form
    fields or the query string."""
    data = dict(page.form)
    if "json" in page.header("content-type").lower():
        data.update(json_body(page, "CampaignAction", empty_ok=True))
    at = data.get("at") or None
    if at is not None and not isinstance(at, str):
        raise HttpError(400, "at must be an ISO 8601 time such as 2026-12-01T09:00+09:00")
    return at, _flag(data.get("now")), _flag(data.get("force"))


@router.post("/api/v1/campaigns/{id}/{action}", roles=CAMPAIGN_ROLES, scope="campaigns")
async def campaign_action(page: Page):
    at, start_now, force = action_arguments(page)
    action = page.params["action"]
    if action not in campaign_pages.ACTIONS:
        raise HttpError(404, f"unknown action {short(action, 40)!r} (schedule, pause, resume or cancel)")
    reference = campaign_ref(page)

    async def work(conn):
        try:
            row = await campaign_pages.apply_action(page, reference, action, at, start_now, conn, force=force)
        except campaign_api.UnknownCampaign:
            raise HttpError(404, "no such campaign") from None
        except campaign_api.NotReady as exc:   # what the pre-send check blocks, as in WAS and the CLI
            raise HttpError(409, str(exc)) from None
        return 200, "campaign", {"id": row["id"], "state": row["state"], "schedule_at": _iso(row["schedule_at"])}

    return await idempotent(page, work)


# --- mailbox -----------------------------------------------------------------------------------

#: what the mailbox route tells of each message
MAILBOX_FIELDS = ("id", "mailbox", "folder", "flags", "media", "classification", "sender", "recipient", "subject",
                  "size", "pages", "duration", "received_at", "thread_key", "delivery_state")


@router.get("/api/v1/mailbox", roles=MAILBOX_ROLES, scope="mailbox")
async def mailbox(page: Page):
    """A page of the caller's mailboxes, newest first: an admin's login reads every
    mailbox, anyone else's (and a key) those of its own user — a key made for
    no user (``ums apikey create`` without ``--user``) reads none."""
    media, limit = page.query.get("media") or None, query_int(page, "limit", 200)
    offset = query_int(page, "offset", 0, low=0, high=10_000_000)
    if media is not None and media not in MEDIA:
        raise HttpError(400, "media must be one of email, fax, voice")
    wanted = web.InboxQuery(media=media, folder=query_text(page, "folder", 128), search=query_text(page, "q", 200),
                            mailbox=query_text(page, "mailbox", 320), offset=offset, limit=limit)
    if page.user["role"] == "admin":
        rows, total = await _inbox(page, None, wanted)
    elif page.user["user_id"] is None:
        rows, total = [], 0
    else:
        rows, total = await _inbox(page, page.user["user_id"], wanted)
    return answer(page, "mailbox", {"total": total, "message": [{name: row[name] for name in MAILBOX_FIELDS}
                                                                 for row in rows]})


async def _inbox(page: Page, viewer: int | None, wanted: web.InboxQuery):
    async with page.app.db.connect() as conn:
        return await web.inbox_page(conn, viewer, wanted)


@router.get("/api/openapi.json", roles=None)
async def openapi(page: Page):
    return json_response(DOCUMENT)
