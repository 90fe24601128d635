"""Text to speech for voice notices: espeak-ng speaks, sox converts the result
to telephony audio (8 kHz, mono, 16-bit WAV) that SIP user agents and
Asterisk play as they are.
"""

from __future__ import annotations

import re
import wave
from dataclasses import dataclass
from pathlib import Path

from ...media import require, run_tool

RATE = 8000
_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")


@dataclass
class Audio:
    path: Path
    seconds: float


def language_of(text: str, setting: str = "auto") -> str:
    """espeak-ng voice: the configured one, or Korean when the text has Hangul."""
    if setting != "auto":
        return setting
    return "ko" if _HANGUL.search(text) else "en"


async def synthesize(text: str, wav: Path, language: str = "auto", speed: int = 150,
                     timeout: float = 60) -> Audio:
    """Speak ``text`` into ``wav`` as 8 kHz mono 16-bit PCM; returns its length."""
    wav.parent.mkdir(parents=True, exist_ok=True)
    script = wav.with_suffix(".txt")
    script.write_text(text, encoding="utf-8")
    spoken = wav.with_suffix(".tts.wav")
    espeak = require("espeak-ng", "espeak-ng")
    await run_tool([espeak, "-v", language_of(text, language), "-s", str(speed), "-b", "1",
                    "-f", str(script), "-w", str(spoken)], timeout)
    await to_telephony(spoken, wav, timeout)
    spoken.unlink(missing_ok=True)
    script.unlink(missing_ok=True)
    return Audio(wav, duration(wav))


async def to_telephony(source: Path, target: Path, timeout: float = 60) -> None:
    """Any audio sox reads → 8 kHz mono signed 16-bit WAV."""
    sox = require("sox", "sox")
    await run_tool([sox, str(source), "-r", str(RATE), "-c", "1", "-b", "16", "-e", "signed-integer",
                    str(target)], timeout)


def duration(wav: Path) -> float:
    with wave.open(str(wav)) as audio:
        return audio.getnframes() / audio.getframerate()
