"""Must-show 2: the shipped layouts as real EUC-KR frames over TCP."""

import asyncio

from eps.telegrams import frame, load_layouts, encode_fields, parse_reply
from eps_support import SAMPLES, add_customer, new_key
from tests.helpers import eventually
from ums.store import control

LAYOUTS = load_layouts()


def deposit(telegram_id: str, customer="C2001", amount="1500000", direction="D") -> bytes:
    body = encode_fields(LAYOUTS["AC01"], {
        "telegram_id": telegram_id, "customer_id": customer, "direction": direction,
        "account": "110-234-567890", "amount": amount, "balance": "9000000", "branch": "강남지점",
    })
    return body


def loan_due(telegram_id: str, customer="C2002") -> bytes:
    return encode_fields(LAYOUTS["IN01"], {
        "telegram_id": telegram_id, "customer_id": customer, "loan_no": "LN-2024-0001",
        "due_date": "20240531", "amount": "350000", "days_left": "5", "product": "주택담보대출",
    })


class Client:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    async def send(self, body: bytes) -> dict:
        self.writer.write(frame(body))
        return await self.reply()

    async def reply(self) -> dict:
        header = await asyncio.wait_for(self.reader.readexactly(4), 5)
        return parse_reply(await asyncio.wait_for(self.reader.readexactly(int(header)), 5))


async def connect(eps) -> Client:
    return Client(*await asyncio.open_connection(eps.host, eps.telegram_port))


async def test_shipped_layouts_are_acked_and_produce_deliveries(eps):
    await eps.register(SAMPLES / "large-deposit-alert.json")
    await eps.register(SAMPLES / "loan-due-notice.xml")
    await add_customer(eps.db, "C2001", email="park@example.com")
    await add_customer(eps.db, "C2002", email="choi@example.com")
    assert "강남지점".encode("euc-kr") in deposit("T1")  # really EUC-KR on the wire
    client = await connect(eps)
    first = await client.send(deposit("T0000000001"))
    second = await client.send(loan_due("T0000000002"))
    assert (first["kind"], first["code"]) == ("ACK", "0000")
    assert (second["kind"], second["code"]) == ("ACK", "0000")
    information_key = await new_key(eps.db, "information")  # IN01 is the information system's
    for reply, address, branch_or_product, key in ((first, "park@example.com", "강남지점", None),
                                                   (second, "choi@example.com", "주택담보대출", information_key)):
        _, _, shown = await eps.request("GET", f"/v1/events/{reply['detail']}", key=key)
        assert shown["state"] == "dispatched"
        assert shown["deliveries"][0]["recipient"] == address
        assert branch_or_product in shown["payload"].values()
    again = await client.send(deposit("T0000000001"))
    assert (again["kind"], again["code"], again["detail"]) == ("ACK", "0001", first["detail"])
    client.writer.close()


async def test_bad_frames_get_distinct_nacks_and_the_next_good_frame_is_acked(eps):
    await eps.register(SAMPLES / "large-deposit-alert.json")
    await add_customer(eps.db, "C2001", email="park@example.com")
    client = await connect(eps)
    wrong_length = await client.send(deposit("T1")[:-5])
    unknown_code = await client.send(b"ZZ99" + deposit("T2")[4:])
    not_a_number = await client.send(deposit("T3", amount="12A4"))
    good = await client.send(deposit("T4"))
    codes = [r["code"] for r in (wrong_length, unknown_code, not_a_number)]
    assert [r["kind"] for r in (wrong_length, unknown_code, not_a_number)] == ["NACK"] * 3
    assert len(set(codes)) == 3, codes
    assert "amount" in not_a_number["detail"]
    assert (good["kind"], good["code"]) == ("ACK", "0000")
    client.writer.close()


async def test_pipelined_frames_are_answered_in_order(eps):
    await add_customer(eps.db, "C2001", email="park@example.com")
    client = await connect(eps)
    for number in range(20):
        client.writer.write(frame(deposit(f"P{number:05d}")))
    replies = [await client.reply() for _ in range(20)]
    assert [r["telegram_id"] for r in replies] == [f"P{n:05d}" for n in range(20)]
    assert {r["code"] for r in replies} == {"0000"}
    client.writer.close()


async def test_garbage_closes_only_that_connection(eps):
    await add_customer(eps.db, "C2001", email="park@example.com")
    bystander = await connect(eps)
    vandal = await connect(eps)
    vandal.writer.write(b"GET / HTTP/1.1\r\n\r\n")
    refusal = await vandal.reply()
    assert (refusal["kind"], refusal["code"]) == ("NACK", "9001")
    assert await asyncio.wait_for(vandal.reader.read(), 5) == b""  # closed
    good = await bystander.send(deposit("B1"))
    assert good["code"] == "0000"
    bystander.writer.close()


async def set_desired(eps, state):
    async with eps.db.begin() as conn:
        await control.set_desired(conn, "eps", state, "test")


async def test_a_paused_eps_nacks_busy_and_keeps_the_connection(eps):
    client = await connect(eps)
    service = eps.suite.services["eps"]
    await set_desired(eps, "paused")
    await eventually(lambda: service.paused)
    busy = await client.send(deposit("Q1"))
    await set_desired(eps, "running")
    await eventually(lambda: not service.paused)
    await add_customer(eps.db, "C2001", email="park@example.com")
    later = await client.send(deposit("Q1"))
    assert (busy["kind"], busy["code"]) == ("NACK", "2001")
    assert (later["kind"], later["code"]) == ("ACK", "0000")
    client.writer.close()
