"""Service definitions: what a registered EPS service answers and how it sends.

A definition is JSON or XML (validated against ``config/xsd/service.xsd``);
both read into one :class:`ServiceDefinition`. JSON form::

    {
      "name": "large-deposit-alert",
      "event_type": "deposit",
      "kind": "transactional",              # or "advertising"
      "priority": 3,                        # 1 (first) .. 9
      "lane": "urgent",                     # urgent, notice or marketing (default: by kind)
      "conditions": [{"field": "amount", "op": ">=", "value": 1000000}],
      "recipient": {"customer_field": ""},  # "" = the event's customer id
      "templates": {"email": "deposit-email", "fax": "deposit-fax", "voice": "deposit-voice"},
      "policy": {"VIP": ["voice", "email"], "default": ["email", "fax"]},
      "digest": {"window": "10m", "template": "card-payment-digest"}   # optional
    }

``digest`` (XML ``<digest window="10m" template="…"/>``) collects the events
of one customer that arrive within ``window`` of the first (``90s``, ``10m``,
``1h`` or seconds; at most a day) into one message rendered with
``template`` (one name, kept for each channel of the policy), which gets
the list of events as ``events``; a customer with one event in the window
gets the service's normal message (see :mod:`ums.event_services.digests`).

``policy`` maps a customer grade to the channels to try, in order; ``default``
covers every other grade. Each channel in a policy needs a template.

JSON is read with :func:`ums.safejson.loads`; every field must have its type
(a :class:`BadDefinition` names the one that does not), ``name`` is 1-128
printable characters without ``/`` (it is part of ``/v1/services/{name}``),
``event_type`` 1-64 letters, digits or ``_.:-`` (as events name their type),
and a definition is at most :data:`MAX_DEFINITION_BYTES`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from ums import safejson, xml
from ums.addresses import CHANNELS
from ums.config import SHIPPED_CONFIG_DIR
from ums.errors import UmsError
from ums.queue import lanes

from .conditions import BadCondition, Condition

SERVICE_XSD = SHIPPED_CONFIG_DIR / "xsd" / "service.xsd"
KINDS = ("transactional", "advertising")
DEFAULT_GRADE = "default"
MAX_DEFINITION_BYTES = 256 * 1024
NAME_SHAPE = re.compile(r"^[^/\x00-\x1f\x7f]{1,128}$")
_EVENT_TYPE = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
#: template names, grades and field names: printable, at most this long
MAX_LABEL = 128


class BadDefinition(UmsError):
    """Bad service definition{where}: {reason}."""


#: a digest window: a number of seconds, or a number with s, m or h
_WINDOW = re.compile(r"^\s*([0-9]{1,6})\s*([smh]?)\s*$")
_WINDOW_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}
MAX_WINDOW = timedelta(days=1)


@dataclass(frozen=True)
class Digest:
    """Events of one customer within ``window`` of the first become one message."""

    window: timedelta
    template: str

    def as_dict(self) -> dict:
        return {"window": window_text(self.window), "template": self.template}


def window_text(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass
class ServiceDefinition:
    name: str
    event_type: str
    templates: dict[str, str]
    policy: dict[str, list[str]]
    kind: str = "transactional"
    priority: int = 5
    #: a :mod:`ums.queue.lanes` lane; None: notice for transactional, marketing for advertising
    lane: str | None = None
    conditions: list[Condition] = field(default_factory=list)
    #: event field holding the customer id; "" means the event's own customer id
    customer_field: str = ""
    description: str = ""
    digest: Digest | None = None

    def channels_for(self, grade: str | None) -> list[str]:
        """The channel order for a customer grade (case-insensitive), else the default."""
        wanted = (grade or "").strip().lower()
        for name, channels in self.policy.items():
            if name.lower() == wanted:
                return channels
        return self.policy.get(DEFAULT_GRADE, [])

    def matches(self, fields: dict) -> bool:
        return all(condition.check(fields) for condition in self.conditions)

    @property
    def settled_lane(self) -> str:
        return lanes.settled(self.lane, self.kind)

    def as_dict(self) -> dict:
        return {
            "name": self.name, "event_type": self.event_type, "kind": self.kind,
            "priority": self.priority, "description": self.description,
            "conditions": [condition.as_dict() for condition in self.conditions],
            "recipient": {"customer_field": self.customer_field},
            "templates": dict(self.templates), "policy": {k: list(v) for k, v in self.policy.items()},
            **({"lane": self.lane} if self.lane else {}),
            **({"digest": self.digest.as_dict()} if self.digest else {}),
        }


def from_dict(data: dict, where: str = "") -> ServiceDefinition:
    """Build and check a definition from its JSON form (also the stored form)."""
    where = f" {where}" if where else ""
    if not isinstance(data, dict):
        raise BadDefinition(where=where, reason="expected a JSON object")
    try:
        definition = ServiceDefinition(
            name=_text(data, "name", NAME_SHAPE, "1-128 printable characters, without /"),
            event_type=_text(data, "event_type", _EVENT_TYPE, "1-64 letters, digits or _.:-"),
            kind=_label(data.get("kind", "transactional"), "kind"),
            priority=_priority(data.get("priority", 5)),
            lane=_lane(data.get("lane")),
            conditions=[_condition(item) for item in _typed(data, "conditions", list, "an array")],
            customer_field=_label(_typed(data, "recipient", dict, "an object").get("customer_field") or "",
                                  "recipient.customer_field"),
            templates={_label(k, "a templates channel"): _label(v, f"templates.{k}")
                       for k, v in _typed(data, "templates", dict, "an object").items()},
            policy={_label(k, "a policy grade"): [_label(c, f"policy.{k}") for c in _list(v, f"policy.{k}")]
                    for k, v in _typed(data, "policy", dict, "an object").items()},
            description=_label(data.get("description") or "", "description", limit=MAX_DEFINITION_BYTES),
            digest=_digest(data.get("digest")),
        )
        _check(definition)
    except (BadCondition, ValueError, TypeError, AttributeError) as exc:
        raise BadDefinition(where=where, reason=str(exc)) from None
    return definition


def _text(data: dict, key: str, shape: re.Pattern, rule: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key} is required")
    if not shape.match(value.strip()):
        raise ValueError(f"{key} must be {rule}")
    return value.strip()


def _typed(data: dict, key: str, kind: type, described: str):
    """``data[key]`` when it is of ``kind``; an empty one when absent or null."""
    value = data.get(key)
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise ValueError(f"{key} must be {described}")
    return value


def _list(value, name: str) -> list:
    if not isinstance(value, list):
        raise ValueError(f"{name} must be an array of channels")
    return value


def _label(value, name: str, limit: int = MAX_LABEL) -> str:
    """A short text field: a string (numbers allowed, as in XML), printable, at most ``limit``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    if len(value) > limit:
        raise ValueError(f"{name} must be at most {limit} characters")
    if any(ord(ch) < 0x20 and ch not in "\t\n\r" for ch in value):
        raise ValueError(f"{name} holds a control character")
    return value


