"""`ums billing report`."""

from __future__ import annotations

from decimal import Decimal

import click
from rich.console import Console
from rich.table import Table

from .. import billing as ums_billing
from .campaign import _in_transaction
from .common import pass_obj, run_async


@click.group()
def billing():
    """Billing from the CDR and the [billing] rate table."""


@billing.command()
@click.option("--period", required=True, help="Month, YYYY-MM (in [ums] timezone).")
@click.option("--by", type=click.Choice(["campaign", "channel", "account"]), default="campaign", show_default=True)
@pass_obj
def report(obj, period, by):
    """Attempts, delivered messages, pages, minutes and cost per campaign, channel or account."""
    tz = obj.config.get("ums", "timezone")
    lines = run_async(_in_transaction(obj, lambda conn: ums_billing.report(conn, period, by, tz)))
    currency = obj.config.get("billing", "currency")
    table = Table(box=None, header_style="bold")
    for column in (by, "attempts", "delivered", "pages", "minutes", f"cost ({currency})"):
        table.add_column(column, justify="left" if column == by else "right")
    for line in lines:
        table.add_row(line.key, str(line.attempts), str(line.delivered), str(line.pages), str(line.minutes),
                      f"{line.cost:.2f}")
    total = sum((line.cost for line in lines), Decimal(0))
    table.add_row("TOTAL", str(sum(l.attempts for l in lines)), str(sum(l.delivered for l in lines)),
                  str(sum(l.pages for l in lines)), str(sum(l.minutes for l in lines)), f"{total:.2f}")
    Console(width=140).print(table)


COMMANDS = [billing]
