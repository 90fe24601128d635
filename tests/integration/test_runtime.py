"""All four services on one loop, on port 0, against SQLite and PostgreSQL."""

import asyncio
import socket

import pytest

from tests.conftest import make_config
from tests.helpers import eventually, free_port, http_get, port_is_free, smtp_banner, split_address
from ums.errors import CannotListen
from ums.runtime import Suite
from ums.store import control


async def test_all_four_services_serve_on_one_loop(config, start_suite):
    suite = await start_suite(config)
    assert set(suite.services) == {"was", "eps", "mas", "pass"}
    loop = asyncio.get_running_loop()
    assert suite.ctx.reactor._asyncioEventloop is loop  # Twisted runs on this loop

    was_host, was_port = split_address(suite.services["was"].address)
    status, _, _ = await http_get(f"http://{was_host}:{was_port}/health")
    assert status == 200
    eps_host, eps_port = split_address(suite.services["eps"].address)
    status, _, body = await http_get(f"http://{eps_host}:{eps_port}/health")
    assert status == 200 and b'"eps"' in body
    telegram_port = int(suite.services["eps"].address.rsplit(" ", 1)[1])
    _, writer = await asyncio.open_connection("127.0.0.1", telegram_port)
    writer.close()
    mas_host, mas_port = split_address(suite.services["mas"].address)
    assert (await smtp_banner(mas_host, mas_port)).startswith("220 ")
    assert suite.services["pass"].scheduler.running


async def test_pause_resume_survives_restart(config, start_suite):
    suite = await start_suite(config)
    host, port = split_address(suite.services["mas"].address)
    async with suite.ctx.db.begin() as conn:
        assert await control.set_desired(conn, "mas", "paused", by="test")

    async def banner_is(code):
        return (await smtp_banner(host, port)).startswith(code)

    await eventually(lambda: banner_is("421"), timeout=3)
    await suite.stop()

    again = await start_suite(config)  # a restart: MAS comes back paused
    host, port = split_address(again.services["mas"].address)
    assert (await smtp_banner(host, port)).startswith("421")
    async with again.ctx.db.begin() as conn:
        await control.set_desired(conn, "mas", "running", by="test")
    await eventually(lambda: banner_is("220"), timeout=3)


async def test_paused_http_services_answer_503(config, start_suite):
    suite = await start_suite(config, ["was", "eps"])
    async with suite.ctx.db.begin() as conn:
        for name in ("was", "eps"):
            await control.set_desired(conn, name, "paused", by="test")
    await eventually(lambda: all(s.paused for s in suite.services.values()), timeout=3)
    was_host, was_port = split_address(suite.services["was"].address)
    status, _, body = await http_get(f"http://{was_host}:{was_port}/")
    assert status == 503 and b"maintenance" in body
    eps_host, eps_port = split_address(suite.services["eps"].address)
    status, headers, _ = await http_get(f"http://{eps_host}:{eps_port}/v1/events")
    assert status == 503 and headers.get("Retry-After") == "30"


async def test_status_rows_follow_heartbeats(config, start_suite):
    suite = await start_suite(config, ["mas", "pass"])
    async with suite.ctx.db.begin() as conn:
        await control.set_desired(conn, "mas", "paused", by="test")

    async def reported():
        async with suite.ctx.db.connect() as conn:
            rows = {row["service"]: row for row in await control.instances(conn)}
        return rows.get("mas", {}).get("state") == "paused" and rows["pass"]["info"].get("queue") == 0

    await eventually(reported, timeout=3)
    await suite.stop()
    async with suite.ctx.db.connect() as conn:
        assert await control.instances(conn) == []


@pytest.mark.parametrize("taken, setting", [
    ("mas.port", "UMS_MAS_PORT or [mas] port"),
    ("eps.telegram_port", "UMS_EPS_TELEGRAM_PORT or [eps] telegram_port"),
])
async def test_a_busy_port_stops_the_start_with_one_line_and_frees_the_others(tmp_path, database_url, taken, setting):
    """EPS's HTTP port is open by the time its telegram port fails: the runtime closes it again."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        ports = {"was.port": free_port(), "eps.http_port": free_port(), "eps.telegram_port": free_port(),
                 "mas.port": free_port(), taken: port}
        suite = Suite(make_config(tmp_path, database_url, **{key.replace(".", "__"): value
                                                             for key, value in ports.items()}))
        with pytest.raises(CannotListen) as raised:
            await suite.start()
    service = taken.split(".")[0].upper()
    assert str(raised.value) == (f"{service} cannot listen on 127.0.0.1:{port}: address in use — "
                                 f"is UMS already running? Set {setting}.")
    assert all(port_is_free(number) for key, number in ports.items() if key != taken)
