"""Channels: the ways UMS reaches a recipient (email, fax, voice).

PASS depends only on this interface (listmonk's "messenger"); implementations
are named in ``[channels]`` of the configuration and loaded by dotted name, so a
site can swap a fax driver without touching PASS.

Lifecycle: PASS constructs each configured channel with the runtime context,
awaits ``start()`` once, calls ``send()`` for every claimed delivery (many at
once, up to the configured concurrency), and awaits ``stop()`` at shutdown.
``send`` never raises for a delivery problem: it returns an :class:`Outcome`
saying whether the attempt succeeded, failed temporarily (PASS retries with
backoff) or failed permanently (PASS finalises, suppresses where it should, and
tries the delivery's fallback channel). An exception from ``send`` is treated as
a temporary failure.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..queue.lanes import Lane

SENT, TEMPORARY, PERMANENT = "sent", "temporary", "permanent"

#: CDR dispositions (Asterisk's)
ANSWERED, NO_ANSWER, BUSY, FAILED = "ANSWERED", "NO ANSWER", "BUSY", "FAILED"


@dataclass
class Delivery:
    """What a channel needs to know about one delivery attempt."""

    id: int
    channel: str
    recipient: str
    kind: str                     # advertising or transactional
    message_id: str               # stable across retries and crashes
    token: str                    # per-delivery secret (unsubscribe, return path)
    attempt: int                  # 1 for the first attempt
    template: dict | None         # the templates row for this channel, if any
    variables: dict = field(default_factory=dict)   # per-recipient template fields
    contact: dict | None = None
    source: str = ""              # campaign or service name, for CDR and headers
    #: its priority lane (:mod:`ums.queue.lanes`): where channels share something
    #: scarce (a relay's connections), a higher lane is served first
    lane: str = Lane.NOTICE.value


@dataclass
class Outcome:
    """The result of one attempt, as the CDR records it."""

    status: str                   # SENT, TEMPORARY or PERMANENT
    code: str = ""                # e.g. "250", "550 5.1.1", "BUSY", "486"
    detail: str = ""
    disposition: str = ANSWERED   # ANSWERED, NO ANSWER, BUSY or FAILED
    started_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    billsec: int = 0              # seconds connected (voice/fax); 0 for email
    pages: int | None = None      # fax pages sent
    bytes: int | None = None      # message or document size
    dstchannel: str = ""          # relay, gateway or SIP peer used
    #: the relay or gateway itself could not be reached (an outage, not this message's fault)
    unreachable: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == SENT


class Channel:
    """Base class for channel implementations."""

    #: email, fax or voice
    name = "channel"

    def __init__(self, ctx):
        self.ctx = ctx

    async def start(self) -> None:
        """Open connection pools, check external tools."""

    async def stop(self) -> None:
        """Close pools; in-flight sends have finished or been abandoned by PASS."""

    def destination(self, delivery: Delivery) -> str:
        """The throttling key for this delivery: mail domain, fax or voice gateway."""
        return self.name

    async def send(self, delivery: Delivery) -> Outcome:
        raise NotImplementedError


def load_channel(ctx, name: str) -> Channel:
    target = ctx.config.section("channels")[name]
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)(ctx)
