"""EPS test fixtures: a running EPS on a fresh database with an API key and templates."""

import pytest

from eps_support import EpsClient, add_templates, new_key
from tests.conftest import make_config
from ums.db import connect


@pytest.fixture
async def eps(tmp_path, database_url, start_suite):
    """A running EPS (alone) with an account-system key and the sample templates."""
    config = make_config(tmp_path, database_url, eps__held_sweep_interval="0.5")
    db = connect(database_url)
    suite = await start_suite(config, ["eps"])
    key = await new_key(db, "account")
    await add_templates(db, ("deposit-email", "email"), ("deposit-fax", "fax"), ("deposit-voice", "voice"),
                        ("loan-due-email", "email"), ("loan-due-fax", "fax"), ("loan-due-voice", "voice"))
    client = EpsClient(suite, db, key)
    client.config = config
    yield client
    await db.close()
