"""A delivery's states and the transitions between them — the only list.

A delivery is *pending* (``queued``, ``retry``, ``waiting`` for the night
rule, or ``sending`` under a worker's lease) until it reaches exactly one
final state. Every other list of states (pending, final, claimable) is
derived from :class:`DeliveryState` here, so adding a state is one edit.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import NamedTuple


class DeliveryState(str, Enum):
    QUEUED = "queued"
    SENDING = "sending"
    RETRY = "retry"
    WAITING = "waiting"
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in _FINAL

    @property
    def claimable(self) -> bool:
        """Due rows in this state may be leased (``sending`` only once its lease ran out)."""
        return self in _CLAIMABLE


S = DeliveryState
_FINAL = frozenset({S.SENT, S.FAILED, S.SUPPRESSED, S.EXPIRED, S.CANCELLED})
#: in the order a claim serves them: retries, then night-held, then new
_CLAIM_ORDER = (S.RETRY, S.WAITING, S.QUEUED)
_CLAIMABLE = frozenset(_CLAIM_ORDER)

#: where each state may go next; a bounce (MAS) may still fail a sent delivery
TRANSITIONS: dict[DeliveryState, frozenset[DeliveryState]] = {
    S.QUEUED: frozenset({S.SENDING, S.CANCELLED}),
    S.RETRY: frozenset({S.SENDING, S.CANCELLED}),
    S.WAITING: frozenset({S.SENDING, S.CANCELLED}),
    S.SENDING: frozenset({S.SENDING, S.QUEUED, S.RETRY, S.WAITING} | _FINAL),
    S.SENT: frozenset({S.FAILED}),
    S.FAILED: frozenset(), S.SUPPRESSED: frozenset(), S.EXPIRED: frozenset(), S.CANCELLED: frozenset(),
}

#: plain strings (what the database stores), pending first, in a stable display order
PENDING_STATES: tuple[str, ...] = tuple(s.value for s in DeliveryState if not s.final)
FINAL_STATES: tuple[str, ...] = tuple(s.value for s in DeliveryState if s.final)
CLAIMABLE_STATES: tuple[str, ...] = tuple(s.value for s in _CLAIM_ORDER)
ALL_STATES: tuple[str, ...] = PENDING_STATES + FINAL_STATES
#: final states of a delivery that tried and did not reach the customer (not stopped on purpose)
UNDELIVERED_STATES: tuple[str, ...] = (S.FAILED.value, S.EXPIRED.value)


def allowed(old: str, new: str) -> bool:
    return DeliveryState(new) in TRANSITIONS[DeliveryState(old)]


def is_final(state: str) -> bool:
    return DeliveryState(state).final


class StateChange(NamedTuple):
    """A leased delivery leaving its lease with a new state (one row of
    :func:`ums.store.deliveries.finish`; field order is the statement's)."""

    id: int
    state: str
    attempts: int
    due_at: datetime
    code: str | None
    error: str | None
    finished_at: datetime | None
    updated_at: datetime
    hold: str | None = None

#: final states of a delivery that did not reach its recipient after trying (or running out of time)
UNDELIVERED_STATES: tuple[str, ...] = (S.FAILED.value, S.EXPIRED.value)
#: final states of a delivery ended unsent on purpose (no consent, refused, cancelled)
WITHHELD_STATES: tuple[str, ...] = (S.SUPPRESSED.value, S.CANCELLED.value)
