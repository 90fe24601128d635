"""`ums campaign create|list|show|check|schedule|reschedule|pause|resume|cancel|watch`,
`test|preview|clone|delete|track|stats`.

``schedule`` (and ``create --schedule``) runs ``check`` first and refuses a
campaign with a blocking problem (an unknown book, a field nobody has, a
start in the past, advertising without sender or refusal number) unless
``--force``.

Every time typed here is read by :func:`ums.clock.parse_time`: an offset
(``+09:00``, ``Z``) is honoured, a time without one is in ``[ums] timezone``;
every time printed names its zone.
"""

from __future__ import annotations

import asyncio
import sys
import time

import click
from rich.console import Console
from rich.table import Table

from .. import campaigns
from ..clock import duration, parse_time, shown, site_zone
from ..store import utcnow
from .common import in_transaction as _in_transaction
from .common import json_option, pass_obj, pick, ready_database, run_async, write_json

#: what ``campaign list --json`` prints of each campaign, and ``campaign show --json`` besides
LIST_FIELDS = ("id", "name", "kind", "channel", "template_name", "state", "schedule_at", "cron", "total",
               "tracking", "created_by", "created_at", "started_at", "finished_at")
SHOW_FIELDS = LIST_FIELDS + ("throttle", "expires_after", "audience")
AT_HELP = "Start time, ISO 8601 (2026-12-24T09:00+09:00; without an offset it is in [ums] timezone)."
NOW_HELP = "Start now (also when the campaign's own time has passed)."
FORCE_HELP = "Schedule even when `ums campaign check` finds a blocking problem (a past start is still refused)."


def _when(obj, row: dict) -> str:
    """``2026-12-24 09:00 KST (in 2 d 3 h)`` for a scheduled start."""
    at = row["schedule_at"]
    wait = (at - utcnow()).total_seconds()
    return shown(at, site_zone(obj.config)) + (f" (in {duration(wait)})" if wait > 1 else " (now)")


@click.group()
def campaign():
    """Marketing campaigns: create from a file, schedule, watch, pause, resume, cancel."""


@campaign.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--schedule", "schedule_now", is_flag=True, help="Schedule it right away (its time, cron, or now).")
@click.option("--at", "at", help=AT_HELP + " Implies --schedule.")
@click.option("--now", "start_now", is_flag=True, help=NOW_HELP + " Implies --schedule.")
@click.option("--by", "created_by", default=None, help="Account charged for it (CDR accountcode).")
@click.option("--force", is_flag=True, help=FORCE_HELP)
@pass_obj
def create(obj, file, schedule_now, at, start_now, created_by, force):
    """Create a campaign from an XML or JSON FILE (see config/samples/).

    A start time in the past is refused (nothing is created); give --at or --now.
    Scheduling runs `ums campaign check` first (nothing is created if it blocks)."""
    tz = site_zone(obj.config)
    spec = campaigns.load_file(file, tz)
    if created_by:
        spec.created_by = created_by
    when = parse_time(at, tz)

    async def work(conn):
        now = utcnow()
        campaign_id = await campaigns.create(conn, spec, now)
        row = None
        if schedule_now or at or start_now:
            row = await campaigns.schedule_checked(conn, campaign_id, when, now, start_now, tz, force,
                                                   campaigns.refusal_numbers(obj.config))
        return campaign_id, row

    campaign_id, row = run_async(_in_transaction(obj, work))
    click.echo(f"campaign {campaign_id} {spec.name!r} created" +
               (f", scheduled for {_when(obj, row)}" if row else " (draft)"))


@campaign.command(name="list")
@json_option(LIST_FIELDS)
@pass_obj
def list_(obj, as_json):
    """List campaigns, newest first."""
    rows = run_async(_in_transaction(obj, campaigns.list_campaigns))
    if as_json:
        write_json(obj, [pick(row, LIST_FIELDS) for row in rows])
        return
    tz = site_zone(obj.config)
    table = Table(box=None, header_style="bold")
    for column in ("id", "name", "kind", "channel", "state", "scheduled", "total"):
        table.add_column(column)
    for row in rows:
        when = shown(row["schedule_at"], tz) if row["schedule_at"] else ""
        if row["cron"]:
            when = f"cron {row['cron']} ({tz.key})" + (f", next {when}" if when else "")
        table.add_row(str(row["id"]), row["name"], row["kind"], row["channel"], row["state"], when, str(row["total"]))
    Console(width=140).print(table)


@campaign.command()
@click.argument("campaign_ref", metavar="CAMPAIGN")
@json_option(", ".join(SHOW_FIELDS) + ", deliveries {state: count} and waiting [why, one line each]",
             shape="one object")
