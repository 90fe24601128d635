"""The parameter-passing API: ``/api/v1/…`` in JSON and in XML.

A request in XML (``Content-Type: application/xml``) is parsed by the hardened
parser of :mod:`ums.xml` and validated against ``config/xsd/api-*.xsd``; the
answer comes back in the format asked for (XML when the request was XML or
``Accept`` prefers it). Callers authenticate with an API key (``X-API-Key``)
or a logged-in session. Sending goes through :func:`ums.outbox.enqueue`; the
202 answer comes after the commit, so an acknowledged request is durable.

Times: every time in a request (``due_at``, a campaign's ``schedule``/``at``,
an action's ``at``) is ISO 8601 read by :func:`ums.clock.parse_time` — an
offset (``+09:00``, ``Z``) is honoured, a time without one is wall-clock time
in the site's zone (``[ums] timezone``). A bad time, or a campaign start in
the past (:class:`ums.campaigns.PastStart`), is a 400 with the reason. Times
in answers are ISO 8601 with their offset (UTC). A campaign view counts its
deliveries by state and says why the waiting ones wait (``holds``, see
:mod:`ums.holds`). ``POST …/campaigns/{id}/schedule`` takes ``at`` and
``now`` (start at once) from the query string or a JSON body; ``resume``
keeps the due time of a campaign that never started.
"""

from __future__ import annotations

import json
from datetime import datetime

from lxml import etree

from ums import campaigns as campaign_api
from ums import clock, contacts_io
from ums import xml as ums_xml
from ums.config import SHIPPED_CONFIG_DIR
from ums.outbox import SendRequest, enqueue
from ums.store import addressbooks, web

from .api_auth import API_ROLE
from .app import router
from .http import HttpError, Page, Response, json_response
from .outgoing import FREE_FORM, ensure_free_form_template
from .pages import campaigns as campaign_pages

XSD = SHIPPED_CONFIG_DIR / "xsd"
API_ROLES = ("admin", "operator", "marketer", API_ROLE)
SEND_ROLES = ("admin", "operator", "marketer", "user", API_ROLE)


# --- formats -----------------------------------------------------------------------------

def _xml_value(parent, name: str, value) -> None:
    child = etree.SubElement(parent, name.replace("_", "-"))
    if isinstance(value, dict):
        for key, item in value.items():
            _xml_value(child, str(key), item)
    elif isinstance(value, list):
        for item in value:
            _xml_value(child, "item", item)
    elif value is not None:
        child.text = value.isoformat() if isinstance(value, datetime) else str(value)


def xml_document(root_name: str, payload: dict) -> bytes:
    root = etree.Element(root_name)
    for key, value in payload.items():
        _xml_value(root, str(key), value)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def xml_error(status: int, reason: str) -> Response:
    return Response(xml_document("error", {"status": status, "reason": reason}), status,
                    "application/xml; charset=utf-8")


def answer(page: Page, root_name: str, payload: dict, status: int = 200) -> Response:
    if page.wants_xml():
        return Response(xml_document(root_name, payload), status, "application/xml; charset=utf-8")
    return json_response(payload, status)


def is_xml(page: Page) -> bool:
    return "xml" in page.header("content-type").lower()


def parse_xml(page: Page, schema: str):
    try:
        return ums_xml.parse_valid(page.body, XSD / schema, max_bytes=page.app.config["max_body"])
    except ums_xml.XmlError as exc:
        raise HttpError(400, str(exc)) from None


