"""The MAS service: aiosmtpd on the shared loop (``loop.create_server``, not the
threaded Controller); the task that reads the text of stored documents —
fax pages, PDFs — after their 250 (:class:`ums.ocr.DocumentReader`; it goes on
with what is pending from before when MAS starts); and the free refusal line
(``[voice] refusal_line``, :mod:`ums.channels.voice.refusal_line`) when one is
configured: MAS is where inbound refusals are handled."""

from __future__ import annotations

import asyncio
import ssl

from ums import ocr
from ums.channels.voice.refusal_line import LineSettings, RefusalLine
from ums.service import Service

from .handler import InboundHandler, Settings
from .smtp import ConnectionLimits, InboundSMTP

PAUSED_REPLY = b"421 4.3.2 Service paused by the operator, try again later\r\n"


class PausedGreeter(asyncio.Protocol):
    """What a client meets while MAS is paused: 421 and a closed connection."""

    def connection_made(self, transport):
        transport.write(PAUSED_REPLY)
        transport.close()


class MessageApplicationServer(Service):
    name = "mas"
    listeners = (("mas", "host", "port"),)

    def __init__(self, ctx, name=None):
        super().__init__(ctx, name)
        self.server: asyncio.base_events.Server | None = None
        self.handler = self.build_handler()
        cfg = self.ctx.config.section("mas")
        self.limits = ConnectionLimits(cfg["max_connections"], cfg["max_connections_per_client"])
        self.tls_context = self.build_tls_context()
        self.refusal_line: RefusalLine | None = None
        self.reader = ocr.DocumentReader(self.ctx.db, ocr.spool_dir(self.ctx.config), self.ctx.clock)
        self.reader_task: asyncio.Task | None = None
        self.handler.documents_stored = self.reader.wake

    def build_handler(self) -> InboundHandler:
        return InboundHandler(self.ctx, Settings.from_config(self.ctx.config))

    def smtp_options(self) -> dict:
        cfg = self.ctx.config.section("mas")
        options = {
            "hostname": cfg["hostname"],
            "ident": "UMS MAS",
            "data_size_limit": cfg["max_message_size"],
            "enable_SMTPUTF8": True,
            "decode_data": False,
        }
        if self.tls_context is not None:
            options["tls_context"] = self.tls_context
        return options

    def build_tls_context(self) -> ssl.SSLContext | None:
        """STARTTLS is offered when both ``mas.tls_cert`` and ``mas.tls_key`` are set."""
        cfg = self.ctx.config.section("mas")
        if not (cfg["tls_cert"].strip() and cfg["tls_key"].strip()):
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cfg["tls_cert"], cfg["tls_key"])
        return context

    def info(self) -> dict:
        return {"accepted": self.handler.accepted, "deferred": self.handler.deferred, "refused": self.handler.refused,
                "documents_read": self.reader.read}

    def protocol(self) -> asyncio.Protocol:
        if self.paused:
            return PausedGreeter()
        return InboundSMTP(self.handler, loop=self.ctx.loop, limits=self.limits, **self.smtp_options())

    async def start(self) -> None:
        with self.listening_on("mas", "port") as (host, port):
            self.server = await self.ctx.loop.create_server(self.protocol, host, port)
        self.reader_task = self.ctx.loop.create_task(self.reader.run())
        line = LineSettings.from_config(self.ctx.config.section("voice"))
        if line is not None:
            self.refusal_line = RefusalLine(self.ctx, line, self.ctx.config.var_dir / "refusal-line")
            await self.refusal_line.start()

    async def stop(self) -> None:
        if self.refusal_line is not None:
            await self.refusal_line.stop()
            self.refusal_line = None
        if self.reader_task:
            self.reader_task.cancel()
            await asyncio.gather(self.reader_task, return_exceptions=True)
            self.reader_task = None
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
