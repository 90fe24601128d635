"""Real peers for the fax and voice channel tests, all on loopback: an SMTP
sink standing in for a T.37 gateway, a private HylaFAX server (hfaxd + faxq),
and baresip user agents that answer (and record) or reject calls.
Every peer is time-bound and stopped by its own process id."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from aiosmtpd.smtp import SMTP

from tests.helpers import free_port


# --- T.37 gateway ------------------------------------------------------------------

class FaxGatewaySink:
    """An aiosmtpd handler accepting FAX=+number@domain mail with one image/tiff part."""

    def __init__(self, domain: str, reject_code: str | None = None):
        self.domain = domain
        self.reject_code = reject_code
        self.received: list[tuple[str, email.message.EmailMessage]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.reject_code:
            return self.reject_code
        if not (address.startswith("FAX=+") and address.endswith("@" + self.domain)):
            return "550 5.1.1 not a fax mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        images = [part for part in message.iter_attachments() if part.get_content_type() == "image/tiff"]
        if len(images) != 1 or not images[0].get_content().startswith((b"II*\x00", b"MM\x00*")):
            return "554 5.6.1 no TIFF fax image"
        self.received.append((envelope.rcpt_tos[0], message))
        return "250 2.0.0 fax queued"


async def start_smtp_sink(handler) -> tuple[asyncio.AbstractServer, int]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="fax-gateway"), "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


# --- HylaFAX ---------------------------------------------------------------------------

class HylafaxPeer:
    """A private HylaFAX spool with faxq and hfaxd serving it on a loopback port.

    A modem named ttyUMS0 is announced to faxq (``faxmodem``) but has no
    device behind it: faxq prepares jobs (so ``faxstat`` shows their page
    counts) and they wait for the modem, as on a server whose modem is busy.
    """

    def __init__(self):
        self.spool = Path(tempfile.mkdtemp(prefix="ums-hylafax-"))
        self.port = free_port()
        self.processes: list[subprocess.Popen] = []

    def start(self) -> None:
        os.chmod(self.spool, 0o755)
        spool = self.spool / "spool"
        subprocess.run(["cp", "-a", "/var/spool/hylafax", str(spool)], check=True, timeout=30)
        subprocess.run(["cp", "-a", "/etc/hylafax/.", str(spool / "etc")], check=True, timeout=30)
        hosts = spool / "etc" / "hosts.hfaxd"
        hosts.write_text("127.0.0.1\n")
        shutil.chown(hosts, "uucp", "uucp")
        hosts.chmod(0o600)
        self.processes.append(self._spawn("faxq", "-q", str(spool), "-D"))
        self.processes.append(self._spawn("hfaxd", "-q", str(spool), "-i", str(self.port), "-l", "127.0.0.1", "-d"))
        self._wait_for_port()
        subprocess.run(["faxmodem", "-q", str(spool), "ttyUMS0"], check=True, timeout=10)

    @staticmethod
    def _spawn(*argv: str) -> subprocess.Popen:
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def _wait_for_port(self, timeout: float = 10) -> None:
        import socket
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"hfaxd did not listen on 127.0.0.1:{self.port}")

    def client(self, tool: str, *args: str) -> str:
        result = subprocess.run([tool, "-h", f"127.0.0.1:{self.port}", *args], capture_output=True, text=True,
                                timeout=20, env={**os.environ, "FAXUSER": "ums"})
        return result.stdout + result.stderr

    def stop(self) -> None:
        for process in self.processes:
            _stop(process)
        shutil.rmtree(self.spool, ignore_errors=True)


# --- SIP ---------------------------------------------------------------------------------

class SipPeer:
    """A baresip user agent on 127.0.0.1 that answers and records (``answer``),
    rejects with 486 (``reject``) or lets calls ring (``ring``)."""

    def __init__(self, mode: str = "answer"):
        self.mode = mode
        self.port = free_port()
        self.home = Path(tempfile.mkdtemp(prefix=f"ums-sip-{mode}-"))
        self.recordings = self.home / "recordings"
        self.recordings.mkdir()
        self.uri = f"sip:callee@127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.output = bytearray()
        self._reader: asyncio.Task | None = None

    def _write_config(self) -> None:
        answermode = "auto" if self.mode == "answer" else "manual"
        (self.home / "config").write_text(
            "poll_method\t\tpoll\n"
            f"sip_listen\t\t127.0.0.1:{self.port}\n"
            "net_interface\t\t127.0.0.1\n"
            "audio_source\t\taubridge,peer\naudio_player\t\taubridge,peer\naudio_alert\t\taubridge,peer\n"
            "module_path\t\t/usr/lib/baresip/modules\n"
            "module\t\t\tstdio.so\nmodule\t\t\tg711.so\nmodule\t\t\taubridge.so\nmodule\t\t\tsndfile.so\n"
            "module_app\t\taccount.so\nmodule_app\t\tmenu.so\n"
            f"snd_path\t\t{self.recordings}\n"
        )
        (self.home / "accounts").write_text(f"<{self.uri}>;regint=0;answermode={answermode};audio_codecs=PCMU,PCMA\n")

    async def start(self, tries: int = 3) -> None:
        """Start the user agent; a port taken meanwhile by someone else means another try."""
        for attempt in range(tries):
            self._write_config()
            self.output = bytearray()
            self.process = subprocess.Popen(["baresip", "-f", str(self.home)], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                            start_new_session=True)
            os.set_blocking(self.process.stdout.fileno(), False)
            self._reader = asyncio.ensure_future(self._read())
            try:
                await self.wait_for(b"baresip is ready", 10)
                return
            except AssertionError:
                _stop(self.process)
                if attempt == tries - 1:
                    raise
                self.port = free_port()
                self.uri = f"sip:callee@127.0.0.1:{self.port}"

    async def _read(self) -> None:
        while True:
            running = self.process.poll() is None
            try:
                chunk = os.read(self.process.stdout.fileno(), 65536)
            except BlockingIOError:
                chunk = b""
            if not chunk and not running:
                return
            if chunk:
                self.output += chunk
                if self.mode == "reject" and b"Incoming call" in chunk:
                    self.process.stdin.write(b"b")
                    self.process.stdin.flush()
            await asyncio.sleep(0.05)

    async def wait_for(self, text: bytes, timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while text not in self.output:
            if asyncio.get_running_loop().time() > deadline or self._reader.done():
                raise AssertionError(f"callee never printed {text!r}: {bytes(self.output[-800:])!r}")
            await asyncio.sleep(0.05)

    def received_audio(self) -> list[Path]:
        """WAV files of the audio the callee decoded from the caller."""
        return sorted(self.recordings.glob("*-dec.wav"))

    async def stop(self) -> None:
        if self._reader:
            self._reader.cancel()
        if self.process:
            _stop(self.process)
        shutil.rmtree(self.home, ignore_errors=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        except ProcessLookupError:
            pass
