"""The email channel's relay connections go to the highest lane waiting: an
alert's sender is handed the next free connection even when a campaign's
senders were waiting for one before it; and the reserved ones
(``[email] reserved_connections``) are only ever an urgent or notice sender's."""

import asyncio

from ums.channels.email import RelayPool


class Connected:
    is_connected = True

    def __init__(self, name: str):
        self.name = name


def pool_of(*sessions: Connected, reserved: int = 0) -> RelayPool:
    pool = RelayPool({"relay_host": "127.0.0.1", "relay_port": 25, "timeout": 1, "starttls": False}, 0)
    pool.reserved = reserved
    for session in sessions:
        pool.release(session)
    return pool


async def test_a_freed_connection_goes_to_the_urgent_sender_before_earlier_marketing_ones():
    pool = pool_of(Connected("only"))
    held = await pool.acquire("marketing")
    order: list[str] = []

    async def sender(name: str, lane: str):
        session = await pool.acquire(lane)
        order.append(name)
        pool.release(session)

    waiting = [asyncio.create_task(sender(f"campaign-{n}", "marketing")) for n in range(3)]
    await asyncio.sleep(0)
    waiting.append(asyncio.create_task(sender("alert", "urgent")))
    waiting.append(asyncio.create_task(sender("notice", "notice")))
    await asyncio.sleep(0)
    pool.release(held)
    await asyncio.gather(*waiting)
    assert order == ["alert", "notice", "campaign-0", "campaign-1", "campaign-2"]


async def test_a_sender_cancelled_while_waiting_loses_no_connection():
    pool = pool_of(Connected("only"))
    held = await pool.acquire("marketing")
    cancelled = asyncio.create_task(pool.acquire("urgent"))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    pool.release(held)
    assert (await asyncio.wait_for(pool.acquire("marketing"), 1)) is held


async def test_a_connection_handed_to_a_sender_as_it_was_cancelled_is_passed_on():
    pool = pool_of(Connected("only"))
    held = await pool.acquire("urgent")
    first = asyncio.create_task(pool.acquire("urgent"))
    second = asyncio.create_task(pool.acquire("marketing"))
    await asyncio.sleep(0)
    pool.release(held)   # handed to the first waiter...
    first.cancel()       # ...which is cancelled before it runs
    assert (await asyncio.wait_for(second, 1)) is held


async def test_a_campaign_sender_never_takes_a_reserved_connection():
    pool = pool_of(Connected("a"), Connected("b"), Connected("c"), reserved=1)
    campaign = [await pool.acquire("marketing"), await pool.acquire("marketing")]
    third = asyncio.create_task(pool.acquire("marketing"))
    await asyncio.sleep(0)
    assert not third.done()                       # one connection is free, but it is the reserved one
    alert = await asyncio.wait_for(pool.acquire("urgent"), 1)
    assert alert not in campaign
    pool.release(alert)                           # back to the reserve: the campaign still waits
    await asyncio.sleep(0)
    assert not third.done()
    pool.release(campaign.pop())                  # a second one free: the campaign sender gets it
    assert (await asyncio.wait_for(third, 1)).name in {"a", "b", "c"}


async def test_the_reserve_never_takes_the_last_connection():
    pool = RelayPool({"relay_host": "127.0.0.1", "relay_port": 25, "timeout": 1, "starttls": False}, 1, reserved=4)
    assert pool.reserved == 0



def test_the_email_channel_keeps_the_configured_reserve(tmp_path):
    from types import SimpleNamespace

    from ums import config as ums_config
    from ums.channels.email import EmailChannel

    def channel(**overrides):
        config = ums_config.load(tmp_path, config_file=tmp_path / "absent.cfg", overrides=overrides)
        return EmailChannel(SimpleNamespace(config=config))

    assert channel().pool.reserved == 0   # shipped: every connection is shared
    assert channel(**{"email.connections": "16", "email.reserved_connections": "2"}).pool.reserved == 2
