"""Operator and finance pages: the dashboard (queue depth by state, send
rate, bounce and refusal rates over the last 24 hours, charts drawn as SVG
on the server), EPS services (list, detail, stop, resume) and billing (CDR
search, CSV download, the monthly report)."""

from __future__ import annotations

from datetime import datetime, timedelta

from ums import cdr as ums_cdr
from ums.queue.states import UNDELIVERED_STATES, DeliveryState
from ums.store import analytics
from ums.store import deliveries as delivery_store
from ums.store import services as service_store
from ums.store import web

from ums import clock
from ums.web import HttpError, Router

from .. import charts
from ..http import Page, Response, redirect
from ..roles import ALL_ROLES, FINANCE, OPERATORS

router = Router(roles=ALL_ROLES)

#: the dashboard's window, and the width of its send-rate buckets
WINDOW, RATE_STEP = timedelta(hours=24), timedelta(hours=1)
RATE_COLOURS = {"sent": "#1b7f3b", "failed": "#b3261e", "bounced": "#9a5a00", "refused": "#677086"}


def rates(finished: list[tuple], refusals: list[tuple], bounced: int) -> dict:
    """Sent and failed in the window, messages per minute, and the bounce and
    refusal rates as percentages of what was sent."""
    sent = sum(1 for _, _, state, _ in finished if state == "sent")
    failed = sum(1 for _, _, state, _ in finished if state in UNDELIVERED_STATES)
    minutes = WINDOW.total_seconds() / 60

    def percent(part: int) -> float:
        return round(100 * part / sent, 1) if sent else 0.0

    return {"sent": sent, "failed": failed, "per_minute": round(sent / minutes, 2), "bounced": bounced,
            "bounce_rate": percent(bounced), "refused": len(refusals), "refusal_rate": percent(len(refusals))}


@router.get("/dashboard", roles=OPERATORS)
async def dashboard(page: Page):
    now = page.app.now()
    since = now - WINDOW
    async with page.app.db.connect() as conn:
        queue = await delivery_store.stats(conn)
        finished = await analytics.finished_since(conn, since)
        refusals = await analytics.refusals_since(conn, since)
        bounced = await analytics.bounces_since(conn, since)
    depth: dict[str, dict[str, int]] = {}
    for state, channel, count in queue:
        depth.setdefault(state, {})[channel] = count
    events = [(when, "failed" if state in UNDELIVERED_STATES else state, 1)
              for when, _, state, _ in finished if state == DeliveryState.SENT or state in UNDELIVERED_STATES]
    events += [(when, "bounced", 1) for _, _, _, when in finished if when is not None and when >= since]
    events += [(when, "refused", 1) for when, _ in refusals]
    starts, series = charts.buckets(events, page.app.tz, RATE_STEP, until=now, since=since)
    chart = charts.line_chart(starts, series, RATE_COLOURS, "Messages per hour, last 24 hours", str(page.app.tz),
                              "chart-rate")
    channels = sorted({channel for values in depth.values() for channel in values})
    return page.app.render(page, "dashboard.html", depth=depth, channels=channels, rates=rates(finished, refusals, bounced),
                           chart=chart, pending=sum(sum(v.values()) for s, v in depth.items()
                                                    if s in delivery_store.PENDING_STATES))


@router.get("/services", roles=OPERATORS)
async def service_list(page: Page):
    async with page.app.db.connect() as conn:
        services = await service_store.list_services(conn)
    return page.app.render(page, "services.html", services=services, flash=page.query.get("flash"))


@router.get("/services/{name}", roles=OPERATORS)
async def service_detail(page: Page):
    async with page.app.db.connect() as conn:
        service = await service_store.get(conn, page.params["name"])
        versions = await service_store.versions(conn, page.params["name"]) if service else []
    if service is None:
        raise HttpError(404, "no such service")
    return page.app.render(page, "service.html", service=service, versions=versions, flash=page.query.get("flash"))


@router.post("/services/{name}/{action}", roles=OPERATORS)
async def service_action(page: Page):
    states = {"stop": "stopped", "resume": "active"}
    action = page.params["action"]
    if action not in states:
        raise HttpError(400, "stop or resume")
    async with page.app.db.begin() as conn:
        if not await service_store.set_state(conn, page.params["name"], states[action]):
            raise HttpError(404, "no such service")
    return redirect(f"/services/{page.params['name']}?flash=Service+{states[action]}")


def _cdr_period(page: Page) -> tuple[datetime | None, datetime | None]:
    """The From/To date pickers as whole days in the site's time zone."""
    try:
        return clock.day_range(page.query.get("from"), page.query.get("to"), page.app.tz)
    except ValueError:
        raise HttpError(400, "bad date (use YYYY-MM-DD)") from None


def _month(page: Page) -> tuple[datetime, datetime]:
    try:
        return clock.month_range(page.query.get("month"), page.app.now(), page.app.tz)
    except ValueError:
        raise HttpError(400, f"bad month {page.query.get('month')!r} (YYYY-MM)") from None


async def _cdr_rows(page: Page, limit: int) -> list[dict]:
    start, end = _cdr_period(page)
    async with page.app.db.connect() as conn:
        return await web.cdr_search(conn, start, end, page.query.get("medium") or None,
                                    page.query.get("dst") or None, limit)


@router.get("/billing", roles=FINANCE)
async def billing(page: Page):
    start, end = _month(page)
    rows = await _cdr_rows(page, 200)
    async with page.app.db.connect() as conn:
        report = await web.billing_month(conn, start, end)
    totals = {key: sum(row[key] or 0 for row in report) for key in ("messages", "delivered", "pages", "billsec", "cost")}
    return page.app.render(page, "billing.html", rows=rows, report=report, totals=totals,
                           month=start.astimezone(page.app.tz).strftime("%Y-%m"))


@router.get("/billing/cdr.csv", roles=FINANCE)
async def cdr_csv(page: Page):
    rows = await _cdr_rows(page, 1_000_000)
    response = Response(ums_cdr.to_csv(reversed(rows)), 200, "text/csv; charset=utf-8")
    response.headers["content-disposition"] = 'attachment; filename="cdr.csv"'
    return response
