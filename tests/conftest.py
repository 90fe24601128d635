"""Shared fixtures.

Every test runs on one session-wide asyncio loop with Twisted's asyncio reactor
installed on it, as in production. The application clock is moved to the nearest
noon in Seoul (``UMS_CLOCK_SHIFT``, inherited by every ``ums`` child process),
so the suite behaves the same at whatever hour it runs — tests of the night
rule inject their own clock; set ``UMS_CLOCK_SHIFT=0`` beforehand to run on
the machine's own time. Database fixtures give each test a fresh,
migrated database: SQLite always; PostgreSQL too when UMS_TEST_DATABASE_URL
points at a server (CI sets it), otherwise those cases skip saying why.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import sys
from pathlib import Path
from datetime import time
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import make_url

from ums import clock as ums_clock
from ums import config as ums_config
from ums import reactor as ums_reactor
from ums.db import connect
from ums.db.migrate import upgrade
from ums.runtime import Suite

os.environ.setdefault(ums_clock.SHIFT_VARIABLE, str(ums_clock.shift_to(time(12, 0), ZoneInfo("Asia/Seoul"))))

PG_URL = os.environ.get("UMS_TEST_DATABASE_URL", "")
NO_PG_REASON = "PostgreSQL not configured: set UMS_TEST_DATABASE_URL=postgresql+asyncpg://user@host/db"
_counter = itertools.count()

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


# --- parallel runs (pytest-xdist, --dist loadgroup) ------------------------------------

#: tests that drive one real external resource each, by the fixture they use or
#: the file they are in: a group runs on one worker, one test at a time, so two
#: workers never start HylaFAX, baresip, smtp-sink, systemd units, the bounce
#: corpus download or the voice stack at the same moment
SHARED_RESOURCE_FIXTURES = {"hylafax": "hylafax", "sip_peer": "baresip", "postfix_sink": "postfix-smtp-sink"}
SHARED_RESOURCE_PATHS = {
    "tests/integration/voice/": "baresip",  # the voice tests call through baresip too
    "tests/integration/pass_/test_pass_postfix_sink.py": "postfix-smtp-sink",
    "tests/unit/mas/test_bounce_corpus.py": "bounce-corpus",
    "tests/acceptance/test_systemd_units.py": "systemd",
}


def shared_resource_group(item) -> str | None:
    """The xdist group of a test that uses a shared external resource, else None."""
    path = Path(str(item.path)).resolve().relative_to(Path(__file__).resolve().parents[1]).as_posix()
    for prefix, group in SHARED_RESOURCE_PATHS.items():
        if path.startswith(prefix):
            return group
    for fixture, group in SHARED_RESOURCE_FIXTURES.items():
        if fixture in getattr(item, "fixturenames", ()):
            return group
    return None


def soak_long_forms_wanted(config) -> bool:
    """The long forms of the soak tests (marked slow) run with UMS_SOAK=1 (at
    their full size) or when ``-m`` names them; otherwise only their short forms."""
    return os.environ.get("UMS_SOAK") == "1" or "slow" in (config.getoption("markexpr", "") or "")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the group markers
def pytest_collection_modifyitems(config, items):
    if not soak_long_forms_wanted(config):
        long_forms = [item for item in items if item.get_closest_marker("slow")]
        if long_forms:
            config.hook.pytest_deselected(items=long_forms)
            items[:] = [item for item in items if not item.get_closest_marker("slow")]
    for item in items:
        group = shared_resource_group(item)
        if group and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session", autouse=True)
async def reactor():
    """Twisted's asyncio reactor on the session loop (installed once per process)."""
    return ums_reactor.install(asyncio.get_running_loop())


