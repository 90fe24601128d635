"""JSON from clients, read so that no document can make the server fail.

:func:`loads` is the one way UMS reads a JSON body a client sent (EPS events
and services, the WAS API). It refuses, with :class:`BadJson` (a one-line
reason a 400 can carry), what Python's :mod:`json` would either crash on or
accept and then fail to store or serve back:

* nesting deeper than ``max_depth`` — measured without recursion after
  parsing (deeper than the C parser's own limit, its RecursionError is
  turned into the same refusal);
* ``NaN``, ``Infinity``, ``-Infinity`` and numbers that overflow to infinity
  (``1e999``) — JSON has no such values and they cannot be written back;
* integers of more than ``MAX_INT_DIGITS`` digits;
* lone UTF-16 surrogates (``"\\ud800"``) and NUL characters in strings or
  keys — they cannot be stored as text or encoded as UTF-8;
* bytes that are not UTF-8.
"""

from __future__ import annotations

import json
import math

from .errors import UmsError

DEFAULT_MAX_DEPTH = 32
MAX_INT_DIGITS = 30


class BadJson(UmsError):
    """malformed JSON: {reason}"""


def loads(data: bytes | str, max_depth: int = DEFAULT_MAX_DEPTH):
    """The document in ``data``, checked as the module docstring says."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadJson(reason=f"not UTF-8 (byte {exc.start})") from None
    try:
        document = _DECODER.decode(data)
    except json.JSONDecodeError as exc:
        raise BadJson(reason=f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:   # the C parser's own guard, far deeper than max_depth
        raise BadJson(reason=f"nested deeper than {max_depth} levels") from None
    _check(document, max_depth)
    return document


def _no_constant(name: str):
    raise BadJson(reason=f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadJson(reason=f"number {text[:40]} is out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise BadJson(reason=f"integer of {len(text)} digits is out of range")
    return int(text)


_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float, parse_int=_bounded_int)


def _check(document, max_depth: int) -> None:
    """No deeper than ``max_depth``; every key and string value encodes as
    UTF-8 and holds no NUL. One pass, without recursion."""
    stack = [(document, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, (dict, list)):
            if depth >= max_depth:
                raise BadJson(reason=f"nested deeper than {max_depth} levels")
            if isinstance(value, dict):
                for key, item in value.items():
                    _check_text(key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise BadJson(reason="a string holds a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadJson(reason="a string holds a lone surrogate (\\ud800-\\udfff)") from None
