"""``ums alerts test``: check the ``[alerts]`` destinations from the command
line, as GitHub's "ping" does for a new webhook — one signed ``alert.test``
to each webhook and the operators' mail, sent now (no retry), with one line
per destination saying how it went."""

from __future__ import annotations

import click

from .. import alerts as ums_alerts
from ..errors import UmsError
from .common import json_option, pass_obj, run_async, write_json


class AlertNotDelivered(UmsError):
    """{count} of {total} alert destinations failed."""


@click.group()
def alerts():
    """Operator alerts ([alerts] in ums.cfg): send a test alert."""


@alerts.command("test")
@json_option(("destination", "ok", "error"))
@pass_obj
def test(obj, as_json):
    """Send one signed `alert.test` alert to every [alerts] destination now.

    Prints one line per destination ("sent" or why not) and exits 1 when one
    failed, or when none is configured."""
    results = run_async(ums_alerts.send_test(obj.config))
    if as_json:
        write_json(obj, [{"destination": name, "ok": error is None, "error": error} for name, error in results])
    else:
        for name, error in results:
            click.echo(f"{name}: {'sent' if error is None else 'failed: ' + error}")
    failed = sum(error is not None for _name, error in results)
    if failed:
        raise AlertNotDelivered(count=failed, total=len(results))


COMMANDS = [alerts]
