"""The frequency cap ("one voice") as logic: calendar days and weeks of the
recipient's zone (Asia/Seoul times given with +09:00), transactional notices
exempt, a capped delivery waiting for the next local midnight or Monday —
or ending expired when its own expiry comes first. Fixed times only: nothing
here depends on the hour the test runs."""

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import importlib

import pytest

from ums import caps, config
from ums.errors import ConfigValueError
from ums.holds import REASONS, Hold, HoldGroup, describe

policy = importlib.import_module("pass.policy")

SEOUL = ZoneInfo("Asia/Seoul")
KST = timezone(timedelta(hours=9))
LIMITS = caps.Limits(per_day=2, per_week=5)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(timezone.utc)


def candidate(sent: list[str], kind="advertising", contact_zone="Asia/Seoul", expires=None, contact_id=7):
    tally = caps.Tally({contact_id: [at(t) for t in sent]})
    row = {"id": 1, "kind": kind, "channel": "email", "recipient": "a@example.com", "contact_id": contact_id,
           "expires_at": at(expires) if expires else None}
    return policy.Candidate(row=row, campaign=None, contact={"timezone": contact_zone},
                            sent_advertising=tally if kind == "advertising" else None)


def decide_at(now: str, c, limits=LIMITS):
    return policy.frequency_cap(c, policy.Context(at(now), "Asia/Seoul", timedelta(hours=1), limits))


def test_the_day_is_the_recipients_calendar_day_not_utcs():
    # 08:30 and 23:50 KST on 3 Dec: the same Seoul day, though 23:50 KST is the 3rd 14:50 UTC
    sent = ["2026-12-03T08:30+09:00", "2026-12-03T23:50+09:00"]
    held = decide_at("2026-12-03T23:55+09:00", candidate(sent))
    assert held.action == policy.WAIT and held.hold == Hold.CAP
    assert held.until == at("2026-12-04T00:00+09:00")
    assert "2 advertising messages today (limit 2 a day)" in held.reason
    # five minutes later it is the 4th in Seoul: yesterday's two no longer count
    assert decide_at("2026-12-04T00:00+09:00", candidate(sent)) is None


def test_a_message_sent_just_before_local_midnight_counts_for_that_day_only():
    sent = ["2026-12-03T00:10+09:00", "2026-12-02T23:59+09:00"]   # 2 Dec 23:59 KST is the day before
    assert decide_at("2026-12-03T03:30+09:00", candidate(sent)) is None
    sent.append("2026-12-03T03:31+09:00")
    assert decide_at("2026-12-03T14:00+09:00", candidate(sent)).until == at("2026-12-04T00:00+09:00")


def test_the_week_runs_monday_to_sunday_in_seoul_and_its_cap_waits_for_monday():
    # Thursday 3 Dec 2026; the week began Monday 30 Nov 00:00 KST (29 Nov 15:00 UTC)
    assert caps.week_start(at("2026-12-03T14:00+09:00"), SEOUL) == at("2026-11-30T00:00+09:00")
    assert caps.next_week(at("2026-12-06T23:59+09:00"), SEOUL) == at("2026-12-07T00:00+09:00")
    assert caps.next_week(at("2026-12-07T00:00+09:00"), SEOUL) == at("2026-12-14T00:00+09:00")
    sent = ["2026-11-29T23:00+09:00",   # Sunday before: last week
            "2026-11-30T09:00+09:00", "2026-12-01T09:00+09:00", "2026-12-01T10:00+09:00",
            "2026-12-02T09:00+09:00", "2026-12-03T09:00+09:00"]
    held = decide_at("2026-12-03T14:00+09:00", candidate(sent))
    assert held.until == at("2026-12-07T00:00+09:00")
    assert "5 advertising messages this week (limit 5 a week)" in held.reason


