"""Incoming events: reading them from JSON or XML into one shape.

JSON form (``POST /v1/events``, ``application/json``)::

    {"id": "TX-1", "type": "deposit", "customer_id": "C1001",
     "occurred": "2024-05-01T09:30:00+09:00", "data": {"amount": 1500000}}

XML form: see ``config/xsd/event.xsd``. ``id`` is optional; it (or the
``Idempotency-Key`` header) makes a retried post land once.

JSON is read with :func:`ums.safejson.loads` (no NaN, no deep nesting, no lone
surrogates…), and each field must have its type: ``type`` and ``customer_id``
tokens (a string, or an integer), ``id`` a string or an integer, ``data`` an
object, ``occurred`` a string. Anything else is a :class:`BadEvent` naming the
field, so whatever is accepted can be stored and served back as JSON.

An event's :meth:`~IncomingEvent.fingerprint` is a hash of its canonical form
(type, customer and payload, keys sorted): two posts under one idempotency key
are the same event exactly when their fingerprints agree.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field

from ums import safejson, xml
from ums.config import SHIPPED_CONFIG_DIR
from ums.errors import UmsError

EVENT_XSD = SHIPPED_CONFIG_DIR / "xsd" / "event.xsd"
MAX_EVENT_BYTES = 64 * 1024
_TOKEN = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
#: idempotency keys and event ids: 1-128 printable characters
_KEY = re.compile(r"^[^\x00-\x1f\x7f]{1,128}$")
MAX_OCCURRED = 64


class BadEvent(UmsError):
    """Bad event: {reason}."""


@dataclass
class IncomingEvent:
    source_system: str
    event_type: str
    customer_id: str
    data: dict = field(default_factory=dict)
    #: the sender's idempotency key or event id; generated when none is given
    idempotency_key: str = ""
    occurred: str | None = None

    def __post_init__(self):
        if not self.idempotency_key:
            self.idempotency_key = "auto-" + uuid.uuid4().hex

    @property
    def key(self) -> tuple[str, str]:
        return self.source_system, self.idempotency_key

    def payload(self) -> dict:
        payload = dict(self.data)
        if self.occurred:
            payload.setdefault("occurred", self.occurred)
        return payload

    def fingerprint(self) -> str:
        return fingerprint(self.event_type, self.customer_id, self.payload())


def fingerprint(event_type: str, customer_id: str | None, payload: dict) -> str:
    """SHA-256 of an event's canonical JSON form (as stored: type, customer, payload)."""
    canonical = json.dumps([event_type, customer_id or "", payload], sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _token(value, name: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _TOKEN.match(value.strip()):
        shown = value[:40] if isinstance(value, str) else type(value).__name__
        raise BadEvent(reason=f"{name} must be 1-64 letters, digits or _.:- (got {shown!r})")
    return value.strip()


def _key(value, name: str = "id") -> str:
    """An idempotency key or event id: a string or an integer, 1-128 printable
    characters ("" when absent)."""
    if value is None or value == "":
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise BadEvent(reason=f"{name} must be a string or an integer, not {_json_type(value)}")
    text = value.strip()
    if not _KEY.match(text):
        raise BadEvent(reason=f"{name} must be 1-128 printable characters")
    return text


def header_key(raw: bytes | None) -> str:
    """The ``Idempotency-Key`` header's value ("" when absent)."""
    if not raw:
        return ""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadEvent(reason="the Idempotency-Key header is not UTF-8") from None
    return _key(text, "the Idempotency-Key header")


def _json_type(value) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", float: "a number"}
    return "null" if value is None else names.get(type(value), "an integer")


def _occurred(value) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadEvent(reason=f"occurred must be a string (a date and time), not {_json_type(value)}")
    if len(value) > MAX_OCCURRED:
        raise BadEvent(reason=f"occurred must be at most {MAX_OCCURRED} characters")
    return value


def from_json(body: bytes, source_system: str, idempotency_key: str = "") -> IncomingEvent:
    if len(body) > MAX_EVENT_BYTES:
        raise BadEvent(reason=f"body of {len(body)} bytes is over the limit of {MAX_EVENT_BYTES}")
    try:
        document = safejson.loads(body)
    except safejson.BadJson as exc:
        raise BadEvent(reason=f"not valid JSON ({exc.fields['reason']})") from None
    if not isinstance(document, dict):
        raise BadEvent(reason=f"expected a JSON object, not {_json_type(document)}")
    data = document.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadEvent(reason=f"data must be an object, not {_json_type(data)}")
    return IncomingEvent(
        source_system=source_system,
        event_type=_token(document.get("type"), "type"),
        customer_id=_token(document.get("customer_id", document.get("customer")), "customer_id"),
        data=data,
        idempotency_key=_key(idempotency_key, "the Idempotency-Key header") or _key(document.get("id")),
        occurred=_occurred(document.get("occurred")),
    )


def from_xml(body: bytes, source_system: str, idempotency_key: str = "") -> IncomingEvent:
    """Hardened parse plus XSD validation; :class:`ums.xml.XmlError` on bad input."""
    root = xml.parse_valid(body, EVENT_XSD, max_bytes=MAX_EVENT_BYTES)
    data = {}
    holder = root.find("data")
    if holder is not None:
        for child in holder:
            if isinstance(child.tag, str):
                data[child.tag] = (child.text or "").strip()
    return IncomingEvent(
        source_system=source_system,
        event_type=xml.text_of(root, "type"),
        customer_id=xml.text_of(root, "customer"),
        data=data,
        idempotency_key=_key(idempotency_key) or _key(xml.text_of(root, "id", "")),
        occurred=xml.text_of(root, "occurred"),
    )
