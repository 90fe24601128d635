"""PASS's database half: what one queue transaction does.

A batch records finished attempts (each delivery's new state and its CDR row
together), hands back deliveries that must not go now, then leases the next
due deliveries, applies the send-time policy to them (ending or holding what
must not go) and prepares the rest for sending — one transaction, one commit.

:class:`QueueBatches` keeps what batches share (the rows of leased
deliveries, campaign and template caches) and nothing the event loop uses, so
it can live in a process of its own (:class:`ums.db.writer.ProcessWriter`) and
use the second core while the event loop sends. Only plain data crosses over:
:class:`Ready` deliveries go out, ``(delivery id, Outcome)`` results and
:class:`Held` deliveries come back. The caller passes the time, so a clock
injected in tests holds here too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from ums import caps
from ums.addresses import normalize
from ums.channels import Delivery, Outcome
from ums.db import retry_when_locked
from ums.holds import Hold
from ums.outbox import settled_kind
from ums.queue import after_send, lanes, records
from ums.queue.states import DeliveryState, StateChange
from ums.store import campaigns as campaign_store
from ums.store import caps as cap_store
from ums.store import contacts as contact_store
from ums.store import deliveries as queue
from ums.store import preferences as preference_store
from ums.store import suppression
from ums.store import templates as template_store

from . import policy

CONTACT_FIELDS = ("name", "email", "fax", "phone", "grade", "customer_id", "locale", "timezone")
#: how long a cached campaign state or template is trusted inside a claim
CAMPAIGN_FRESH = 0.25
TEMPLATE_FRESH = 5.0


@dataclass(frozen=True)
class Settings:
    """What batches need from the configuration (plain values: it is pickled)."""

    worker_id: str
    channels: tuple[str, ...]
    lease_seconds: float
    claim_most: int
    rates: dict
    from_address: str
    default_timezone: str
    misfire_grace: timedelta
    retry: after_send.Retry
    #: ``[policy]`` frequency caps (ums.caps)
    caps: caps.Limits = caps.Limits()


@dataclass
class Ready:
    """A leased delivery that passed the policy, for the event loop to send."""

    delivery: Delivery
    campaign_id: int | None
    lane: str = lanes.Lane.NOTICE.value


@dataclass
class Held:
    """A leased delivery going back to the queue unsent (paused, stopping, a full
    window) — or, with state ``cancelled``, ending unsent because its campaign was
    cancelled while it waited in memory."""

    delivery_id: int
    due_at: datetime | None = None
    state: str = DeliveryState.QUEUED.value
    reason: str | None = None
    #: why it waits (a :class:`ums.holds.Hold`; None: simply back in line)
    hold: Hold | None = None


@dataclass
class Batch:
    """One queue transaction's work: record ``results``, release ``holds``, end
    ``suppressed_late`` (suppressed after their claim), then lease up to
    ``claim`` more of every lane (highest first) — or, when memory has no
    room for that, up to ``priority_claim`` urgent and notice deliveries.

    The priority claim rides on every batch that claims nothing else — a few
    index lookups — so an alert that became durable while a campaign keeps
    memory full is leased by the very next batch, not after the backlog."""

    now: datetime
    results: list[tuple[int, Outcome]] = field(default_factory=list)
    holds: list[Held] = field(default_factory=list)
    suppressed_late: list[int] = field(default_factory=list)
    claim: int = 0
    priority_claim: int = 0
    #: the lanes ``claim`` takes: all of them, or marketing alone while the priority
    #: claimer has room for the rest (a campaign's long batch must not lock an alert)
    claim_lanes: tuple[str, ...] = lanes.ORDER


@dataclass
class BatchResult:
    ready: list[Ready] = field(default_factory=list)
    #: the campaigns of ``ready`` (id → name, created_by, state, throttle)
    campaigns: dict[int, dict] = field(default_factory=dict)
    #: the claim came back short: nothing more is due right now
    claimed_short: bool = False
    sent: int = 0
    failed: int = 0
    retried: int = 0
    ended_by_policy: int = 0
    #: results not recorded because another worker holds the lease now
    lost: list[int] = field(default_factory=list)

    def count(self, state: str) -> None:
        """Count one recorded attempt that left its delivery in ``state``."""
        if state == DeliveryState.SENT.value:
            self.sent += 1
        elif state == DeliveryState.RETRY.value:
            self.retried += 1
        else:   # failed or expired: a delivered attempt is the only other outcome
            self.failed += 1


class QueueBatches:
    def __init__(self, settings: Settings):
        self.settings = settings
        #: rows of deliveries leased to this worker, read when claimed
        self.leased: dict[int, dict] = {}
        self.campaigns: dict[int, dict] = {}
        self.campaigns_read: dict[int, float] = {}
        self.templates: dict[tuple[str, str], tuple[float, dict | None]] = {}

    # --- the transactions ------------------------------------------------------------------

    def record_and_claim(self, conn: Connection, batch: Batch) -> BatchResult:
        """Do ``batch`` in one transaction (see :class:`Batch`)."""
        done, now = BatchResult(), batch.now
        self._record(conn, now, batch.results, done)
        self._release(conn, batch.holds, now, done)
        if batch.suppressed_late:
            rows = self._rows(conn, batch.suppressed_late)
            unsubscribed = policy.Decision(policy.END, "suppressed", "suppressed",
                                           "address suppressed after the delivery was queued")
            self._end_by_policy(conn, [(row, unsubscribed) for row in rows], now, done)
        if batch.claim > 0:   # lane by lane, highest first: urgent and notice come first anyway
            self._claim(conn, now, batch.claim, batch.claim_lanes, done)
        elif batch.priority_claim > 0:
            self._claim(conn, now, batch.priority_claim, lanes.PRIORITY, done)
        return done

    def claim_priority(self, conn: Connection, now: datetime, limit: int) -> BatchResult:
        """Lease up to ``limit`` due urgent and notice deliveries, apart from the
        campaign's batches (PASS's priority claimer, on a connection of its
        own). Their rows are not kept: the batch that records them reads them again."""
        done = BatchResult()
        self._claim(conn, now, limit, lanes.PRIORITY, done)
        self.leased.clear()
        return done

    def renew(self, conn: Connection, until: datetime) -> int:
        return queue.renew(conn, self.settings.worker_id, until)

    def release_all(self, conn: Connection, now: datetime) -> int:
        self.leased.clear()
        return queue.release_all(conn, self.settings.worker_id, now)

    # --- claiming ------------------------------------------------------------------

    def _claim(self, conn: Connection, now: datetime, limit: int, lanes_wanted: tuple[str, ...],
               done: BatchResult) -> None:
        settings = self.settings
        limit = min(limit, settings.claim_most)
        lease = now + timedelta(seconds=settings.lease_seconds)
        rows = queue.claim(conn, settings.worker_id, now, lease, limit, channels=list(settings.channels),
                           lanes_wanted=lanes_wanted)
        if lanes_wanted != lanes.PRIORITY:
            done.claimed_short = len(rows) < limit
        if not rows:
            return
        self.leased.update((row["id"], row) for row in rows)
        ctx = policy.Context(now, settings.default_timezone, settings.misfire_grace, settings.caps)
        ended, holds = [], []
        for candidate in self._candidates(conn, rows, now):
            decision = policy.decide(candidate, ctx)
            if decision is None:
                if candidate.sent_advertising is not None:
                    candidate.sent_advertising.note(candidate.row["contact_id"], now)
                done.ready.append(Ready(self._delivery(conn, candidate), candidate.row["campaign_id"],
                                        candidate.row["lane"]))
            elif decision.action == policy.END:
                ended.append((candidate.row, decision))
            elif decision.action == policy.WAIT:
                holds.append(Held(candidate.row["id"], decision.until, DeliveryState.WAITING.value, decision.reason,
                                  decision.hold or Hold.NIGHT))
            else:
                holds.append(Held(candidate.row["id"], None, DeliveryState.QUEUED.value, decision.reason,
                                  decision.hold))
        self._end_by_policy(conn, ended, now, done)
        self._release(conn, holds, now, done)
        done.campaigns.update({ready.campaign_id: self.campaigns[ready.campaign_id]
                               for ready in done.ready if ready.campaign_id in self.campaigns})

    def _candidates(self, conn: Connection, rows: list[dict], now: datetime) -> list[policy.Candidate]:
        self._read_campaigns(conn, {row["campaign_id"] for row in rows if row["campaign_id"]})
        settled = [row["id"] for row in rows if self._settle_kind(conn, row)]
        if settled:   # stored as advertising too, so the frequency caps count them once sent
            queue.mark_advertising(conn, settled)
        contacts = contact_store.by_ids(conn, [row["contact_id"] for row in rows])
        advertising_contacts = [row["contact_id"] for row in rows if row["kind"] == "advertising"]
        consents = contact_store.advertising_consents(conn, advertising_contacts)
        chosen = preference_store.by_contacts(conn, advertising_contacts)
        sent = self._advertising_sent(conn, rows, advertising_contacts, now)
        scopes: dict[tuple[str, str], str] = {}  # (channel, address) → the suppression entry's scope
        for channel in {row["channel"] for row in rows}:
            addresses = [row["recipient"] for row in rows if row["channel"] == channel and row["recipient"]]
            found = suppression.suppressed_among(conn, channel, addresses)
            scopes.update(((channel, address), scope) for address, scope in found.items())
        candidates = []
        for row in rows:
            scope = scopes.get((row["channel"], normalize(row["channel"], row["recipient"] or "")))
            candidates.append(policy.Candidate(
                row=row, campaign=self.campaigns.get(row["campaign_id"]),
                contact=contacts.get(row["contact_id"]), consents=consents.get(row["contact_id"], []),
                suppressed=scope is not None, suppression_scope=scope or "all",
                preferences=chosen.get(row["contact_id"]),
                sent_advertising=sent if row["kind"] == "advertising" else None,
            ))
        return candidates

    def _advertising_sent(self, conn: Connection, rows: list[dict], contact_ids: list[int],
                          now: datetime) -> caps.Tally | None:
        """What the frequency caps count for this batch's advertising customers
        (None when no cap is on): their rows locked for the decision, then one query."""
        if not self.settings.caps.enabled or not contact_ids:
            return None
        contact_store.lock_for_decision(conn, contact_ids)
        deciding = [row["id"] for row in rows]
        return caps.Tally(cap_store.advertising_sent(conn, contact_ids, now - caps.LOOKBACK, deciding, now))

    def _settle_kind(self, conn: Connection, row: dict) -> bool:
        """A delivery of an advertising template is advertising, whatever its
        request said (:func:`ums.outbox.settled_kind`): the art. 50 rules and
        the label follow the content. True when that changed the row's kind."""
        if row["kind"] == "advertising":
            return False
        row["kind"] = settled_kind(self._template(conn, row["template_name"], row["channel"]), row["kind"])
        return row["kind"] == "advertising"

    def _read_campaigns(self, conn: Connection, campaign_ids: set[int]) -> None:
        """Campaigns not seen yet, and states older than :data:`CAMPAIGN_FRESH`
        (a pause or cancel from anywhere reaches the policy within that)."""
        clock = time.monotonic()
        wanted = [i for i in campaign_ids if clock - self.campaigns_read.get(i, -1e9) >= CAMPAIGN_FRESH]
        if not wanted:
            return
        self.campaigns.update(campaign_store.names(conn, wanted))
        self.campaigns_read.update((i, clock) for i in wanted)

    def _template(self, conn: Connection, name: str | None, channel: str) -> dict | None:
        if not name:
            return None
        key = (name, channel)
        cached = self.templates.get(key)
        if cached and time.monotonic() - cached[0] < TEMPLATE_FRESH:
            return cached[1]
        row = template_store.get_sync(conn, name, channel)
        self.templates[key] = (time.monotonic(), row)
        return row

    def _delivery(self, conn: Connection, candidate: policy.Candidate) -> Delivery:
        row, contact = candidate.row, candidate.contact or {}
        variables = {key: contact.get(key) for key in CONTACT_FIELDS if contact.get(key) is not None}
        variables.update(contact.get("attributes") or {})
        return Delivery(
            id=row["id"], channel=row["channel"], recipient=row["recipient"], kind=row["kind"],
            message_id=row["message_id"], token=row["token"], attempt=row["attempts"] + 1,
            template=self._template(conn, row["template_name"], row["channel"]),
            variables=row["variables"] or {}, contact=variables,
            source=(candidate.campaign or {}).get("name") or row.get("service_name") or "",
            lane=row["lane"],
        )

    # --- recording ------------------------------------------------------------------

    def _rows(self, conn: Connection, ids: list[int]) -> list[dict]:
        """The leased rows of ``ids``, read again where this process no longer
        has them (its database process was restarted)."""
        missing = [i for i in ids if i not in self.leased]
        if missing:
            self.leased.update((row["id"], row) for row in queue.by_ids(conn, missing))
        return [self.leased.pop(i) for i in ids if i in self.leased]

    def _record(self, conn: Connection, now: datetime, results: list[tuple[int, Outcome]],
                done: BatchResult) -> None:
        if not results:
            return
        ids = [delivery_id for delivery_id, _ in results]
        mine = queue.owned(conn, ids, self.settings.worker_id)
        rows = {row["id"]: row for row in self._rows(conn, ids)}
        changes, cdr_rows = [], []
        for delivery_id, outcome in results:
            row = rows.get(delivery_id)
            if row is None or delivery_id not in mine:
                done.lost.append(delivery_id)
                continue
            change = after_send.settle(conn, row, outcome, now, self.settings.retry)
            done.count(change.state)
            changes.append(change)
            cdr_rows.append(self._cdr(row, outcome, change.finished_at is not None, now))
        queue.finish(conn, changes, cdr_rows)

    def _end_by_policy(self, conn: Connection, ended: list[tuple[dict, policy.Decision]], now: datetime,
                       done: BatchResult) -> None:
        changes: list[StateChange] = []
        cdr_rows = []
        for row, decision in ended:
            self.leased.pop(row["id"], None)
            changes.append(after_send.ended(conn, row, decision.state, decision.code, decision.reason, now))
            cdr_rows.append(self._cdr(row, records.policy_outcome(decision.code, decision.reason, now), True, now))
        done.ended_by_policy += len(changes)
        queue.finish(conn, changes, cdr_rows)

    def _release(self, conn: Connection, holds: list[Held], now: datetime, done: BatchResult) -> None:
        cancelled = [held.delivery_id for held in holds if held.state == DeliveryState.CANCELLED.value]
        if cancelled:
            decision = policy.Decision(policy.END, "cancelled", "cancelled", "campaign cancelled")
            self._end_by_policy(conn, [(row, decision) for row in self._rows(conn, cancelled)], now, done)
        groups: dict[tuple, list[int]] = {}
        for held in holds:
            if held.state == DeliveryState.CANCELLED.value:
                continue
            self.leased.pop(held.delivery_id, None)
            hold = held.hold.value if held.hold else None
            groups.setdefault((held.state, held.due_at, held.reason, hold), []).append(held.delivery_id)
        for (state, due_at, reason, hold), ids in groups.items():
            queue.release(conn, ids, self.settings.worker_id, now, state=state, due_at=due_at, reason=reason,
                          hold=hold)

    def _cdr(self, row: dict, outcome: Outcome, final: bool, now: datetime) -> dict:
        """The CDR row of this attempt (the row's attempts so far, plus one)."""
        campaign = self.campaigns.get(row["campaign_id"]) or {}
        account = campaign.get("created_by") or (row.get("variables") or {}).get("account") \
            or row.get("service_name") or ""
        source = campaign.get("name") or row.get("service_name") or "send"
        sender = self.settings.from_address if row["channel"] == "email" else ""
        return records.attempt_row(row, outcome, row["attempts"] + 1, final, self.settings.rates, now,
                               account, source, sender)


class QueueCalls:
    """The event loop's typed view of :class:`QueueBatches` in its database
    process (or thread): one method per transaction, each retried on SQLite
    lock contention; after a failure the next call opens a fresh connection."""

    def __init__(self, writer):
        self.writer = writer

    async def record_and_claim(self, batch: Batch) -> BatchResult:
        return await self._call("record_and_claim", batch)

    async def claim_priority(self, now: datetime, limit: int) -> BatchResult:
        return await self._call("claim_priority", now, limit)

    async def renew(self, until: datetime) -> int:
        return await self._call("renew", until)

    async def release_all(self, now: datetime) -> int:
        return await self._call("release_all", now)

    async def _call(self, method: str, *args):
        return await retry_when_locked(lambda: self._once(method, args))

    async def _once(self, method: str, args: tuple):
        try:
            return await self.writer.call(method, *args)
        except Exception:
            await self.writer.reset()
            raise
