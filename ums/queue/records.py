"""CDR rows: the only code that builds and writes them.

One row per finished attempt of a delivery (:func:`attempt_row`), written in
the same transaction as the delivery's state change; the attempt that ends
a delivery is marked ``final``. A delivery ended without being tried
(suppressed, expired, cancelled) gets a row too, from :func:`policy_outcome`;
a campaign's cancelled backlog gets its rows in one INSERT … SELECT
(:func:`insert_cancelled`). An answered inbound call that is no delivery's
attempt (the free refusal line) gets one too (:func:`inbound_call_row`). Costs come from the ``[billing]`` rate table
(:class:`Rates`, read by :func:`ums.cdr.rate_table`), charged for delivered
attempts (ANSWERED) only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import String, cast, func, literal, select
from sqlalchemy import insert as sql_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from ..channels import ANSWERED, FAILED, Outcome
from ..db.models import campaigns, cdr, deliveries
from . import bulk

LASTAPP = {"email": "SMTP", "fax": "FAX", "voice": "DIAL"}


@dataclass(frozen=True)
class Rates:
    """The ``[billing]`` rate table for one medium."""

    per_message: Decimal = Decimal(0)
    per_page: Decimal = Decimal(0)
    per_minute: Decimal = Decimal(0)

    def cost(self, disposition: str, pages: int | None, billsec: int) -> Decimal:
        if disposition != ANSWERED:
            return Decimal(0)
        minutes = math.ceil(billsec / 60) if billsec else 0
        return self.per_message + self.per_page * (pages or 0) + self.per_minute * minutes


def attempt_row(delivery: dict, outcome: Outcome, attempt: int, final: bool, rates: dict[str, Rates],
                now: datetime, account: str = "", source: str = "", sender: str = "") -> dict:
    """The ``cdr`` table row for one finished attempt of ``delivery``."""
    medium = delivery["channel"]
    started = outcome.started_at or now
    ended = outcome.ended_at or now
    pages = outcome.pages
    return {
        "delivery_id": delivery["id"], "attempt": attempt, "final": final,
        "accountcode": account[:64], "src": sender[:320], "dst": delivery["recipient"],
        "dcontext": delivery.get("kind", ""), "clid": sender[:320],
        "channel": f"{medium}/{outcome.dstchannel or medium}"[:128], "dstchannel": (outcome.dstchannel or "")[:128],
        "lastapp": LASTAPP.get(medium, medium.upper()), "lastdata": (outcome.detail or "")[:255],
        "start": started, "answer": outcome.answered_at or (started if outcome.disposition == ANSWERED else None),
        "end": ended, "duration": max(0, round((ended - started).total_seconds())), "billsec": outcome.billsec,
        "disposition": outcome.disposition, "amaflags": "BILLING",
        "uniqueid": f"{delivery['id']}.{attempt}", "userfield": (delivery.get("message_id") or "")[:255],
        "source": source[:160], "medium": medium, "pages": pages, "bytes": outcome.bytes,
        "status_code": (outcome.code or "")[:16],
        "cost": rates.get(medium, Rates()).cost(outcome.disposition, pages, outcome.billsec),
    }


def inbound_call_row(call_id: str, caller: str, line: str, answered: datetime, ended: datetime,
                     source: str, channel: str, dstchannel: str, lastapp: str, lastdata: str) -> dict:
    """The ``cdr`` row of an answered inbound call that belongs to no delivery
    (the free refusal line): ``src`` is the caller, ``dst`` the line, no
    delivery id, attempt 1 and final, ANSWERED, cost 0 (the line is free to
    the caller, and what the carrier charges the line is not a send)."""
    seconds = max(0, round((ended - answered).total_seconds()))
    return {
        "delivery_id": None, "attempt": 1, "final": True, "accountcode": "", "src": caller[:320],
        "dst": line[:320], "dcontext": source[:64], "clid": caller[:320], "channel": channel[:128],
        "dstchannel": dstchannel[:128], "lastapp": lastapp[:64], "lastdata": lastdata[:255],
        "start": answered, "answer": answered, "end": ended, "duration": seconds, "billsec": seconds,
        "disposition": ANSWERED, "amaflags": "BILLING", "uniqueid": f"in.{call_id}"[:64], "userfield": "",
        "source": source[:160], "medium": "voice", "pages": None, "bytes": None, "status_code": "200",
        "cost": Decimal(0),
    }


async def insert_inbound_call(conn: AsyncConnection, row: dict) -> int:
    """Insert the row of an inbound call (:func:`inbound_call_row`); returns its id."""
    result = await conn.execute(sql_insert(cdr).values(**row))
    return result.inserted_primary_key[0]


def policy_outcome(code: str, detail: str, now: datetime) -> Outcome:
    """The outcome recorded when PASS ends a delivery without trying it
    (suppressed, expired, cancelled)."""
    return Outcome(status="permanent", code=code, detail=detail, disposition=FAILED, started_at=now, ended_at=now)


def insert(conn: Connection, rows: list[dict]) -> None:
    """Write CDR rows built by :func:`attempt_row` (one statement per chunk)."""
    bulk.insert_rows(conn, cdr, rows)


async def insert_cancelled(conn: AsyncConnection, campaign_id: int, now: datetime, waiting) -> None:
    """The final CDR row of every delivery of a cancelled campaign that
    ``waiting`` (a WHERE clause on ``deliveries``) selects, in one INSERT … SELECT."""
    name = select(campaigns.c.name).where(campaigns.c.id == campaign_id).scalar_subquery()
    account = select(func.coalesce(campaigns.c.created_by, "")).where(campaigns.c.id == campaign_id).scalar_subquery()
    when = literal(now, type_=cdr.c.start.type)
    source = select(
        deliveries.c.id, deliveries.c.attempts + 1, literal(True), account, deliveries.c.recipient,
        deliveries.c.kind, deliveries.c.channel, literal("CANCEL"), literal("campaign cancelled"),
        when, when, literal(0), literal(0), literal(FAILED), literal("BILLING"),
        cast(deliveries.c.id, String) + literal(".") + cast(deliveries.c.attempts + 1, String),
        deliveries.c.message_id, name, deliveries.c.channel, literal("cancelled"), literal(0),
    ).where(*waiting)
    columns = [
        "delivery_id", "attempt", "final", "accountcode", "dst", "dcontext", "channel", "lastapp", "lastdata",
        "start", "end", "duration", "billsec", "disposition", "amaflags", "uniqueid", "userfield",
        "source", "medium", "status_code", "cost",
    ]
    await conn.execute(sql_insert(cdr).from_select(columns, source))
