"""All SQL lives in this package: one module per concept, each a set of small
async functions taking an open connection (``conn``) as first argument.

Callers choose the transaction (``async with db.begin() as conn``), so several
store calls can commit together — e.g. a delivery's final state and its CDR row.
The few statements PASS runs per message are plain functions of a sync
``Connection`` instead (see :mod:`ums.db.writer`); async code calls those
through ``AsyncConnection.run_sync``.
"""

from ..clock import as_utc, utcnow  # noqa: F401 (re-exported: store callers stamp and read rows with them)


def as_dicts(result) -> list[dict]:
    """The rows of ``result`` as plain dicts (a few times cheaper than ``dict(row._mapping)``)."""
    keys = list(result.keys())
    return [dict(zip(keys, row)) for row in result]


