"""Message-IDs: one rule for every delivery, whatever made it.

The domain is ``[pass] message_id_domain`` when set, else the first of
``[mas] local_domains`` (the domain bounces and replies come back to), else
``ums.local``. A Message-ID is made once, when the delivery row is built,
and kept across retries and crashes so receivers can deduplicate.

The domain is set from the configuration when it loads (:func:`use_config`),
because deliveries are made from many places (EPS, WAS, the CLI, MAS
notifications, campaign expansion) that share a connection, not a config.
"""

from __future__ import annotations

from ..security import time_ordered_key

DEFAULT_DOMAIN = "ums.local"
_domain = DEFAULT_DOMAIN


def domain_of(config) -> str:
    """The Message-ID domain a configuration asks for."""
    local = config.get("mas", "local_domains")
    return config.get("pass", "message_id_domain") or (local[0] if local else DEFAULT_DOMAIN)


def use_config(config) -> None:
    """Make :func:`domain` answer ``config``'s rule from now on."""
    global _domain
    _domain = domain_of(config)


def domain() -> str:
    return _domain


def new(at: str | None = None) -> str:
    return f"<{time_ordered_key()}@{at or _domain}>"


def time_ordered_hex_sql(dialect: str, nbytes: int):
    """In SQL: 12 hex digits of the statement's time in milliseconds, then
    ``nbytes`` random bytes — :func:`ums.security.time_ordered_key` for rows
    made by INSERT … SELECT. Unique and unguessable like a random key, but a
    batch's keys land together at the end of their unique index instead of
    all over it, which keeps index inserts cheap however big the table."""
    from sqlalchemy import BigInteger, Text, cast, func  # not at import: every ``ums`` command loads this module

    if dialect == "postgresql":
        millis = cast(func.extract("epoch", func.now()) * 1000, BigInteger)
        prefix = func.lpad(func.to_hex(millis), 12, "0", type_=Text)
        random_part = func.substr(func.replace(cast(func.gen_random_uuid(), Text), "-", ""), 1, nbytes * 2)
    else:
        millis = cast((func.julianday("now") - 2440587.5) * 86400000, BigInteger)
        prefix = func.printf("%012x", millis, type_=Text)
        random_part = func.lower(func.hex(func.randomblob(nbytes)))
    return prefix + random_part


def new_sql(dialect: str, at: str | None = None):
    """:func:`new` in SQL, one per row of an INSERT … SELECT."""
    from sqlalchemy import literal

    return literal("<") + time_ordered_hex_sql(dialect, 12) + literal(f"@{at or _domain}>")