def _priority(value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError("priority must be a whole number from 1 to 9")
    try:
        number = int(value)
    except ValueError:
        raise ValueError("priority must be a whole number from 1 to 9") from None
    if not 1 <= number <= 9:
        raise ValueError("priority must be 1 to 9")
    return number


def _lane(value) -> str | None:
    if value is None or value == "":
        return None
    if value not in lanes.ORDER:
        raise ValueError(f"lane must be urgent, notice or marketing, not {value!r}")
    return value


def _digest(value) -> Digest | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError('digest must be an object {"window": "10m", "template": NAME}')
    template = _label(value.get("template") or "", "digest.template")
    if not template.strip():
        raise ValueError("digest.template is required (the template of the digest message)")
    window = value.get("window")
    found = _WINDOW.match(str(window)) if isinstance(window, (str, int)) and not isinstance(window, bool) else None
    if found is None:
        raise ValueError(f"digest.window must be seconds or a number with s, m or h (e.g. 10m), not {window!r}")
    seconds = timedelta(seconds=int(found.group(1)) * _WINDOW_UNITS[found.group(2)])
    if not timedelta(seconds=1) <= seconds <= MAX_WINDOW:
        raise ValueError("digest.window must be from 1 second to 24 hours")
    return Digest(seconds, template.strip())


def _condition(item) -> Condition:
    if not isinstance(item, dict):
        raise ValueError("each condition is an object with field, op and value")
    return Condition.build(_label(item.get("field") or "", "a condition's field"),
                           _label(item.get("op") or "", "a condition's op"), item.get("value"))


def _check(definition: ServiceDefinition) -> None:
    if definition.kind not in KINDS:
        raise ValueError(f"kind must be transactional or advertising, not {definition.kind!r}")
    if not definition.policy:
        raise ValueError("a channel policy is required (e.g. {\"default\": [\"email\"]})")
    for grade, channels in definition.policy.items():
        if not channels:
            raise ValueError(f"policy for {grade} names no channel")
        for channel in channels:
            if channel not in CHANNELS:
                raise ValueError(f"unknown channel {channel!r} in policy for {grade}")
            if channel not in definition.templates:
                raise ValueError(f"no template for channel {channel} (used by policy {grade})")
    for channel in definition.templates:
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r} in templates")