@pass_obj
def show(obj, campaign_ref, as_json):
    """Show a campaign (by id or name) and its deliveries by state."""

    now = utcnow()

    async def work(conn):
        return await campaigns.find(conn, campaign_ref), await campaigns.progress(conn, campaign_ref, now)

    row, progress = run_async(_in_transaction(obj, work))
    tz = site_zone(obj.config)
    if as_json:
        write_json(obj, {**pick(row, SHOW_FIELDS), "deliveries": dict(sorted(progress.counts.items())),
                         "waiting": progress.hold_lines(now, tz)})
        return
    for key in ("id", "name", "kind", "channel", "template_name", "state", "schedule_at", "cron",
                "throttle", "expires_after", "total", "tracking", "started_at", "finished_at", "created_by"):
        value = row[key]
        if key.endswith("_at"):
            value = shown(value, tz, "%Y-%m-%d %H:%M:%S %Z")
        click.echo(f"{key:>14}: {value if value is not None else ''}")
    click.echo(f"{'audience':>14}: {row['audience']}")
    for state, count in sorted(progress.counts.items()):
        click.echo(f"{state:>14}: {count}")
    for line in progress.hold_lines(now, tz):
        click.echo(f"{'why':>14}: {line}")


def _start(obj, action, campaign_ref: str, at: str | None, start_now: bool, verb: str, **options) -> None:
    """Run ``campaigns.schedule_checked`` or ``reschedule`` with ``--at`` read in the site zone."""
    tz = site_zone(obj.config)
    when = parse_time(at, tz)
    row = run_async(_in_transaction(
        obj, lambda conn: action(conn, campaign_ref, when, utcnow(), start_now, tz, **options)))
    click.echo(f"campaign {row['name']!r} {verb} for {_when(obj, row)}")


@campaign.command()
@click.argument("campaign_ref", metavar="CAMPAIGN")
@click.option("--at", "at", help=AT_HELP + " Default: its own time, cron, or now.")
@click.option("--now", "start_now", is_flag=True, help=NOW_HELP)
@click.option("--force", is_flag=True, help=FORCE_HELP)
@pass_obj
def schedule(obj, campaign_ref, at, start_now, force):
    """Schedule a draft campaign; PASS starts it when due. A time in the past is refused,
    and so is a campaign `ums campaign check` blocks (unless --force)."""
    _start(obj, campaigns.schedule_checked, campaign_ref, at, start_now, "scheduled", force=force,
           refusal_numbers=campaigns.refusal_numbers(obj.config))


@campaign.command()
@click.argument("campaign_ref", metavar="CAMPAIGN")
@click.option("--at", "at", help=AT_HELP)
@click.option("--now", "start_now", is_flag=True, help=NOW_HELP)
@pass_obj
def reschedule(obj, campaign_ref, at, start_now):
    """Give a missed, cancelled or scheduled campaign a new start time (--at or --now).

    Deliveries that already ended stay as they are; the rest of the audience goes from then."""
    if not at and not start_now:
        raise click.UsageError("give the new start time with --at, or --now")
    _start(obj, campaigns.reschedule, campaign_ref, at, start_now, "rescheduled")


@campaign.command()
@click.argument("campaign_ref", metavar="CAMPAIGN")
@pass_obj
def resume(obj, campaign_ref):
    """Resume a paused campaign. One that had not started goes back to scheduled for its own time."""
    row = run_async(_in_transaction(obj, lambda conn: campaigns.resume(conn, campaign_ref, utcnow(), site_zone(obj.config))))
    if row["state"] == "scheduled":
        click.echo(f"campaign {row['name']!r} resumed: scheduled for {_when(obj, row)}")
    else:
        click.echo(f"campaign {row['name']!r} resumed: running")


def _simple(action, verb):
    @campaign.command(name=action.__name__)
    @click.argument("campaign_ref", metavar="CAMPAIGN")
    @pass_obj
    def command(obj, campaign_ref):
        result = run_async(_in_transaction(obj, lambda conn: action(conn, campaign_ref, utcnow())))
        extra = f" ({result} unsent deliveries cancelled)" if isinstance(result, int) else ""
        click.echo(f"campaign {campaign_ref} {verb}{extra}")

    command.__doc__ = {"pause": "Pause a campaign: nothing more of it is sent until resumed.",
                       "cancel": "Cancel a campaign: every unsent delivery ends cancelled (with its CDR)."}[
        action.__name__]
    return command


_simple(campaigns.pause, "paused")
_simple(campaigns.cancel, "cancelled")


