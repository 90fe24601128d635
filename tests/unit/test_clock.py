"""The one rule for time: offsets honoured, no offset read in the site zone,
UTC stored, zone named when shown; cron and past starts in the site zone."""

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from ums import campaigns, clock
from ums.db.models import UtcTime

SEOUL = ZoneInfo("Asia/Seoul")
UTC = timezone.utc


@pytest.mark.parametrize("text, expected", [
    ("2026-12-02T04:22+09:00", datetime(2026, 12, 1, 19, 22, tzinfo=UTC)),
    ("2026-12-01T19:22Z", datetime(2026, 12, 1, 19, 22, tzinfo=UTC)),
    ("2026-12-01T19:22:00z", datetime(2026, 12, 1, 19, 22, tzinfo=UTC)),
    ("2026-12-02T04:22", datetime(2026, 12, 1, 19, 22, tzinfo=UTC)),      # no offset: Seoul
    ("2026-12-02 04:22:00-05:00", datetime(2026, 12, 2, 9, 22, tzinfo=UTC)),
    ("2026-12-02", datetime(2026, 12, 1, 15, 0, tzinfo=UTC)),              # a day: its midnight in Seoul
])
def test_every_offset_is_honoured_and_none_means_the_site_zone(text, expected):
    assert clock.parse_time(text, SEOUL) == expected


def test_a_bad_time_is_one_clear_line():
    with pytest.raises(clock.BadTime) as error:
        clock.parse_time("tomorrow at nine", SEOUL)
    assert "ISO 8601" in str(error.value) and "Asia/Seoul" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(clock.BadTime):
        clock.parse_time({"a": 1}, SEOUL)


def test_stored_times_are_utc_and_come_back_aware_on_sqlite():
    column = UtcTime()
    from sqlalchemy.dialects import sqlite

    stored = column.process_bind_param(datetime(2026, 12, 2, 4, 22, tzinfo=SEOUL), sqlite.dialect())
    assert stored == datetime(2026, 12, 1, 19, 22)           # UTC wall time, no offset: what SQLite keeps
    assert column.process_result_value(stored, sqlite.dialect()) == datetime(2026, 12, 1, 19, 22, tzinfo=UTC)


def test_days_and_months_are_those_of_the_site_zone():
    assert clock.parse_day("2026-12-02", SEOUL) == datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    start, end = clock.month_range("2026-12", datetime(2026, 12, 5, tzinfo=UTC), SEOUL)
    assert (start, end) == (datetime(2026, 11, 30, 15, 0, tzinfo=UTC), datetime(2026, 12, 31, 15, 0, tzinfo=UTC))
    with pytest.raises(clock.BadDate):
        clock.month_range("December", datetime(2026, 12, 5, tzinfo=UTC), SEOUL)


def test_shown_times_name_their_zone():
    assert clock.shown(datetime(2026, 12, 1, 19, 22, tzinfo=UTC), SEOUL) == "2026-12-02 04:22 KST"
    assert clock.shown(datetime(2026, 12, 1, 19, 22, tzinfo=UTC), ZoneInfo("UTC")) == "2026-12-01 19:22 UTC"
    assert clock.duration(3 * 3600 + 37 * 60 + 5) == "3 h 37 m"


@pytest.mark.parametrize("hour", [0, 3, 12, 14, 21, 23])
def test_the_clock_shift_reaches_the_wanted_hour_from_any_hour(hour):
    for real_hour in range(24):
        real = datetime(2026, 12, 1, real_hour, 17, tzinfo=UTC)
        shifted = real + timedelta(seconds=clock.shift_to(time(hour, 0), SEOUL, real))
        assert shifted.astimezone(SEOUL).hour == hour and shifted.astimezone(SEOUL).minute == 0
        assert abs(shifted - real) <= timedelta(hours=12)


def test_the_application_clock_follows_the_shift_as_it_is_now(monkeypatch):
    """A process whose clock was first read at night (a test that moved it
    there) reads daytime once the shift says so, not night for ever after."""
    night = clock.shift_to(time(3, 0), SEOUL)
    monkeypatch.setenv(clock.SHIFT_VARIABLE, str(night))
    assert clock.utcnow().astimezone(SEOUL).hour in (2, 3)
    monkeypatch.setenv(clock.SHIFT_VARIABLE, str(clock.shift_to(time(12, 0), SEOUL)))
    assert clock.utcnow().astimezone(SEOUL).hour in (11, 12)
    monkeypatch.setenv(clock.SHIFT_VARIABLE, "soon")
    with pytest.raises(clock.BadClockShift):
        clock.utcnow()


def test_cron_schedules_run_in_the_site_zone():
    after = datetime(2026, 11, 23, 0, 30, tzinfo=UTC)     # 09:30 in Seoul
    assert campaigns.next_cron_time("0 9 * * *", after, SEOUL) == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)


def test_a_start_in_the_past_is_refused_unless_now_is_asked_for():
    now = datetime(2026, 12, 1, 19, 20, tzinfo=UTC)
    row = {"name": "spring", "cron": None, "schedule_at": datetime(2026, 12, 1, 0, 0, tzinfo=UTC)}
    with pytest.raises(campaigns.PastStart) as error:
        campaigns.start_time(row, None, now, tz=SEOUL)
    assert "2026-12-01 09:00 KST" in str(error.value) and "--now" in str(error.value)
    assert campaigns.start_time(row, None, now, start_now=True, tz=SEOUL) == now
    later = now + timedelta(seconds=20)
    assert campaigns.start_time(row, later, now, tz=SEOUL) == later
    assert campaigns.start_time({**row, "schedule_at": None}, None, now, tz=SEOUL) == now
