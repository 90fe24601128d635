"""Campaign pages: list, create from a template and audience (advertising
with its sender's name, contact and refusal number), the pre-send check
panel, schedule (or start now; refused while the check blocks, unless
overridden), pause, resume, cancel, preview, test send, tracking on/off,
clone, delete, a live progress view and the results with SVG charts over
time (sent … refused, per channel, cost).

The contract on time (shared with the API, which calls :func:`create_campaign`
and :func:`apply_action`):

* every time typed in a form is read by :func:`ums.clock.parse_time` in the
  site's zone (``[ums] timezone``) — an offset such as ``+09:00`` or ``Z`` is
  honoured; a bad time is a 400 with the reason (:class:`ums.clock.BadTime`);
* a start time in the past is refused with :class:`ums.campaigns.PastStart`,
  shown on the page as an error (400), when creating as when scheduling;
* resuming keeps the due time: a campaign that never started goes back to
  ``scheduled`` for its own time (:func:`ums.campaigns.resume`);
* the campaign page says why waiting deliveries wait and until when
  (:meth:`ums.campaigns.Progress.hold_lines`), every time on it names its
  zone, and its figures — sent, failed, suppressed, waiting — add up to the
  total (:func:`figures`).
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote, unquote

from ums import campaigns as campaign_api
from ums import clock
from ums.errors import UmsError
from ums.store import addressbooks, web
from ums.store import templates as template_store
from ums.web import HttpError, Router

from .. import charts
from ..http import Page, Response, json_response, path_id, redirect
from ..roles import ALL_ROLES, MARKETERS

router = Router(roles=ALL_ROLES)

ACTIONS = ("schedule", "pause", "resume", "cancel")
OUTCOME_COLOURS = {"sent": "#1b7f3b", "failed": "#b3261e", "suppressed": "#9a5a00", "expired": "#7a5c99",
                   "cancelled": "#677086"}


# --- shared with the API ----------------------------------------------------------------------

def reference(text: str) -> int | str:
    """The campaign a path segment names: an id within the database's range,
    or a name (percent-decoded) of at most 128 characters; 404 otherwise."""
    text = unquote(text, errors="replace")
    found = path_id(text) if text.isdigit() else text
    if found is None or (isinstance(found, str) and (len(found) > 128 or "\x00" in found)):
        raise HttpError(404, "no such campaign")
    return found


async def find(conn, text: str) -> dict:
    """The campaign row a path segment names, or a 404."""
    try:
        return await campaign_api.find(conn, reference(text))
    except campaign_api.UnknownCampaign:
        raise HttpError(404, "no such campaign") from None


def picked_time(page: Page, text: str | None) -> datetime | None:
    """A "send at" value (form picker or API), read in the site's time zone, as
    aware UTC; ``None`` when empty. Raises :class:`ums.clock.BadTime`."""
    return clock.parse_time(text, page.app.tz)


def check_start(spec: campaign_api.CampaignSpec, now: datetime, tz) -> None:
    """Refuse a new campaign whose own one-off start time has already passed
    (:class:`ums.campaigns.PastStart`); a cron schedule always has a next time."""
    if spec.schedule_at is not None:
        campaign_api.start_time({"name": spec.name, "cron": spec.cron, "schedule_at": spec.schedule_at},
                                None, now, tz=tz)


async def create_campaign(page: Page, spec: campaign_api.CampaignSpec, conn=None, sender: dict | None = None) -> int:
    """Store ``spec`` as a draft made by the logged-in user; returns its id.
    ``sender`` (the form's sender name, contact and refusal number) is
    required for advertising unless the template has them
    (:func:`ums.campaigns.settle_sender`). In ``conn``'s transaction when
    given (the API's idempotent requests), else in its own."""
    now = page.app.now()
    check_start(spec, now, page.app.tz)
    spec.created_by = page.user["username"][:64]
    if conn is not None:
        return await _create(conn, spec, now, sender)
    async with page.app.db.begin() as conn:
        return await _create(conn, spec, now, sender)


async def _create(conn, spec: campaign_api.CampaignSpec, now: datetime, sender: dict | None) -> int:
    if sender is not None:
        await campaign_api.settle_sender(conn, spec, now, **sender)
    return await campaign_api.create(conn, spec, now)


async def apply_action(page: Page, campaign: int | str, action: str, at: str | None = None,
                       start_now: bool = False, conn=None, force: bool = False) -> dict:
    """Run a state change through the core campaign API; returns the campaign
    row as it now is. ``schedule`` starts it at ``at`` (site zone), now
    (``start_now``), or at its own time, and revives a missed or cancelled one;
    unless ``force``, the pre-send check's blocking problems refuse it
    (:class:`ums.campaigns.NotReady`). In ``conn``'s transaction when given, else in its own."""
    if action not in ACTIONS:
        raise HttpError(400, f"unknown action {action!r} (schedule, pause, resume or cancel)")
    if conn is None:
        async with page.app.db.begin() as conn:
            return await _apply(page, conn, campaign, action, at, start_now, force)
    return await _apply(page, conn, campaign, action, at, start_now, force)


async def _apply(page: Page, conn, campaign: int | str, action: str, at: str | None, start_now: bool,
                 force: bool) -> dict:
    now = page.app.now()
    if action == "schedule":
        return await campaign_api.schedule_checked(conn, campaign, picked_time(page, at), now, start_now,
                                                   page.app.tz, force, refusal_numbers(page), revive=True)
    if action == "resume":
        return await campaign_api.resume(conn, campaign, now, page.app.tz)
    await getattr(campaign_api, action)(conn, campaign, now)
    return await campaign_api.find(conn, campaign)


def refusal_numbers(page: Page) -> dict:
    return campaign_api.refusal_numbers(page.app.ctx.config)


def figures(progress: campaign_api.Progress) -> dict:
    """What the page counts: sent, failed (or expired), suppressed (or
    cancelled) and waiting add up to ``total``; ``done`` is the first three."""
    total = progress.done + progress.waiting
    return {"sent": progress.sent, "failed": progress.failed, "suppressed": progress.suppressed,
            "waiting": progress.waiting, "done": progress.done, "total": total,
            "percent": round(100 * progress.done / total, 1) if total else 0}


# --- pages --------------------------------------------------------------------------------------

@router.get("/campaigns", roles=MARKETERS)
async def campaign_list(page: Page):
    return await list_page(page)


async def list_page(page: Page, status: int = 200, error: str | None = None, form: dict | None = None) -> Response:
    async with page.app.db.connect() as conn:
        rows = await campaign_api.list_campaigns(conn)
        templates = await template_store.list_all(conn)
        books = await addressbooks.visible_books(conn, page.user["user_id"])
    senders = {(t["name"], t["channel"]): t for t in templates}
    return page.app.render(page, "campaigns.html", status=status, campaigns=rows, templates=templates,
                           senders=senders, books=books, flash=page.query.get("flash"), error=error, form=form or {},
                           chosen_books=page.form_list("books") if form else [])


def form_spec(page: Page) -> campaign_api.CampaignSpec:
    """The new-campaign form as a spec; its "send at" is read in the site's zone."""
    form = page.form
    channel, _, name = form.get("template", "").partition(":")
    data = {
        "name": form.get("name", "").strip(), "kind": form.get("kind", "transactional"),
        "channel": channel or "email", "template": name,
        "audience": {"books": page.form_list("books")},
    }
    if form.get("grade"):
        data["audience"]["segment"] = {"grade": [g.strip() for g in form["grade"].split(",") if g.strip()]}
    if form.get("schedule_at"):
        data["schedule"] = {"at": form["schedule_at"]}
    return campaign_api.from_dict(data, page.app.tz)


@router.post("/campaigns", roles=MARKETERS)
async def create(page: Page):
    form = page.form
    sender = {key: form.get(key, "") for key in ("sender_name", "sender_contact", "refusal_number")}
    try:
        campaign_id = await create_campaign(page, form_spec(page), sender=sender)
    except UmsError as exc:
        return await list_page(page, 400, str(exc), page.form)
    return redirect(f"/campaigns/{campaign_id}")


@router.get("/campaigns/{id}", roles=MARKETERS)
async def detail(page: Page):
    return await detail_page(page)


#: states in which the pre-send check is shown (the campaign may still be scheduled)
CHECKED_STATES = ("draft", "scheduled", "missed", "cancelled", "paused")
METRIC_COLOURS = {"sent": "#1f5fbf", "delivered": "#1b7f3b", "bounced": "#b3261e", "failed": "#7a5c99",
                  "opened": "#0f8b8d", "clicked": "#9a5a00", "refused": "#677086"}


async def detail_page(page: Page, status: int = 200, error: str | None = None) -> Response:
    now, tz = page.app.now(), page.app.tz
    async with page.app.db.connect() as conn:
        row = await find(conn, page.params["id"])
        progress = await campaign_api.progress(conn, row["id"], now)
        series = await web.campaign_timeline(conn, row["id"], tz)
        report = None
        if row["state"] in CHECKED_STATES:
            report = await campaign_api.check(conn, row["id"], now, tz, refusal_numbers=refusal_numbers(page))
        counted = await campaign_api.stats(conn, row["id"])
        analytics = analytics_charts(await campaign_api.moments(conn, row), page)
    return page.app.render(page, "campaign.html", status=status, campaign=row, progress=progress,
                           figures=figures(progress), holds=progress.hold_lines(now, tz), chart=chart(series),
                           colours=OUTCOME_COLOURS, flash=page.query.get("flash"), error=error, check=report,
                           stats=counted, analytics=analytics,
                           test_delivery=page.query.get("test"))


def analytics_charts(moments: list[tuple], page: Page) -> dict:
    """The campaign's figures over time (sent … refused, and cost), in all and per channel, as SVG."""
    tz, zone_name = page.app.tz, str(page.app.tz)
    counts = [(when, metric, 1) for when, _, metric, _ in moments if metric != "cost"]
    starts, series = charts.buckets(counts, tz)
    cost_starts, cost = charts.buckets([(when, "cost", amount) for when, _, metric, amount in moments
                                        if metric == "cost"], tz)
    found = {"all": charts.line_chart(starts, series, METRIC_COLOURS, "Campaign figures over time", zone_name,
                                      "chart-metrics") if starts else None,
             "cost": charts.line_chart(cost_starts, cost, {"cost": "#333"}, "Cost over time", zone_name,
                                       "chart-cost") if cost_starts else None,
             "channels": {}}
    for channel in sorted({channel for _, channel, _, _ in moments}):
        per = [(when, metric, 1) for when, c, metric, _ in moments if c == channel and metric != "cost"]
        channel_starts, channel_series = charts.buckets(per, tz)
        if channel_starts:
            found["channels"][channel] = charts.line_chart(channel_starts, channel_series, METRIC_COLOURS,
                                                           f"{channel} over time", zone_name, f"chart-{channel}")
    return found


@router.get("/campaigns/{id}/progress", roles=MARKETERS)
async def progress_json(page: Page):
    now = page.app.now()
    async with page.app.db.connect() as conn:
        row = await find(conn, page.params["id"])
        progress = await campaign_api.progress(conn, row["id"], now)
    counted = figures(progress)
    return json_response({
        "state": progress.state, "total": counted["total"], "percent": counted["percent"],
        "counts": {key: counted[key] for key in ("sent", "failed", "suppressed", "waiting", "done", "total")},
        "holds": progress.hold_lines(now, page.app.tz),
    })


@router.post("/campaigns/{id}/{action}", roles=MARKETERS)
async def action(page: Page):
    form = page.form
    try:
        row = await apply_action(page, reference(page.params["id"]), page.params["action"], form.get("at") or None,
                                 start_now=bool(form.get("now")), force=bool(form.get("force")))
    except (campaign_api.UnknownCampaign, HttpError):
        raise
    except UmsError as exc:
        return await detail_page(page, 400, str(exc))
    return redirect(f"/campaigns/{page.params['id']}?flash=Campaign+is+now+{row['state']}")


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


# --- the workflow: preview, test send, clone, delete, tracking ---------------------------------

#: the HTML body of a preview runs nothing and fetches nothing (not even the open pixel: looking is no open)
PREVIEW_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox"


async def _preview(page: Page) -> tuple[dict, campaign_api.Preview]:
    delivery = page.query.get("delivery") or None
    delivery_id = path_id(delivery) if delivery else None
    if delivery and delivery_id is None:
        raise HttpError(400, "delivery must be a delivery id")
    async with page.app.db.begin() as conn:
        row = await find(conn, page.params["id"])
        try:
            return row, await campaign_api.preview(conn, page.app.ctx.config, row["id"], delivery_id,
                                                   page.query.get("to") or None, page.app.now())
        except campaign_api.CampaignError as exc:
            raise HttpError(400, str(exc)) from None


@router.get("/campaigns/{id}/preview", roles=MARKETERS)
async def preview(page: Page):
    row, shown = await _preview(page)
    return page.app.render(page, "campaign_preview.html", campaign=row, preview=shown)


@router.get("/campaigns/{id}/preview.html", roles=MARKETERS)
async def preview_html(page: Page):
    _, shown = await _preview(page)
    return Response(shown.html or "", 200, headers={"content-security-policy": PREVIEW_CSP})


@router.post("/campaigns/{id}/test", roles=MARKETERS)
async def test_send(page: Page):
    try:
        async with page.app.db.begin() as conn:
            row = await find(conn, page.params["id"])
            delivery_id = await campaign_api.test_send(conn, row["id"], page.form.get("to", ""), page.app.now())
    except campaign_api.CampaignError as exc:
        return await detail_page(page, 400, str(exc))
    return redirect(f"/campaigns/{row['id']}?test={delivery_id}&flash=Test+queued+as+delivery+{delivery_id}")


@router.post("/campaigns/{id}/clone", roles=MARKETERS)
async def clone(page: Page):
    try:
        async with page.app.db.begin() as conn:
            row = await find(conn, page.params["id"])
            new_id = await campaign_api.clone(conn, row["id"], page.app.now(), page.form.get("name") or None,
                                              created_by=page.user["username"][:64])
    except campaign_api.CampaignError as exc:
        return await detail_page(page, 400, str(exc))
    return redirect(f"/campaigns/{new_id}?flash=Copied+from+{quote(row['name'])}")


@router.post("/campaigns/{id}/delete", roles=MARKETERS)
async def delete(page: Page):
    try:
        async with page.app.db.begin() as conn:
            row = await campaign_api.delete(conn, (await find(conn, page.params["id"]))["id"])
    except campaign_api.CampaignError as exc:
        return await detail_page(page, 400, str(exc))
    return redirect(f"/campaigns?flash=Campaign+{quote(row['name'])}+deleted")


@router.post("/campaigns/{id}/tracking", roles=MARKETERS)
async def tracking(page: Page):
    wanted = page.form.get("tracking")
    if wanted not in ("on", "off"):
        raise HttpError(400, "tracking must be on or off")
    try:
        async with page.app.db.begin() as conn:
            row = await campaign_api.set_tracking(conn, (await find(conn, page.params["id"]))["id"], wanted == "on")
    except campaign_api.CampaignError as exc:
        return await detail_page(page, 400, str(exc))
    return redirect(f"/campaigns/{row['id']}?flash=Tracking+{wanted}")
