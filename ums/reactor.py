"""Twisted on the process's one asyncio loop.

``install(loop)`` must run before anything imports ``twisted.internet.reactor``;
no UMS module imports the reactor at import time — the runtime hands it to the
services through the context.
"""

from __future__ import annotations

import asyncio
import sys


def install(loop: asyncio.AbstractEventLoop):
    """Install (once per process) the asyncio reactor on ``loop`` and return it."""
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor

        bound = getattr(reactor, "_asyncioEventloop", None)
        if bound is not loop:
            raise RuntimeError("the Twisted reactor is already bound to another event loop")
        return reactor
    from twisted.internet import asyncioreactor

    asyncioreactor.install(loop)
    from twisted.internet import reactor

    return reactor


def deferred_to_future(deferred, loop: asyncio.AbstractEventLoop) -> asyncio.Future:
    """Await a Deferred (or a plain value some Twisted APIs return) from asyncio."""
    from twisted.internet.defer import Deferred

    if isinstance(deferred, Deferred):
        return deferred.asFuture(loop)
    future = loop.create_future()
    future.set_result(deferred)
    return future
