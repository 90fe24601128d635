"""The lifecycle interface every UMS service implements.

The runtime (:mod:`ums.runtime`) loads each service by the dotted name in
``[services]`` of the configuration, constructs it with the shared
:class:`~ums.runtime.Context` and drives it through this interface:

``start()``
    Open listeners and start background work. Called once, on the shared loop.
    When it returns the service is serving (its port answers).
``pause()`` / ``resume()``
    Operator control. A paused service stays up but refuses new work politely
    (MAS answers 421, EPS HTTP 503 with Retry-After, WAS a maintenance page,
    PASS sends nothing while its queue still fills). Both are idempotent.
``stop()``
    Close listeners, finish or release in-flight work, and return. The runtime
    gives it ``control.stop_timeout`` seconds.
``address``
    Where the service listens, ``host:port`` (empty for services with no port).
``info()``
    A small dict of live figures for ``ums status`` (queue depth, connections…).
``listeners``
    The configuration keys of every port the service listens on, as
    ``(section, host key, port key)``; ``ums check`` and ``ums run`` try to
    bind each before starting anything.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .runtime import Context


class Service:
    """Base class: keeps the paused flag and the logger; subclasses add the work."""

    #: Short name (``was``, ``eps``, ``mas``, ``pass``); set by the runtime from the config key.
    name: str = "service"
    #: ``(section, host key, port key)`` of each port it listens on (none for PASS)
    listeners: tuple[tuple[str, str, str], ...] = ()

    def __init__(self, ctx: "Context", name: str | None = None):
        self.ctx = ctx
        if name:
            self.name = name
        self.paused = False
        self.log = logging.getLogger(f"ums.{self.name}")

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def pause(self) -> None:
        if not self.paused:
            self.paused = True
            self.log.info("paused", extra={"service": self.name})

    async def resume(self) -> None:
        if self.paused:
            self.paused = False
            self.log.info("resumed", extra={"service": self.name})

    @property
    def address(self) -> str:
        return ""

    def info(self) -> dict:
        return {}

    @property
    def state(self) -> str:
        return "paused" if self.paused else "running"
