"""The core campaign API: what the CLI and the web front end call.

A campaign file (XML validated by ``config/xsd/campaign.xsd``, or the same
shape in JSON) names the audience, the template, the kind, the schedule,
the throttle and the expiry::

    spec = campaigns.load_file("spring.xml")          # or .json; or from_dict(d)
    async with db.begin() as conn:
        campaign_id = await campaigns.create(conn, spec, now)
        await campaigns.schedule(conn, campaign_id, at=None, now=now)   # its own time, cron, or now

    await campaigns.pause(conn, campaign_id, now)
    await campaigns.resume(conn, campaign_id, now)     # back to scheduled if it never started
    await campaigns.reschedule(conn, campaign_id, at, now)   # a missed or cancelled one too
    await campaigns.cancel(conn, campaign_id, now)   # unsent deliveries → cancelled, each with a CDR row
    progress = await campaigns.progress(conn, campaign_id)

The daily workflow around them::

    report = await campaigns.check(conn, campaign_id, now, tz)       # who it reaches, what blocks it
    await campaigns.schedule_checked(conn, campaign_id, at, now, force=False)   # NotReady while it blocks
    shown = await campaigns.preview(conn, config, campaign_id, delivery_id=None)  # exactly as sent
    await campaigns.test_send(conn, campaign_id, "me@bank.example", now)
    await campaigns.clone(conn, campaign_id, now); await campaigns.delete(conn, campaign_id)
    await campaigns.set_tracking(conn, campaign_id, True); figures = await campaigns.stats(conn, campaign_id)

``campaign`` arguments accept the id or the unique name. PASS does the rest:
it starts scheduled campaigns when due (at most once, even with several PASS
processes), expands the audience into deliveries in batches and sends them.

States: draft → scheduled → running → completed; scheduled ⇄ paused and
running ⇄ paused (resuming keeps the due time: a campaign that never started
goes back to scheduled); any unfinished state → cancelled; a one-off schedule
missed by more than ``pass.misfire_grace`` seconds → missed; missed or
cancelled → scheduled again by :func:`reschedule`.

Times in a file or typed by a person are read by :func:`ums.clock.parse_time`
(without an offset, in the zone given — ``[ums] timezone``); cron schedules
run in that zone too. A start time in the past is refused
(:class:`PastStart`) unless the caller asks to start now.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import TemplateSyntaxError, meta

from . import advertising, tracking
from . import xml as ums_xml
from .addresses import CHANNELS, is_valid, normalize
from .channels import Delivery
from .channels import email as email_channel
from .clock import BadTime, duration, parse_time, shown, zone
from .holds import HoldGroup, describe, summarise
from .config import SHIPPED_CONFIG_DIR
from .errors import UmsError
from .outbox import SendRequest, enqueue, settled_kind
from .queue.states import UNDELIVERED_STATES, WITHHELD_STATES
from .store import campaigns as store
from .store import contacts as contact_store
from .store import deliveries as delivery_store
from .store import suppression
from .store import templates as template_store
from .store import tracking as tracking_store
from .store.addressbooks import CONTACT_FIELDS
from .templates import EmailSkeleton, environment

SCHEMA = SHIPPED_CONFIG_DIR / "xsd" / "campaign.xsd"
KINDS = ("advertising", "transactional")
MAX_FILE_BYTES = 1 << 20
CSV_BATCH = 5000


class CampaignError(UmsError):
    """Campaign error: {reason}."""


class BadCampaign(CampaignError):
    """Bad campaign definition: {reason}."""


class UnknownCampaign(CampaignError):
    """No campaign {campaign!r}."""


class CampaignStateError(CampaignError):
    """Campaign {name!r} is {state}; cannot {action} it."""


class PastStart(CampaignError):
    """Campaign {name!r}: the start time {at} is in the past (it is {now} now); give a later time, or start it now with --now."""

#: a start this close behind now still counts as "now" (the time it took to type the command)
PAST_TOLERANCE = timedelta(seconds=60)


@dataclass
class CampaignSpec:
    """A validated campaign definition (from a file or a dict)."""

    name: str
    template: str
    kind: str = "transactional"
    channel: str = "email"
    #: {"books": [names], "segment": {field: value or [values]}, "csv": path}
    audience: dict = field(default_factory=dict)
    schedule_at: datetime | None = None
    cron: str | None = None
    #: {"rate": per second, "per_hour": N, "concurrency": N}
    throttle: dict = field(default_factory=dict)
    expires_after: int | None = None          # seconds a delivery may keep retrying
    #: an inline template (subject, body_html, body_text, sender_name, sender_contact)
    template_fields: dict | None = None
    created_by: str | None = None
    #: engagement tracking (open pixel, click redirects): opt-in
    tracking: bool = False

    def validate(self) -> None:
        if not self.name or len(self.name) > 128:
            raise BadCampaign(reason="a name of 1 to 128 characters is required")
        if self.kind not in KINDS:
            raise BadCampaign(reason=f"kind must be advertising or transactional, not {self.kind!r}")
        if self.channel not in CHANNELS:
            raise BadCampaign(reason=f"unknown channel {self.channel!r}")
        if not self.template:
            raise BadCampaign(reason="no template named")
        audience = self.audience or {}
        if not (audience.get("books") or audience.get("segment") or audience.get("csv")):
            raise BadCampaign(reason="the audience names no address book, segment or CSV file")
        for name in (audience.get("segment") or {}):
            if name not in store.SEGMENT_FIELDS:
                raise BadCampaign(reason=f"cannot segment on {name!r} (use {', '.join(store.SEGMENT_FIELDS)})")
        if self.cron:
            _cron_trigger(self.cron)
        if self.expires_after is not None and self.expires_after <= 0:
            raise BadCampaign(reason="expiry must be positive")
        if self.tracking and self.kind != "advertising":
            raise BadCampaign(reason="only advertising is tracked: transactional notices never are")


def _cron_trigger(expression: str, tz: ZoneInfo | None = None):
    from apscheduler.triggers.cron import CronTrigger

    try:
        return CronTrigger.from_crontab(expression, timezone=tz or zone(None))
    except ValueError as exc:
        raise BadCampaign(reason=f"bad cron expression {expression!r} ({exc})") from None


def next_cron_time(expression: str, after: datetime, tz: ZoneInfo | None = None) -> datetime | None:
    """The next time a cron schedule (read in ``tz``, ``[ums] timezone``) fires
    strictly after ``after``, as aware UTC: a run that starts exactly on its
    time must not schedule itself again."""
    fire = _cron_trigger(expression, tz).get_next_fire_time(None, after + timedelta(microseconds=1))
    return fire.astimezone(after.tzinfo) if fire else None


def _parse_time(text, tz: ZoneInfo) -> datetime | None:
    try:
        return parse_time(text, tz)
    except BadTime as exc:
        raise BadCampaign(reason=str(exc)) from None


def from_dict(data: dict, tz: ZoneInfo | None = None) -> CampaignSpec:
    """Build and validate a spec from the JSON shape (see config/samples/); a
    time without an offset is read in ``tz`` (``[ums] timezone``)."""
    if not isinstance(data, dict):
        raise BadCampaign(reason="expected a JSON object")
    template = data.get("template")
    inline = None
    if isinstance(template, dict):
        inline = {key: template.get(key) for key in
                  ("subject", "body_html", "body_text", "sender_name", "sender_contact")}
        template = template.get("name")
    schedule = data.get("schedule") or {}
    expires = data.get("expires_after")
    if expires is None and data.get("expiry_hours") is not None:
        expires = int(float(data["expiry_hours"]) * 3600)
    try:
        spec = CampaignSpec(
            name=str(data.get("name") or "").strip(), template=template, kind=data.get("kind", "transactional"),
            channel=data.get("channel", "email"), audience=dict(data.get("audience") or {}),
            schedule_at=_parse_time(schedule.get("at"), tz or zone(None)), cron=schedule.get("cron"),
            throttle=dict(data.get("throttle") or {}),
            expires_after=int(expires) if expires is not None else None,
            template_fields=inline, created_by=data.get("created_by"),
            tracking=_flag(data.get("tracking", False)),
        )
    except (TypeError, ValueError) as exc:
        raise BadCampaign(reason=str(exc)) from None
    spec.validate()
    return spec


def _flag(value) -> bool:
    """A yes/no field of a campaign file: true/false (JSON), "true"/"1"/"false"/"0" (XML)."""
    if isinstance(value, bool):
        return value
    if str(value).strip().lower() in ("true", "1"):
        return True
    if str(value).strip().lower() in ("false", "0", ""):
        return False
    raise BadCampaign(reason=f"tracking must be true or false, not {value!r}")


def from_xml(data: bytes | str, tz: ZoneInfo | None = None) -> CampaignSpec:
    """Parse an XML campaign file (hardened parser, validated by the XSD)."""
    root = ums_xml.parse_valid(data, SCHEMA, max_bytes=MAX_FILE_BYTES)
    template = root.find("template")
    as_dict: dict = {
        "name": root.get("name"), "kind": root.get("kind", "transactional"),
        "channel": root.get("channel", "email"), "template": template.get("name"),
        "tracking": root.get("tracking", "false"),
    }
    if template.find("subject") is not None or template.find("html") is not None or template.find("text") is not None:
        sender = template.find("sender")
        as_dict["template"] = {
            "name": template.get("name"),
            "subject": ums_xml.text_of(template, "subject"),
            "body_html": ums_xml.text_of(template, "html"),
            "body_text": ums_xml.text_of(template, "text"),
            "sender_name": sender.get("name") if sender is not None else None,
            "sender_contact": sender.get("contact") if sender is not None else None,
        }
    audience = root.find("audience")
    segment: dict = {}
    for element in audience.findall("segment"):
        segment.setdefault(element.get("field"), []).append((element.text or "").strip())
    as_dict["audience"] = {
        "books": [(book.text or "").strip() for book in audience.findall("book")],
        "segment": segment,
        "csv": ums_xml.text_of(audience, "csv"),
    }
    schedule = root.find("schedule")
    if schedule is not None:
        as_dict["schedule"] = {"at": schedule.get("at"), "cron": schedule.get("cron")}
    throttle = root.find("throttle")
    if throttle is not None:
        as_dict["throttle"] = {
            key.replace("-", "_"): int(value) for key, value in throttle.attrib.items()
        }
    expiry = root.find("expiry")
    if expiry is not None:
        as_dict["expiry_hours"] = expiry.get("hours")
    return from_dict(as_dict, tz)


def load_file(path: str | Path, tz: ZoneInfo | None = None) -> CampaignSpec:
    """Read a campaign file; XML or JSON, told apart by its first character."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadCampaign(reason=f"cannot read {path}: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise BadCampaign(reason=f"{path} is larger than {MAX_FILE_BYTES} bytes")
    if data.lstrip()[:1] in (b"{", b"["):
        try:
            spec = from_dict(json.loads(data), tz)
        except json.JSONDecodeError as exc:
            raise BadCampaign(reason=f"{path}: bad JSON at line {exc.lineno}: {exc.msg}") from None
    else:
        spec = from_xml(data, tz)
    csv_path = spec.audience.get("csv")
    if csv_path and not Path(csv_path).is_absolute():
        spec.audience["csv"] = str((path.parent / csv_path).resolve())
    return spec


