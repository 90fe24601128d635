"""Password hashing (scrypt, a memory-hard KDF from the standard library) and
random secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

_N, _R, _P = 2**14, 8, 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(
        password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32
    )
    return hmac.compare_digest(candidate, base64.b64decode(digest))


def new_secret(nbytes: int = 18) -> str:
    return secrets.token_urlsafe(nbytes)


def time_ordered_key(nbytes: int = 12) -> str:
    """12 hex digits of the time in milliseconds, then ``nbytes`` random bytes in
    hex: unique and unguessable, but keys made together sort together, so a
    unique index takes them at its end instead of all over it (cheap inserts
    however large the table grows)."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(nbytes)}"
