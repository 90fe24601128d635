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
from pathlib import Path
from zoneinfo import ZoneInfo

from . import xml as ums_xml
from .addresses import CHANNELS, is_valid
from .clock import BadTime, duration, parse_time, shown, zone
from .holds import HoldGroup, describe, summarise
from .config import SHIPPED_CONFIG_DIR
from .errors import UmsError
from .store import campaigns as store
from .store import deliveries as delivery_store
from .store import templates as template_store

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
        )
    except (TypeError, ValueError) as exc:
        raise BadCampaign(reason=str(exc)) from None
    spec.validate()
    return spec


def from_xml(data: bytes | str, tz: ZoneInfo | None = None) -> CampaignSpec:
    """Parse an XML campaign file (hardened parser, validated by the XSD)."""
    root = ums_xml.parse_valid(data, SCHEMA, max_bytes=MAX_FILE_BYTES)
    template = root.find("template")
    as_dict: dict = {
        "name": root.get("name"), "kind": root.get("kind", "transactional"),
        "channel": root.get("channel", "email"), "template": template.get("name"),
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
        throttle=spec.throttle or None, expires_after=spec.expires_after,
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
        return sum(self.counts.get(s, 0) for s in ("failed", "expired"))

    @property
    def waiting(self) -> int:
        return sum(self.counts.get(s, 0) for s in delivery_store.PENDING_STATES)

    @property
    def done(self) -> int:
        return sum(self.counts.get(s, 0) for s in delivery_store.FINAL_STATES)

    @property
    def suppressed(self) -> int:
        """Ended unsent on purpose: suppressed (no consent, refused) or cancelled."""
        return sum(self.counts.get(s, 0) for s in ("suppressed", "cancelled"))

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
