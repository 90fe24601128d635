"""SIP calls with baresip, a real SIP user agent (Debian's baresip-core).

Each call runs its own short-lived baresip process with a private
configuration: it dials the URI (directly, or through the configured outbound
proxy), plays the notice from a WAV file (``aufile``) once answered and hangs
up when the file ends. The process's console lines tell what happened (ringing,
established, closed with a SIP status), so no control port is needed; its
standard input takes the ``b`` (hang up) key when the call rings or lasts too
long. Every call is time-bound and its process is always ended.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

from .. import ANSWERED, BUSY, FAILED, NO_ANSWER, PERMANENT, SENT, TEMPORARY, Outcome
from ...media import kill_group, require

MODULES = ("stdio.so", "g711.so", "aufile.so", "aubridge.so")
_CLOSED = re.compile(r"session closed: (?P<reason>.*)$")
_TERMINATED = re.compile(r"terminated \(duration: (?P<seconds>\d+) secs?\)")
_STATUS = re.compile(r"^(?P<code>[1-6]\d\d)\b\s*(?P<text>.*)$")


@dataclass
class CallLog:
    """What happened on one call, from the user agent's console."""

    started_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    rang: bool = False
    reason: str = ""              # "486 Busy Here", "Connection refused", our own timeouts
    lines: list[str] = field(default_factory=list)


@dataclass
class SipSettings:
    from_uri: str
    address: str = "127.0.0.1"
    proxy: str = ""
    ring_timeout: float = 30
    max_call_seconds: float = 300

    @classmethod
    def from_config(cls, section: dict) -> "SipSettings":
        return cls(section["sip_from"], section["sip_address"], section["sip_proxy"],
                   section["ring_timeout"], section["max_call_seconds"])


def write_config(directory: Path, settings: SipSettings, wav: Path) -> None:
    """A private baresip configuration: play ``wav``, listen on a free port of our address."""
    directory.mkdir(parents=True, exist_ok=True)
    modules = "\n".join(f"module\t\t\t{name}" for name in MODULES)
    (directory / "config").write_text(
        "poll_method\t\tpoll\n"
        f"sip_listen\t\t{settings.address}:0\n"
        f"net_interface\t\t{settings.address}\n"
        "call_max_calls\t\t1\n"
        f"audio_source\t\taufile,{wav}\n"
        "audio_player\t\taubridge,ums\n"
        "audio_alert\t\taubridge,ums\n"
        "module_path\t\t/usr/lib/baresip/modules\n"
        f"{modules}\n"
        "module_app\t\taccount.so\n"
        "module_app\t\tmenu.so\n"
    )
    account = f"<{settings.from_uri}>;regint=0;audio_codecs=PCMU,PCMA"
    if settings.proxy:
        account += f';outbound="{settings.proxy}"'
    (directory / "accounts").write_text(account + "\n")


async def place_call(uri: str, wav: Path, settings: SipSettings, workdir: Path,
                     clock: Callable[[], datetime]) -> CallLog:
    """Dial ``uri``, play ``wav`` once answered, and report how the call went."""
    write_config(workdir, settings, wav)
    baresip = require("baresip", "baresip-core")
    process = await asyncio.create_subprocess_exec(
        baresip, "-f", str(workdir), "-e", f"/dial {uri}",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    call = CallLog(started_at=clock())
    try:
        await _watch(process, call, settings, clock)
    finally:
        await _end(process)
    call.ended_at = call.ended_at or clock()
    return call


async def _watch(process, call: CallLog, settings: SipSettings, clock) -> None:
    loop = asyncio.get_running_loop()
    ring_deadline = loop.time() + settings.ring_timeout
    talk_deadline = None
    hung_up = False
    async for line in _lines(process.stdout):
        call.lines.append(line)
        if "SIP Progress: 18" in line:
            call.rang = True
        elif "Call established" in line and not call.answered_at:
            call.answered_at = clock()
            talk_deadline = loop.time() + settings.max_call_seconds
        elif match := _CLOSED.search(line):
            call.reason = call.reason or match["reason"].strip()
            call.ended_at = clock()
            return
        elif _TERMINATED.search(line):
            call.ended_at = clock()
            return
        elif "baresip init failed" in line or "ua: stop all (forced=1)" in line:
            call.reason = call.reason or line.strip()
            return
        deadline = talk_deadline if call.answered_at else ring_deadline
        if not hung_up and loop.time() > deadline:
            call.reason = "max call time" if call.answered_at else "no answer (ring timeout)"
            _hang_up(process)
            hung_up = True
        if hung_up and loop.time() > deadline + 5:
            return
    call.reason = call.reason or "user agent exited"


async def _lines(stream, tick: float = 0.25):
    """Console lines (split on \\n and \\r); an empty string every ``tick`` seconds of silence."""
    pending = ""
    while True:
        try:
            chunk = await asyncio.wait_for(stream.read(4096), tick)
        except asyncio.TimeoutError:
            yield ""
            continue
        if not chunk:
            if pending:
                yield pending
            return
        pending += chunk.decode("utf-8", "replace")
        *complete, pending = re.split(r"[\r\n]", pending)
        for line in complete:
            yield line
        if not complete:
            yield ""


def _hang_up(process) -> None:
    try:
        process.stdin.write(b"b")
    except (BrokenPipeError, ConnectionResetError, RuntimeError):
        pass


async def _end(process) -> None:
    if process.returncode is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            await asyncio.wait_for(process.wait(), 3)
        except asyncio.TimeoutError:
            kill_group(process.pid)
            await process.wait()


def outcome(call: CallLog, uri: str) -> Outcome:
    """Map the call to a CDR outcome: answered, busy, no answer or failed."""
    common = dict(started_at=call.started_at, ended_at=call.ended_at, dstchannel=uri,
                  answered_at=call.answered_at)
    if call.answered_at:
        billsec = max(0, round((call.ended_at - call.answered_at).total_seconds()))
        return Outcome(SENT, "200", call.reason or "answered", disposition=ANSWERED, billsec=billsec, **common)
    match = _STATUS.match(call.reason)
    if not match:
        if call.reason.startswith("no answer"):
            return Outcome(TEMPORARY, "NOANSWER", call.reason, disposition=NO_ANSWER, **common)
        return Outcome(TEMPORARY, "connect", call.reason, disposition=FAILED, **common)
    code = int(match["code"])
    if code in (486, 600):
        return Outcome(TEMPORARY, str(code), call.reason, disposition=BUSY, **common)
    if code in (408, 480, 487):
        return Outcome(TEMPORARY, str(code), call.reason, disposition=NO_ANSWER, **common)
    if 500 <= code < 600:
        return Outcome(TEMPORARY, str(code), call.reason, disposition=FAILED, **common)
    return Outcome(PERMANENT, str(code), call.reason, disposition=FAILED, **common)
