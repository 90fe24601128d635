"""Turning an event into deliveries: match a service, find the customer, apply
the channel policy, queue through the core API (``ums.outbox``).

Everything here runs inside the caller's transaction, so an event's state and
its deliveries commit together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ums.addresses import is_valid
from ums.outbox import SendRequest, enqueue, row_for
from ums import preferences
from ums.store import contacts as contact_store
from ums.store import preferences as preference_store

from .definitions import ServiceDefinition, from_dict

#: contact column holding the address for each channel
ADDRESS_COLUMN = {"email": "email", "fax": "fax", "voice": "phone"}
#: the contact columns a plan reads
CONTACT_COLUMNS = ("id", "customer_id", "name", "grade", *ADDRESS_COLUMN.values())


@dataclass
class LiveService:
    """A registered service as the dispatcher sees it."""

    name: str
    version: int
    state: str
    definition: ServiceDefinition

    @property
    def active(self) -> bool:
        return self.state == "active"


_parsed: dict[tuple[str, int], ServiceDefinition] = {}


def live_service(row: dict) -> LiveService:
    """A stored service row as a :class:`LiveService` (definitions parsed once per version)."""
    key = (row["name"], row["version"])
    definition = _parsed.get(key)
    if definition is None:
        definition = _parsed[key] = from_dict(row["definition"], row["name"])
    return LiveService(row["name"], row["version"], row["state"], definition)


def choose(services: list[LiveService], event_type: str, fields: dict) -> LiveService | None:
    """The service that answers an event: among those whose conditions hold,
    the lowest priority number wins, then the name."""
    candidates = [
        service for service in services
        if service.definition.event_type == event_type and service.definition.matches(fields)
    ]
    if not candidates:
        return None
    return min(candidates, key=lambda s: (s.definition.priority, s.name))


@dataclass
class Plan:
    """What to do with one event: its final state and the request to queue."""

    state: str
    service: LiveService | None = None
    error: str | None = None
    request: SendRequest | None = None
    skipped: list[str] = field(default_factory=list)


def channel_steps(definition: ServiceDefinition, contact: dict) -> tuple[list[dict], list[str]]:
    """The policy's channels for this contact's grade that have a valid address
    (:func:`ums.addresses.is_valid`: one addr-spec, no CR/LF, a phone number for
    fax and voice), as ``{"channel", "recipient", "template"}``; plus the
    channels skipped."""
    steps, skipped = [], []
    # the customer's preferred channel first, channels they turned off left out (ums.preferences)
    for channel in preferences.ordered(definition.channels_for(contact.get("grade")), contact.get("preferences")):
        address = (contact.get(ADDRESS_COLUMN[channel]) or "").strip()
        if not address or not is_valid(channel, address):
            skipped.append(channel)
            continue
        steps.append({"channel": channel, "recipient": address, "template": definition.templates[channel]})
    return steps, skipped


def customer_of(definition: ServiceDefinition, customer_id: str, fields: dict) -> str:
    if definition.customer_field:
        value = fields.get(definition.customer_field)
        return str(value).strip() if value not in (None, "") else ""
    return customer_id


async def plan(
    conn, service: LiveService | None, event_type: str, customer_id: str, fields: dict,
    contact_cache: dict | None = None,
) -> Plan:
    """Decide an event's fate given the service that answers it (or None),
    looking its customer up (through ``contact_cache`` when given)."""
    contacts = contact_cache if contact_cache is not None else {}
    if service is not None and service.active:
        wanted = customer_of(service.definition, customer_id, fields)
        if wanted and wanted not in contacts:
            contact = await contact_store.by_customer_id(conn, wanted)
            if contact is not None:
                contact = {**contact, "preferences": await preference_store.get(conn, contact["id"])}
            contacts[wanted] = contact
    return decide(service, event_type, customer_id, fields, contacts)


def decide(service: LiveService | None, event_type: str, customer_id: str, fields: dict,
           contacts: dict) -> Plan:
    """:func:`plan` with the customers already looked up: ``contacts`` maps
    customer id to contact (or None when there is no such customer)."""
    if service is None:
        return Plan("unmatched")
    if not service.active:
        return Plan("held", service)
    definition = service.definition
    wanted = customer_of(definition, customer_id, fields)
    contact = contacts.get(wanted) if wanted else None
    if contact is None:
        return Plan("failed", service, error=f"unknown customer {wanted!r}")
    steps, skipped = channel_steps(definition, contact)
    if not steps:
        return Plan("failed", service, error="the customer has no address for any channel of the policy")
    first, rest = steps[0], steps[1:]
    request = SendRequest(
        channel=first["channel"],
        recipient=first["recipient"],
        template=first["template"],
        kind=definition.kind,
        variables=_variables(event_type, fields, contact),
        contact_id=contact["id"],
        service_name=service.name,
        priority=definition.priority,
        lane=definition.settled_lane,
        fallback=rest,
    )
    return Plan("dispatched", service, request=request, skipped=skipped)


def _variables(event_type: str, fields: dict, contact: dict) -> dict:
    return {
        **{str(k): v for k, v in fields.items()},
        "event_type": event_type,
        "customer_id": contact.get("customer_id"),
        "customer_name": contact.get("name"),
    }


async def carry_out(conn, plan_: Plan, event_id: int, now: datetime) -> int | None:
    """Queue the planned delivery for a stored event; returns its id."""
    if plan_.request is None:
        return None
    plan_.request.event_id = event_id
    return await enqueue(conn, plan_.request, now)


def delivery_rows(plans: list[Plan], event_ids: list[int], now: datetime) -> list[dict]:
    """The delivery rows for a batch of stored events, exactly as
    ``ums.outbox.enqueue`` would write them one by one."""
    rows = []
    for plan_, event_id in zip(plans, event_ids):
        if plan_.request is not None:
            plan_.request.event_id = event_id
            rows.append(row_for(plan_.request, now))
    return rows
