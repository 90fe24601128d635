"""Tracking links and server-side charts, as logic: what a tracked body
looks like, which signatures verify, and how events fall into hours of the
site's zone (fixed instants, so nothing depends on when the test runs)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from ums import tracking
from was import charts

KEY = "k" * 43
BASE = "https://ums.bank.example"


def tracker(delivery: int = 7) -> tracking.Tracker:
    return tracking.Tracker.of(BASE + "/", KEY, 3, delivery)


def test_links_go_through_signed_redirects_but_the_refusal_link_stays_direct():
    body = ('<p><a class="x" href="https://bank.example/offer?a=1&amp;b=2">offer</a> '
            f'<a href="{BASE}/unsubscribe/TOKEN">무료수신거부</a> <a href="mailto:help@bank.example">mail</a></p>')
    tracked = tracker().html(body)
    [redirect] = re.findall(r'href="([^"]+/t/c/[^"]+)"', tracked)
    url = redirect.replace("&amp;", "&")
    parts = urlsplit(url)
    assert parts.path.startswith("/t/c/3/7/") and parse_qs(parts.query)["u"] == ["https://bank.example/offer?a=1&b=2"]
    signature = parts.path.rsplit("/", 1)[1]
    assert tracking.verify(KEY, 3, 7, "https://bank.example/offer?a=1&b=2", signature)
    assert f'href="{BASE}/unsubscribe/TOKEN"' in tracked and 'href="mailto:help@bank.example"' in tracked
    assert tracked.endswith(f'<img src="{tracker().pixel_url()}" width="1" height="1" alt="">')


def test_a_signature_covers_exactly_its_campaign_delivery_and_link():
    signature = tracking.signature(KEY, 3, 7, "https://bank.example/a")
    assert len(signature) == 32
    assert tracking.verify(KEY, 3, 7, "https://bank.example/a", signature)
    for campaign, delivery, link in ((4, 7, "https://bank.example/a"), (3, 8, "https://bank.example/a"),
                                     (3, 7, "https://bank.example/b"), (3, 7, "")):
        assert not tracking.verify(KEY, campaign, delivery, link, signature)
    assert not tracking.verify("another key" * 4, 3, 7, "https://bank.example/a", signature)
    assert not tracking.verify(KEY, 3, 7, "https://bank.example/a", signature.upper())
    assert not tracking.verify(KEY, 3, 7, "https://bank.example/a", "")


def test_text_links_are_tracked_without_the_sentence_punctuation_after_them():
    text = tracker().text("혜택: https://bank.example/offer. 문의 https://bank.example/help?q=1, 감사합니다")
    assert text.count("/t/c/3/7/") == 2
    assert tracker().click_url("https://bank.example/offer") + ". " in text   # the full stop stays outside
    assert tracker().click_url("https://bank.example/help?q=1") + ", " in text
    assert text.startswith("혜택: ") and text.endswith(" 감사합니다")


def test_events_fall_into_hours_of_the_site_zone_with_every_hour_between_present():
    seoul = ZoneInfo("Asia/Seoul")
    late = datetime(2026, 11, 30, 23, 30, tzinfo=timezone.utc)   # 08:30 on 1 December in Seoul
    events = [(late, "sent", 1), (late + timedelta(minutes=10), "sent", 1), (late + timedelta(hours=3), "opened", 1)]
    starts, series = charts.buckets(events, seoul)
    assert [start.strftime("%m-%d %H:%M") for start in starts] == ["12-01 08:00", "12-01 09:00", "12-01 10:00",
                                                                    "12-01 11:00"]
    assert series == {"sent": [2, 0, 0, 0], "opened": [0, 0, 0, 1]}
    svg = charts.line_chart(starts, series, {"sent": "#111", "opened": "#222"}, "t", "Asia/Seoul", "c")
    assert svg.count("<polyline") == 2 and "Asia/Seoul" in svg and "sent 2" in svg and "<script" not in svg


def test_a_single_hour_is_drawn_between_its_neighbours():
    moment = datetime(2026, 12, 2, 3, 0, tzinfo=timezone.utc)
    starts, series = charts.buckets([(moment, "sent", 5)], ZoneInfo("Asia/Seoul"))
    assert [start.hour for start in starts] == [11, 12, 13] and series == {"sent": [0, 5, 0]}
