"""Conditions on event fields, as small rule objects (one rule per comparison).

A service matches an event when every one of its conditions holds. Values
compare as numbers when both sides read as numbers (XML and telegram fields
arrive as text, JSON ones as numbers), otherwise as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from ums.errors import UmsError


class BadCondition(UmsError):
    """Bad condition {condition}: {reason}."""


#: Operator spellings accepted in definitions -> canonical name.
OPERATORS = {
    "eq": "eq", "==": "eq", "=": "eq",
    "ne": "ne", "!=": "ne",
    "gt": "gt", ">": "gt",
    "ge": "ge", ">=": "ge",
    "lt": "lt", "<": "lt",
    "le": "le", "<=": "le",
    "in": "in",
    "contains": "contains",
    "exists": "exists",
}


def _number(value) -> Decimal | None:
    """``value`` as a finite number, or None (text such as "NaN" or "Infinity"
    compares as text: a Decimal NaN would raise on ordering)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        number = Decimal(str(value))
    elif isinstance(value, str):
        text = value.strip().replace(",", "")
        try:
            number = Decimal(text) if text else None
        except InvalidOperation:
            return None
    else:
        return None
    return number if number is not None and number.is_finite() else None


def _comparable(left, right):
    left_number, right_number = _number(left), _number(right)
    if left_number is not None and right_number is not None:
        return left_number, right_number
    return str(left), str(right)


_COMPARE = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


@dataclass(frozen=True)
class Condition:
    """``field op value``; ``field`` may be dotted to reach nested JSON."""

    field: str
    op: str
    value: object = None

    @classmethod
    def build(cls, field: str, op: str, value=None) -> "Condition":
        canonical = OPERATORS.get(str(op).strip().lower())
        if not field:
            raise BadCondition(condition=f"{op} {value!r}", reason="no field named")
        if canonical is None:
            raise BadCondition(condition=f"{field} {op} {value!r}",
                               reason="operator must be one of " + ", ".join(sorted(set(OPERATORS.values()))))
        if canonical == "in" and isinstance(value, str):
            value = [part.strip() for part in value.split(",")]
        if canonical not in ("exists",) and value is None:
            raise BadCondition(condition=f"{field} {op}", reason="no value to compare with")
        return cls(field, canonical, value)

    def check(self, fields: dict) -> bool:
        present, actual = lookup(fields, self.field)
        if self.op == "exists":
            return present
        if not present or actual is None:
            return False
        if self.op == "in":
            return any(_equal(actual, choice) for choice in self.value)
        if self.op == "contains":
            return str(self.value) in str(actual)
        try:
            return _COMPARE[self.op](*_comparable(actual, self.value))
        except TypeError:
            return False

    def as_dict(self) -> dict:
        return {"field": self.field, "op": self.op, "value": self.value}


def _equal(left, right) -> bool:
    a, b = _comparable(left, right)
    return a == b


def lookup(fields: dict, dotted: str) -> tuple[bool, object]:
    current: object = fields
    for part in dotted.split("."):
        if not isinstance(current, dict) or part not in current:
            return False, None
        current = current[part]
    return True, current


def all_hold(conditions: list[Condition], fields: dict) -> bool:
    return all(condition.check(fields) for condition in conditions)
