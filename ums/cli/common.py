"""What every command shares: the loaded configuration and database."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import click

from .. import config as ums_config
from ..clock import shown, site_zone
from ..db import Database, from_config
from ..runtime import check_schema


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


pass_obj = click.make_pass_decorator(Obj)
