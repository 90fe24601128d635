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
    A service opens each listener inside ``with self.listening_on(section, key)``:
    an address it cannot bind (in use, not allowed) then stops the start with
    one :class:`~ums.errors.CannotListen` line naming the setting to change.
``info()``
    A small dict of live figures for ``ums status`` (queue depth, connections…).
``listeners``
    The configuration keys of every port the service listens on, as
    ``(section, host key, port key)``; ``ums check`` and ``ums run`` try to
    bind each before starting anything.
"""

from __future__ import annotations

import errno
import logging
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from .config import ENV_PREFIX
from .errors import CannotListen

if TYPE_CHECKING:
    from .runtime import Context


#: What a failed bind means for the operator, by errno.
_BIND_FAILURES = {
    errno.EADDRINUSE: "address in use — is UMS already running?",
    errno.EACCES: "permission denied — ports below 1024 need privileges.",
    errno.EADDRNOTAVAIL: "this host has no such address.",
}


def _bind_failure(error: OSError) -> str:
    return _BIND_FAILURES.get(error.errno) or f"{(error.strerror or str(error)).rstrip('.')}."


def cannot_listen(service: str, section: str, key: str, host: str, port: int, error: OSError) -> CannotListen:
    """The one-line error for ``service`` failing to bind ``[section] key`` (``host:port``)."""
    return CannotListen(service=service.upper(), host=host, port=port, reason=_bind_failure(error),
                        variable=f"{ENV_PREFIX}{section}_{key}".upper(), section=section, key=key)


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

    @contextmanager
    def listening_on(self, section: str, key: str) -> Iterator[tuple[str, int]]:
        """``(host, port)`` from ``[section] host`` and ``[section] key``; an
        ``OSError`` while binding them becomes :class:`~ums.errors.CannotListen`."""
        cfg = self.ctx.config.section(section)
        host, port = cfg["host"], cfg[key]
        try:
            yield host, port
        except OSError as error:
            raise cannot_listen(self.name, section, key, host, port, error) from None

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
