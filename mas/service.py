"""The MAS service: aiosmtpd on the shared loop (``loop.create_server``, not the
threaded Controller)."""

from __future__ import annotations

import asyncio

from aiosmtpd.smtp import SMTP

from ums.service import Service

PAUSED_REPLY = b"421 4.3.2 Service paused by the operator, try again later\r\n"


class PausedGreeter(asyncio.Protocol):
    """What a client meets while MAS is paused: 421 and a closed connection."""

    def connection_made(self, transport):
        transport.write(PAUSED_REPLY)
        transport.close()


class RefusingHandler:
    """Until inbound processing is configured, every recipient is refused."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return "550 5.7.1 Mail delivery is not enabled on this server"


class MessageApplicationServer(Service):
    name = "mas"

    def __init__(self, ctx, name=None):
        super().__init__(ctx, name)
        self.server: asyncio.base_events.Server | None = None
        self.handler = self.build_handler()

    def build_handler(self):
        return RefusingHandler()

    def smtp_options(self) -> dict:
        cfg = self.ctx.config.section("mas")
        return {
            "hostname": cfg["hostname"],
            "ident": "UMS MAS",
            "data_size_limit": cfg["max_message_size"],
            "enable_SMTPUTF8": True,
            "decode_data": False,
        }

    def protocol(self) -> asyncio.Protocol:
        if self.paused:
            return PausedGreeter()
        return SMTP(self.handler, loop=self.ctx.loop, **self.smtp_options())

    async def start(self) -> None:
        cfg = self.ctx.config.section("mas")
        self.server = await self.ctx.loop.create_server(self.protocol, cfg["host"], cfg["port"])

    async def stop(self) -> None:
        if self.server:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    @property
    def address(self) -> str:
        if not self.server or not self.server.sockets:
            return ""
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"
