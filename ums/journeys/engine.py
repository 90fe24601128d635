"""Advancing journeys: each due run does its steps until it must wait.

:func:`advance_due` (PASS calls it every ``[pass] journey_interval`` on its
clock) takes the runs whose ``next_at`` has come and advances each in a
transaction of its own: it first claims the run (compare-and-set on its
version, :func:`ums.store.journeys.move`), then does the steps — a send
makes its delivery through the delivery core (:func:`ums.outbox.enqueue`,
so PASS sends it like any other, with its CDR) and records it on the step —
and commits the run's new place with them. A second worker, or a worker
that died mid-step, therefore never does a step twice: the loser's claim
fails, and a dead worker's transaction (delivery included) never commits.

Before every send the customer's refusal is checked: an advertising journey
ends (``refused``) for a customer any of whose addresses refuses
advertising, and an address on the suppression list is never sent to. The
customer's preferred channel (preference centre) replaces the step's
channel when they have an address for it and the template exists for it;
a channel they turned off is never used.

A branch on an earlier send waits (looking again every interval) until one
of its cases holds or the delivery is final; then ``otherwise``. Waits are
times in the database (``next_at``), so they survive restarts and follow the
injected clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..addresses import is_valid, normalize
from ..channels import BUSY, NO_ANSWER
from ..clock import parse_time, zone
from ..db import retry_when_locked
from ..errors import JourneyExists, JourneyNotActive, UnknownJourney
from ..outbox import SendRequest, enqueue
from ..queue.states import is_final
from ..refusal import CONTACT_COLUMNS
from ..store import journeys as store
from ..store import preferences as preference_store
from ..store import suppression
from ..store import templates as template_store
from .. import preferences, tracking
from .definitions import Journey, Step, from_dict, pages_wanted, time_of_day

log = logging.getLogger("ums.journeys")
#: steps one run may do in one go (a flow that loops without waiting stops here)
MAX_HOPS = 50


class _Lost(Exception):
    """Another worker moved the run first."""


@dataclass
class Settings:
    #: how soon a branch still waiting for an outcome looks again
    recheck: timedelta = timedelta(seconds=5)
    batch: int = 500
    default_timezone: str = "Asia/Seoul"


# --- creating and entering ---------------------------------------------------------------

async def create(conn, journey: Journey, created_by: str | None, now: datetime) -> int:
    if await store.by_name(conn, journey.name):
        raise JourneyExists(name=journey.name)
    return await store.create(conn, journey.name, journey.kind, journey.event_type, journey.as_dict(),
                              created_by, now)


async def named(conn, name: str) -> dict:
    found = await store.by_name(conn, name)
    if found is None:
        raise UnknownJourney(name=name)
    return found


async def enter(conn, name: str, contact_ids: list[int], source: str, now: datetime) -> list[int]:
    """Put contacts into the active journey ``name`` (each once); returns the new runs."""
    row = await named(conn, name)
    if row["state"] != store.ACTIVE:
        raise JourneyNotActive(name=name, state=row["state"])
    return await store.enter(conn, row["id"], contact_ids, from_dict(row["definition"]).steps[0].id, source, now)


async def set_state(conn, name: str, state: str, now: datetime) -> dict:
    """Pause (runs wait where they are), resume or stop (every active run
    ends) journey ``name``; a stopped journey stays stopped. Returns
    ``{"name", "state", "stopped_runs"}``."""
    row = await named(conn, name)
    if row["state"] == store.STOPPED and state != store.STOPPED:
        raise JourneyNotActive(name=name, state=row["state"])
    await store.set_state(conn, row["id"], state, now)
    stopped = await store.stop_runs(conn, row["id"], now) if state == store.STOPPED else 0
    return {"name": name, "state": state, "stopped_runs": stopped}


async def summary(conn, name: str) -> dict:
    """A journey with its steps and, for each, how many customers are at it
    now and how many passed through it; ``ended`` counts ended runs by how."""
    row = await named(conn, name)
    journey = from_dict(row["definition"])
    counts = await store.step_counts(conn, row["id"])
    steps = [{**step.as_dict(), "kind": step.kind, "at": counts["at"].get(step.id, 0),
              "passed": _passed(step, counts), "after": journey.after(step)} for step in journey.steps]
    return {**{k: row[k] for k in ("id", "name", "kind", "event_type", "state", "created_by", "created_at")},
            "description": journey.description, "steps": steps, "ended": counts["ended"],
            "active": sum(counts["at"].values())}


def _passed(step: Step, counts: dict) -> int:
    """Runs that went through ``step``; a wait is written when it starts, so
    those still waiting at it have not passed it yet."""
    seen = counts["passed"].get(step.id, 0)
    return max(0, seen - counts["at"].get(step.id, 0)) if step.kind == "wait" else seen


# --- advancing ---------------------------------------------------------------------------

@dataclass
class Engine:
    db: object
    settings: Settings = field(default_factory=Settings)
    _journeys: dict[int, tuple[Journey, dict]] = field(default_factory=dict)

    async def advance_due(self, now: datetime) -> int:
        """Advance every run due at ``now``; returns how many moved."""
        async with self.db.connect() as conn:
            ids = await store.due(conn, now, self.settings.batch)
        moved = 0
        for run_id in ids:
            try:
                moved += await retry_when_locked(lambda: self.advance(run_id, now))
            except _Lost:
                continue
        return moved

    async def advance(self, run_id: int, now: datetime) -> bool:
        """Claim run ``run_id`` and do its due steps, all in one transaction."""
        async with self.db.begin() as conn:
            run = await store.run(conn, run_id)
            if run is None or run["state"] != store.ACTIVE or run["next_at"] > now:
                return False
            if not await store.move(conn, run, run["step"], run["state"], run["next_at"], now):
                raise _Lost()
            run["version"] += 1
            journey, row = await self._journey(conn, run["journey_id"])
            walk = _Walk(conn, self.settings, journey, row, run, now)
            await walk.go()
            if not await store.move(conn, run, walk.step_id, walk.state, walk.next_at, now):
                raise _Lost()
            return True

    async def _journey(self, conn, journey_id: int) -> tuple[Journey, dict]:
        if journey_id not in self._journeys:
            row = await store.by_id(conn, journey_id)
            self._journeys[journey_id] = (from_dict(row["definition"]), row)
        return self._journeys[journey_id]


class _Walk:
    """One run's steps from where it is until it must wait or ends."""

    def __init__(self, conn, settings: Settings, journey: Journey, row: dict, run: dict, now: datetime):
        self.conn, self.settings, self.journey, self.row, self.run, self.now = conn, settings, journey, row, run, now
        self.step_id: str | None = run["step"]
        self.state = store.ACTIVE
        self.next_at = now
        #: when the step at hand became due: the run's next_at for the first one
        self.since = run["next_at"]
        self.contact: dict | None = None
        #: steps done so far in this go (0: the step the run was due at)
        self.hops = 0

    async def go(self) -> None:
        self.contact = await store.contact_for_run(self.conn, self.run["contact_id"])
        for self.hops in range(MAX_HOPS):
            if self.step_id is None:
                await self._end("completed", "-", "completed")
                return
            step = self.journey.step(self.step_id)
            if not await _STEPS[step.kind](self, step):
                return
            self.since = self.now
        log.warning("journey run stopped after too many steps at once", extra={"run": self.run["id"]})
        self.next_at = self.now + self.settings.recheck

    async def _record(self, step: str, kind: str, outcome: str | None = None, delivery_id: int | None = None):
        await store.add_steps(self.conn, [{"run_id": self.run["id"], "step": step, "kind": kind,
                                           "outcome": (outcome or "")[:64] or None, "delivery_id": delivery_id,
                                           "at": self.now}])

    async def _end(self, state: str, step: str, kind: str, outcome: str | None = None) -> bool:
        await self._record(step, kind, outcome)
        self.state, self.step_id = state, None
        return False

    # --- the kinds of step: each returns True to go on at once ---------------------------

    async def send(self, step: Step) -> bool:
        advertising = self.journey.kind == "advertising"
        if self.contact is None:
            return await self._end("exited", step.id, "exit", "contact removed")
        if advertising and await _refuses_advertising(self.conn, self.contact):
            return await self._end("refused", step.id, "refused", "refused advertising")
        route = await self._route(step, advertising)
        if route is None:
            return await self._end("refused", step.id, "refused", f"no channel allowed for {step.channel}")
        channel, address = route
        request = SendRequest(
            channel=channel, recipient=address, template=step.template, kind=self.journey.kind,
            contact_id=self.contact["id"], service_name=f"journey:{self.journey.name}",
            variables={tracking.JOURNEY_VARIABLE: True} if self.journey.tracking and channel == "email" else {},
            expires_at=self.now + timedelta(seconds=step.expires_after) if step.expires_after else None)
        delivery_id = await enqueue(self.conn, request, self.now)
        await self._record(step.id, "send", channel, delivery_id)
        self.step_id = self.journey.after(step)
        return True

    async def _route(self, step: Step, advertising: bool) -> tuple[str, str] | None:
        """(channel, address): the preferred channel when the customer has an
        address and the template has a version for it, else the step's own —
        never a channel they turned off or an address on the suppression list."""
        chosen = await preference_store.get(self.conn, self.contact["id"])
        candidates = [step.channel]
        preferred = (chosen or {}).get("preferred_channel")
        if preferred and preferred != step.channel and _address(self.contact, preferred) \
                and await template_store.get(self.conn, step.template, preferred):
            candidates.append(preferred)
        for channel in preferences.ordered(candidates, chosen):
            address = _address(self.contact, channel)
            scope = await suppression.scope_of(self.conn, channel, address) if address else None
            if address and scope is None or (scope == suppression.ADVERTISING and not advertising):
                return channel, address
        return None

    async def wait(self, step: Step) -> bool:
        """Arriving, the run stays at the wait (``next_at`` its end); when that
        comes, it goes on to the next step."""
        if self.hops == 0 and await self._waiting_at(step.id):
            self.step_id = self.journey.after(step)
            return True
        until = self._wait_until(step)
        if until is None or until <= self.now:
            await self._record(step.id, "wait", "no wait" if until is None else "over")
            self.step_id = self.journey.after(step)
            return True
        await self._record(step.id, "wait", f"until {until.isoformat(timespec='seconds')}")
        self.next_at = until
        return False

    async def _waiting_at(self, step_id: str) -> bool:
        last = await store.last_step(self.conn, self.run["id"])
        return last is not None and last["step"] == step_id and last["kind"] == "wait"

    def _wait_until(self, step: Step) -> datetime | None:
        tz = zone((self.contact or {}).get("timezone"), self.settings.default_timezone)
        if step.seconds:
            return self.since + timedelta(seconds=step.seconds)
        if step.until:
            local = self.since.astimezone(tz)
            at = local.replace(hour=time_of_day(step.until).hour, minute=time_of_day(step.until).minute,
                               second=0, microsecond=0)
            return at if at > local else at + timedelta(days=1)
        value = _field(self.contact or {}, step.field)
        try:
            return parse_time(str(value), tz) if value else None
        except Exception:
            return None

    async def branch(self, step: Step) -> bool:
        if step.field:
            value = str(_field(self.contact or {}, step.field) or "").strip().lower()
            target = next((t for label, t in step.cases if label.strip().lower() == value), None)
            return await self._take(step, target, value or "(empty)")
        subject = step.step or self.journey.send_before(step).id
        facts = await self._facts(subject)
        signals = outcome_signals(facts)
        for label, target in step.cases:
            if holds(label, signals, facts):
                return await self._take(step, target, label)
        if facts is not None and not is_final(facts["state"]):
            self.next_at = self.now + self.settings.recheck   # look again: the outcome is not in yet
            return False
        return await self._take(step, None, "otherwise")

    async def _take(self, step: Step, target: str | None, label: str) -> bool:
        chosen = target or step.otherwise or self.journey.after(step)
        await self._record(step.id, "branch", label if target else "otherwise")
        self.step_id = chosen
        return True

    async def _facts(self, subject: str) -> dict | None:
        sends = [s for s in await store.steps_of(self.conn, self.run["id"]) if s["step"] == subject and s["kind"] == "send"]
        if not sends or sends[-1]["delivery_id"] is None:
            return None
        return await store.delivery_facts(self.conn, sends[-1]["delivery_id"])

    async def exit(self, step: Step) -> bool:
        return await self._end("exited", step.id, "exit")

    async def goal(self, step: Step) -> bool:
        return await self._end("goal", step.id, "goal")