async def create(conn, spec: CampaignSpec, now: datetime) -> int:
    """Store a campaign as a draft (its inline template too); returns its id.

    A CSV audience is imported first: each row becomes (or updates nothing
    of) a contact and joins an address book named ``campaign:<name>``.
    """
    spec.validate()
    if await store.by_name(conn, spec.name):
        raise BadCampaign(reason=f"a campaign named {spec.name!r} already exists")
    if spec.template_fields:
        await template_store.save(conn, spec.template, spec.channel, now, kind=spec.kind, **spec.template_fields)
    elif not await template_store.get(conn, spec.template, spec.channel):
        raise BadCampaign(reason=f"no {spec.channel} template named {spec.template!r}")
    audience = dict(spec.audience)
    if audience.get("csv"):
        book = f"campaign:{spec.name}"
        await import_csv(conn, audience.pop("csv"), book, spec.channel)
        audience["books"] = list(audience.get("books") or []) + [book]
    return await store.insert_campaign(
        conn, name=spec.name, kind=spec.kind, channel=spec.channel, template_name=spec.template,
        audience=audience, state="draft", schedule_at=spec.schedule_at, cron=spec.cron,
        throttle=spec.throttle or None, expires_after=spec.expires_after, tracking=spec.tracking,
        definition={"source": "file"}, created_by=spec.created_by, created_at=now,
    )


