"""Schema migrations with Alembic, run from code (``ums init``) or tests.

Checking the schema (every command does, before it touches the database) does
not load Alembic: its import costs more than the rest of `ums status`. The
stamped revision is one query on ``alembic_version``, and the head is read
from the ``revision``/``down_revision`` assignments of the revision files —
the single head of a linear history; anything else (a branch, a file that
does not assign plain strings) is left to Alembic. A test pins both answers to
Alembic's own. Upgrades and downgrades always run through Alembic.
"""

from __future__ import annotations

import ast
from pathlib import Path

from sqlalchemy import inspect, text

from . import Database

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"


def alembic_config(connection=None):
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _assigned_revisions(path: Path) -> tuple[str, object] | None:
    """``(revision, down_revision)`` as the file assigns them, or None if it does not plainly."""
    found = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("revision", "down_revision"):
                try:
                    found[node.targets[0].id] = ast.literal_eval(node.value)
                except ValueError:
                    return None
    if not isinstance(found.get("revision"), str) or not isinstance(found.get("down_revision", 0), (str, type(None))):
        return None
    return found["revision"], found["down_revision"]


def _linear_head() -> str | None:
    """The one revision nothing follows, or None when the history is not a simple line."""
    pairs = [_assigned_revisions(path) for path in sorted((MIGRATIONS / "versions").glob("*.py"))]
    if not pairs or None in pairs:
        return None
    heads = {revision for revision, _ in pairs} - {down for _, down in pairs}
    return heads.pop() if len(heads) == 1 else None


def head_revision() -> str:
    head = _linear_head()
    if head is not None:
        return head
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _stamped_revision(sync_connection) -> str | None:
    if not inspect(sync_connection).has_table(VERSION_TABLE):
        return None
    return sync_connection.scalar(text(f"SELECT version_num FROM {VERSION_TABLE}"))


async def current_revision(db: Database) -> str | None:
    async with db.connect() as conn:
        return await conn.run_sync(_stamped_revision)


async def upgrade(db: Database, revision: str = "head") -> None:
    from alembic import command

    async with db.begin() as conn:
        await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), revision))


async def downgrade(db: Database, revision: str) -> None:
    from alembic import command

    async with db.begin() as conn:
        await conn.run_sync(lambda sync: command.downgrade(alembic_config(sync), revision))
