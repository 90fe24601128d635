import aiosmtplib
import pytest

from tests.conftest import make_config
from tests.helpers import split_address


@pytest.fixture
async def mas(tmp_path, database_url, start_suite):
    """A running MAS for ``ums.local`` and ``bank.example`` on a fresh database."""
    config = make_config(tmp_path, database_url, mas__local_domains="ums.local bank.example",
                         mas__max_message_size="500000")
    suite = await start_suite(config, ["mas"])
    return suite


@pytest.fixture
def smtp_client(mas):
    """``async with smtp_client() as client`` → a connected aiosmtplib client to MAS."""
    host, port = split_address(mas.services["mas"].address)

    def connect():
        return aiosmtplib.SMTP(hostname=host, port=port, timeout=10, start_tls=False)

    return connect