async def import_csv(conn, path: str, book: str, channel: str) -> int:
    """Stream a CSV (header: email/fax/phone, name, grade, customer_id…) into contacts
    and an address book, in batches; returns the number of rows imported."""
    from .store import addressbooks, contacts as contact_store

    column = {"email": "email", "fax": "fax", "voice": "phone"}[channel]
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise BadCampaign(reason=f"cannot read CSV {path}: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or column not in reader.fieldnames:
            raise BadCampaign(reason=f"CSV {path} has no {column!r} column")
        book_id = await addressbooks.ensure_book(conn, book)
        imported, batch = 0, []
        for line, row in enumerate(reader, start=2):
            address = (row.get(column) or "").strip()
            if not is_valid(channel, address):
                raise BadCampaign(reason=f"CSV {path} line {line}: bad {column} {address!r}")
            batch.append({key: (row.get(key) or None) for key in contact_store.IMPORT_FIELDS if key in row})
            if len(batch) >= CSV_BATCH:
                imported += await contact_store.import_batch(conn, book_id, batch, key=column)
                batch = []
        if batch:
            imported += await contact_store.import_batch(conn, book_id, batch, key=column)
    return imported


async def find(conn, campaign: int | str) -> dict:
    """A campaign row by id or name, or :class:`UnknownCampaign`."""
    row = None
    if isinstance(campaign, int) or str(campaign).isdigit():
        row = await store.get(conn, int(campaign))
    if row is None:
        row = await store.by_name(conn, str(campaign))
    if row is None:
        raise UnknownCampaign(campaign=campaign)
    return row


async def list_campaigns(conn) -> list[dict]:
    return await store.list_all(conn)


def start_time(row: dict, at: datetime | None, now: datetime, start_now: bool = False,
               tz: ZoneInfo | None = None) -> datetime:
    """When a campaign should start: now (``start_now``), at ``at``, at its next
    cron time, at its own time, or now when it has none. A one-off time in the
    past is refused with :class:`PastStart`."""
    if start_now:
        return now
    if at is None and row["cron"]:
        return next_cron_time(row["cron"], now, tz)
    when = at or row["schedule_at"] or now
    if when < now - PAST_TOLERANCE:
        tz = tz or zone(None)
        raise PastStart(name=row["name"], at=shown(when, tz), now=shown(now, tz))
    return when


async def schedule(conn, campaign: int | str, at: datetime | None, now: datetime,
                   start_now: bool = False, tz: ZoneInfo | None = None) -> dict:
    """Schedule a draft (or re-schedule a scheduled) campaign: see
    :func:`start_time`. PASS starts it when due."""
    row = await find(conn, campaign)
    when = start_time(row, at, now, start_now, tz)
    if not await store.set_state(conn, row["id"], "scheduled", ("draft", "scheduled"), schedule_at=when):
        raise CampaignStateError(name=row["name"], state=row["state"], action="schedule")
    return {**row, "state": "scheduled", "schedule_at": when}


async def reschedule(conn, campaign: int | str, at: datetime | None, now: datetime,
                     start_now: bool = False, tz: ZoneInfo | None = None) -> dict:
    """Give a missed, cancelled, draft or scheduled campaign a new start time
    (:func:`start_time`). Deliveries that already ended keep their state; the
    rest of the audience is sent from the new time."""
    row = await find(conn, campaign)
    when = start_time({**row, "schedule_at": None}, at, now, start_now, tz)
    if not await store.set_state(conn, row["id"], "scheduled", ("missed", "cancelled", "draft", "scheduled"),
                                 schedule_at=when, finished_at=None):
        raise CampaignStateError(name=row["name"], state=row["state"], action="reschedule")
    return {**row, "state": "scheduled", "schedule_at": when}


async def pause(conn, campaign: int | str, now: datetime) -> None:
    """Stop sending a running campaign (PASS sends none of it within a second),
    or hold a scheduled one so it does not start."""
    row = await find(conn, campaign)
    if not await store.set_state(conn, row["id"], "paused", ("running", "scheduled")):
        raise CampaignStateError(name=row["name"], state=row["state"], action="pause")


async def resume(conn, campaign: int | str, now: datetime, tz: ZoneInfo | None = None) -> dict:
    """Undo a pause. A campaign that had started runs again; one that never
    started goes back to scheduled for its own time (a time that passed while
    it was paused: now, or a cron campaign's next time). Returns the row as it
    now is."""
    row = await find(conn, campaign)
    if row["started_at"] is not None:
        new, values = "running", {}
    else:
        due = row["schedule_at"]
        if due is None or due <= now:
            due = next_cron_time(row["cron"], now, tz) if row["cron"] else now
        new, values = "scheduled", {"schedule_at": due}
    if not await store.set_state(conn, row["id"], new, ("paused",), **values):
        raise CampaignStateError(name=row["name"], state=row["state"], action="resume")
    return {**row, "state": new, **values}


async def cancel(conn, campaign: int | str, now: datetime) -> int:
    """Cancel a campaign: every unsent delivery ends cancelled with its final CDR row
    (deliveries in flight at this moment finish as PASS finds them). Returns the
    number cancelled."""
    row = await find(conn, campaign)
    if not await store.set_state(conn, row["id"], "cancelled", ("draft", "scheduled", "running", "paused"),
                                 finished_at=now):
        raise CampaignStateError(name=row["name"], state=row["state"], action="cancel")
    return await delivery_store.cancel_unsent(conn, row["id"], now)


@dataclass
class Progress:
    name: str
    state: str
    total: int
    counts: dict[str, int]
    #: why the waiting ones wait (see :mod:`ums.holds`)
    holds: list[HoldGroup] = field(default_factory=list)
    schedule_at: datetime | None = None

    @property
    def sent(self) -> int:
        return self.counts.get("sent", 0)

    @property
    def failed(self) -> int:
        return sum(self.counts.get(s, 0) for s in UNDELIVERED_STATES)

    @property
    def waiting(self) -> int:
        return sum(self.counts.get(s, 0) for s in delivery_store.PENDING_STATES)

    @property
    def done(self) -> int:
        return sum(self.counts.get(s, 0) for s in delivery_store.FINAL_STATES)

    @property
    def suppressed(self) -> int:
        """Ended unsent on purpose: suppressed (no consent, refused) or cancelled."""
        return sum(self.counts.get(s, 0) for s in WITHHELD_STATES)

    def hold_lines(self, now: datetime, tz: ZoneInfo) -> list[str]:
        """One line per reason the waiting deliveries wait; for a campaign that
        has not started, when it will."""
        if self.state in ("scheduled", "draft", "missed") and not self.counts:
            if self.state == "scheduled" and self.schedule_at is not None:
                wait = duration((self.schedule_at - now).total_seconds())
                return [f"not started: starts {shown(self.schedule_at, tz)} (in {wait})"]
            return [f"not started ({self.state})"]
        if self.state == "paused" and not self.counts:
            return ["paused before it started, until resumed"]
        return [describe(group, now, tz) for group in self.holds]


async def progress(conn, campaign: int | str, now: datetime | None = None) -> Progress:
    """Counts by state and, when ``now`` is given, why the waiting ones wait."""
    row = await find(conn, campaign)
    counts = await store.counts_by_state(conn, row["id"])
    holds = []
    if now is not None:
        holds = summarise(await delivery_store.pending_holds(conn, row["id"]), now)
    return Progress(row["name"], row["state"], row["total"], counts, holds, row["schedule_at"])


# --- the workflow: pre-send check, preview, test send, clone, delete, tracking, stats -------------

class NotReady(CampaignError):
    """Campaign {name!r} is not ready to schedule: {problems}. Fix these, or override the check."""


class BadTestSend(CampaignError):
    """Cannot test-send campaign {name!r} to {to!r}: {reason}."""


#: consent that runs out within this is shown as due for reconfirmation soon
RECONFIRM_SOON = timedelta(days=30)
#: what a test delivery is marked with (its ``service_name``; it belongs to no campaign, so counts nowhere)
TEST_SENDER = "campaign test"


@dataclass
class Problem:
    """One finding of :func:`check`; a blocking one stops :func:`schedule_checked`."""

    code: str           # unknown_book, missing_field, past_start, no_sender, no_refusal_number, empty_audience…
    message: str
    blocking: bool = True


@dataclass
class Check:
    """What a campaign would do if it started at ``start``: whom it reaches and what stops it."""

    name: str
    kind: str
    channel: str
    start: datetime
    audience: int = 0
    #: advertising consent of the audience: current, night (of current), due_soon, expired, withdrawn, none
    consent: dict = field(default_factory=dict)
    suppressed: int = 0
    #: [(count, local time the night rule lets them go, shown with its zone)]
    quiet: list[tuple[int, str]] = field(default_factory=list)
    #: field → how many of the audience lack it
    fields: dict = field(default_factory=dict)
    unknown_books: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def blocking(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.blocking]

    @property
    def waiting_for_night_rule(self) -> int:
        return sum(count for count, _ in self.quiet)

    def lines(self, tz: ZoneInfo) -> list[str]:
        """The report as people read it, one fact a line."""
        lines = [f"audience: {self.audience} ({self.channel}, {self.kind}), starts {shown(self.start, tz)}"]
        if self.kind == "advertising":
            c = self.consent
            lines.append(f"advertising consent: {c.get('current', 0)} current, {c.get('night', 0)} of them also "
                         f"at night, "
                         f"{c.get('expired', 0)} older than two years (reconfirmation due), "
                         f"{c.get('due_soon', 0)} due for reconfirmation within 30 days, "
                         f"{c.get('withdrawn', 0)} withdrawn, {c.get('none', 0)} never given")
            for count, until in self.quiet:
                lines.append(f"night rule: {count} will wait until {until}")
            if not self.quiet:
                lines.append("night rule: nobody waits")
        lines.append(f"suppressed: {self.suppressed}")
        for problem in self.problems:
            lines.append(("BLOCKING: " if problem.blocking else "warning: ") + problem.message)
        return lines

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "channel": self.channel, "start": self.start,
                "audience": self.audience, "consent": self.consent, "suppressed": self.suppressed,
                "waiting_for_night_rule": [{"count": count, "until": until} for count, until in self.quiet],
                "missing_fields": self.fields, "unknown_books": self.unknown_books,
                "problems": [{"code": p.code, "message": p.message, "blocking": p.blocking} for p in self.problems],
                "ready": not self.blocking}


