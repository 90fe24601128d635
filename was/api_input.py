"""Reading what an ``/api/v1`` client sends, so that nothing it sends is a 500.

The contract:

* :func:`json_body` parses a JSON body with :func:`ums.safejson.loads` (deep
  nesting, NaN/Infinity/``1e999``, huge integers, lone surrogates, NUL and
  non-UTF-8 bytes are a **400** with the reason — naming the field where
  the culprit is one value, see :func:`culprit_field`), requires an object, and
  validates it against the named request schema of :mod:`was.openapi` (JSON
  Schema 2020-12): a field of the wrong type, out of range or unknown is a
  **422** whose reason names the field (``priority must be at most 9``).
* :func:`query_int` reads a whole number from the query string: anything else,
  or one outside its bounds, is a **400** naming the parameter.
* :func:`header_token` reads an ASCII token header such as
  ``Idempotency-Key``: other bytes, or too long, is a **400**.

Reasons are one line and short: a value is never echoed at length.
"""

from __future__ import annotations

import json
import math

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from ums import safejson
from ums.web import HttpError

from .http import Page
from .openapi import DOCUMENT

MAX_REASON = 200
_VALIDATORS = {name: Draft202012Validator(schema) for name, schema in DOCUMENT["components"]["schemas"].items()}


class _Bad:
    """Stands in for a number :mod:`ums.safejson` refuses, to find where it is."""


_BAD = _Bad()


def _number(text: str):
    value = float(text)
    return value if math.isfinite(value) else _BAD


def _integer(text: str):
    return _BAD if len(text.lstrip("-")) > safejson.MAX_INT_DIGITS else int(text)


def field_name(path) -> str:
    """``("audience", "books", 0)`` → ``audience.books[0]``."""
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


def _bad_text(text: str) -> bool:
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def culprit_field(data: bytes) -> str | None:
    """Where in ``data`` the first value :mod:`ums.safejson` refuses is — a
    number JSON cannot hold (NaN, Infinity, 1e999, an over-long integer), or a
    string or key with a lone surrogate or NUL — as a field name; None when
    not found. Runs only after :func:`ums.safejson.loads` refused ``data``."""
    try:
        document = json.loads(data.decode("utf-8"), parse_constant=lambda name: _BAD, parse_float=_number,
                              parse_int=_integer)
    except (ValueError, RecursionError):
        return None
    stack = [(document, ())]
    while stack:
        value, path = stack.pop()
        if value is _BAD or (isinstance(value, str) and _bad_text(value)):
            return field_name(path) or "the body"
        if isinstance(value, dict):
            for key in value:
                if _bad_text(key):
                    return field_name(path + (key.encode("utf-8", "replace").decode("utf-8"),))
            stack.extend((item, path + (key,)) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((item, path + (index,)) for index, item in reversed(list(enumerate(value))))
    return None


def short(text: str, limit: int = MAX_REASON) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def parse_json(data: bytes):
    """A JSON document from a client, or a 400 with the reason."""
    try:
        return safejson.loads(data)
    except safejson.BadJson as exc:
        reason = str(exc)
        if "nested deeper" not in reason and "not UTF-8" not in reason:
            where = culprit_field(data)
            if where:
                reason = f"{reason} (in {where})"
        raise HttpError(400, short(reason)) from None


def _type_words(expected) -> str:
    kinds = [kind for kind in (expected if isinstance(expected, list) else [expected]) if kind != "null"]
    words = {"string": "text", "integer": "a whole number", "number": "a number", "boolean": "true or false",
             "object": "an object", "array": "a list"}
    return " or ".join(words.get(kind, kind) for kind in kinds)


def describe(error) -> str:
    """A validation error as one line that names the field."""
    field = field_name(error.absolute_path)
    where = field or "the body"
    schema, kind = error.schema, error.validator
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "a field"
        return f"{field_name([*error.absolute_path, missing])} is required"
    if kind == "additionalProperties":
        unknown = sorted(set(error.instance) - set(schema.get("properties", {})))
        return f"unknown field {field_name([*error.absolute_path, unknown[0]]) if unknown else where}"
    if kind == "type":
        return f"{where} must be {_type_words(schema['type'])}"
    if kind == "enum":
        return f"{where} must be one of {', '.join(str(v) for v in schema['enum'] if v is not None)}"
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        return f"{where} must be between {low} and {high}" if low is not None and high is not None else \
            f"{where}: {error.message}"
    if kind == "maxLength":
        return f"{where} must be at most {schema['maxLength']} characters long"
    if kind == "minLength":
        return f"{where} must not be empty"
    if kind in ("maxItems", "maxProperties"):
        return f"{where} has more than {schema[kind]} entries"
    if kind == "oneOf":
        return f"{where} has the wrong type or shape"
    return f"{where}: {error.message}"


def validate(data, schema: str) -> None:
    """422 naming the field when ``data`` does not match ``schema`` (a name in :mod:`was.openapi`)."""
    error = best_match(_VALIDATORS[schema].iter_errors(data))
    if error is not None:
        raise HttpError(422, short(describe(error)))


def json_body(page: Page, schema: str, empty_ok: bool = False) -> dict:
    """The request's JSON object, checked against ``schema`` (see the module docstring)."""
    data = page.body
    if not data.strip():
        if not empty_ok:
            raise HttpError(400, "the request has no body (send a JSON object)")
        return {}
    document = parse_json(data)
    if not isinstance(document, dict):
        raise HttpError(400, "the JSON body must be an object")
    validate(document, schema)
    return document


def query_int(page: Page, name: str, default: int, low: int = 1, high: int = 1000) -> int:
    """Query parameter ``name`` as a whole number from ``low`` to ``high`` (``default`` when absent)."""
    text = page.query.get(name)
    if text is None or text == "":
        return default
    if not (text.isascii() and text.isdigit()) or len(text) > 9 or not low <= int(text) <= high:
        raise HttpError(400, f"{name} must be a whole number from {low} to {high}")
    return int(text)


def header_token(page: Page, name: str, limit: int = 128) -> str | None:
    """Header ``name`` as printable ASCII of 1 to ``limit`` characters; None when absent."""
    raw = page.header_bytes(name).strip()
    if not raw:
        return None
    if len(raw) > limit or not all(0x20 <= byte <= 0x7E for byte in raw):
        raise HttpError(400, f"{name} must be 1 to {limit} printable ASCII characters")
    return raw.decode("ascii")