@campaign.command()
@click.argument("campaign_ref", metavar="CAMPAIGN")
@click.option("--interval", default=0.5, show_default=True, help="Seconds between refreshes.")
@click.option("--once", is_flag=True, help="Print the progress once and exit.")
@pass_obj
def watch(obj, campaign_ref, interval, once):
    """Live progress until the campaign ends: sent, failed, suppressed and waiting
    (adding up to the audience), rate, ETA, and why the waiting ones wait.

    On a terminal it is a progress bar; otherwise one line per change."""
    run_async(_watch(obj, campaign_ref, interval, once))


@campaign.command()
@click.argument("campaign_ref", metavar="CAMPAIGN")
@click.option("--at", "at", help="Check as if it started then (" + AT_HELP[:-1] + "). Default: its own time, or now.")
@json_option("name, kind, channel, start, audience, consent {current, night, due_soon, expired, withdrawn, "
             "none}, suppressed, waiting_for_night_rule [{count, until}], missing_fields {field: count}, "
             "unknown_books, problems [{code, message, blocking}], ready", shape="one object")
@pass_obj
def check(obj, campaign_ref, at, as_json):
    """What the campaign would do if it started now (or --at): audience, consent
    (advertising, night-time, two-year reconfirmation due), who waits for the
    night rule and until when, suppressed addresses, missing template fields,
    unknown books. Exits 1 when something blocks scheduling."""
    tz = site_zone(obj.config)
    when = parse_time(at, tz)

    report = run_async(_in_transaction(obj, lambda conn: campaigns.check(
        conn, campaign_ref, utcnow(), tz, start=when, refusal_numbers=campaigns.refusal_numbers(obj.config))))
    if as_json:
        write_json(obj, report.as_dict())
    else:
        for line in report.lines(tz):
            click.echo(line)
        click.echo("ready to schedule" if not report.blocking else
                   f"not ready: {len(report.blocking)} blocking problem(s); fix them or schedule with --force")
    if report.blocking:
        sys.exit(1)


@campaign.command(name="test")
@click.argument("campaign_ref", metavar="CAMPAIGN")
@click.option("--to", "to", required=True, help="The address to send the one test message to.")
@pass_obj
def test_(obj, campaign_ref, to):
    """Send one test message of the campaign to --to, as its recipients get it
    (label, sender block, refusal footer, tracking); it counts in none of the
    campaign's figures. Advertising needs the address's consent, tests too."""
    delivery_id = run_async(_in_transaction(obj, lambda conn: campaigns.test_send(conn, campaign_ref, to, utcnow())))
    click.echo(f"test of campaign {campaign_ref} to {to} queued as delivery {delivery_id}")


@campaign.command()
@click.argument("campaign_ref", metavar="CAMPAIGN")
@click.option("--delivery", "delivery_id", type=int, help="The message of this delivery (e.g. a test send).")
@click.option("--to", "to", help="As this address would get it (default: the first recipient).")
@json_option("subject, text, html, recipient, sender, delivery_id", shape="one object")
@pass_obj
def preview(obj, campaign_ref, delivery_id, to, as_json):
    """The campaign's email exactly as it is sent: subject and bodies with the
    (광고) label, sender block, 무료수신거부 footer and tracking links."""
    shown_ = run_async(_in_transaction(obj, lambda conn: campaigns.preview(
        conn, obj.config, campaign_ref, delivery_id, to, utcnow())))
    if as_json:
        write_json(obj, shown_.__dict__)
        return
    click.echo(f"From: {shown_.sender}\nTo: {shown_.recipient}\nSubject: {shown_.subject}\n")
    click.echo(shown_.text)


@campaign.command()
@click.argument("campaign_ref", metavar="CAMPAIGN")
@click.option("--name", "name", help="The copy's name (default: NAME (copy)).")
@pass_obj
def clone(obj, campaign_ref, name):
    """Copy a campaign as a new draft (template, kind, audience, throttle, tracking; no start time)."""

    async def work(conn):
        new_id = await campaigns.clone(conn, campaign_ref, utcnow(), name)
        return await campaigns.find(conn, new_id)

    row = run_async(_in_transaction(obj, work))
    click.echo(f"campaign {row['id']} {row['name']!r} created as a copy of {campaign_ref} (draft)")


@campaign.command()
@click.argument("campaign_ref", metavar="CAMPAIGN")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_obj
def delete(obj, campaign_ref, yes):
    """Delete a campaign that is not sending (cancel a running one first) and its
    deliveries; their CDR rows stay for billing."""
    if not yes:
        click.confirm(f"Delete campaign {campaign_ref} and its deliveries?", abort=True)
    row = run_async(_in_transaction(obj, lambda conn: campaigns.delete(conn, campaign_ref)))
    click.echo(f"campaign {row['name']!r} deleted")