def template_fields(template: dict) -> set[str]:
    """The fields a template's subject and bodies ask for."""
    wanted: set[str] = set()
    for key in ("subject", "body_text", "body_html"):
        try:
            wanted |= meta.find_undeclared_variables(environment(key == "body_html").parse(template.get(key) or ""))
        except TemplateSyntaxError:
            continue
    return wanted - {"unsubscribe_url"}


def contact_fields(contact: dict) -> dict:
    """A contact's fields as its deliveries' templates see them (PASS's rendering)."""
    found = {key: contact.get(key) for key in CONTACT_FIELDS if contact.get(key) is not None}
    found.update(contact.get("attributes") or {})
    return found


def _consent_class(records: list[dict], channel: str, now: datetime) -> str:
    """none, withdrawn, expired, due_soon or current — the newest record for the channel decides."""
    relevant = [r for r in records if r.get("channel", "any") in ("any", channel)]
    if not relevant:
        return "none"
    newest = max(relevant, key=lambda r: r["recorded_at"])
    if not newest.get("granted") or newest.get("withdrawn_at") is not None:
        return "withdrawn"
    if not advertising.consent_is_current(newest, now, channel):
        return "expired"
    if not advertising.consent_is_current(newest, now + RECONFIRM_SOON, channel):
        return "due_soon"
    return "current"


