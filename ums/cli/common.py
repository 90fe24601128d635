"""What every command shares: the loaded configuration and database, the
running instances as `ums status` sees them, and the one way a list, show or
status command writes JSON (``--json``: :func:`json_option` declares the
flag with the command's field names, :func:`write_json` prints the value)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Iterable

import click

from .. import config as ums_config
from ..clock import UTC, as_utc, shown, site_zone, utcnow
from ..db import Database, from_config, retry_when_locked
from ..errors import UmsError
from ..runtime import check_schema

JSON_TIMES = "Times are ISO 8601 with the site's offset (2026-12-02T13:22:05+09:00), or null."


@dataclass
class Obj:
    home: str | None = None
    config_file: str | None = None
    _config: ums_config.Config | None = field(default=None, repr=False)

    @property
    def home_dir(self) -> Path:
        return Path(self.home).resolve() if self.home else ums_config.instance_home()

    @property
    def config(self) -> ums_config.Config:
        if self._config is None:
            self._config = ums_config.load(self.home_dir, config_file=self.config_file)
        return self._config

    def database(self) -> Database:
        return from_config(self.config)


def local_time(obj: Obj, value) -> str:
    """A stored time as the site reads it, naming the zone ("2026-12-02 04:22 KST")."""
    return shown(value, site_zone(obj.config))


def run_async(coro):
    return asyncio.run(coro)


async def ready_database(obj: Obj) -> Database:
    """The database, checked to be migrated (else a one-line error)."""
    db = obj.database()
    try:
        await check_schema(db)
    except Exception:
        await db.close()
        raise
    return db


async def in_transaction(obj, work):
    """``await work(conn)`` in one transaction on the instance's database, closed after.
    On SQLite a transaction that reads and then writes while a running service
    commits is refused as "database is locked" at once (its snapshot is stale,
    waiting cannot help): it is rolled back and run again."""
    db = await ready_database(obj)

    async def attempt():
        async with db.begin() as conn:
            return await work(conn)

    try:
        return await retry_when_locked(attempt)
    finally:
        await db.close()


def live_instances(config, instances: list[dict], service: str) -> list[dict]:
    """The instances of ``service`` whose heartbeat is recent (the others died or stopped)."""
    fresh_after = utcnow() - timedelta(seconds=config.get("control", "stale_after"))
    return [i for i in instances if i["service"] == service and as_utc(i["heartbeat_at"]) >= fresh_after]


def json_option(fields: str | Iterable[str], shape: str = "an array of objects"):
    """The ``--json`` flag (parameter ``as_json``) of a list, show or status
    command; its help names the JSON's ``shape`` and ``fields``, so the field
    names are documented where the command is."""
    names = fields if isinstance(fields, str) else ", ".join(fields)
    return click.option("--json", "as_json", is_flag=True,
                        help=f"Print JSON instead: {shape} with {names}. {JSON_TIMES}")


def pick(row: dict, fields: Iterable[str]) -> dict:
    """The named fields of a row, in that order (what ``--json`` prints of it)."""
    return {name: row.get(name) for name in fields}


def write_json(obj: Obj, value) -> None:
    """Print ``value`` as JSON (UTF-8, indented): times ISO 8601 in the site's
    zone with its offset (UTC when the configuration does not load: `ums check`
    still reports that as JSON), decimals as strings (exact amounts), sets as lists."""
    try:
        tz = site_zone(obj.config)
    except UmsError:
        tz = UTC

    def plain(item):
        if isinstance(item, datetime):
            return as_utc(item).astimezone(tz).isoformat()
        if isinstance(item, date):
            return item.isoformat()
        if isinstance(item, Decimal):
            return str(item)
        if isinstance(item, (set, frozenset)):
            return sorted(item)
        if isinstance(item, bytes):
            return item.decode("utf-8", "replace")
        return str(item)

    click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=plain))


pass_obj = click.make_pass_decorator(Obj)
