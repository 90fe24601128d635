"""Send-time policy: a chain of rules every claimed delivery passes before it
is handed to its channel (Mailman-style: each rule may decide, the first
decision wins, no decision means send).

Rules see a :class:`Candidate` — the delivery row plus what PASS loaded for
its batch (campaign, contact, consents, suppression) — and return a
:class:`Decision` or None. Re-checking suppression and consent here, for
every attempt, is what makes an unsubscribe mid-campaign stop the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ums import advertising, caps, preferences
from ums.clock import as_utc, zone
from ums.holds import Hold, campaign_hold
from ums.queue.states import DeliveryState

SEND, HOLD, WAIT, END = "send", "hold", "wait", "end"
#: a delivery not tried yet is in one of these (claimed rows are already ``sending``)
FIRST_TRY = (DeliveryState.QUEUED.value, DeliveryState.SENDING.value)


@dataclass
class Candidate:
    row: dict
    campaign: dict | None
    contact: dict | None
    consents: list[dict] = field(default_factory=list)
    suppressed: bool = False
    #: the suppression entry's scope when ``suppressed``: "all", or "advertising" (a refusal of advertising)
    suppression_scope: str = "all"
    #: what the customer chose on the preference centre (advertising only; None: never saved)
    preferences: dict | None = None
    #: advertising sent to the batch's customers lately (advertising only, when a cap is on)
    sent_advertising: caps.Tally | None = None


@dataclass(frozen=True)
class Decision:
    action: str                   # HOLD (back to queue), WAIT (until), END (final state)
    state: str = ""               # the final state for END: suppressed, expired, cancelled, failed
    code: str = ""
    reason: str = ""
    until: datetime | None = None
    hold: Hold | None = None      # for HOLD and WAIT: why it waits


@dataclass
class Context:
    now: datetime
    default_timezone: str
    misfire_grace: timedelta
    caps: caps.Limits = caps.Limits()


def campaign_state(c: Candidate, ctx: Context) -> Decision | None:
    state = (c.campaign or {}).get("state")
    if state == "cancelled":
        return Decision(END, "cancelled", "cancelled", "campaign cancelled")
    hold = campaign_hold(state)
    return Decision(HOLD, reason=f"campaign {state}", hold=hold) if hold is not None else None


def expiry(c: Candidate, ctx: Context) -> Decision | None:
    expires = as_utc(c.row.get("expires_at"))
    if expires is not None and ctx.now > expires:
        return Decision(END, "expired", "expired", "expired before it could be sent")
    return None


def missed_reservation(c: Candidate, ctx: Context) -> Decision | None:
    """A reserved send (due later than it was created) that PASS missed by more
    than the grace. A held delivery's due time (it waited for the night rule or
    a frequency cap) is its release, not a reservation: it goes whenever claimed."""
    row = c.row
    due, created = as_utc(row["due_at"]), as_utc(row.get("created_at"))
    reserved = created is not None and due - created > timedelta(seconds=1) and not row.get("hold")
    if row["attempts"] == 0 and row["state"] in FIRST_TRY and reserved \
            and ctx.now - due > ctx.misfire_grace:
        return Decision(END, "expired", "missed", "reserved time missed by more than the grace period")
    return None


def no_address(c: Candidate, ctx: Context) -> Decision | None:
    if not (c.row.get("recipient") or "").strip():
        return Decision(END, "failed", "no-address", f"no address for the {c.row['channel']} channel")
    return None


def suppression(c: Candidate, ctx: Context) -> Decision | None:
    """An entry of scope ``all`` stops every send; one of scope ``advertising``
    (the customer refused advertising) stops advertising only, so transactional
    notices — a large-deposit alert — still reach them."""
    if not c.suppressed:
        return None
    if c.suppression_scope == "advertising":
        if c.row["kind"] != advertising.ADVERTISING:
            return None
        return Decision(END, "suppressed", "suppressed", "address refused advertising")
    return Decision(END, "suppressed", "suppressed", "address is on the suppression list")


def preference(c: Candidate, ctx: Context) -> Decision | None:
    """Advertising on a channel the customer turned off on the preference centre
    ends unsent (EPS already leaves such channels out of a notice's route)."""
    if c.row["kind"] != advertising.ADVERTISING:
        return None
    if preferences.allows_given(c.preferences, c.row["channel"], None, True):
        return None
    return Decision(END, "suppressed", "preference", f"the customer turned {c.row['channel']} off (preference centre)")


def art50(c: Candidate, ctx: Context) -> Decision | None:
    """Consent (current, under two years) and the 21:00–08:00 rule for advertising."""
    if c.row["kind"] != advertising.ADVERTISING:
        return None
    tz = zone((c.contact or {}).get("timezone"), ctx.default_timezone)
    verdict = advertising.verdict(c.row["kind"], c.row["channel"], c.consents, ctx.now, tz)
    if verdict.action == "suppress":
        return Decision(END, "suppressed", "no-consent", verdict.reason)
    if verdict.action == "wait":
        return Decision(WAIT, reason=verdict.reason, until=verdict.wait_until, hold=Hold.NIGHT)
    return None


def frequency_cap(c: Candidate, ctx: Context) -> Decision | None:
    """One voice (:mod:`ums.caps`): advertising to a customer who already had
    ``[policy] advertising_per_day`` today or ``advertising_per_week`` this week
    (their local days) waits for the next day or week — or ends expired when
    its own expiry comes first. Last in the chain: a delivery that reaches it
    and passes is sent, so the batch counts it (:meth:`caps.Tally.note`)."""
    contact_id = c.row.get("contact_id")
    if not ctx.caps.enabled or c.row["kind"] != advertising.ADVERTISING or contact_id is None \
            or c.sent_advertising is None:
        return None
    tz = zone((c.contact or {}).get("timezone"), ctx.default_timezone)
    held = caps.capped(ctx.caps, c.sent_advertising.counts(contact_id, ctx.now, tz), ctx.now, tz)
    if held is None:
        return None
    expires = as_utc(c.row.get("expires_at"))
    if expires is not None and expires <= held.until:
        return Decision(END, "expired", "cap", f"{held.reason}; it expires before the cap allows it")
    return Decision(WAIT, reason=held.reason, until=held.until, hold=Hold.CAP)


CHAIN = (campaign_state, expiry, missed_reservation, no_address, suppression, preference, art50, frequency_cap)


def decide(candidate: Candidate, ctx: Context) -> Decision | None:
    """The first rule's decision, or None to send."""
    for rule in CHAIN:
        decision = rule(candidate, ctx)
        if decision is not None:
            return decision
    return None