async def check(conn, campaign: int | str, now: datetime, tz: ZoneInfo | None = None,
                start: datetime | None = None, refusal_numbers: dict | None = None) -> Check:
    """The pre-send check: audience size, consent breakdown, who waits for the
    night rule and until when (each recipient's own zone), suppressed
    addresses, template fields the audience lacks, unknown books, a start in
    the past, missing sender or refusal number for advertising.

    ``start`` is when it would start (default: its own time, else now);
    ``refusal_numbers`` the configured ones by channel (:func:`refusal_numbers`)."""
    tz = tz or zone(None)
    row = await find(conn, campaign)
    when = start or row["schedule_at"] or (next_cron_time(row["cron"], now, tz) if row["cron"] else None) or now
    report = Check(row["name"], row["kind"], row["channel"], when)
    template = await template_store.get(conn, row["template_name"], row["channel"])
    kind = "advertising" if (template or {}).get("kind") == "advertising" else row["kind"]
    report.kind = kind
    books = list((row["audience"] or {}).get("books") or [])
    known = await store.books_named(conn, books)
    report.unknown_books = [book for book in books if book not in known]
    for book in report.unknown_books:
        report.problems.append(Problem("unknown_book", f"no address book named {book!r} (the audience names it)"))
    people = await store.audience(conn, row)
    report.audience = len(people)
    if not people:
        report.problems.append(Problem("empty_audience", "the audience is empty: nobody would receive it",
                                       blocking=False))
    if row["state"] in ("draft", "scheduled", "missed", "cancelled", "paused") and when < now - PAST_TOLERANCE:
        report.problems.append(Problem("past_start", f"the start time {shown(when, tz)} is in the past "
                                                     f"(it is {shown(now, tz)} now)"))
    if template is None:
        report.problems.append(Problem("no_template", f"no {row['channel']} template named {row['template_name']!r}"))
        template = {}
    _check_sender(report, template, kind, (refusal_numbers or {}).get(row["channel"]))
    _check_fields(report, template, people)
    column = {"email": "email", "fax": "fax", "voice": "phone"}[row["channel"]]
    scopes = await conn.run_sync(suppression.suppressed_among, row["channel"], [p[column] for p in people])
    blocked = {address for address, scope in scopes.items() if scope == "all" or kind == "advertising"}
    stopped = {person["id"] for person in people if _normal(row["channel"], person[column]) in blocked}
    report.suppressed = len(stopped)
    if kind == "advertising":
        consents = await conn.run_sync(contact_store.advertising_consents, [person["id"] for person in people])
        _check_consent(report, people, consents, stopped)
    return report


