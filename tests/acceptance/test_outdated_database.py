"""An operator who upgrades UMS over an older database is told, in one line, that
it needs migrating (not that it was never initialised), and `ums init` migrates it."""

from __future__ import annotations

import asyncio

from tests.acceptance.cli import ums
from ums.db import connect
from ums.db.migrate import downgrade, head_revision


def test_a_database_of_an_older_release_is_named_as_such_and_ums_init_migrates_it(tmp_path):
    assert ums(tmp_path, "init").returncode == 0

    async def back_to_0012():
        db = connect(f"sqlite+aiosqlite:///{tmp_path}/var/ums.db")
        await downgrade(db, "0012")
        await db.close()

    asyncio.run(back_to_0012())
    answer = ums(tmp_path, "journey", "list")
    assert answer.returncode != 0
    [line] = answer.stderr.strip().splitlines()
    assert f"is at migration 0012, this UMS needs {head_revision()}; run `ums init` to migrate it" in line
    assert "not initialised" not in line
    migrated = ums(tmp_path, "init")
    assert migrated.returncode == 0 and f"to {head_revision()}" in migrated.stdout
    assert ums(tmp_path, "journey", "list").returncode == 0
