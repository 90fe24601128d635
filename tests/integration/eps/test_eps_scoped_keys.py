"""Keys are scoped and see only their own system's data: system B's key
cannot read, stop, resume or remove system A's services or read its events
(404, as for a missing one); an operator's service is the CLI's alone; each
route needs its scope (403 without it)."""

from __future__ import annotations

import json

from sqlalchemy import select

from ums.event_services import definitions, registry
from eps_support import SAMPLES, add_customer, new_key, new_key_with
from ums.db.models import eps_services
from ums.store import utcnow

SERVICE = "large-deposit-alert"
JSON = {"Content-Type": "application/json"}


def operator_definition(name: str) -> definitions.ServiceDefinition:
    data = json.loads((SAMPLES / "large-deposit-alert.json").read_text())
    return definitions.from_dict({**data, "name": name})


async def test_system_b_cannot_touch_system_a_services_or_events(eps):
    other = await new_key(eps.db, "information")
    status, _, reply = await eps.register(SAMPLES / "large-deposit-alert.json")  # by account (A)
    assert status == 201, reply
    async with eps.db.connect() as conn:
        owner = await conn.scalar(select(eps_services.c.system).where(eps_services.c.name == SERVICE))
    assert owner == "account"
    await add_customer(eps.db, "C1", email="kim@example.com")
    _, _, posted = await eps.post_json({"type": "deposit", "customer_id": "C1", "data": {"amount": 2000000}})

    # B reads nothing of A's
    status, _, listing = await eps.request("GET", "/v1/services", key=other)
    assert status == 200 and listing["services"] == []
    for method, path in (("GET", f"/v1/services/{SERVICE}"), ("POST", f"/v1/services/{SERVICE}/stop"),
                         ("POST", f"/v1/services/{SERVICE}/resume"), ("DELETE", f"/v1/services/{SERVICE}"),
                         ("GET", f"/v1/events/{posted['id']}")):
        status, _, reply = await eps.request(method, path, key=other)
        assert status == 404, (method, path, status, reply)
        assert SERVICE in reply["reason"] or str(posted["id"]) in reply["reason"]
    # nor can B take over the name by registering it
    status, _, reply = await eps.request("POST", "/v1/services",
                                         (SAMPLES / "large-deposit-alert.json").read_bytes(), JSON, key=other)
    assert status == 409 and SERVICE in reply["reason"], reply
    # B's view of the customer leaves A's event and its delivery out
    status, _, view = await eps.request("GET", "/v1/customers/C1/timeline", key=other)
    assert status == 200 and view["entries"] == [], view
    _, _, view = await eps.request("GET", "/v1/customers/C1/timeline")
    assert [e["kind"] for e in view["entries"]] == ["event", "delivery"]

    # A's service is untouched and still A's to manage
    _, _, shown = await eps.request("GET", f"/v1/services/{SERVICE}")
    assert (shown["state"], shown["version"]) == ("active", 1)
    status, _, _ = await eps.request("POST", f"/v1/services/{SERVICE}/stop")
    assert status == 200
    status, _, shown = await eps.request("GET", f"/v1/events/{posted['id']}")
    assert status == 200 and shown["source_system"] == "account"


async def test_an_operators_service_is_managed_by_the_cli_only(eps):
    async with eps.db.begin() as conn:  # what `ums service register` does
        await registry.register(conn, operator_definition("ops-alert"), utcnow(), "cli")
    for method, path in (("GET", "/v1/services/ops-alert"), ("POST", "/v1/services/ops-alert/stop"),
                         ("DELETE", "/v1/services/ops-alert")):
        status, _, reply = await eps.request(method, path)
        assert status == 404, (method, path, reply)
    _, _, listing = await eps.request("GET", "/v1/services")
    assert listing["services"] == []
    # the operator can do anything with any service, A's included
    await eps.register(SAMPLES / "large-deposit-alert.json")
    async with eps.db.begin() as conn:
        await registry.stop(conn, "ops-alert")
        await registry.stop(conn, SERVICE)
        version = await registry.register(conn, operator_definition(SERVICE), utcnow(), "cli")
        assert version == 2
    async with eps.db.connect() as conn:
        rows = {row.name: row.system for row in await conn.execute(
            select(eps_services.c.name, eps_services.c.system).where(eps_services.c.version == 2))}
    assert rows == {SERVICE: "account"}  # an operator's new version keeps the owner
    _, _, shown = await eps.request("GET", f"/v1/services/{SERVICE}")
    assert shown["version"] == 2
    async with eps.db.begin() as conn:
        await registry.remove(conn, SERVICE, utcnow())
    # a removed name is free again, for any system
    other = await new_key(eps.db, "information")
    status, _, reply = await eps.request("POST", "/v1/services",
                                         (SAMPLES / "large-deposit-alert.json").read_bytes(), JSON, key=other)
    assert status == 201 and reply["version"] == 3, reply
    status, _, _ = await eps.request("GET", f"/v1/services/{SERVICE}")
    assert status == 404


async def test_each_route_needs_its_scope(eps):
    writer = await new_key_with(eps.db, "account", "events:write")
    reader = await new_key_with(eps.db, "account", "events:read")
    manager = await new_key_with(eps.db, "account", "services:manage")
    sender = await new_key_with(eps.db, "account", "send")
    event = {"type": "deposit", "customer_id": "C1", "data": {}}

    status, _, posted = await eps.post_json(event, key=writer)
    assert status == 202, posted
    for key in (reader, manager, sender):
        status, _, reply = await eps.post_json(event, key=key)
        assert status == 403 and "events:write" in reply["reason"], reply
    status, _, _ = await eps.request("GET", f"/v1/events/{posted['id']}", key=reader)
    assert status == 200
    for key in (writer, manager, sender):
        status, _, reply = await eps.request("GET", f"/v1/events/{posted['id']}", key=key)
        assert status == 403 and "events:read" in reply["reason"], reply
    status, _, _ = await eps.request("GET", "/v1/services", key=manager)
    assert status == 200
    for key in (writer, reader, sender):
        status, _, reply = await eps.request("GET", "/v1/services", key=key)
        assert status == 403 and "services:manage" in reply["reason"], reply
        status, _, reply = await eps.request("POST", "/v1/services",
                                             (SAMPLES / "large-deposit-alert.json").read_bytes(), JSON, key=key)
        assert status == 403, reply
    status, _, reply = await eps.request("POST", "/v1/events", json.dumps(event).encode(), JSON,
                                         key="ums_" + "B" * 43)
    assert status == 401 and "unknown" in reply["reason"], reply
