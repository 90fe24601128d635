"""Journey pages: the list of journeys and, for one, its flow drawn as boxes
(one per step, arrows to where each leads, a branch's cases labelled) with
how many customers are at each step now and how many passed through it.
Admins and marketers see them; the flow is read-only here (``ums journey``
creates, pauses, resumes and stops)."""

from __future__ import annotations

from urllib.parse import unquote

from ums.errors import UnknownJourney
from ums.journeys import engine
from ums.store import journeys as journey_store
from ums.web import HttpError, Router

from ..http import Page
from ..roles import MARKETERS

router = Router(roles=MARKETERS)


@router.get("/journeys", roles=MARKETERS)
async def list_page(page: Page):
    async with page.app.db.connect() as conn:
        rows = [await engine.summary(conn, row["name"]) for row in await journey_store.list_all(conn)]
    return page.app.render(page, "journeys.html", journeys=rows)


@router.get("/journeys/{name}", roles=MARKETERS)
async def flow_page(page: Page):
    name = unquote(page.params["name"], errors="replace")
    if len(name) > 64 or "\x00" in name:
        raise HttpError(404, "no such journey")
    async with page.app.db.connect() as conn:
        try:
            found = await engine.summary(conn, name)
        except UnknownJourney:
            raise HttpError(404, "no such journey") from None
    return page.app.render(page, "journey.html", journey=found, boxes=[box(step) for step in found["steps"]])


def box(step: dict) -> dict:
    """What one step's box shows: its id and kind, what it does, the counts and its arrows."""
    body = step.get(step["kind"]) or {}
    return {"id": step["id"], "kind": step["kind"], "what": _what(step["kind"], body),
            "at": step["at"], "passed": step["passed"], "arrows": _arrows(step, body)}


def _what(kind: str, body: dict) -> str:
    if kind == "send":
        return f"{body['channel']}: {body['template']}"
    if kind == "wait":
        if "duration" in body:
            return "wait " + _span(body["duration"])
        return f"until {body['until']} (customer's time)" if "until" in body else f"until the date in {body['field']}"
    if kind == "branch":
        return f"on {body['field']}" if "field" in body else f"on the outcome of {body.get('step') or 'the last send'}"
    return "goal reached" if kind == "goal" else "leave the journey"


def _arrows(step: dict, body: dict) -> list[tuple[str, str]]:
    """(label, target step) of each way out of the step; target "end" when the journey ends."""
    if step["kind"] in ("exit", "goal"):
        return []
    if step["kind"] == "branch":
        return [(label, target) for label, target in body["cases"]] + [
            ("otherwise", body.get("otherwise") or step["after"] or "end")]
    return [("", step["after"] or "end")]


def _span(seconds: int) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds % size == 0 and seconds >= size:
            count = seconds // size
            return f"{count} {unit if count != 1 else unit[:-1]}"
    return f"{seconds} seconds"
