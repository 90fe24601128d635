"""EPS input, piece by piece: events and definitions name the field that has
the wrong type, conditions never raise on odd numbers, telegrams refuse
control characters, fingerprints tell the same event from another, routes
and refusals are what the HTTP edge relies on."""

from __future__ import annotations

import json

import pytest

from ums.event_services import definitions
from ums.event_services.conditions import Condition
from eps.events import BadEvent, IncomingEvent, from_json, header_key
from eps.http import router
from eps.telegrams import BAD_VALUE, TelegramError, decode, encode_fields, load_layouts
from ums.web import Refusal


@pytest.mark.parametrize("text", ["NaN", "sNaN", "-NaN", "Infinity", "-inf", "1e999999999", "1,000,000", "abc"])
def test_conditions_on_odd_numbers_never_raise(text):
    for op in (">=", ">", "<", "<=", "==", "!=", "in"):
        value = [1000000] if op == "in" else 1000000
        assert Condition.build("amount", op, value).check({"amount": text}) in (True, False)


@pytest.mark.parametrize("document, field", [
    ({"type": ["x"], "customer_id": "C1"}, "type"),
    ({"type": "deposit", "customer_id": {"a": 1}}, "customer_id"),
    ({"type": "deposit", "customer_id": "C1", "data": [1]}, "data"),
    ({"type": "deposit", "customer_id": "C1", "id": [1]}, "id"),
    ({"type": "deposit", "customer_id": "C1", "id": 1.5}, "id"),
    ({"type": "deposit", "customer_id": "C1", "occurred": {"at": 1}}, "occurred"),
    ({"type": "deposit", "customer_id": "C1", "occurred": "x" * 65}, "occurred"),
])
def test_a_wrong_typed_event_field_is_named(document, field):
    with pytest.raises(BadEvent) as refused:
        from_json(json.dumps(document).encode(), "account")
    assert field in str(refused.value)


def test_idempotency_keys_are_printable_utf8():
    assert header_key(None) == "" and header_key("키-1".encode()) == "키-1"
    for raw in (b"\xff", b"a\x00b", b"a\tb", b"k" * 129):
        with pytest.raises(BadEvent):
            header_key(raw)


def test_a_fingerprint_ignores_key_order_and_sees_every_value():
    one = IncomingEvent("account", "deposit", "C1", {"a": 1, "b": [1, 2]}, "k")
    same = IncomingEvent("account", "deposit", "C1", {"b": [1, 2], "a": 1}, "k")
    assert one.fingerprint() == same.fingerprint()
    for other in (IncomingEvent("account", "deposit", "C1", {"a": 1.0, "b": [1, 2]}, "k"),
                  IncomingEvent("account", "deposit", "C2", {"a": 1, "b": [1, 2]}, "k"),
                  IncomingEvent("account", "withdrawal", "C1", {"a": 1, "b": [1, 2]}, "k"),
                  IncomingEvent("account", "deposit", "C1", {"a": 1, "b": [2, 1]}, "k")):
        assert other.fingerprint() != one.fingerprint()


GOOD = {"name": "n", "event_type": "deposit", "templates": {"email": "t"}, "policy": {"default": ["email"]}}


@pytest.mark.parametrize("change, field", [
    ({"name": 5}, "name"), ({"name": "a/b"}, "name"), ({"name": "x" * 129}, "name"),
    ({"event_type": "two words"}, "event_type"), ({"templates": ["email"]}, "templates"),
    ({"templates": {"email": {"a": 1}}}, "templates.email"), ({"policy": {"default": "email"}}, "policy.default"),
    ({"policy": ["email"]}, "policy"), ({"priority": "high"}, "priority"), ({"priority": True}, "priority"),
    ({"conditions": {"field": "a"}}, "conditions"), ({"recipient": "C1"}, "recipient"),
    ({"templates": {"email": "t" * 200}}, "templates.email"),
])
def test_a_wrong_typed_definition_field_is_named(change, field):
    with pytest.raises(definitions.BadDefinition) as refused:
        definitions.from_dict({**GOOD, **change})
    assert field in str(refused.value)
    assert definitions.from_dict(GOOD).name == "n"


def test_a_telegram_field_with_a_control_character_is_a_bad_value():
    layout = load_layouts()["AC01"]
    body = encode_fields(layout, {"telegram_id": "T1", "customer_id": "C1", "direction": "D",
                                  "account": "110", "amount": "5", "branch": "ab"})
    decode(body, {"AC01": layout})
    spoiled = body.replace(b"ab", b"a\x00", 1)
    with pytest.raises(TelegramError) as refused:
        decode(spoiled, {"AC01": layout})
    assert refused.value.fields["code"] == BAD_VALUE and "branch" in str(refused.value)


def test_every_route_matches_its_own_shape_and_nothing_else():
    assert len(router.routes) == 9
    for route in router.routes:
        parts = ["x-1" if want is None else want for want in route.shape]
        assert router.match_parts(route.method, parts).route is route
        assert router.match_parts(route.method, parts + ["more", "more"]).route is None
    assert router.match_parts("GET", ["v1", "events"]) == (None, {}, True)      # POST only
    assert router.match_parts("PUT", ["v1", "events", "1"]) == (None, {}, True)
    assert router.match_parts("POST", ["v1", "services", "a b", "stop"]).params == {"name": "a b"}
    assert router.match_parts("GET", ["v1", "services", "stop"]).params == {"name": "stop"}


def test_a_refusal_is_a_whole_http_response_that_closes():
    raw = Refusal(413, "at most 10 bytes", headers={"X-Why": "size"}).response()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 413 Request Entity Too Large"
    assert b"Connection: close" in lines and b"X-Why: size" in lines
    assert f"Content-Length: {len(body)}".encode() in lines
    assert json.loads(body) == {"error": "too_large", "reason": "at most 10 bytes", "status": 413}
