"""A bounded property-based fuzz of every operation in an OpenAPI document.

For each operation hypothesis draws requests and sends them over real HTTP:

* path parameters from their schema, or any text, or integers up to 10**40;
* query parameters from their schema or any text, each present or not;
* a body (where the operation takes one) that is valid for its JSON schema
  (hypothesis-jsonschema), valid but with one field replaced by any JSON
  value, any JSON document, or hostile bytes (deep nesting, NaN, 1e999, lone
  surrogates, NUL, non-UTF-8, truncated documents);
* now and then non-UTF-8 bytes instead of the credentials.

Every answer must be below 500 (a client can never cause a server fault or
a "retry later"), and every :data:`CHECK_EVERY` requests, and at the end, a
known-good request must still be served. The run is derandomised (the same
requests every time, so CI is repeatable); ``UMS_FUZZ_RANDOM=1`` explores
afresh and ``UMS_FUZZ_EXAMPLES`` sets the examples per operation.
"""

from __future__ import annotations

import http.client
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import quote_from_bytes

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

EXAMPLES = int(os.environ.get("UMS_FUZZ_EXAMPLES", "100"))
CHECK_EVERY = 25
HOSTILE = [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
    b'{"priority": NaN}', b'{"id": Infinity}', b'{"type": -Infinity}', b'{"priority": 1e999}',
    b'{"id": 1e999999999}', b'{"id": ' + b"9" * 400 + b"}",
    b'{"recipient": "\\ud800"}', b'{"\\udfff": 1}', b'{"name": "a\\u0000b"}', b'{"data": {"name": "\\ud800"}}',
    b'{"name": "\xff\xfe"}', b"\xef\xbb\xbf\xff", b"\xff\xfe{\x00}\x00",
    b'{"channel": "email", ', b"", b"[1, 2]", b'"text"', b"null", b"12", b"{}",
]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10**18, max_value=10**40)
    | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@dataclass
class Call:
    method: str
    target: str
    body: bytes | None = None
    headers: dict = field(default_factory=dict)

    def __repr__(self) -> str:  # what a failure report shows
        shown = (self.body or b"")[:200]
        return f"{self.method} {self.target[:200]} headers={self.headers} body={shown!r}"


@dataclass
class Endpoint:
    """Where to send, as whom, and how to tell it still serves."""

    host: str
    port: int
    credentials: dict[str, str]
    #: a known-good request: (method, target, body or None); must answer 2xx
    good: tuple[str, str, bytes | None]
    statuses: Counter = field(default_factory=Counter)

    def send(self, call: Call) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=20)
        try:
            connection.putrequest(call.method, call.target, skip_accept_encoding=True)
            headers = dict(call.headers or self.credentials)  # a call's own credentials replace the good ones
            if call.body is not None:
                headers.setdefault("Content-Type", "application/json")
                headers["Content-Length"] = str(len(call.body))
            for name, value in headers.items():
                connection.putheader(name, value)
            connection.endheaders(call.body)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def still_serves(self) -> None:
        method, target, body = self.good
        status, answer = self.send(Call(method, target, body))
        assert 200 <= status < 300, f"the known-good {method} {target} got {status}: {answer[:300]!r}"


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def _resolve(document: dict, schema: dict) -> dict:
    """``schema`` with its ``$ref`` (one level, as these documents use them) resolved."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return document["components"]["schemas"][name]
    return schema


def _segment(schema: dict) -> st.SearchStrategy[str]:
    text = st.text(min_size=1, max_size=40)
    huge = st.integers(min_value=0, max_value=10**40).map(str)
    drawn = st.one_of(from_schema(schema), text, huge) if schema.get("pattern") or schema.get("enum") else st.one_of(text, huge)
    return drawn.map(lambda value: quote_from_bytes(str(value).encode("utf-8", "surrogatepass"), safe=""))


def _query(parameters: list[dict]) -> st.SearchStrategy[str]:
    names = [p for p in parameters if p["in"] == "query"]
    if not names:
        return st.just("")
    values = {p["name"]: st.one_of(st.none(), from_schema(p["schema"]).map(str), st.text(max_size=30),
                                   st.integers(min_value=-10**30, max_value=10**30).map(str)) for p in names}
    return st.fixed_dictionaries(values).map(lambda drawn: "&".join(
        f"{name}={quote_from_bytes(value.encode('utf-8', 'surrogatepass'), safe='')}"
        for name, value in drawn.items() if value is not None))


def _with_one_field_replaced(valid: st.SearchStrategy, schema: dict) -> st.SearchStrategy:
    names = sorted(schema.get("properties", {}))
    if not names:
        return valid

    def replace(drawn):
        document, name, value = drawn
        return {**document, name: value} if isinstance(document, dict) else document
    return st.tuples(valid, st.sampled_from(names), JSON_VALUES).map(replace)


def _encoded(value) -> bytes:
    return json.dumps(value, allow_nan=True, ensure_ascii=True).encode("ascii")


def _body(document: dict, operation: dict) -> st.SearchStrategy[bytes | None]:
    content = (operation.get("requestBody") or {}).get("content", {})
    if "application/json" not in content:
        return st.one_of(st.none(), st.integers(2, len(HOSTILE) - 1).map(HOSTILE.__getitem__))
    schema = _resolve(document, content["application/json"]["schema"])
    valid = from_schema(schema)
    return st.one_of(
        valid.map(_encoded),
        _with_one_field_replaced(valid, schema).map(_encoded),
        JSON_VALUES.map(_encoded),
        st.integers(0, len(HOSTILE) - 1).map(HOSTILE.__getitem__),  # by index: a short repr
        st.binary(max_size=64),
    )


def _path(document: dict, path: str, parameters: list[dict]) -> st.SearchStrategy[str]:
    schemas = {p["name"]: p["schema"] for p in parameters if p["in"] == "path"}
    names = re.findall(r"{(\w+)}", path)
    if not names:
        return st.just(path)

    def fill(values):
        target = path
        for name, value in zip(names, values):
            target = target.replace("{" + name + "}", value)
        return target
    return st.tuples(*(_segment(schemas.get(name, {"type": "string"})) for name in names)).map(fill)


def calls(document: dict, method: str, path: str, operation: dict) -> st.SearchStrategy[Call]:
    parameters = operation.get("parameters", [])
    bad_credentials = st.sampled_from([{}, {}, {}, {}, {"x-api-key": b"\xff\xfe\x80key"},
                                       {"authorization": b"Bearer \xc3\x28\x00"}])
    return st.builds(
        lambda target, query, body, extra: Call(method, target + ("?" + query if query else ""), body, extra),
        _path(document, path, parameters), _query(parameters), _body(document, operation), bad_credentials)


def fuzz(document: dict, endpoint: Endpoint, examples: int = EXAMPLES) -> Counter:
    """Fuzz every operation of ``document`` at ``endpoint``; the statuses seen."""
    sent = 0

    for method, path, operation in operations(document):
        @settings(max_examples=examples, deadline=None, database=None,
                  derandomize=os.environ.get("UMS_FUZZ_RANDOM") != "1",
                  suppress_health_check=list(HealthCheck))
        @given(calls(document, method, path, operation))
        def answers_below_500(call: Call):
            nonlocal sent
            status, answer = endpoint.send(call)
            endpoint.statuses[status] += 1
            assert status < 500, f"{call!r} got {status}: {answer[:300]!r}"
            sent += 1
            if sent % CHECK_EVERY == 0:
                endpoint.still_serves()

        answers_below_500()
    endpoint.still_serves()
    return endpoint.statuses
