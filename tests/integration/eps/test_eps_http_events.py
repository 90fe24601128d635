"""Must-show 1: JSON and XML events from the account system, idempotency,
and the event's state with the deliveries it produced."""

from sqlalchemy import func, select

from ums.db.models import deliveries, events

from eps_support import SAMPLES, add_customer

XML_EVENT = """<?xml version="1.0" encoding="UTF-8"?>
<event>
  <id>TX-XML-1</id>
  <type>deposit</type>
  <customer>C1002</customer>
  <data><amount>2500000</amount><account>110-234-567890</account></data>
</event>"""


async def count(db, table, *where):
    async with db.connect() as conn:
        return await conn.scalar(select(func.count()).select_from(table).where(*where))


async def test_json_and_xml_events_each_produce_one_delivery(eps):
    status, _, body = await eps.register(SAMPLES / "large-deposit-alert.json")
    assert status == 201, body
    await add_customer(eps.db, "C1001", email="kim@example.com", fax="02-555-0101")
    await add_customer(eps.db, "C1002", email="lee@example.com")

    status, _, first = await eps.post_json(
        {"id": "TX-JSON-1", "type": "deposit", "customer_id": "C1001", "data": {"amount": 1500000}})
    assert status == 202, first
    status, _, second = await eps.post_xml(XML_EVENT)
    assert status == 202, second

    for reply, address in ((first, "kim@example.com"), (second, "lee@example.com")):
        status, _, shown = await eps.request("GET", f"/v1/events/{reply['id']}")
        assert status == 200
        assert shown["state"] == "dispatched" and shown["service_name"] == "large-deposit-alert"
        assert [(d["channel"], d["recipient"]) for d in shown["deliveries"]] == [("email", address)]
    # the NORMAL policy is email then fax: the fax with a number is the fallback
    status, _, shown = await eps.request("GET", f"/v1/events/{first['id']}")
    assert shown["deliveries"][0]["fallback"] == [
        {"channel": "fax", "recipient": "02-555-0101", "template": "deposit-fax"}]
    assert await count(eps.db, deliveries) == 2


async def test_the_same_event_twice_with_one_idempotency_key_lands_once(eps):
    await eps.register(SAMPLES / "large-deposit-alert.json")
    await add_customer(eps.db, "C1001", email="kim@example.com")
    event = {"type": "deposit", "customer_id": "C1001", "data": {"amount": 3000000}}
    status_1, _, first = await eps.post_json(event, idempotency_key="retry-123")
    status_2, _, again = await eps.post_json(event, idempotency_key="retry-123")
    assert (status_1, status_2) == (202, 200)
    assert again["id"] == first["id"] and again["duplicate"] is True
    assert await count(eps.db, events) == 1
    assert await count(eps.db, deliveries) == 1


async def test_events_below_the_threshold_or_of_no_service_are_kept_unmatched(eps):
    await eps.register(SAMPLES / "large-deposit-alert.json")
    await add_customer(eps.db, "C1001", email="kim@example.com")
    _, _, small = await eps.post_json({"type": "deposit", "customer_id": "C1001", "data": {"amount": 999999}})
    _, _, other = await eps.post_json({"type": "card_payment", "customer_id": "C1001", "data": {"amount": 5}})
    for reply in (small, other):
        status, _, shown = await eps.request("GET", f"/v1/events/{reply['id']}")
        assert shown["state"] == "unmatched" and shown["deliveries"] == []
    assert await count(eps.db, deliveries) == 0


async def test_requests_without_a_valid_key_are_refused(eps):
    status, _, body = await eps.post_json({"type": "deposit", "customer_id": "C1"}, key="ums_not-a-key")
    assert status == 401 and "API key" in body["reason"]
    assert await count(eps.db, events) == 0


async def test_bad_json_gets_a_400_with_a_reason_and_the_server_keeps_serving(eps):
    status, _, body = await eps.request("POST", "/v1/events", b"{not json", {"Content-Type": "application/json"})
    assert status == 400 and "JSON" in body["reason"]
    status, _, body = await eps.post_json({"type": "deposit"})
    assert status == 400 and "customer_id" in body["reason"]
    status, _, _ = await eps.post_json({"type": "deposit", "customer_id": "C9", "data": {"amount": 1}})
    assert status == 202