_STEPS = {"send": _Walk.send, "wait": _Walk.wait, "branch": _Walk.branch, "exit": _Walk.exit, "goal": _Walk.goal}


# --- outcomes (pure: tests/unit/test_journey_branching.py) ---------------------------------

def outcome_signals(facts: dict | None) -> set[str]:
    """What holds of a send (``facts`` from :func:`ums.store.journeys.delivery_facts`;
    None: nothing was sent, which counts as failed)."""
    if facts is None:
        return {"failed"}
    state, channel = facts["state"], facts["channel"]
    found: set[str] = set()
    delivered = state == "sent" and not facts["bounced"]
    if delivered:
        found |= {"delivered", {"voice": "answered", "fax": "fax_delivered"}.get(channel, "delivered")}
    if "open" in facts["tracked"] or "click" in facts["tracked"]:
        found.add("opened")
    if "click" in facts["tracked"]:
        found.add("clicked")
    if "reply" in facts["inbound"]:
        found.add("replied")
    if state == "suppressed" or "refusal" in facts["inbound"]:
        found.add("refused")
    if facts["bounced"]:
        found.add("bounced")
    tried = [disposition for disposition, _, _ in facts["attempts"] if disposition in (NO_ANSWER, BUSY)]
    if is_final(state) and not delivered:
        found.add("failed")
        if tried:
            found.add("no_answer" if tried[-1] == NO_ANSWER else "busy")
    return found


def holds(label: str, signals: set[str], facts: dict | None) -> bool:
    """Whether a branch case (``opened``, ``fax_delivered>=2``…) holds."""
    pages = pages_wanted(label)
    if pages is None:
        return label in signals
    if "fax_delivered" not in signals:
        return False
    sent_pages = max((p or 0 for _, p, final in facts["attempts"] if final), default=0)
    return sent_pages >= pages


async def _refuses_advertising(conn, contact: dict) -> bool:
    for channel, address in _addresses(contact):
        if await suppression.scope_of(conn, channel, address) == suppression.ADVERTISING:
            return True
    return False


def _addresses(contact: dict) -> list[tuple[str, str]]:
    found = []
    for channel in CONTACT_COLUMNS:
        value = _address(contact, channel)
        if value:
            found.append((channel, normalize(channel, value)))
    return found


def _address(contact: dict, channel: str) -> str | None:
    value = (contact.get(CONTACT_COLUMNS[channel]) or "").strip()
    return value if value and is_valid(channel, value) else None


def _field(contact: dict, name: str):
    if name in contact and name not in ("attributes",):
        return contact[name]
    return (contact.get("attributes") or {}).get(name)
