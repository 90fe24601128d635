"""`ums billing report`."""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal

import click
from rich.console import Console
from rich.table import Table

from .. import billing as ums_billing
from .common import in_transaction as _in_transaction
from .common import json_option, pass_obj, run_async, write_json


@click.group()
def billing():
    """Billing from the CDR and the [billing] rate table."""


@billing.command()
@click.option("--period", required=True, help="Month, YYYY-MM (in [ums] timezone).")
@click.option("--by", type=click.Choice(["campaign", "channel", "account"]), default="campaign", show_default=True)
@json_option('{"period", "by", "currency", "lines": [{"key", "attempts", "delivered", "pages", "minutes", '
             '"cost"}], "total": {the same, summed}} (cost a decimal string, e.g. "12.50")', shape="one object")
@pass_obj
def report(obj, period, by, as_json):
    """Attempts, delivered messages, pages, minutes and cost per campaign, channel or account."""
    tz = obj.config.get("ums", "timezone")
    lines = run_async(_in_transaction(obj, lambda conn: ums_billing.report(conn, period, by, tz)))
    currency = obj.config.get("billing", "currency")
    total = _total(lines)
    if as_json:
        write_json(obj, {"period": period, "by": by, "currency": currency,
                         "lines": [_as_json(line) for line in lines], "total": _as_json(total)})
        return
    table = Table(box=None, header_style="bold")
    for column in (by, "attempts", "delivered", "pages", "minutes", f"cost ({currency})"):
        table.add_column(column, justify="left" if column == by else "right")
    for line in [*lines, total]:
        table.add_row(line.key, str(line.attempts), str(line.delivered), str(line.pages), str(line.minutes),
                      f"{line.cost:.2f}")
    Console(width=140).print(table)


def _total(lines: list[ums_billing.Line]) -> ums_billing.Line:
    return ums_billing.Line("TOTAL", sum(l.attempts for l in lines), sum(l.delivered for l in lines),
                            sum(l.pages for l in lines), sum(l.minutes for l in lines),
                            sum((l.cost for l in lines), Decimal(0)))


def _as_json(line: ums_billing.Line) -> dict:
    return {**asdict(line), "cost": f"{line.cost:.2f}"}


COMMANDS = [billing]
