"""`ums bounce parse FILE`: what MAS reads from a bounce, as JSON, with
nothing stored and no database needed (it works before `ums init`) — so an
operator can see why a bounce did or did not suppress an address. The reading
is :mod:`ums.bounces`, the same MAS uses."""

from __future__ import annotations

import email
import json
import sys
from email.policy import compat32

import click

from .. import bounces
from ..errors import UmsError
from .rules import read_text


class NotAMessage(UmsError):
    """{path} is not an email message: {reason}."""


class NotABounce(UmsError):
    """{path} is not a bounce: no delivery report and no failed recipient in it."""


@click.group()
def bounce():
    """Bounces (delivery status notifications) as UMS reads them."""


@bounce.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
def parse(file):
    """Print what MAS reads from the bounce in FILE (`-` for standard input):
    {"permanent": [...], "temporary": [...], "ignored": [...]}, each failed
    recipient with its address, status and the remote's reason. "ignored" is a
    block of our sending server (spam, reputation, DMARC), which suppresses
    nobody. Nothing is stored. Exits 1 for a file that is not a bounce."""
    raw = sys.stdin.buffer.read() if file == "-" else read_text(file, "message")
    name = "standard input" if file == "-" else file
    msg = _message(raw, name)
    found = bounces.read(msg)
    if not found.failures and not bounces.is_bounce(msg, msg.get("return-path")):
        raise NotABounce(path=name)
    click.echo(json.dumps(found.by_kind(), ensure_ascii=False, indent=2))


def _message(raw: bytes, name: str):
    if not raw.strip():
        raise NotAMessage(path=name, reason="it is empty")
    if b"\x00" in raw[:4096]:
        raise NotAMessage(path=name, reason="it is binary")
    try:
        msg = email.message_from_bytes(raw, policy=compat32)
    except RecursionError:
        raise NotAMessage(path=name, reason="its MIME parts nest too deeply") from None
    if not msg.keys():
        raise NotAMessage(path=name, reason="it has no header fields")
    return msg


COMMANDS = [bounce]
