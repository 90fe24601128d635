"""A campaign into Postfix's smtp-sink, a relay that announces PIPELINING as
Postfix does: PASS sends MAIL, RCPT and DATA together, and every recipient
gets exactly its own message (checked from the sink's per-message dumps)."""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from pass_support import add_template, pass_config, seed_audience, start_campaign, states
from tests.helpers import eventually, free_port
from ums.db.models import deliveries

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
pytestmark = pytest.mark.skipif(not os.path.exists(SMTP_SINK), reason="smtp-sink (Debian package postfix) missing")
RECIPIENTS = 300


@pytest.fixture
def postfix_sink():
    # smtp-sink writes as nobody when started by root: a directory it can reach
    holder = tempfile.TemporaryDirectory(prefix="ums-sink-")
    dumps = Path(holder.name)
    dumps.chmod(0o777)
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    process = subprocess.Popen([SMTP_SINK, *user, "-d", f"{dumps}/msg.", f"127.0.0.1:{port}", "64"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "smtp-sink did not start"
            time.sleep(0.05)
    yield port, dumps
    process.terminate()
    process.wait(timeout=10)
    holder.cleanup()


def dumped(dumps: Path) -> list[tuple[str, str]]:
    """(recipient, Message-ID) of every message the sink received."""
    found = []
    for path in dumps.iterdir():
        text = path.read_bytes().decode("utf-8", "replace")
        found.append((re.search(r"^X-Rcpt-Args: <([^>]+)>", text, re.M).group(1),
                      re.search(r"^Message-ID: (<[^>]+>)", text, re.M | re.I).group(1)))
    return found


async def test_campaign_through_a_pipelining_relay(tmp_path, sqlite_url, pass_db_sqlite, postfix_sink, start_suite):
    port, dumps = postfix_sink
    await seed_audience(pass_db_sqlite, RECIPIENTS)
    await add_template(pass_db_sqlite)
    await start_suite(pass_config(tmp_path, sqlite_url, port), ["pass"])
    campaign_id = await start_campaign(pass_db_sqlite)

    async def all_sent():
        return (await states(pass_db_sqlite, campaign_id)).get("sent") == RECIPIENTS

    await eventually(all_sent, timeout=60, interval=0.2)
    await eventually(lambda: len(list(dumps.iterdir())) >= RECIPIENTS, timeout=10)
    received = dumped(dumps)
    async with pass_db_sqlite.connect() as conn:
        expected = set((await conn.execute(select(deliveries.c.recipient, deliveries.c.message_id))).all())
    assert len(received) == RECIPIENTS
    assert set(received) == expected                      # each recipient got its own Message-ID
    assert set(Counter(rcpt for rcpt, _ in received).values()) == {1}