def from_json(text: str | bytes, where: str = "") -> ServiceDefinition:
    try:
        data = safejson.loads(text)
    except safejson.BadJson as exc:
        raise BadDefinition(where=f" {where}" if where else "",
                            reason=f"not valid JSON ({exc.fields['reason']})") from None
    return from_dict(data, where)


def from_xml(data: str | bytes, where: str = "") -> ServiceDefinition:
    """Read the XML form (hardened parser, validated against service.xsd)."""
    root = xml.parse_valid(data, SERVICE_XSD, max_bytes=MAX_DEFINITION_BYTES)
    return from_dict(_xml_to_dict(root), where)


def _xml_to_dict(root) -> dict:
    recipient = root.find("recipient")
    digest = root.find("digest")
    return {
        **({"digest": {"window": digest.get("window"), "template": digest.get("template")}}
           if digest is not None else {}),
        "name": root.get("name"),
        "event_type": root.get("event-type"),
        "kind": root.get("kind", "transactional"),
        "priority": root.get("priority", "5"),
        "lane": root.get("lane"),
        "description": xml.text_of(root, "description", ""),
        "conditions": [
            {"field": c.get("field"), "op": c.get("op"), "value": c.get("value")}
            for c in root.iterfind("conditions/condition")
        ],
        "recipient": {"customer_field": recipient.get("customer-field", "") if recipient is not None else ""},
        "templates": {t.get("channel"): t.get("name") for t in root.iterfind("templates/template")},
        "policy": {
            g.get("name", DEFAULT_GRADE) if g.tag == "grade" else DEFAULT_GRADE:
                [(c.text or "").strip() for c in g.iterfind("channel")]
            for g in root.find("policy")
        },
    }


def load(path: str | Path) -> ServiceDefinition:
    """Read a definition file: ``.xml`` as XML, anything else as JSON."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BadDefinition(where=f" {path}", reason=exc.strerror or str(exc)) from None
    return parse(data, str(path), hint=path.suffix)


def parse(data: bytes, where: str = "", hint: str = "") -> ServiceDefinition:
    """JSON or XML, told apart by ``hint`` (a suffix or content type) or the first byte."""
    looks_xml = "xml" in hint.lower() or data.lstrip()[:1] == b"<"
    try:
        return from_xml(data, where) if looks_xml else from_json(data, where)
    except xml.XmlError as exc:
        raise BadDefinition(where=f" {where}" if where else "", reason=str(exc)) from None