@pytest.fixture(autouse=True)
def _no_alerts_left_over():
    """After each test, what ``ums.alerts`` keeps per process goes: a
    dispatcher a test's services made and did not drain (its queued alerts,
    retries and relay-outage timers would fire in a later test on this worker,
    posting to that test's closed receiver and logging its WARNING there) is
    cancelled, and the once-only "webhook without secret" error may be logged again."""
    yield
    alerts = sys.modules.get("ums.alerts")
    if alerts is None:
        return
    while alerts._dispatchers:
        _key, dispatcher = alerts._dispatchers.popitem()
        for outage in dispatcher.outages.values():
            if outage.get("timer"):
                outage["timer"].cancel()
        for task in [dispatcher.task, *dispatcher.sending]:
            task.cancel()
    alerts._misconfigured_warned = False


# --- databases -------------------------------------------------------------------

def _asyncpg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(_asyncpg_dsn(PG_URL))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


_templates: dict[str, object] = {}
_pg_databases: list[str] = []


async def _sqlite_template(base: Path) -> Path:
    if "sqlite" not in _templates:
        path = base / "template.db"
        db = connect(f"sqlite+aiosqlite:///{path}")
        await upgrade(db)
        await db.close()
        _templates["sqlite"] = path
    return _templates["sqlite"]


async def _pg_template() -> str:
    if "postgresql" not in _templates:
        name = f"ums_tmpl_{os.getpid()}"
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await _pg_admin(f'CREATE DATABASE "{name}"')
        db = connect(make_url(PG_URL).set(database=name).render_as_string(hide_password=False))
        await upgrade(db)
        await db.close()
        _templates["postgresql"] = name
        _pg_databases.append(name)
    return _templates["postgresql"]


async def fresh_database_url(backend: str, tmp_path: Path, tmp_path_factory) -> str:
    """A new, migrated, empty database of the given backend (copied from a
    template migrated once per session); PostgreSQL ones are dropped at the end."""
    if backend == "sqlite":
        template = await _sqlite_template(tmp_path_factory.getbasetemp())
        path = tmp_path / f"ums-{next(_counter)}.db"
        shutil.copy(template, path)
        return f"sqlite+aiosqlite:///{path}"
    if not PG_URL:
        pytest.skip(NO_PG_REASON)
    template = await _pg_template()
    name = f"ums_t_{os.getpid()}_{next(_counter)}"
    await _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    _pg_databases.insert(0, name)
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session", autouse=True)
async def _drop_pg_databases():
    yield
    for name in _pg_databases:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
async def database_url(request, tmp_path, tmp_path_factory) -> str:
    """A fresh migrated database URL; the test runs once per backend."""
    return await fresh_database_url(request.param, tmp_path, tmp_path_factory)


@pytest.fixture
async def sqlite_url(tmp_path, tmp_path_factory) -> str:
    return await fresh_database_url("sqlite", tmp_path, tmp_path_factory)


@pytest.fixture
async def postgres_url(tmp_path, tmp_path_factory) -> str:
    return await fresh_database_url("postgresql", tmp_path, tmp_path_factory)


@pytest.fixture
async def db(database_url):
    database = connect(database_url)
    yield database
    await database.close()


# --- configuration and a running suite ---------------------------------------------

TEST_OVERRIDES = {
    "was.port": "0",
    "eps.http_port": "0",
    "eps.telegram_port": "0",
    "mas.port": "0",
    "control.poll_interval": "0.1",
    "control.stop_timeout": "5",
    "pass.poll_interval": "0.2",
}


def make_config(home: Path, database_url: str, **overrides) -> ums_config.Config:
    """A test configuration: every port 0 (the OS picks), fast control polling."""
    values = {**TEST_OVERRIDES, "database.url": database_url}
    values.update({key.replace("__", "."): str(value) for key, value in overrides.items()})
    return ums_config.load(home, overrides=values, config_file=home / "absent.cfg")


@pytest.fixture
def config(tmp_path, database_url):
    return make_config(tmp_path, database_url)


@pytest.fixture
async def start_suite(tmp_path):
    """``await start_suite(config, ["mas", ...], clock=...)`` → a started Suite, stopped after the test."""
    started: list[Suite] = []

    async def start(config, names=None, **kwargs) -> Suite:
        suite = Suite(config, names, **kwargs)
        await suite.start()
        started.append(suite)
        return suite

    yield start
    for suite in started:
        await suite.stop()