def _check_consent(report: Check, people: list[dict], consents: dict, stopped: set[int]) -> None:
    """The consent breakdown, and who of those who would get it waits for the night rule, until when."""
    report.consent = {key: 0 for key in ("current", "night", "due_soon", "expired", "withdrawn", "none")}
    waits: dict[str, int] = {}
    for person in people:
        records = consents.get(person["id"], [])
        found = _consent_class(records, report.channel, report.start)
        report.consent[found] += 1
        if found not in ("current", "due_soon"):
            continue
        if max(records, key=lambda r: r["recorded_at"]).get("night_time"):
            report.consent["night"] += 1
        local = zone(person.get("timezone"))
        verdict = advertising.verdict(report.kind, report.channel, records, report.start, local)
        if verdict.action == "wait" and person["id"] not in stopped:
            until = shown(verdict.wait_until, local)
            waits[until] = waits.get(until, 0) + 1
    report.quiet = sorted(((count, until) for until, count in waits.items()), key=lambda item: item[1])
    if people and not (report.consent["current"] + report.consent["due_soon"]):
        report.problems.append(Problem("no_consent", "nobody in the audience has current advertising consent",
                                       blocking=False))


def _normal(channel: str, address: str) -> str:
    return normalize(channel, address or "")


def _check_sender(report: Check, template: dict, kind: str, refusal_number: str | None) -> None:
    """Advertising names its sender (name and contact) and a free way to refuse (art. 50)."""
    if kind != "advertising" or not template:
        return
    missing = [label for key, label in (("sender_name", "sender name"), ("sender_contact", "sender contact"))
               if not (template.get(key) or "").strip()]
    if missing:
        report.problems.append(Problem("no_sender", f"advertising must carry the {' and '.join(missing)}: "
                                                    f"set them on template {template.get('name')!r}"))
    if report.channel in ("fax", "voice"):
        number = ((template.get("options") or {}).get("refusal_number") or refusal_number or "").strip()
        if not number:
            report.problems.append(Problem("no_refusal_number", "advertising by fax or voice needs a free refusal "
                                                                "number ([fax]/[voice] refusal_number)"))


def _check_fields(report: Check, template: dict, people: list[dict]) -> None:
    """A field nobody has blocks (every message would show a gap); one some lack warns."""
    for name in sorted(template_fields(template)):
        lacking = sum(1 for person in people if contact_fields(person).get(name) in (None, ""))
        if not lacking:
            continue
        report.fields[name] = lacking
        if lacking == len(people):
            report.problems.append(Problem("missing_field", f"the template uses {{{{ {name} }}}}, which no "
                                                            f"recipient has"))
        else:
            report.problems.append(Problem("empty_field", f"{{{{ {name} }}}} is empty for {lacking} of "
                                                          f"{len(people)} recipients", blocking=False))


async def schedule_checked(conn, campaign: int | str, at: datetime | None, now: datetime, start_now: bool = False,
                           tz: ZoneInfo | None = None, force: bool = False,
                           refusal_numbers: dict | None = None, revive: bool = False) -> dict:
    """:func:`schedule` (with ``revive``, :func:`reschedule` for a missed or
    cancelled one) after :func:`check`: a blocking problem raises
    :class:`NotReady` unless ``force``. A past start is refused by the
    schedule itself even when forced."""
    row = await find(conn, campaign)
    revive = revive and row["state"] in ("missed", "cancelled")
    when = start_time({**row, "schedule_at": None} if revive else row, at, now, start_now, tz)
    if not force:
        report = await check(conn, row["id"], now, tz, start=when, refusal_numbers=refusal_numbers)
        if report.blocking:
            raise NotReady(name=row["name"], problems="; ".join(p.message for p in report.blocking))
    if revive:
        return await reschedule(conn, row["id"], at, now, start_now, tz)
    return await schedule(conn, row["id"], at, now, start_now, tz)


@dataclass
class Preview:
    """A campaign's email as one recipient gets it: exactly what PASS renders."""

    subject: str
    text: str
    html: str | None
    recipient: str
    sender: str
    #: the delivery it is the message of (a test send), or None for a would-be message
    delivery_id: int | None = None