def test_another_zone_counts_its_own_days():
    # sent at 06:00 and 06:30 in Los Angeles on the 3rd (23:00 and 23:30 in Seoul);
    # at 00:30 in Seoul on the 4th it is still the 3rd (07:30) in Los Angeles
    sent = ["2026-12-03T06:00-08:00", "2026-12-03T06:30-08:00"]
    held = decide_at("2026-12-04T00:30+09:00", candidate(sent, contact_zone="America/Los_Angeles"))
    assert held.until == at("2026-12-04T00:00-08:00")
    assert decide_at("2026-12-04T00:30+09:00", candidate(sent)) is None


def test_transactional_notices_and_no_cap_are_never_held():
    sent = ["2026-12-03T09:00+09:00"] * 9
    assert decide_at("2026-12-03T14:00+09:00", candidate(sent, kind="transactional")) is None
    assert decide_at("2026-12-03T14:00+09:00", candidate(sent), caps.Limits()) is None
    assert decide_at("2026-12-03T14:00+09:00", candidate(sent), caps.Limits(per_week=10)) is None


def test_a_delivery_that_would_expire_before_the_cap_lifts_ends_expired():
    sent = ["2026-12-03T09:00+09:00", "2026-12-03T10:00+09:00"]
    ended = decide_at("2026-12-03T14:00+09:00", candidate(sent, expires="2026-12-03T20:00+09:00"))
    assert (ended.action, ended.state, ended.code) == (policy.END, "expired", "cap")
    assert "expires before the cap allows it" in ended.reason
    waits = decide_at("2026-12-03T14:00+09:00", candidate(sent, expires="2026-12-05T20:00+09:00"))
    assert waits.action == policy.WAIT


def test_the_cap_is_last_in_the_chain_and_a_batch_counts_what_it_lets_through():
    assert policy.CHAIN[-1] is policy.frequency_cap
    tally = caps.Tally({7: [at("2026-12-03T09:00+09:00")]})
    now = at("2026-12-03T14:00+09:00")
    assert caps.capped(LIMITS, tally.counts(7, now, SEOUL), now, SEOUL) is None
    tally.note(7, now)   # the batch let one through
    assert caps.capped(LIMITS, tally.counts(7, now, SEOUL), now, SEOUL).until == at("2026-12-04T00:00+09:00")


def test_the_hold_reads_plainly_where_holds_are_shown():
    now = at("2026-12-03T14:00+09:00")
    group = HoldGroup(Hold.CAP, 3, at("2026-12-04T00:00+09:00"))
    text = describe(group, now, SEOUL)
    assert text == f"3 waiting: {REASONS[Hold.CAP]}, next send 2026-12-04 00:00 KST (in 10 h 0 m)"


def test_the_caps_come_from_the_configuration(tmp_path):
    shipped = config.load(tmp_path, config_file=tmp_path / "none.cfg")
    assert caps.Limits.from_config(shipped) == caps.Limits(0, 0) and not caps.Limits.from_config(shipped).enabled
    (tmp_path / "ums.cfg").write_text("[policy]\nadvertising_per_day = 2\nadvertising_per_week = 5\n")
    assert caps.Limits.from_config(config.load(tmp_path)) == LIMITS
    (tmp_path / "ums.cfg").write_text("[policy]\nadvertising_per_day = -1\n")
    with pytest.raises(ConfigValueError) as caught:
        config.load(tmp_path)
    assert "policy.advertising_per_day" in str(caught.value)


def test_a_delivery_held_by_the_cap_is_not_a_missed_reservation_when_claimed_hours_later():
    created, released = at("2026-12-03T14:00+09:00"), at("2026-12-04T00:00+09:00")
    row = {"id": 1, "kind": "advertising", "attempts": 0, "state": "sending", "created_at": created,
           "due_at": released, "hold": Hold.CAP.value}
    ctx = policy.Context(at("2026-12-04T09:00+09:00"), "Asia/Seoul", timedelta(hours=1), LIMITS)
    assert policy.missed_reservation(policy.Candidate(row=row, campaign=None, contact=None), ctx) is None
    reserved = {**row, "hold": None}   # a send reserved for midnight and missed by nine hours
    assert policy.missed_reservation(policy.Candidate(row=reserved, campaign=None, contact=None), ctx).code == "missed"
