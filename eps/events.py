"""Incoming events: reading them from JSON or XML into one shape.

JSON form (``POST /v1/events``, ``application/json``)::

    {"id": "TX-1", "type": "deposit", "customer_id": "C1001",
     "occurred": "2024-05-01T09:30:00+09:00", "data": {"amount": 1500000}}

XML form: see ``config/xsd/event.xsd``. ``id`` is optional; it (or the
``Idempotency-Key`` header) makes a retried post land once.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field

from ums import xml
from ums.config import SHIPPED_CONFIG_DIR
from ums.errors import UmsError

EVENT_XSD = SHIPPED_CONFIG_DIR / "xsd" / "event.xsd"
MAX_EVENT_BYTES = 64 * 1024
_TOKEN = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


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


def _token(value, name: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _TOKEN.match(value.strip()):
        raise BadEvent(reason=f"{name} must be 1-64 letters, digits or _.:- (got {str(value)[:40]!r})")
    return value.strip()


def _key(value) -> str:
    if value is None or value == "":
        return ""
    text = str(value).strip()
    if not 1 <= len(text) <= 128:
        raise BadEvent(reason="the idempotency key or event id must be 1-128 characters")
    return text


def from_json(body: bytes, source_system: str, idempotency_key: str = "") -> IncomingEvent:
    if len(body) > MAX_EVENT_BYTES:
        raise BadEvent(reason=f"body of {len(body)} bytes is over the limit of {MAX_EVENT_BYTES}")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadEvent(reason=f"not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise BadEvent(reason="expected a JSON object")
    data = document.get("data", {})
    if not isinstance(data, dict):
        raise BadEvent(reason="data must be an object")
    occurred = document.get("occurred")
    return IncomingEvent(
        source_system=source_system,
        event_type=_token(document.get("type"), "type"),
        customer_id=_token(document.get("customer_id", document.get("customer")), "customer_id"),
        data=data,
        idempotency_key=_key(idempotency_key) or _key(document.get("id")),
        occurred=str(occurred) if occurred else None,
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