async def preview(conn, config, campaign: int | str, delivery_id: int | None = None,
                  recipient: str | None = None, now: datetime | None = None) -> Preview:
    """The message of a delivery of the campaign (a sent one, or a test send),
    or the one its first recipient (or ``recipient``) would get — rendered by
    the same function PASS sends with (:meth:`ums.templates.EmailSkeleton.render`),
    label, sender block, refusal footer and tracking links included. A
    would-be message has ``PREVIEW`` where each recipient's own token goes."""
    row = await find(conn, campaign)
    if row["channel"] != "email":
        raise CampaignError(reason=f"a preview shows email campaigns; {row['name']!r} goes by {row['channel']}")
    template = await template_store.get(conn, row["template_name"], row["channel"])
    if template is None:
        raise CampaignError(reason=f"no email template named {row['template_name']!r}")
    delivery, contact = None, None
    if delivery_id is not None:
        delivery = await delivery_store.get(conn, delivery_id)
        owner = delivery and (delivery["campaign_id"] or (delivery.get("variables") or {}).get("campaign_test"))
        if owner != row["id"]:
            raise CampaignError(reason=f"delivery {delivery_id} is not a message of campaign {row['name']!r}")
        contact = await contact_store.get(conn, delivery["contact_id"]) if delivery["contact_id"] else None
    elif recipient:
        contact = await contact_store.by_email(conn, recipient)
    else:
        people = await store.audience(conn, row)
        contact = people[0] if people else None
    to = delivery["recipient"] if delivery else (recipient or (contact or {}).get("email") or "someone@example.com")
    token = delivery["token"] if delivery else "PREVIEW"
    kind = settled_kind(template, delivery["kind"] if delivery else row["kind"])
    message = Delivery(id=delivery["id"] if delivery else 0, channel="email", recipient=to, kind=kind,
                       message_id="", token=token, attempt=1, template=template,
                       variables=(delivery or {}).get("variables") or {},
                       contact=contact_fields(contact) if contact else {})
    options = config.section("email")
    public_url = config.get("was", "public_url")
    tracker = None
    if row.get("tracking"):
        tracker = await tracking.tracker_for(conn, public_url, row["id"], message.id, now or row["created_at"])
    skeleton = EmailSkeleton(template, kind, options["from_name"], options["from_address"])
    subject, text, html = skeleton.render(email_channel.template_variables(message),
                                          email_channel.unsubscribe_url(public_url, token), tracker)
    return Preview(subject, text, html, to, f"{skeleton.sender_name} <{options['from_address']}>",
                   delivery["id"] if delivery else None)


async def test_send(conn, campaign: int | str, to: str, now: datetime, tz: ZoneInfo | None = None) -> int:
    """Queue one test delivery of the campaign to ``to``: rendered and sent
    like the campaign's own (label, footer, tracking), marked as a test
    (``service_name`` :data:`TEST_SENDER`, ``variables["campaign_test"]``),
    belonging to no campaign so it is counted in none of its figures.
    Advertising still needs the recipient's consent (PASS checks it like any
    other): refused here at once when ``to`` has none. Returns its id."""
    row = await find(conn, campaign)
    to = (to or "").strip()
    if not is_valid(row["channel"], to):
        raise BadTestSend(name=row["name"], to=to, reason=f"not a valid {row['channel']} address")
    template = await template_store.get(conn, row["template_name"], row["channel"])
    if template is None:
        raise BadTestSend(name=row["name"], to=to, reason=f"no {row['channel']} template {row['template_name']!r}")
    contact = await contact_store.by_email(conn, to) if row["channel"] == "email" else None
    kind = "advertising" if template.get("kind") == "advertising" else row["kind"]
    if kind == "advertising":
        records = await conn.run_sync(contact_store.advertising_consents, [contact["id"]]) if contact else {}
        verdict = advertising.verdict(kind, row["channel"], (records or {}).get((contact or {}).get("id"), []), now,
                                      zone((contact or {}).get("timezone")))
        if verdict.action == "suppress":
            raise BadTestSend(name=row["name"], to=to, reason=f"{verdict.reason} — advertising goes only to "
                                                               "contacts who consented, tests too")
    request = SendRequest(channel=row["channel"], recipient=to, template=row["template_name"], kind=kind,
                          variables={"campaign_test": row["id"]}, contact_id=(contact or {}).get("id"),
                          service_name=TEST_SENDER)
    return await enqueue(conn, request, now)


