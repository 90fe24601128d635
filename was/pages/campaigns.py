"""Campaign pages: list, create from a template and audience, schedule, pause,
resume, cancel, and a live progress view with a chart of deliveries over time."""

from __future__ import annotations

from datetime import datetime

from ums import campaigns as campaign_api
from ums.store import addressbooks, web
from ums.store import templates as template_store

from .. import localtime
from ..app import MARKETERS, router
from ..http import HttpError, Page, json_response, redirect

ACTIONS = ("schedule", "pause", "resume", "cancel")
OUTCOME_COLOURS = {"sent": "#1b7f3b", "failed": "#b3261e", "suppressed": "#9a5a00", "expired": "#7a5c99",
                   "cancelled": "#677086"}


def picked_time(page: Page, text: str | None) -> datetime | None:
    """A "send at" picker value, read in the site's time zone, as aware UTC."""
    try:
        return localtime.parse_local(text, page.app.tz)
    except ValueError:
        raise HttpError(400, f"bad time {text!r} (YYYY-MM-DD HH:MM)") from None


async def apply_action(page: Page, campaign: str, action: str, at: str | None = None) -> str:
    """Run a state change through the core campaign API; returns the new state."""
    if action not in ACTIONS:
        raise HttpError(400, f"unknown action {action!r} (schedule, pause, resume or cancel)")
    now = page.app.now()
    async with page.app.db.begin() as conn:
        if action == "schedule":
            return (await campaign_api.schedule(conn, campaign, picked_time(page, at), now))["state"]
        await getattr(campaign_api, action)(conn, campaign, now)
        return (await campaign_api.find(conn, campaign))["state"]


@router.get("/campaigns", roles=MARKETERS)
async def campaign_list(page: Page):
    async with page.app.db.connect() as conn:
        rows = await campaign_api.list_campaigns(conn)
        templates = await template_store.list_all(conn)
        books = await addressbooks.visible_books(conn, page.user["user_id"])
    return page.app.render(page, "campaigns.html", campaigns=rows, templates=templates, books=books,
                           flash=page.query.get("flash"))


@router.post("/campaigns", roles=MARKETERS)
async def create(page: Page):
    form = page.form
    template = form.get("template", "")
    channel, _, name = template.partition(":")
    data = {
        "name": form.get("name", "").strip(), "kind": form.get("kind", "transactional"),
        "channel": channel or "email", "template": name,
        "audience": {"books": page.form_list("books")},
    }
    if form.get("grade"):
        data["audience"]["segment"] = {"grade": [g.strip() for g in form["grade"].split(",") if g.strip()]}
    if form.get("schedule_at"):
        data["schedule"] = {"at": picked_time(page, form["schedule_at"]).isoformat()}
    spec = campaign_api.from_dict(data)
    spec.created_by = page.user["username"]
    async with page.app.db.begin() as conn:
        campaign_id = await campaign_api.create(conn, spec, page.app.now())
    return redirect(f"/campaigns/{campaign_id}")


@router.get("/campaigns/{id}", roles=MARKETERS)
async def detail(page: Page):
    async with page.app.db.connect() as conn:
        row = await campaign_api.find(conn, page.params["id"])
        progress = await campaign_api.progress(conn, row["id"])
        series = await web.campaign_timeline(conn, row["id"], page.app.tz)
    return page.app.render(page, "campaign.html", campaign=row, progress=progress, chart=chart(series),
                           colours=OUTCOME_COLOURS, flash=page.query.get("flash"))


@router.get("/campaigns/{id}/progress", roles=MARKETERS)
async def progress_json(page: Page):
    async with page.app.db.connect() as conn:
        row = await campaign_api.find(conn, page.params["id"])
        progress = await campaign_api.progress(conn, row["id"])
    total = max(progress.total, sum(progress.counts.values()))
    return json_response({
        "state": progress.state, "total": total, "counts": {**progress.counts, "done": progress.done,
                                                            "waiting": progress.waiting},
        "percent": round(100 * progress.done / total, 1) if total else 0,
    })


@router.post("/campaigns/{id}/{action}", roles=MARKETERS)
async def action(page: Page):
    state = await apply_action(page, page.params["id"], page.params["action"], page.form.get("at") or None)
    return redirect(f"/campaigns/{page.params['id']}?flash=Campaign+is+now+{state}")


def chart(series: list[tuple]) -> dict:
    """Bars per time bucket, stacked by outcome, for the SVG chart in the template."""
    buckets: dict[str, dict[str, int]] = {}
    channels: dict[str, int] = {}
    for bucket, channel, state, count in series:
        buckets.setdefault(bucket, {})
        buckets[bucket][state] = buckets[bucket].get(state, 0) + count
        channels[channel] = channels.get(channel, 0) + count
    peak = max((sum(values.values()) for values in buckets.values()), default=0)
    bars = []
    for index, (bucket, values) in enumerate(sorted(buckets.items())):
        y, stack = 180, []
        for state, count in sorted(values.items()):
            height = round(160 * count / peak) if peak else 0
            y -= height
            stack.append({"state": state, "count": count, "y": y, "height": height})
        bars.append({"label": bucket[-5:], "title": bucket, "x": 40 + index * 34, "stack": stack})
    return {"bars": bars, "peak": peak, "channels": channels, "width": max(200, 60 + 34 * len(bars))}
