"""Unit tests of WAS logic that needs no server: site time zone handling, the
fax number a reply goes to, consent reconfirmation, the HTML sanitiser, the
campaign chart and route matching."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from ums import clock
from was import mail
from was.http import Router
from was.pages.campaigns import chart
from was.pages.contacts import consent_state, reconfirm_by

SEOUL = ZoneInfo("Asia/Seoul")
UTC = timezone.utc


# --- time zones -----------------------------------------------------------------------------

def test_a_picked_time_is_read_as_site_local_time():
    # 09:00 in Seoul is midnight UTC
    assert clock.parse_local("2026-05-01T09:00", SEOUL) == datetime(2026, 5, 1, 0, 0, tzinfo=UTC)


def test_a_time_with_its_own_offset_keeps_it():
    assert clock.parse_local("2026-05-01T09:00+00:00", SEOUL) == datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
    assert clock.parse_local("2026-05-01T09:00Z", SEOUL) == datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def test_empty_and_malformed_picks():
    assert clock.parse_local("", SEOUL) is None
    assert clock.parse_local(None, SEOUL) is None
    with pytest.raises(ValueError):
        clock.parse_local("tomorrow at nine", SEOUL)


def test_a_day_range_covers_whole_local_days():
    start, end = clock.day_range("2026-05-01", "2026-05-02", SEOUL)
    assert start == datetime(2026, 4, 30, 15, 0, tzinfo=UTC)
    assert end == datetime(2026, 5, 2, 15, 0, tzinfo=UTC)
    assert clock.day_range("", None, SEOUL) == (None, None)


def test_the_current_month_is_the_sites_month():
    # 2026-05-31 20:00 UTC is already June 1st in Seoul
    now = datetime(2026, 5, 31, 20, 0, tzinfo=UTC)
    start, end = clock.month_range(None, now, SEOUL)
    assert start == datetime(2026, 5, 31, 15, 0, tzinfo=UTC)
    assert end == datetime(2026, 6, 30, 15, 0, tzinfo=UTC)
    december, january = clock.month_range("2026-12", now, SEOUL)
    assert (january - december).days == 31


def test_stored_times_are_shown_in_the_site_zone():
    assert clock.shown(datetime(2026, 5, 1, 0, 0, tzinfo=UTC), SEOUL) == "2026-05-01 09:00 KST"
    # naive values from SQLite are UTC
    assert clock.shown(datetime(2026, 5, 1, 0, 0), SEOUL) == "2026-05-01 09:00 KST"
    assert clock.shown(None, SEOUL) == ""


# --- the number a fax reply goes to -----------------------------------------------------------

@pytest.mark.parametrize("sender, subject, number", [
    ("FAX=+8225550100@fax.carrier.example", "", "+8225550100"),    # RFC 3192 style
    ("+82 2 555 0100@gw.example", "", "+8225550100"),
    ("+8225550100", "", "+8225550100"),
    ("fax-gateway@carrier.example", "Fax from +82 31 222 3333", "+82312223333"),
    ("fax-gateway@carrier.example", "Your fax", ""),
])
def test_reply_number(sender, subject, number):
    assert mail.reply_number(sender, subject) == number


# --- consent reconfirmation -------------------------------------------------------------------

NOW = datetime(2026, 5, 1, tzinfo=UTC)


def consent(days_old: int, granted: bool = True) -> dict:
    recorded = NOW - timedelta(days=days_old)
    return {"granted": granted, "recorded_at": recorded, "withdrawn_at": None if granted else recorded,
            "channel": "any", "source": "branch"}


def test_consent_within_two_years_is_current():
    assert consent_state(consent(700), NOW) == "current"
    assert reconfirm_by(consent(700)) == NOW + timedelta(days=30)


def test_consent_older_than_two_years_needs_reconfirmation():
    assert consent_state(consent(731), NOW) == "lapsed"


def test_refused_and_absent_consent():
    assert consent_state(consent(10, granted=False), NOW) == "refused"
    assert consent_state(None, NOW) == "none"
    assert reconfirm_by(consent(10, granted=False)) is None


# --- the HTML sanitiser ---------------------------------------------------------------------

def test_sanitiser_strips_scripts_handlers_and_javascript_links():
    markup, held = mail.sanitize_html(
        '<p onclick="x()">Hi<script>alert(1)</script> <a href="javascript:alert(2)">go</a>'
        '<img src="https://tracker.example/p.png"></p>')
    assert "script" not in markup and "onclick" not in markup and "javascript:" not in markup
    assert "tracker.example" not in markup and held == 1


def test_remote_images_only_when_asked():
    markup, held = mail.sanitize_html('<img src="https://cdn.example/logo.png">', allow_remote_images=True)
    assert "cdn.example/logo.png" in markup and held == 0


# --- campaign chart -------------------------------------------------------------------------

def test_chart_stacks_outcomes_per_bucket_and_counts_channels():
    series = [("2026-05-01 09:00", "email", "sent", 8), ("2026-05-01 09:00", "email", "failed", 2),
              ("2026-05-01 09:01", "fax", "sent", 5)]
    drawn = chart(series)
    assert drawn["peak"] == 10
    assert drawn["channels"] == {"email": 10, "fax": 5}
    first, second = drawn["bars"]
    assert [s["state"] for s in first["stack"]] == ["failed", "sent"]
    assert sum(s["height"] for s in first["stack"]) == 160                 # the tallest bar fills the chart
    assert second["stack"][0]["height"] == 80 and second["x"] > first["x"]


def test_chart_of_nothing():
    assert chart([]) == {"bars": [], "peak": 0, "channels": {}, "width": 200}


# --- routing --------------------------------------------------------------------------------

def test_a_literal_segment_beats_a_parameter():
    router = Router()

    async def by_id(page): ...

    async def export(page): ...

    router.add("GET", "/contacts/{id}", by_id)
    router.add("GET", "/contacts/export", export)
    route, params, _ = router.match("GET", "/contacts/export")
    assert route.handler is export and params == {}
    route, params, _ = router.match("GET", "/contacts/7")
    assert route.handler is by_id and params == {"id": "7"}
    assert router.match("POST", "/contacts/7") == (None, {}, True)          # 405, not 404
    assert router.match("GET", "/nowhere") == (None, {}, False)
