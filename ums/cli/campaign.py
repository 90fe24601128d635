"""`ums campaign create|list|show|schedule|pause|resume|cancel|watch`."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from .. import campaigns
from ..store import utcnow
from .common import pass_obj, ready_database, run_async


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time (e.g. 2026-12-01T09:00+09:00)") from None
    return moment if moment.tzinfo else moment.astimezone(timezone.utc)


async def _in_transaction(obj, work):
    db = await ready_database(obj)
    try:
        async with db.begin() as conn:
            return await work(conn)
    finally:
        await db.close()


@click.group()
def campaign():
    """Marketing campaigns: create from a file, schedule, watch, pause, resume, cancel."""


@campaign.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--schedule", "schedule_now", is_flag=True, help="Schedule it right away (its time, cron, or now).")
@click.option("--by", "created_by", default=None, help="Account charged for it (CDR accountcode).")
@pass_obj
def create(obj, file, schedule_now, created_by):
    """Create a campaign from an XML or JSON FILE (see config/samples/)."""
    spec = campaigns.load_file(file)
    if created_by:
        spec.created_by = created_by

    async def work(conn):
        now = utcnow()
        campaign_id = await campaigns.create(conn, spec, now)
        row = await campaigns.schedule(conn, campaign_id, None, now) if schedule_now else None
        return campaign_id, row

    campaign_id, row = run_async(_in_transaction(obj, work))
    click.echo(f"campaign {campaign_id} {spec.name!r} created" +
               (f", scheduled for {row['schedule_at']:%Y-%m-%d %H:%M %Z}" if row else " (draft)"))


@campaign.command(name="list")
@pass_obj
def list_(obj):
    """List campaigns, newest first."""
    rows = run_async(_in_transaction(obj, campaigns.list_campaigns))
    table = Table(box=None, header_style="bold")
    for column in ("id", "name", "kind", "channel", "state", "scheduled", "total"):
        table.add_column(column)
    for row in rows:
        when = f"{row['schedule_at']:%Y-%m-%d %H:%M}" if row["schedule_at"] else (row["cron"] or "")
        table.add_row(str(row["id"]), row["name"], row["kind"], row["channel"], row["state"], when, str(row["total"]))
    Console(width=140).print(table)


@campaign.command()
@click.argument("campaign_ref", metavar="CAMPAIGN")
@pass_obj
def show(obj, campaign_ref):
    """Show a campaign (by id or name) and its deliveries by state."""

    async def work(conn):
        return await campaigns.find(conn, campaign_ref), await campaigns.progress(conn, campaign_ref)

    row, progress = run_async(_in_transaction(obj, work))
    for key in ("id", "name", "kind", "channel", "template_name", "state", "schedule_at", "cron",
                "throttle", "expires_after", "total", "started_at", "finished_at", "created_by"):
        click.echo(f"{key:>14}: {row[key] if row[key] is not None else ''}")
    click.echo(f"{'audience':>14}: {row['audience']}")
    for state, count in sorted(progress.counts.items()):
        click.echo(f"{state:>14}: {count}")


@campaign.command()
@click.argument("campaign_ref", metavar="CAMPAIGN")
@click.option("--at", "at", help="When to start (ISO 8601); default: its own time, cron, or now.")
@pass_obj
def schedule(obj, campaign_ref, at):
    """Schedule a draft campaign; PASS starts it when due."""
    when = parse_time(at)
    row = run_async(_in_transaction(obj, lambda conn: campaigns.schedule(conn, campaign_ref, when, utcnow())))
    click.echo(f"campaign {row['name']!r} scheduled for {row['schedule_at']:%Y-%m-%d %H:%M %Z}")


def _simple(action, verb):
    @campaign.command(name=action.__name__)
    @click.argument("campaign_ref", metavar="CAMPAIGN")
    @pass_obj
    def command(obj, campaign_ref):
        result = run_async(_in_transaction(obj, lambda conn: action(conn, campaign_ref, utcnow())))
        extra = f" ({result} unsent deliveries cancelled)" if isinstance(result, int) else ""
        click.echo(f"campaign {campaign_ref} {verb}{extra}")

    command.__doc__ = {"pause": "Pause a campaign: nothing more of it is sent until resumed.",
                       "resume": "Resume a paused campaign.",
                       "cancel": "Cancel a campaign: every unsent delivery ends cancelled (with its CDR)."}[
        action.__name__]
    return command


_simple(campaigns.pause, "paused")
_simple(campaigns.resume, "resumed")
_simple(campaigns.cancel, "cancelled")


@campaign.command()
@click.argument("campaign_ref", metavar="CAMPAIGN")
@click.option("--interval", default=0.5, show_default=True, help="Seconds between refreshes.")
@pass_obj
def watch(obj, campaign_ref, interval):
    """A live progress bar: sent, failed, waiting, rate and ETA, until the campaign ends."""
    run_async(_watch(obj, campaign_ref, interval))


async def _watch(obj, campaign_ref, interval):
    db = await ready_database(obj)
    columns = [TextColumn("[bold]{task.description}"), BarColumn(),
               TextColumn("{task.completed}/{task.total}"),
               TextColumn("sent {task.fields[sent]} failed {task.fields[failed]} waiting {task.fields[waiting]}"),
               TextColumn("{task.fields[rate]}/s"), TimeRemainingColumn()]
    try:
        with Progress(*columns, console=Console(stderr=False)) as bar:
            task = bar.add_task(str(campaign_ref), total=None, sent=0, failed=0, waiting=0, rate=0)
            first = None
            while True:
                async with db.connect() as conn:
                    progress = await campaigns.progress(conn, campaign_ref)
                now = time.monotonic()
                first = first or (now, progress.sent)
                rate = (progress.sent - first[1]) / (now - first[0]) if now > first[0] else 0
                bar.update(task, description=f"{progress.name} ({progress.state})",
                           total=max(progress.total, progress.done + progress.waiting), completed=progress.done,
                           sent=progress.sent, failed=progress.failed, waiting=progress.waiting, rate=f"{rate:.0f}")
                if progress.state in ("completed", "cancelled", "missed"):
                    break
                await asyncio.sleep(interval)
    finally:
        await db.close()


COMMANDS = [campaign]
