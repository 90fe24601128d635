"""After a send: what a finished attempt does to its delivery.

A chain of small rules, like the send-time policy (``pass/policy.py``): the
*outcome rules* decide the delivery's next state — sent; a temporary failure
retries with exponential backoff and jitter until its expiry, then expires;
a permanent one fails — and the *effect rules* then act on that verdict:
a 5.1.x bounce (no such user, bad address) puts the address on the
suppression list, and a delivery that ended failed or expired falls back to
the next channel of its list. Deliveries that PASS ends without trying them
(suppressed, expired, cancelled by the policy) go through :func:`ended`,
which applies the same effects.

Everything runs inside the caller's transaction, with the state change and
its CDR row, so a crash leaves all of it or none.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from .. import outbox
from ..channels import SENT, TEMPORARY, Outcome
from ..clock import as_utc
from ..holds import Hold
from ..store import suppression
from .states import DeliveryState, StateChange

S = DeliveryState


@dataclass(frozen=True)
class Retry:
    """``[pass] retry_base``, ``retry_max`` and ``default_expiry``, in seconds."""

    base: float
    most: float
    default_expiry: float

    def backoff(self, attempts: int) -> float:
        return min(self.most, self.base * 2 ** (attempts - 1)) * random.uniform(0.5, 1.0)

    def expiry(self, row: dict) -> datetime:
        return as_utc(row["expires_at"]) or (as_utc(row["created_at"]) + timedelta(seconds=self.default_expiry))


@dataclass(frozen=True)
class Verdict:
    state: DeliveryState
    due_at: datetime
    hold: Hold | None = None


# --- outcome rules: each may decide; the first decision wins ----------------------------

def delivered(row: dict, outcome: Outcome, now: datetime, retry: Retry) -> Verdict | None:
    return Verdict(S.SENT, row["due_at"]) if outcome.status == SENT else None


def temporary(row: dict, outcome: Outcome, now: datetime, retry: Retry) -> Verdict | None:
    """Back off and try again, unless that would be after the delivery's expiry."""
    if outcome.status != TEMPORARY:
        return None
    due = now + timedelta(seconds=retry.backoff(row["attempts"] + 1))
    if due > retry.expiry(row):
        return Verdict(S.EXPIRED, due)
    return Verdict(S.RETRY, due, Hold.RELAY if outcome.unreachable else Hold.RETRY)


def permanent(row: dict, outcome: Outcome, now: datetime, retry: Retry) -> Verdict | None:
    return Verdict(S.FAILED, row["due_at"])


OUTCOME_RULES = (delivered, temporary, permanent)


# --- effect rules: each acts on the verdict ---------------------------------------------

def suppress_bad_address(conn: Connection, row: dict, state: DeliveryState, outcome: Outcome | None,
                         now: datetime) -> None:
    """5.1.x (no such user, bad address) puts the address on the suppression list."""
    if state is S.FAILED and outcome is not None and row["channel"] == "email" \
            and " 5.1." in f" {outcome.code.partition(' ')[2]}":
        suppression.add_sync(conn, "email", row["recipient"], "bounce", source="pass", detail=outcome.detail[:500])


def fall_back(conn: Connection, row: dict, state: DeliveryState, outcome: Outcome | None, now: datetime) -> None:
    """A delivery that ended failed or expired tries the next channel of its list."""
    if state in (S.FAILED, S.EXPIRED):
        outbox.fall_back_sync(conn, {**row, "state": state.value}, now)


EFFECT_RULES = (suppress_bad_address, fall_back)


def settle(conn: Connection, row: dict, outcome: Outcome, now: datetime, retry: Retry) -> StateChange:
    """The state change of a leased delivery whose attempt ended with ``outcome``."""
    verdict = next(v for v in (rule(row, outcome, now, retry) for rule in OUTCOME_RULES) if v is not None)
    for effect in EFFECT_RULES:
        effect(conn, row, verdict.state, outcome, now)
    final = verdict.state.final
    return StateChange(
        row["id"], verdict.state.value, row["attempts"] + 1, verdict.due_at, outcome.code[:16],
        None if verdict.state is S.SENT else outcome.detail[:1000], now if final else None, now,
        verdict.hold.value if verdict.hold else None,
    )


def ended(conn: Connection, row: dict, state: str, code: str, reason: str, now: datetime) -> StateChange:
    """The state change of a leased delivery PASS ends without trying it."""
    for effect in EFFECT_RULES:
        effect(conn, row, DeliveryState(state), None, now)
    return StateChange(row["id"], state, row["attempts"], row["due_at"], code[:16], reason, now, now, None)
