"""Normalising channel addresses, so suppression and matching compare like with like."""

from __future__ import annotations

import re

CHANNELS = ("email", "fax", "voice")
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


def normalize(channel: str, address: str) -> str:
    """Lower-case email addresses; keep only digits (and a leading +) of numbers."""
    address = address.strip()
    if channel == "email":
        return address.lower()
    digits = re.sub(r"[^\d+]", "", address)
    return digits[:1] + digits[1:].replace("+", "")


def is_valid(channel: str, address: str) -> bool:
    if channel == "email":
        return bool(_EMAIL.match(address.strip()))
    return len(re.sub(r"\D", "", address)) >= 3
