"""Priority lanes as the pieces see them: an EPS service names its lane in
XML or JSON (and a wrong one is refused with the reason), deliveries without
one follow their kind, PASS's ready queue serves higher lanes first and
keeps reserved senders for urgent and notice work, and a channel's
concurrency keeps slots that marketing cannot take."""

from __future__ import annotations

import asyncio
import importlib

import pytest

from ums.config import SHIPPED_CONFIG_DIR
from ums.event_services import definitions
from ums.queue import lanes

SAMPLE_XML = (SHIPPED_CONFIG_DIR / "samples" / "services" / "loan-due-notice.xml").read_text(encoding="utf-8")
JSON_SERVICE = {"name": "otp", "event_type": "otp", "templates": {"email": "otp"}, "policy": {"default": ["email"]}}


def test_a_service_names_its_lane_in_xml_or_json():
    urgent_xml = SAMPLE_XML.replace('priority="4"', 'priority="4" lane="urgent"')
    assert definitions.from_xml(urgent_xml).settled_lane == "urgent"
    assert definitions.from_xml(SAMPLE_XML).settled_lane == "notice"
    assert definitions.from_dict({**JSON_SERVICE, "lane": "urgent"}).settled_lane == "urgent"
    assert definitions.from_dict({**JSON_SERVICE, "kind": "advertising"}).settled_lane == "marketing"


def test_an_unknown_lane_is_refused_with_the_reason():
    with pytest.raises(definitions.BadDefinition, match="lane must be urgent, notice or marketing"):
        definitions.from_dict({**JSON_SERVICE, "lane": "vip"})
    with pytest.raises(Exception, match="not an element of the set .*urgent"):
        definitions.from_xml(SAMPLE_XML.replace('priority="4"', 'priority="4" lane="vip"'))


def test_a_delivery_without_a_lane_follows_its_kind():
    assert lanes.settled(None, "transactional") == "notice"
    assert lanes.settled(None, "advertising") == "marketing"
    assert lanes.settled(None, "transactional", campaign=True) == "marketing"
    assert lanes.settled("urgent", "transactional", campaign=True) == "urgent"


async def test_the_ready_queue_serves_higher_lanes_first_and_reserved_senders_only_those():
    queue = importlib.import_module("pass.lanequeue").LaneQueue()
    for n in range(3):
        queue.put_nowait(f"marketing-{n}", lanes.rank("marketing"))
    queue.put_nowait("notice", lanes.rank("notice"))
    queue.put_nowait("urgent", lanes.rank("urgent"))
    everything = lanes.rank("marketing")
    assert [await queue.get(everything) for _ in range(3)] == ["urgent", "notice", "marketing-0"]
    reserved = asyncio.ensure_future(queue.get(lanes.rank("notice")))
    await asyncio.sleep(0)
    assert not reserved.done()           # marketing is left for the general senders
    queue.put_nowait("alert", lanes.rank("urgent"))
    assert await asyncio.wait_for(reserved, 1) == "alert"


async def test_marketing_cannot_take_the_reserved_channel_slots():
    limiter = importlib.import_module("pass.throttle").Limiter(concurrency=4, reserved=1)
    for _ in range(3):
        await limiter.acquire(priority=False)
    fourth_marketing = asyncio.ensure_future(limiter.acquire(priority=False))
    await asyncio.sleep(0.01)
    assert not fourth_marketing.done()
    await asyncio.wait_for(limiter.acquire(priority=True), 1)   # an alert still gets the last slot
    limiter.release(priority=False)
    await asyncio.wait_for(fourth_marketing, 1)


async def test_a_lane_hourly_window_holds_marketing_back_and_not_alerts():
    section = {"channel_concurrency": {}, "channel_rate": {}, "channel_per_hour": {}, "destination_concurrency": 50,
               "destination_rate": 0, "lane_rate": {}, "lane_per_hour": {"marketing": 2}}
    throttles = importlib.import_module("pass.throttle").Throttles(section)
    for _ in range(2):
        async with throttles.slot("email", "example.com", lane="marketing", priority=False):
            pass
    assert throttles.delay("email", None, None, "marketing") > 3500   # the next one waits for the hour
    assert throttles.delay("email", None, None, "urgent") == 0
