"""The free refusal line (``[voice] refusal_line``): inbound SIP calls are
answered with a Korean prompt; the key 1 records the caller's number as
refusing advertising.

One long-running baresip user agent (Debian's baresip-core) answers calls to
the line's SIP URI and plays WAV files made by :mod:`.tts`; its ``ctrl_tcp``
module reports the call's events (established, DTMF keys by RFC 4733
telephone-event, closed) as JSON netstrings and takes the ``ausrc`` command
that switches what the call hears. Its SIP trace (``-s``) on standard output
gives what the events do not: the network address each INVITE came from and
its identity headers.

A call hears ``prompt.wav`` — "광고 수신을 거부하시려면 1번을 누르세요", then
``refusal_wait`` seconds of silence, then the goodbye — and baresip hangs up
when a file ends. Key 1 switches to the confirmation and records the refusal
(:func:`ums.refusal.refuse_address`, source ``refusal-line``, scope
advertising, matched to the contact by phone number, the call as evidence)
and, when the call ends, its CDR row (:func:`ums.queue.records.inbound_call_row`). Any
other key switches to the goodbye; silence reaches it by itself. Neither
changes anything.

Proof of the caller: a SIP From (or P-Asserted-Identity) number is only as
good as the network that delivered it. A refusal is recorded only for an
INVITE whose transport source is in ``refusal_trusted`` (the carrier trunk
or the operator's SIP proxy, which assert the caller id; loopback in tests);
the number is then the trunk's P-Asserted-Identity when present, else the
From user part. A call from elsewhere hears the goodbye and changes nothing.
Caller-ID spoofing upstream of the trusted trunk cannot be seen from here.

One call at a time (``call_max_calls 1``): a second caller meanwhile hears
busy (486) and can call again; the calls are short.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import shutil
import signal
import socket
import wave
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ...queue import records as cdr_rows
from ... import refusal
from ...addresses import problem
from ...errors import UmsError
from ...media import kill_group, require
from ...store import contacts
from .sip import _lines
from .tts import RATE, synthesize

log = logging.getLogger("ums.channels.voice.refusal_line")

PROMPT = "광고 수신을 거부하시려면 1번을 누르세요."
CONFIRM = "광고 수신거부가 등록되었습니다. 감사합니다."
GOODBYE = "전화해 주셔서 감사합니다. 안녕히 계십시오."
SOURCE = "refusal-line"
MODULES = ("stdio.so", "g711.so", "aufile.so", "aubridge.so")
_TRACE_HEAD = re.compile(r"^(?:\x1b\[[\d;]*m)?(?:UDP|TCP|TLS) (?P<source>\S+) -> \S+\s*$")
_USER = re.compile(r"<?(?:sips?|tel):(?P<user>[^@;>]+)")


class RefusalLineError(UmsError):
    """The refusal line cannot start: {reason}."""


@dataclass(frozen=True)
class LineSettings:
    """``[voice] refusal_line`` and its companions."""

    uri: str                      # sip:080...@host:port
    trusted: tuple = ()           # ip networks whose INVITEs are believed
    wait: float = 8.0             # seconds after the prompt for a key
    language: str = "ko"
    speed: int = 150

    @classmethod
    def from_config(cls, section: dict) -> "LineSettings | None":
        uri = (section.get("refusal_line") or "").strip()
        if not uri:
            return None
        try:
            trusted = tuple(ipaddress.ip_network(word, strict=False)
                            for word in (section.get("refusal_trusted") or "").split())
        except ValueError as error:
            raise RefusalLineError(reason=f"[voice] refusal_trusted: {error}") from None
        settings = cls(uri, trusted, float(section.get("refusal_wait") or 8), "ko", int(section.get("speed") or 150))
        settings.host_port  # refuses a URI without host:port now, not at the first call
        return settings

    @property
    def number(self) -> str:
        return _user_of(self.uri)

    @property
    def host_port(self) -> tuple[str, int]:
        host = self.uri.split("@", 1)[-1].split(";", 1)[0]
        name, _, port = host.rpartition(":")
        if not name or not port.isdigit():
            raise RefusalLineError(reason=f"refusal_line {self.uri!r} needs user@host:port")
        return name, int(port)

    def believes(self, source: str) -> bool:
        host = source.rsplit(":", 1)[0].strip("[]")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.trusted)


@dataclass
class Invite:
    """What the SIP trace showed of one INVITE: its transport source and identity headers."""

    source: str
    from_uri: str = ""
    asserted: str = ""


@dataclass
class LineCall:
    call_id: str
    peer: str
    answered_at: datetime
    invite: Invite | None = None
    key: str | None = None
    refused: bool = False
    ended_at: datetime | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def caller(self) -> str:
        """The caller's number: the trunk's asserted identity, else the From user part."""
        if self.invite and self.invite.asserted:
            return _user_of(self.invite.asserted)
        return _user_of(self.invite.from_uri if self.invite and self.invite.from_uri else self.peer)


def _user_of(uri: str) -> str:
    match = _USER.search(uri or "")
    return match["user"] if match else ""


class RefusalLine:
    """The listener: ``await start()``, ``await stop()``; ``calls`` counts the calls answered."""

    def __init__(self, ctx, settings: LineSettings, workdir: Path):
        self.ctx = ctx
        self.settings = settings
        self.workdir = workdir
        self.process = None
        self.invites: dict[str, Invite] = {}
        self.active: dict[str, LineCall] = {}
        self.calls = 0
        self._tasks: list[asyncio.Task] = []
        self._writer: asyncio.StreamWriter | None = None
        self._ready = asyncio.Event()

    # --- audio -----------------------------------------------------------------------------

    async def _prepare_audio(self) -> None:
        audio = self.workdir / "audio"
        speak = dict(language=self.settings.language, speed=self.settings.speed)
        prompt = await synthesize(PROMPT, audio / "prompt-words.wav", **speak)
        await synthesize(CONFIRM, audio / "confirm.wav", **speak)
        goodbye = await synthesize(GOODBYE, audio / "goodbye.wav", **speak)
        await _concatenate([prompt.path, _silence(audio / "wait.wav", self.settings.wait), goodbye.path],
                           audio / "prompt.wav")

    def _wav(self, name: str) -> Path:
        return self.workdir / "audio" / f"{name}.wav"

    # --- the user agent ---------------------------------------------------------------------

    def _write_config(self, control_port: int) -> None:
        host, port = self.settings.host_port
        modules = "\n".join(f"module\t\t\t{name}" for name in MODULES)
        (self.workdir / "config").write_text(
            "poll_method\t\tpoll\n"
            f"sip_listen\t\t{host}:{port}\n"
            f"net_interface\t\t{host}\n"
            "call_max_calls\t\t1\n"
            f"audio_source\t\taufile,{self._wav('prompt')}\n"
            "audio_player\t\taubridge,refusal\n"
            "audio_alert\t\taubridge,refusal\n"
            "module_path\t\t/usr/lib/baresip/modules\n"
            f"{modules}\n"
            "module_app\t\taccount.so\nmodule_app\t\tmenu.so\nmodule_app\t\tctrl_tcp.so\n"
            f"ctrl_tcp_listen\t\t127.0.0.1:{control_port}\n"
        )
        (self.workdir / "accounts").write_text(
            f"<{self.settings.uri}>;regint=0;answermode=auto;audio_codecs=PCMU,PCMA\n")

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        await self._prepare_audio()
        control_port = _free_port()
        self._write_config(control_port)
        baresip = require("baresip", "baresip-core")
        self.process = await asyncio.create_subprocess_exec(
            baresip, "-s", "-f", str(self.workdir), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )
        self._tasks.append(asyncio.ensure_future(self._read_console()))
        try:
            await asyncio.wait_for(self._ready.wait(), 15)
            reader, self._writer = await _connect(control_port)
        except (asyncio.TimeoutError, OSError) as error:
            await self.stop()
            raise RefusalLineError(reason=f"baresip did not come up on {self.settings.uri} ({error!r})") from None
        self._tasks.append(asyncio.ensure_future(self._read_events(reader)))
        log.info("refusal line listening", extra={"uri": self.settings.uri})

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.process is not None and self.process.returncode is None:
            try:
                self.process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(self.process.wait(), 3)
            except (ProcessLookupError, asyncio.TimeoutError):
                kill_group(self.process.pid)
                await self.process.wait()
        self.process = None
        shutil.rmtree(self.workdir / "audio", ignore_errors=True)

    # --- console: readiness and the SIP trace -------------------------------------------------

    async def _read_console(self) -> None:
        source, invite = None, None
        async for line in _lines(self.process.stdout):
            if "baresip is ready" in line:
                self._ready.set()
            if head := _TRACE_HEAD.match(line):
                source, invite = head["source"], None
            elif source and line.startswith("INVITE "):
                invite = Invite(source)
            elif invite is not None and ":" in line:
                self._header(invite, *line.split(":", 1))

    def _header(self, invite: Invite, name: str, value: str) -> None:
        name, value = name.strip().lower(), value.strip()
        if name == "call-id":
            self.invites[value] = invite
            if len(self.invites) > 256:  # INVITEs refused busy never close a call here
                del self.invites[next(iter(self.invites))]
        elif name == "from":
            invite.from_uri = value
        elif name == "p-asserted-identity":
            invite.asserted = value

    # --- events --------------------------------------------------------------------------------

    async def _read_events(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                length = await reader.readuntil(b":")
                body = await reader.readexactly(int(length[:-1]) + 1)
            except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                log.error("refusal line: the user agent stopped; no more calls are answered until MAS restarts")
                return
            message = json.loads(body[:-1])
            if message.get("event"):
                try:
                    await self.on_event(message)
                except Exception:  # one bad call must not stop the line
                    log.exception("refusal line event failed", extra={"type": message.get("type")})

    async def on_event(self, event: dict) -> None:
        call_id, kind = event.get("id", ""), event.get("type")
        if kind == "CALL_ESTABLISHED" or (kind == "CALL_DTMF_START" and call_id not in self.active):
            self._answered(call_id, event.get("peeruri", ""))
        call = self.active.get(call_id)
        if call is None:
            return
        if kind == "CALL_DTMF_START" and call.key is None:
            call.key = event.get("param", "")
            await self._key(call)
        elif kind == "CALL_CLOSED":
            call.ended_at = self.ctx.clock()
            del self.active[call_id]
            await self._play("prompt")  # ``ausrc`` also set what the next call hears first
            self.invites.pop(call_id, None)
            if call.refused:
                await self._write_cdr(call)

    def _answered(self, call_id: str, peer: str) -> None:
        if call_id not in self.active:
            self.calls += 1
            self.active[call_id] = LineCall(call_id, peer, self.ctx.clock(), self.invites.get(call_id))

    async def _key(self, call: LineCall) -> None:
        if call.key != "1":
            await self._play("goodbye")
            return
        trusted, reason = self._trusted(call)
        if not trusted:
            log.warning("refusal line: caller not believed", extra={"call_id": call.call_id, "reason": reason})
            await self._play("goodbye")
            return
        try:
            await self._record(call)
        except Exception:
            log.exception("refusal line: cannot record the refusal", extra={"call_id": call.call_id})
            await self._play("goodbye")
            return
        await self._play("confirm")

    def _trusted(self, call: LineCall) -> tuple[bool, str]:
        call.invite = call.invite or self.invites.get(call.call_id)
        if call.invite is None:
            return False, "no INVITE seen"
        if not self.settings.believes(call.invite.source):
            return False, f"from {call.invite.source}, not a trusted trunk"
        if problem("voice", call.caller):
            return False, f"caller id {call.caller!r} is not a number"
        return True, ""

    async def _play(self, name: str) -> None:
        await self._command("ausrc", f"aufile,{self._wav(name)}")

    async def _command(self, command: str, params: str = "") -> None:
        body = json.dumps({"command": command, "params": params, "token": command}).encode()
        self._writer.write(str(len(body)).encode() + b":" + body + b",")
        await self._writer.drain()

    # --- what a refusal records ----------------------------------------------------------------

    def evidence(self, call: LineCall) -> str:
        invite = call.invite
        asserted = f", P-Asserted-Identity {invite.asserted}" if invite.asserted else ""
        return (f"refusal line call {call.call_id} from trusted {invite.source} (From {invite.from_uri}{asserted}),"
                f" key 1 pressed")[:1000]

    async def _record(self, call: LineCall) -> None:
        now = self.ctx.clock()
        async with self.ctx.db.begin() as conn:
            contact = await contacts.by_phone(conn, call.caller)
            result = await refusal.refuse_address(
                conn, "voice", call.caller, now, SOURCE, reason="refusal", detail=f"DTMF 1 on {self.settings.number}",
                contact_id=contact["id"] if contact else None, evidence=self.evidence(call),
            )
        call.refused = True
        log.info("refusal line: advertising refused",
                 extra={"call_id": call.call_id, "added": result.added, "contact": bool(contact)})

    async def _write_cdr(self, call: LineCall) -> None:
        row = cdr_rows.inbound_call_row(
            call.call_id, call.caller, self.settings.number, call.answered_at, call.ended_at,
            source=SOURCE, channel=f"SIP/{call.invite.source}", dstchannel=self.settings.uri,
            lastapp="REFUSAL", lastdata="DTMF 1: advertising refused",
        )
        async with self.ctx.db.begin() as conn:
            await cdr_rows.insert_inbound_call(conn, row)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def _connect(port: int, tries: int = 50):
    for attempt in range(tries):
        try:
            return await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if attempt == tries - 1:
                raise
            await asyncio.sleep(0.1)


def _silence(path: Path, seconds: float) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(b"\x00\x00" * int(RATE * seconds))
    return path


async def _concatenate(parts: list[Path], target: Path) -> None:
    frames = []
    for part in parts:
        with wave.open(str(part)) as source:
            frames.append(source.readframes(source.getnframes()))
    with wave.open(str(target), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(b"".join(frames))
