"""Operator and finance pages: EPS services (list, detail, stop, resume) and
billing (CDR search, CSV download, the monthly report)."""

from __future__ import annotations

from datetime import datetime

from ums import cdr as ums_cdr
from ums.store import services as service_store
from ums.store import web

from ums import clock
from ums.web import HttpError, Router

from ..http import Page, Response, redirect
from ..roles import ALL_ROLES, FINANCE, OPERATORS

router = Router(roles=ALL_ROLES)


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
