"""Hostile JSON at every EPS JSON endpoint: each case gets a 4xx with a reason
(never 500, never 503), the next valid request is served, and whatever was
accepted reads back as valid JSON — over HTTP and with ``ums event show``."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from eps_support import SAMPLES, add_customer
from tests.acceptance.cli import ums_off_loop
from ums.db.models import eps_services, events

EVENT = '{{"id": {id}, "type": {type}, "customer_id": {customer}, "data": {data}}}'


def event(id='"E-1"', type='"deposit"', customer='"C1"', data="{}", extra="") -> bytes:
    text = EVENT.format(id=id, type=type, customer=customer, data=data)
    return (text[:-1] + extra + "}").encode("utf-8") if extra else text.encode("utf-8")


DEEP = "[" * 20000 + "]" * 20000  # 40 KB: inside the 64 KB limit, far past any depth limit

#: (what, body) — each must be refused with a 4xx and a reason
BAD_EVENTS = [
    ("NaN", event(data='{"amount": NaN}')),
    ("Infinity", event(data='{"amount": Infinity}')),
    ("-Infinity", event(data='{"amount": -Infinity}')),
    ("1e999999999", event(data='{"amount": 1e999999999}')),
    ("20,000-deep nesting", event(data='{"x": ' + DEEP + "}")),
    ("lone surrogate in id", event(id='"\\ud800"')),
    ("lone surrogate in data", event(data='{"memo": "a\\udc00b"}')),
    ("NUL in a string", event(data='{"memo": "a\\u0000b"}')),
    ("huge integer event id", event(id="1" + "0" * 5000)),
    ("huge string event id", event(id='"' + "7" * 5000 + '"')),
    ("integer of 40 digits", event(data='{"amount": ' + "9" * 40 + "}")),
    ("not UTF-8", b'{"type": "dep\xffosit", "customer_id": "C1"}'),
    ("not JSON", b"{not json"),
    ("empty body", b""),
    ("an array", b"[1, 2]"),
    ("type is an array", event(type="[1]")),
    ("customer_id is an object", event(customer='{"a": 1}')),
    ("data is a string", event(data='"amount=5"')),
    ("id is an object", event(id='{"a": 1}')),
    ("id is a boolean", event(id="true")),
    ("occurred is a number", event(extra=', "occurred": 5')),
    ("control character in id", event(id='"a\\u0007b"')),
]

DEFINITION = json.loads((SAMPLES / "large-deposit-alert.json").read_text())


def definition(**changes) -> bytes:
    return json.dumps({**DEFINITION, **changes}).encode()


def definition_text(replace: str, by: str) -> bytes:
    text = json.dumps(DEFINITION)
    assert replace in text
    return text.replace(replace, by, 1).encode("utf-8")


BAD_DEFINITIONS = [
    ("NaN", definition_text("1000000", "NaN")),
    ("Infinity", definition_text("1000000", "Infinity")),
    ("1e999999999", definition_text("1000000", "1e999999999")),
    ("20,000-deep nesting", definition_text('"recipient"', '"deep": ' + DEEP + ', "recipient"')),
    ("lone surrogate in name", definition_text('"large-deposit-alert"', '"\\ud800"')),
    ("NUL in description", definition_text('"Tell', '"\\u0000Tell')),
    ("integer of 40 digits", definition_text("1000000", "9" * 40)),
    ("not UTF-8", json.dumps(DEFINITION).encode().replace(b"large", b"l\xffarge", 1)),
    ("not JSON", b'{"name": '),
    ("an array", b"[]"),
    ("name is a number", definition(name=5)),
    ("name is too long", definition(name="n" * 200)),
    ("templates is an array", definition(templates=["email"])),
    ("policy channels are a string", definition(policy={"default": "email"})),
    ("priority is a word", definition(priority="high")),
    ("conditions is an object", definition(conditions={"field": "amount"})),
    ("recipient is a string", definition(recipient="C1")),
    ("template name is an object", definition(templates={"email": {"a": 1}, "fax": "f", "voice": "v"})),
]


def refused_with_a_reason(what: str, status: int, body: dict) -> None:
    assert 400 <= status < 500, (what, status, body)
    assert isinstance(body.get("reason"), str) and body["reason"].strip(), (what, body)
    assert "\n" not in body["reason"], (what, body)


async def test_every_bad_event_is_refused_with_a_reason_and_the_next_is_served(eps):
    assert len(DEEP) + 100 < 64 * 1024
    for what, body in BAD_EVENTS:
        status, _, reply = await eps.request("POST", "/v1/events", body, {"Content-Type": "application/json"})
        refused_with_a_reason(what, status, reply)
        status, _, reply = await eps.post_json({"type": "deposit", "customer_id": "C1", "data": {"n": 1}})
        assert status == 202, (what, reply)
    async with eps.db.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(events)) == len(BAD_EVENTS)
    # and the field is named for wrong types
    _, _, reply = await eps.request("POST", "/v1/events", event(data='"x"'), {"Content-Type": "application/json"})
    assert "data" in reply["reason"]
    _, _, reply = await eps.request("POST", "/v1/events", event(id="true"), {"Content-Type": "application/json"})
    assert "id" in reply["reason"]
    _, _, reply = await eps.request("POST", "/v1/events", event(data='{"a": NaN}'),
                                    {"Content-Type": "application/json"})
    assert "NaN" in reply["reason"]


async def test_every_bad_service_definition_is_refused_with_a_reason_and_the_next_is_served(eps):
    for what, body in BAD_DEFINITIONS:
        status, _, reply = await eps.request("POST", "/v1/services", body, {"Content-Type": "application/json"})
        refused_with_a_reason(what, status, reply)
    async with eps.db.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(eps_services)) == 0
    status, _, reply = await eps.register(SAMPLES / "large-deposit-alert.json")
    assert status == 201, reply
    status, _, reply = await eps.post_json({"type": "deposit", "customer_id": "C1", "data": {"amount": 5}})
    assert status == 202, reply
    _, _, reply = await eps.request("POST", "/v1/services", definition(templates=["email"]),
                                    {"Content-Type": "application/json"})
    assert "templates" in reply["reason"]


async def test_bad_idempotency_keys_paths_and_authorization_are_4xx(eps):
    json_type = {"Content-Type": "application/json"}
    good = event(id='"ok-1"')
    status, _, reply = await eps.request("POST", "/v1/events", good, {**json_type, "Idempotency-Key": b"\xff\xfe"})
    refused_with_a_reason("non-UTF-8 Idempotency-Key", status, reply)
    status, _, reply = await eps.request("POST", "/v1/events", good, {**json_type, "Idempotency-Key": "k" * 500})
    refused_with_a_reason("long Idempotency-Key", status, reply)
    for path in ("/v1/events/99999999999999999999999", "/v1/events/9223372036854775808",
                 "/v1/events/abc", "/v1/events/-1", "/v1/events/0", "/v1/events/%00",
                 "/v1/events/%D9%A1", "/v1/services/%00", "/v1/services/" + "n" * 300,
                 "/v1/services/nothing/stop", "/v1/customers/%00/timeline"):
        method = "POST" if path.endswith("/stop") else "GET"
        status, _, reply = await eps.request(method, path)
        assert status == 404, (path, status, reply)
        assert reply["reason"], path
    for header in (b"Bearer \xff\xfe\xfd", b"\xc3\x28", b"Bearer ums_\x80abc"):
        status, _, reply = await eps.request("POST", "/v1/events", good, {**json_type, "Authorization": header})
        assert status == 401, (header, status, reply)
    status, _, reply = await eps.request("POST", "/v1/events", good, {**json_type, "X-Api-Key": b"\xff" * 20},
                                         key="-")
    assert status in (401,), reply
    status, _, reply = await eps.request("POST", "/v1/events", good, json_type)
    assert status == 202, reply


EDGY_BUT_VALID = [
    {"id": "v-1", "type": "deposit", "customer_id": "C1",
     "data": {"memo": "입금 😀 \u2028 \\ \" </script>", "big": 10**29, "small": -10**29, "f": 1e308,
              "tiny": 5e-324, "neg0": -0.0, "nested": [[[[[[{"a": [1, {"b": None}]}]]]]]],
              "occurred": "2024-05-01T09:30:00+09:00"}},
    {"id": 12345678901234567890, "type": 42, "customer_id": 1001, "data": {}},
    {"id": "x" * 128, "type": "a.b:c-d_e", "customer_id": "C" * 64, "data": {"k" * 1000: "v" * 30000}},
]


def _nesting(depth: int):
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


async def test_whatever_is_accepted_reads_back_as_valid_json(eps, tmp_path):
    await add_customer(eps.db, "C1", email="kim@example.com")
    documents = EDGY_BUT_VALID + [{"id": "deep", "type": "deposit", "customer_id": "C1",
                                   "data": {"x": _nesting(28)}}]
    ids = []
    for document in documents:
        status, _, reply = await eps.post_json(document)
        assert status == 202, (document["id"], reply)
        ids.append(reply["id"])

    def no_constants(name):
        raise AssertionError(f"{name} in the answer: not JSON")

    for document, event_id in zip(documents, ids):
        status, _, raw = await eps.request_raw("GET", f"/v1/events/{event_id}")
        assert status == 200
        shown = json.loads(raw.decode("utf-8"), parse_constant=no_constants)
        expected = {**document["data"]}
        assert shown["payload"] == expected
        assert shown["idempotency_key"] == str(document["id"])

    # the operator's view too: `ums event show` on the same database
    (tmp_path / "ums.cfg").write_text(f"[database]\nurl = {eps.config.get('database', 'url')}\n")
    for event_id in ids:
        result = await ums_off_loop(tmp_path, "event", "show", str(event_id))
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout, parse_constant=no_constants)["id"] == event_id
    missing = await ums_off_loop(tmp_path, "event", "show", "99999999999999999999999")
    assert missing.returncode != 0 and len(missing.stderr.strip().splitlines()) == 1