def clone_name(name: str, taken) -> str:
    """``spring (copy)``, then ``spring (copy 2)``…, within 128 characters."""
    for number in range(1, 1000):
        suffix = " (copy)" if number == 1 else f" (copy {number})"
        candidate = name[:128 - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
    raise BadCampaign(reason="too many copies")


async def clone(conn, campaign: int | str, now: datetime, name: str | None = None,
                created_by: str | None = None) -> int:
    """A new draft like ``campaign`` (template, kind, channel, audience,
    throttle, expiry, cron, tracking), with no start time; returns its id."""
    row = await find(conn, campaign)
    if name is None:
        name = clone_name(row["name"], {r["name"] for r in await store.list_all(conn, limit=100_000)})
    name = name.strip()
    if not name or len(name) > 128:
        raise BadCampaign(reason="a name of 1 to 128 characters is required")
    if await store.by_name(conn, name):
        raise BadCampaign(reason=f"a campaign named {name!r} already exists")
    return await store.insert_campaign(
        conn, name=name, kind=row["kind"], channel=row["channel"], template_name=row["template_name"],
        audience=row["audience"], state="draft", schedule_at=None, cron=row["cron"], throttle=row["throttle"],
        expires_after=row["expires_after"], tracking=row.get("tracking") or False,
        definition={"source": "clone", "of": row["id"]}, created_by=created_by or row["created_by"],
        created_at=now,
    )


async def delete(conn, campaign: int | str) -> dict:
    """Delete a campaign that is not sending (running or paused: cancel it
    first) with its deliveries; their CDR rows stay for billing. Returns the row."""
    row = await find(conn, campaign)
    if row["state"] in ("running", "paused"):
        raise CampaignStateError(name=row["name"], state=row["state"], action="delete (cancel it first)")
    await store.delete_campaign(conn, row["id"])
    return row


async def set_tracking(conn, campaign: int | str, on: bool) -> dict:
    """Turn engagement tracking (open pixel, click redirects) on or off for
    messages not yet sent. Transactional campaigns are never tracked."""
    row = await find(conn, campaign)
    if on and row["kind"] != "advertising":
        raise BadCampaign(reason=f"{row['name']!r} is transactional: notices are not tracked")
    await store.set_tracking(conn, row["id"], on)
    return {**row, "tracking": on}


STAT_KEYS = ("sent", "delivered", "bounced", "failed", "opened", "clicked", "refused")


async def stats(conn, campaign: int | str) -> dict:
    """Sent, delivered (sent and not bounced), bounced, failed, opened, clicked
    (recipient and link pairs, once each), refused and cost, in all and per
    channel. Test sends are not counted."""
    row = await find(conn, campaign)
    series = await moments(conn, row)
    totals = {key: 0 for key in STAT_KEYS}
    channels: dict[str, dict] = {}
    cost = Decimal(0)
    for _, channel, metric, amount in series:
        per = channels.setdefault(channel, {**{key: 0 for key in STAT_KEYS}, "cost": Decimal(0)})
        if metric == "cost":
            per["cost"] += amount
            cost += amount
        else:
            per[metric] += 1
            totals[metric] += 1
    tracked = await tracking_store.counts(conn, row["id"])
    return {"name": row["name"], "tracking": bool(row.get("tracking")), **totals, "clickers": tracked["clickers"],
            "cost": cost, "channels": channels}


async def moments(conn, row: dict) -> list[tuple[datetime, str, str, object]]:
    """(when, channel, metric, amount) of everything the statistics count:
    sent, delivered, bounced, failed, opened, clicked, refused (amount 1) and cost."""
    found: list[tuple[datetime, str, str, object]] = []
    for channel, state, finished, bounced in await store.delivery_moments(conn, row["id"]):
        if state == "sent":
            found.append((finished, channel, "sent", 1))
            if bounced is None:
                found.append((finished, channel, "delivered", 1))
            else:
                found.append((bounced, channel, "bounced", 1))
        elif state in UNDELIVERED_STATES:
            found.append((finished, channel, "failed", 1))
    found += [(at, channel, metric, 1) for at, channel, metric in await tracking_store.moments(conn, row["id"])]
    found += [(at, channel, "refused", 1) for channel, at in await store.refusal_moments(conn, row["id"])]
    found += [(at, channel, "cost", Decimal(str(cost))) for channel, at, cost in await store.cost_moments(conn, row["id"])]
    return found


def refusal_numbers(config) -> dict[str, str]:
    """The free refusal numbers ``[fax]`` and ``[voice]`` give advertising (a template may override them)."""
    return {channel: config.get(channel, "refusal_number") or "" for channel in ("fax", "voice")}


async def settle_sender(conn, spec: CampaignSpec, now: datetime, sender_name: str = "", sender_contact: str = "",
                        refusal_number: str = "") -> None:
    """Give an advertising campaign's template its sender (name, contact) and,
    for fax and voice, its free refusal number, from what the marketer typed —
    or refuse (:class:`BadCampaign`) when neither the form nor the template has
    them (art. 50: advertising names its sender and a free way to refuse).
    What is typed is saved on the template (a new version), which every
    advertising message of it carries."""
    template = await template_store.get(conn, spec.template, spec.channel)
    if template is None:
        raise BadCampaign(reason=f"no {spec.channel} template named {spec.template!r}")
    if spec.kind != "advertising" and template.get("kind") != "advertising":
        return
    name = sender_name.strip() or (template.get("sender_name") or "").strip()
    contact = sender_contact.strip() or (template.get("sender_contact") or "").strip()
    options = dict(template.get("options") or {})
    number = refusal_number.strip() or (options.get("refusal_number") or "").strip()
    missing = [label for value, label in ((name, "sender name"), (contact, "sender contact")) if not value]
    if missing:
        raise BadCampaign(reason=f"advertising must carry the {' and '.join(missing)} (template "
                                 f"{spec.template!r} has none): fill them in")
    if len(name) > 128 or len(contact) > 128 or len(number) > 32:
        raise BadCampaign(reason="sender name and contact may be 128 characters, the refusal number 32")
    changes = {}
    if name != template.get("sender_name"):
        changes["sender_name"] = name
    if contact != template.get("sender_contact"):
        changes["sender_contact"] = contact
    if spec.channel in ("fax", "voice") and number and number != options.get("refusal_number"):
        changes["options"] = {**options, "refusal_number": number}
    if changes:
        await template_store.save(conn, spec.template, spec.channel, now, **changes)