@campaign.command()
@click.argument("campaign_ref", metavar="CAMPAIGN")
@click.argument("state", type=click.Choice(["on", "off"]))
@pass_obj
def track(obj, campaign_ref, state):
    """Turn engagement tracking (open pixel, signed click redirects) on or off
    for the campaign's messages not yet sent. Off unless turned on."""
    row = run_async(_in_transaction(obj, lambda conn: campaigns.set_tracking(conn, campaign_ref, state == "on")))
    click.echo(f"campaign {row['name']!r}: tracking {state}")


@campaign.command()
@click.argument("campaign_ref", metavar="CAMPAIGN")
@json_option("name, tracking, sent, delivered, bounced, failed, opened, clicked, clickers, refused, cost, "
             "channels {channel: {the same counts, cost}}", shape="one object")
@pass_obj
def stats(obj, campaign_ref, as_json):
    """Sent, delivered, bounced, failed, opened, clicked (each recipient and link
    once), refused and cost, in all and per channel. Test sends are not counted."""
    found = run_async(_in_transaction(obj, lambda conn: campaigns.stats(conn, campaign_ref)))
    if as_json:
        write_json(obj, found)
        return
    for key in campaigns.STAT_KEYS:
        click.echo(f"{key:>10}: {found[key]}")
    click.echo(f"{'cost':>10}: {found['cost']}")
    if not found["tracking"]:
        click.echo("(tracking is off: opens and clicks are not counted)")


ENDED = ("completed", "cancelled", "missed")


def _counts(progress) -> str:
    return (f"sent {progress.sent} failed {progress.failed} suppressed {progress.suppressed} "
            f"waiting {progress.waiting}")


def _total(progress) -> int:
    return max(progress.total, progress.done + progress.waiting)


async def _watch(obj, campaign_ref, interval, once):
    db = await ready_database(obj)
    tz = site_zone(obj.config)
    live = sys.stdout.isatty() and not once
    try:
        view = _BarView() if live else _LineView(once)
        with view:
            first = None
            while True:
                now = utcnow()
                async with db.connect() as conn:
                    progress = await campaigns.progress(conn, campaign_ref, now)
                clock = time.monotonic()
                first = first or (clock, progress.sent)
                rate = (progress.sent - first[1]) / (clock - first[0]) if clock > first[0] else 0
                view.show(progress, rate, progress.hold_lines(now, tz))
                if once or progress.state in ENDED:
                    break
                await asyncio.sleep(interval)
    finally:
        await db.close()


class _BarView:
    """A rich progress bar; the reasons for waiting are printed above it when they change."""

    def __init__(self):
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn  # only `watch` draws one

        columns = [TextColumn("[bold]{task.description}"), BarColumn(),
                   TextColumn("{task.completed}/{task.total}"), TextColumn("{task.fields[counts]}"),
                   TextColumn("{task.fields[rate]}/s"), TimeRemainingColumn()]
        self.bar = Progress(*columns, console=Console(stderr=False))
        self.task = None
        self.reasons: list[str] = []

    def __enter__(self):
        self.bar.__enter__()
        self.task = self.bar.add_task("", total=None, counts="", rate=0)
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def show(self, progress, rate: float, holds: list[str]) -> None:
        reasons = [_without_countdown(line) for line in holds]
        if reasons != self.reasons:
            self.reasons = reasons
            for line in holds:
                self.bar.console.print(f"  {line}", markup=False, highlight=False)
        self.bar.update(self.task, description=f"{progress.name} ({progress.state})", total=_total(progress),
                        completed=progress.done, counts=_counts(progress), rate=f"{rate:.0f}")


class _LineView:
    """Plain lines for a pipe or a log: one whenever the counts or reasons change."""

    def __init__(self, once: bool):
        self.once = once
        self.last = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def show(self, progress, rate: float, holds: list[str]) -> None:
        line = (f"{progress.name} ({progress.state}): {progress.done}/{_total(progress)} done, "
                f"{_counts(progress)}")
        key = (line, [_without_countdown(hold) for hold in holds])
        if key == self.last and not self.once:
            return
        self.last = key
        click.echo(line + (f", {rate:.0f}/s" if rate else ""))
        for hold in holds:
            click.echo(f"  {hold}")


def _without_countdown(line: str) -> str:
    """A hold line without its "(in 3 h 37 m)", to tell a new reason from the clock moving."""
    return line.split(" (in ")[0]


COMMANDS = [campaign]
