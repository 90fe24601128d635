"""A running WAS on loopback with one user per role."""

from __future__ import annotations

import pytest
from was_site import Site, add_users

from tests.conftest import make_config


@pytest.fixture
async def site(config, start_suite):
    suite = await start_suite(config, ["was"])
    site = Site(suite, "http://" + suite.services["was"].address)
    site.user_ids = await add_users(suite.ctx.db)
    return site


@pytest.fixture
async def sqlite_site(tmp_path, sqlite_url, start_suite):
    suite = await start_suite(make_config(tmp_path, sqlite_url), ["was"])
    site = Site(suite, "http://" + suite.services["was"].address)
    site.user_ids = await add_users(suite.ctx.db)
    return site
