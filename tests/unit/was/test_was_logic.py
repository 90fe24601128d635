"""Unit tests of WAS logic that needs no server: site time zone handling, the
fax number a reply goes to, consent reconfirmation, the HTML sanitiser, the
campaign chart and route matching."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from ums import clock
from ums.web import Router
from was import mail
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


# --- the HTTP edge --------------------------------------------------------------------------

def test_every_api_route_names_the_scope_it_needs_and_campaigns_are_for_marketing():
    from was.app import site_router

    api_routes = [route for route in site_router().routes if route.path.startswith("/api/v1/")]
    assert len(api_routes) >= 9
    for route in api_routes:
        assert route.scope in ("send", "contacts", "campaigns", "mailbox"), route.path
        if "campaigns" in route.path:
            assert route.scope == "campaigns" and "operator" not in route.roles and "marketer" in route.roles


@pytest.mark.parametrize("channel, address", [
    ("email", "a@example.com\r\nBcc: evil@example.net"), ("email", "not-an-email"),
    ("email", "a@example.com,b@example.com"), ("email", "a@example.com;b@example.com"),
    ("email", "Kim <kim@example.com>"), ("email", "kim@localhost"), ("email", "a..b@example.com"),
    ("email", "kim@-bank.example"), ("email", '"kim"@example.com'), ("email", "kim@[127.0.0.1]"),
    ("email", "kim\u00a0lee@example.com"), ("email", "x" * 65 + "@example.com"), ("email", ""),
    ("fax", "abc"), ("fax", "12"), ("fax", "1234567890123456"), ("fax", "+82+2"), ("fax", "02-555-0101\n"),
    ("voice", "sip:callee@127.0.0.1"), ("voice", "010 1234 5678 ext 9"), ("pigeon", "coo"), ("email", None),
])
def test_a_bad_recipient_is_refused_with_a_reason(channel, address):
    from ums import addresses

    reason = addresses.problem(channel, address)
    assert reason
    assert not addresses.is_valid(channel, address) if isinstance(address, str) else True
    with pytest.raises(addresses.BadAddress) as refused:
        addresses.check(channel, address)
    assert "\n" not in str(refused.value) and "\r" not in str(refused.value)


@pytest.mark.parametrize("channel, address", [
    ("email", "kim@example.com"), ("email", " Kim.Lee+alerts@Bank.Example "), ("email", "홍길동@은행.한국"),
    ("fax", "+82 2 555 0100"), ("fax", "02-555-0101"), ("voice", "(02) 555.0101"), ("voice", "0101234"),
])
def test_a_good_recipient_passes(channel, address):
    from ums import addresses

    assert addresses.problem(channel, address) is None
    assert addresses.check(channel, address) == address.strip()


@pytest.mark.parametrize("target", [
    "/\\evil.example/x", "//evil", "/%5Cevil", "%2F%2F", "/%2F%2Fevil", "/%252F%252Fevil", "http://evil.example",
    "https:evil.example", "/\tevil", "/%09/evil", "javascript:alert(1)", "", None, "/" + "a" * 3000,
])
def test_next_falls_back_to_the_home_page(target):
    from was.pages.auth import safe_next

    assert safe_next(target) == "/"


def test_a_local_next_is_kept_and_quoted_for_the_location_header():
    from was.pages.auth import safe_next

    assert safe_next("/inbox?folder=INBOX&flag=unseen") == "/inbox?folder=INBOX&flag=unseen"
    assert safe_next("/contacts?q=홍") == "/contacts?q=%ED%99%8D"


def test_path_ids_are_ascii_digits_within_a_bigint():
    from was.http import path_id

    assert path_id("42") == 42 and path_id(str(2**63 - 1)) == 2**63 - 1
    for text in (str(2**63), "9" * 23, "-1", "0", "٣", "1e3", " 4", "", "abc"):
        assert path_id(text) is None, text


def test_security_headers_always_forbid_framing_by_others():
    from was.http import CSP, security_headers

    headers = security_headers()
    assert headers["content-security-policy"] == CSP and headers["x-frame-options"] == "SAMEORIGIN"
    assert headers["x-content-type-options"] == "nosniff"
    own = security_headers("default-src 'none'; sandbox")
    assert own["content-security-policy"].endswith("frame-ancestors 'self'")


@pytest.mark.parametrize("body, reason", [
    (b'{"priority": 1e999}', "priority"), (b'{"a": [1, {"b": NaN}]}', "a[1].b"), (b'{"name": "\\ud800"}', "name"),
    (b'{"x": ' + b"1" * 31 + b"}", "x"), (b'{"n": "a\\u0000"}', "n"), (b"[" * 50 + b"]" * 50, "nested deeper"),
    (b"\xff", "not UTF-8"), (b'{"a":', "malformed JSON"),
])
def test_malformed_json_is_a_400_that_says_where(body, reason):
    from was.api_input import parse_json
    from ums.web import HttpError

    with pytest.raises(HttpError) as refused:
        parse_json(body)
    assert refused.value.status == 400 and reason in refused.value.reason


@pytest.mark.parametrize("schema, document, reason", [
    ("Send", {"channel": "email", "recipient": "a@example.com", "priority": 99}, "priority must be between 0 and 9"),
    ("Send", {"channel": "email", "recipient": "a@example.com", "template": {"a": 1}}, "template must be text"),
    ("Send", {"channel": "email"}, "recipient is required"),
    ("Send", {"channel": "email", "recipient": "a@example.com", "recipent": "x"}, "unknown field recipent"),
    ("Contact", {"name": {"first": "Kim"}}, "name must be text"),
    ("Contact", {"consent": "yes"}, "consent must be an object"),
    ("Contact", {"book": ["VIP"]}, "book must be text"),
    ("Contact", {"consent": {"granted": "yes"}}, "consent.granted must be true or false"),
    ("Campaign", {"name": "x", "template": "t", "audience": {"books": "VIP"}}, "audience.books must be a list"),
    ("Campaign", {"name": "x", "template": "t", "audience": {}, "expires_after": 10**12}, "expires_after"),
])
def test_a_json_field_of_the_wrong_type_is_a_422_naming_it(schema, document, reason):
    from was.api_input import validate
    from ums.web import HttpError

    with pytest.raises(HttpError) as refused:
        validate(document, schema)
    assert refused.value.status == 422 and reason in refused.value.reason
