"""The runtime: one asyncio loop hosting Twisted, aiosmtpd, APScheduler and
aiosmtplib, and the services named in the configuration.

:class:`Suite` loads services by dotted name (so ``pass`` is no special case),
starts them, applies the operator's pause/resume wishes stored in the database,
refreshes heartbeats for ``ums status`` and stops everything on SIGTERM/SIGINT
or on a stop request written by ``ums stop``.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from . import alerts
from . import log as ums_log
from . import reactor as ums_reactor
from .config import Config
from .db import Database, from_config
from .db.migrate import current_revision, head_revision
from .errors import DatabaseError, DatabaseNotReady, DatabaseOutdated, ServiceLoadError, ServiceStartError, UmsError, UnknownService
from .service import Service
from .store import control, utcnow

log = logging.getLogger("ums.runtime")


@dataclass
class Context:
    """What every service shares: configuration, database, loop, reactor, clock."""

    config: Config
    db: Database
    loop: asyncio.AbstractEventLoop
    reactor: object
    #: Current time (aware, UTC). Tests inject a fake clock here.
    clock: Callable[[], datetime] = utcnow
    host: str = field(default_factory=socket.gethostname)
    #: The running services by name, so one service can find another in-process.
    services: dict[str, Service] = field(default_factory=dict)


def service_names(config: Config) -> list[str]:
    return list(config.section("services"))


def load_service_class(config: Config, name: str) -> type[Service]:
    targets = config.section("services")
    if name not in targets:
        raise UnknownService(name=name, known=", ".join(targets))
    target = targets[name]
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, class_name)
    except (ImportError, AttributeError) as exc:
        raise ServiceLoadError(name=name, target=target, reason=exc) from None
    return cls


async def check_schema(db: Database) -> None:
    try:
        revision = await current_revision(db)
    except Exception as exc:
        raise DatabaseError(reason=f"cannot reach {db.url}: {exc}") from None
    if revision is None:
        raise DatabaseNotReady(url=db.url)
    if revision != head_revision():
        raise DatabaseOutdated(url=db.url, revision=revision, head=head_revision())


class Suite:
    """A set of services running on one loop in this process."""

    def __init__(self, config: Config, names: list[str] | None = None, clock=None, db=None):
        self.config = config
        self.names = names or list(config.get("ums", "run"))
        for name in self.names:
            load_service_class(config, name)  # fail early on an unknown name
        self.clock = clock or utcnow
        self._db = db
        self.ctx: Context | None = None
        self.instances: dict[str, int] = {}
        self.stopping = asyncio.Event()
        self._control_task: asyncio.Task | None = None
        self.started_at = 0.0

    @property
    def services(self) -> dict[str, Service]:
        return self.ctx.services if self.ctx else {}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        reactor = ums_reactor.install(loop)
        db = self._db or from_config(self.config)
        await check_schema(db)
        self.ctx = Context(self.config, db, loop, reactor, clock=self.clock)
        async with db.connect() as conn:
            desired = await control.desired_states(conn)
        for name in self.names:
            service = load_service_class(self.config, name)(self.ctx, name)
            if desired.get(name) == "paused":  # paused before its port opens: no window
                await service.pause()
            try:
                await service.start()
            except (OSError, UmsError) as exc:
                await self._abandon(service)
                await self.stop()
                if isinstance(exc, UmsError):
                    raise
                raise ServiceStartError(name=name, reason=exc.strerror or exc) from None
            self.ctx.services[name] = service
            await self._register_instance(name, service)   # so `ums pause|resume` waits for it from now on
            log.info("service started", extra={"service": name, "address": service.address})
        self.started_at = time.monotonic()
        self._control_task = asyncio.create_task(self._control_loop(), name="ums-control")

    async def _abandon(self, service: Service) -> None:
        """Close what a service opened before its start failed (one of EPS's two
        ports, say), so the error is all that remains."""
        try:
            await asyncio.wait_for(service.stop(), self.config.get("control", "stop_timeout"))
        except Exception:
            log.debug("could not stop a service that failed to start", exc_info=True)

    async def _register_instance(self, name: str, service: Service) -> None:
        async with self.ctx.db.begin() as conn:
            self.instances[name] = await control.register_instance(
                conn, name, self.ctx.host, os.getpid(), service.address, service.state
            )

    async def _apply_desired_states(self) -> None:
        async with self.ctx.db.connect() as conn:
            desired = await control.desired_states(conn)
        for name, service in self.services.items():
            wish = desired.get(name, "running")
            if wish == "paused" and not service.paused:
                await service.pause()
                alerts.notify(self.config, "service.paused", f"Service {name} paused", service=name, host=self.ctx.host)
            elif wish == "running" and service.paused:
                await service.resume()

    async def _heartbeat(self) -> bool:
        """Refresh this process's instance rows; True when `ums stop` asked it to stop."""
        async with self.ctx.db.begin() as conn:
            for name, service in self.services.items():
                info = {**service.info(), "uptime": round(time.monotonic() - self.started_at)}
                await control.heartbeat(conn, self.instances[name], service.state, info)
            stale = self.ctx.clock() - timedelta(seconds=self.config.get("control", "stale_after") * 4)
            await control.forget_stale(conn, stale)
            return await control.stop_requested(conn, list(self.instances.values()))

    async def _control_loop(self) -> None:
        interval = self.config.get("control", "poll_interval")
        while not self.stopping.is_set():
            try:
                await self._apply_desired_states()
                if await self._heartbeat():
                    log.info("stop requested through the database")
                    self.stopping.set()
                    return
            except Exception:
                log.exception("control loop error; retrying")
            try:
                await asyncio.wait_for(self.stopping.wait(), interval)
            except asyncio.TimeoutError:
                pass

    async def stop(self) -> None:
        """Stop services in reverse start order, each within the stop timeout."""
        self.stopping.set()
        if self._control_task:
            await asyncio.gather(self._control_task, return_exceptions=True)
        if not self.ctx:
            return
        timeout = self.config.get("control", "stop_timeout")
        for name, service in reversed(list(self.services.items())):
            try:
                await asyncio.wait_for(service.stop(), timeout)
            except asyncio.TimeoutError:
                log.warning("service did not stop in time", extra={"service": name})
            except Exception:
                log.exception("error while stopping", extra={"service": name})
            log.info("service stopped", extra={"service": name})
            alerts.notify(self.config, "service.stopped", f"Service {name} stopped", service=name, host=self.ctx.host)
        await self._unregister()
        await alerts.drain(self.config)
        if self._db is None:
            await self.ctx.db.close()

    async def _unregister(self) -> None:
        try:
            async with self.ctx.db.begin() as conn:
                for instance_id in self.instances.values():
                    await control.remove_instance(conn, instance_id)
        except Exception:
            log.warning("could not remove instance rows; they expire on their own")
        self.instances.clear()

    async def serve(self) -> None:
        """Start, then run until SIGTERM/SIGINT or a stop request; then stop."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, ums_log.reopen)
        await self.start()
        log.info("UMS is up", extra={"services": " ".join(self.names), "pid": os.getpid()})
        await self.stopping.wait()
        log.info("stopping")
        await self.stop()


def run(config: Config, names: list[str] | None = None) -> None:
    """Run a suite in this process until it is stopped (the ``ums run`` command)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    ums_reactor.install(loop)
    suite = Suite(config, names)
    try:
        loop.run_until_complete(suite.serve())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