def parse_json(page: Page) -> dict:
    try:
        data = json.loads(page.body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise HttpError(400, f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise HttpError(400, "the JSON body must be an object")
    return data


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


def send_request(data: dict, page: Page) -> SendRequest:
    variables = data.get("variables") or {}
    if not isinstance(variables, dict):
        raise HttpError(400, "variables must be an object of names to values")
    if not data.get("template") and not (data.get("body") or data.get("subject")):
        raise HttpError(400, "name a template, or give a subject and body")
    for key in ("subject", "body"):
        if data.get(key):
            variables.setdefault("body_text" if key == "body" else key, data[key])
    try:
        priority = int(data.get("priority") or 5)
    except (TypeError, ValueError):
        raise HttpError(400, "priority must be a whole number 0 to 9") from None
    return SendRequest(
        channel=str(data.get("channel") or ""), recipient=str(data.get("recipient") or "").strip(),
        template=data.get("template") or None, kind=data.get("kind") or "transactional",
        variables=variables, due_at=_time(page, data.get("due_at")), priority=priority,
        service_name=page.user["username"][:128],
    )


@router.post("/api/v1/send", roles=SEND_ROLES)
async def send(page: Page):
    data = send_from_xml(parse_xml(page, "api-send.xsd")) if is_xml(page) else parse_json(page)
    request = send_request(data, page)
    async with page.app.db.begin() as conn:
        if not request.template:
            await free_form(conn, request, page.app.now())
        delivery_id = await enqueue(conn, request, page.app.now())
    return answer(page, "queued", {"delivery": delivery_id, "state": "queued"}, 202)


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


@router.get("/api/v1/deliveries/{id}", roles=SEND_ROLES)
async def delivery(page: Page):
    async with page.app.db.connect() as conn:
        found = await web.delivery(conn, int(page.params["id"]) if page.params["id"].isdigit() else -1)
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


@router.get("/api/v1/contacts", roles=API_ROLES)
async def contacts(page: Page):
    async with page.app.db.connect() as conn:
        found = await addressbooks.search(conn, page.query.get("q"), limit=int(page.query.get("limit", "200")))
    fields = ("id",) + addressbooks.CONTACT_FIELDS
    return answer(page, "contacts", {"contact": [{key: row[key] for key in fields} for row in found]})


@router.post("/api/v1/contacts", roles=API_ROLES)
async def add_contact(page: Page):
    data = contact_from_xml(parse_xml(page, "api-contact.xsd")) if is_xml(page) else parse_json(page)
    try:
        fields = contacts_io.check_fields(data)
        consent = data.get("consent")
        record = contacts_io.Record(0, fields, None if not consent else contacts_io._consent(
            "yes" if consent.get("granted") else "no", consent.get("source") or "", consent.get("date") or "",
            "yes" if consent.get("night_time") else "no"))
    except contacts_io.BadRow as exc:
        raise HttpError(400, str(exc)) from None
    async with page.app.db.begin() as conn:
        book_id = await addressbooks.ensure_book(conn, data["book"]) if data.get("book") else None
        report = await contacts_io.import_records(conn, [record], page.app.now(), book_id)
        found = await addressbooks.find_match(conn, fields)
    return answer(page, "contact", {"id": found["id"], "created": bool(report.created)},
                  201 if report.created else 200)


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


@router.get("/api/v1/campaigns", roles=API_ROLES)
async def campaigns(page: Page):
    async with page.app.db.connect() as conn:
        rows = await campaign_api.list_campaigns(conn)
    return answer(page, "campaigns", {"campaign": [campaign_summary(row) for row in rows]})


@router.post("/api/v1/campaigns", roles=API_ROLES)
async def create_campaign(page: Page):
    if is_xml(page):
        spec = campaign_api.from_xml(page.body, page.app.tz)
    else:
        spec = campaign_api.from_dict(parse_json(page), page.app.tz)
    if spec.audience.get("csv"):
        raise HttpError(400, "an API campaign names address books or a segment, not a server CSV path")
    campaign_id = await campaign_pages.create_campaign(page, spec)
    return answer(page, "campaign", {"id": campaign_id, "state": "draft", "schedule_at": _iso(spec.schedule_at)},
                  201)


@router.get("/api/v1/campaigns/{id}", roles=API_ROLES)
async def campaign(page: Page):
    async with page.app.db.connect() as conn:
        row = await campaign_api.find(conn, page.params["id"])
        progress = await campaign_api.progress(conn, row["id"], page.app.now())
    return answer(page, "campaign", campaign_view(page, row, progress))


def action_arguments(page: Page) -> tuple[str | None, bool]:
    """``at`` and ``now`` of a campaign action, from a JSON body, form fields
    or the query string."""
    data = dict(page.form)
    if "json" in page.header("content-type").lower() and page.body.strip():
        data.update(parse_json(page))
    at = data.get("at") or None
    if at is not None and not isinstance(at, str):
        raise HttpError(400, "at must be an ISO 8601 time such as 2026-12-01T09:00+09:00")
    return at, _flag(data.get("now"))


@router.post("/api/v1/campaigns/{id}/{action}", roles=API_ROLES)
async def campaign_action(page: Page):
    at, start_now = action_arguments(page)
    row = await campaign_pages.apply_action(page, page.params["id"], page.params["action"], at, start_now)
    return answer(page, "campaign", {"id": row["id"], "state": row["state"], "schedule_at": _iso(row["schedule_at"])})


# --- mailbox -----------------------------------------------------------------------------------

@router.get("/api/v1/mailbox", roles=SEND_ROLES)
async def mailbox(page: Page):
    viewer = None if page.user["role"] in ("admin", API_ROLE) else page.user["user_id"]
    async with page.app.db.connect() as conn:
        rows = await web.inbox(conn, viewer, page.query.get("media"), page.query.get("folder"))
    return answer(page, "mailbox", {"message": rows})


@router.get("/api/openapi.json", roles=None)
async def openapi(page: Page):
    from .openapi import DOCUMENT

    return json_response(DOCUMENT)
