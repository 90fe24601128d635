"""Priority lanes: every delivery has a class, and higher lanes go first.

``urgent`` (security codes, fraud and large-withdrawal alerts), ``notice``
(other transactional) and ``marketing``. The lane comes from the EPS service
(``lane="urgent"`` in its definition), the template, or the campaign; without
one it follows the kind: transactional → ``notice``, advertising and every
campaign → ``marketing``. PASS claims lanes in :data:`ORDER` and keeps
senders and claim room that marketing cannot take, so an alert never waits
behind a campaign's backlog.
"""

from __future__ import annotations

from enum import Enum

from ..errors import UmsError


class Lane(str, Enum):
    URGENT = "urgent"
    NOTICE = "notice"
    MARKETING = "marketing"


#: highest first: the order PASS claims and sends in
ORDER: tuple[str, ...] = tuple(lane.value for lane in Lane)
#: the lanes that never wait behind marketing (reserved senders and claims)
PRIORITY: tuple[str, ...] = (Lane.URGENT.value, Lane.NOTICE.value)


class BadLane(UmsError):
    """Unknown lane {lane!r}: use urgent, notice or marketing."""


def parse(value: str | None) -> str | None:
    """A lane named by a definition, template or request (None when absent)."""
    if value is None or value == "":
        return None
    if value not in ORDER:
        raise BadLane(lane=value)
    return value


def settled(asked: str | None, kind: str | None, campaign: bool = False) -> str:
    """The lane of a delivery: ``asked`` when given, else ``marketing`` for a
    campaign or advertising, ``notice`` for the rest."""
    if asked:
        return parse(asked)
    if campaign or kind == "advertising":
        return Lane.MARKETING.value
    return Lane.NOTICE.value


def rank(lane: str | None) -> int:
    """0 for urgent … 2 for marketing (an unknown lane sorts last)."""
    return ORDER.index(lane) if lane in ORDER else len(ORDER)


#: the rank of the lowest lane that never waits behind marketing: ranks up to it
#: are urgent or notice work
PRIORITY_RANK = rank(PRIORITY[-1])
