"""A real baresip caller for the refusal line tests: it dials a URI from a
number of its own, sends its audio (a quiet tone, as a handset's microphone
would), presses keys by RFC 4733 telephone-event and records what it hears.
Time-bound and stopped by its own process id."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from tests.helpers import free_port


class SipCaller:
    def __init__(self, number: str):
        self.number = number
        self.port = free_port()
        self.home = Path(tempfile.mkdtemp(prefix="ums-caller-"))
        self.recordings = self.home / "recordings"
        self.recordings.mkdir()
        self.output = bytearray()

    def _write_config(self) -> None:
        tone = self.home / "mic.wav"
        subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(tone),
                        "synth", "60", "sine", "440", "vol", "0.05"], check=True, timeout=30)
        (self.home / "config").write_text(
            "poll_method\t\tpoll\n"
            f"sip_listen\t\t127.0.0.1:{self.port}\n"
            "net_interface\t\t127.0.0.1\n"
            f"audio_source\t\taufile,{tone}\naudio_player\t\taubridge,caller\naudio_alert\t\taubridge,caller\n"
            "module_path\t\t/usr/lib/baresip/modules\n"
            "module\t\t\tstdio.so\nmodule\t\t\tg711.so\nmodule\t\t\taufile.so\nmodule\t\t\taubridge.so\n"
            "module\t\t\tsndfile.so\nmodule_app\t\taccount.so\nmodule_app\t\tmenu.so\n"
            f"snd_path\t\t{self.recordings}\n"
        )
        (self.home / "accounts").write_text(
            f"<sip:{self.number}@127.0.0.1:{self.port}>;regint=0;audio_codecs=PCMU,PCMA\n")

    async def call(self, uri: str, key: str | None, after: float = 1.5, timeout: float = 40) -> float:
        """Dial ``uri``, press ``key`` ``after`` seconds into the call (None: never),
        and wait until the far end hangs up; returns the seconds the call lasted."""
        self._write_config()
        process = await asyncio.create_subprocess_exec(
            "baresip", "-f", str(self.home), "-e", f"/dial {uri}", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        loop = asyncio.get_running_loop()
        try:
            await self._wait(process, b"Call established", timeout)
            established = loop.time()
            if key is not None:
                await asyncio.sleep(after)
                process.stdin.write(key.encode())
                await process.stdin.drain()
            await self._wait(process, b"terminated (duration", timeout)
            return loop.time() - established
        finally:
            _stop(process)
            await process.wait()

    async def _wait(self, process, text: bytes, timeout: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while text not in self.output:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"caller never printed {text!r}: {bytes(self.output[-800:])!r}")
            try:
                chunk = await asyncio.wait_for(process.stdout.read(65536), min(remaining, 0.5))
            except asyncio.TimeoutError:
                continue
            if not chunk:
                raise AssertionError(f"caller exited before {text!r}: {bytes(self.output[-800:])!r}")
            self.output += chunk

    def heard(self) -> list[Path]:
        """WAV files of what the caller decoded from the line."""
        return sorted(self.recordings.glob("*-dec.wav"))

    def remove(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)


def _stop(process) -> None:
    if process.returncode is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
