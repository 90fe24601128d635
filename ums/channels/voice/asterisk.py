"""Asterisk call-file driver, for sites whose calls go through an Asterisk PBX.

A call file written into Asterisk's outgoing spool (atomically: written
beside it, then renamed in) makes Asterisk dial the channel and, once
answered, run ``Playback`` of the notice. With ``Archive: yes`` Asterisk moves
the finished file to ``outgoing_done`` and adds ``Status: Completed``,
``Expired`` or ``Failed`` — which is how the outcome is learned.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

from .. import ANSWERED, FAILED, NO_ANSWER, SENT, TEMPORARY, Outcome

_STATUS = re.compile(r"^Status:\s*(\w+)", re.M)


@dataclass
class AsteriskSpool:
    outgoing: Path
    done: Path
    channel: str                 # dial string with {number}
    caller_id: str
    ring_timeout: float = 30
    wait: float = 600
    poll: float = 0.5

    @classmethod
    def from_config(cls, section: dict) -> "AsteriskSpool":
        return cls(Path(section["asterisk_outgoing"]), Path(section["asterisk_done"]),
                   section["asterisk_channel"], section["asterisk_caller_id"],
                   section["ring_timeout"], section["asterisk_wait"])

    def call_file(self, number: str, audio: Path, delivery_id: int) -> str:
        # Playback takes the file name without its extension
        return (
            f"Channel: {self.channel.format(number=number)}\n"
            f"CallerID: {self.caller_id}\n"
            "MaxRetries: 0\n"
            f"WaitTime: {int(self.ring_timeout)}\n"
            "Application: Playback\n"
            f"Data: {audio.with_suffix('')}\n"
            f"Set: UMS_DELIVERY={delivery_id}\n"
            "Archive: yes\n"
        )

    def submit(self, name: str, text: str) -> None:
        self.outgoing.mkdir(parents=True, exist_ok=True)
        staging = self.outgoing.parent / f".{name}.tmp"
        staging.write_text(text)
        os.replace(staging, self.outgoing / name)

    async def call(self, number: str, audio: Path, audio_seconds: float, delivery_id: int, attempt: int,
                   clock: Callable[[], datetime]) -> Outcome:
        """Queue the call file and wait for Asterisk to archive it with a status."""
        name = f"ums-{delivery_id}-{attempt}.call"
        started = clock()
        self.submit(name, self.call_file(number, audio, delivery_id))
        status = await self._status(name)
        ended = clock()
        common = dict(started_at=started, ended_at=ended, dstchannel=self.channel.format(number=number))
        if status == "Completed":
            billsec = min(round(audio_seconds), max(0, round((ended - started).total_seconds())))
            return Outcome(SENT, "Completed", "played", disposition=ANSWERED, billsec=billsec,
                           answered_at=started, **common)
        if status == "Expired":
            return Outcome(TEMPORARY, "Expired", "no answer", disposition=NO_ANSWER, **common)
        if status is None:
            (self.outgoing / name).unlink(missing_ok=True)
            return Outcome(TEMPORARY, "timeout", f"no result from Asterisk within {self.wait:g}s",
                           disposition=FAILED, **common)
        return Outcome(TEMPORARY, status, "call failed", disposition=FAILED, **common)

    async def _status(self, name: str) -> str | None:
        archived = self.done / name
        deadline = asyncio.get_running_loop().time() + self.wait
        while asyncio.get_running_loop().time() < deadline:
            if archived.exists():
                match = _STATUS.search(archived.read_text(errors="replace"))
                if match:
                    return match[1]
            await asyncio.sleep(self.poll)
        return None
