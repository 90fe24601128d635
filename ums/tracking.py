"""Engagement tracking: an open pixel and signed click redirects, opt-in per
campaign (``campaigns.tracking``, off by default and for transactional
campaigns unless asked for).

When a campaign tracks, the email channel renders each message through a
:class:`Tracker` (the same rendering the preview shows, see
:meth:`ums.templates.EmailSkeleton.render`): every ``http(s)`` link of the
template's own body becomes ``/t/c/<campaign>/<delivery>/<signature>?u=<url>``
and the HTML body ends with a 1×1 image ``/t/o/<campaign>/<delivery>/<signature>.gif``.
The sender block and the refusal link are never rewritten: a refusal must
stay free and direct.

The signature is an HMAC-SHA256 (128 bits kept) over campaign, delivery and
link, keyed with a site secret kept in the database (every PASS and WAS
process reads the same one). So WAS redirects only to a link it signed for
that delivery of that campaign — a changed URL, delivery or campaign is
refused (:class:`BadTrackingLink`, a 404), never an open redirect — and
each open or click is counted once per recipient and link
(:mod:`ums.store.tracking`), however often it is fetched.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from .errors import UmsError
from .security import new_secret
from .store import deliveries as delivery_store
from .store import tracking as store

KEY_NAME = "tracking-hmac"
#: a transparent 1×1 GIF
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
PIXEL_TYPE = "image/gif"
_SIGNATURE = re.compile(r"[0-9a-f]{32}")
_HTML_LINK = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"'<>]+)\2""", re.IGNORECASE)
_TEXT_LINK = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")


class BadTrackingLink(UmsError):
    """Not a tracking link of this site: {reason}."""


def link_digest(url: str) -> str:
    """How a link is told apart in the counts (an open has none: "")."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]


def signature(key: str, campaign_id: int, delivery_id: int, link: str) -> str:
    message = f"{campaign_id}/{delivery_id}/{link}".encode("utf-8")
    return hmac.new(key.encode("ascii"), message, hashlib.sha256).hexdigest()[:32]


def verify(key: str, campaign_id: int, delivery_id: int, link: str, given: str) -> bool:
    return bool(_SIGNATURE.fullmatch(given or "")) and hmac.compare_digest(
        signature(key, campaign_id, delivery_id, link), given)


@dataclass(frozen=True)
class Tracker:
    """Rewrites one delivery's body: links through signed redirects, an open pixel in HTML."""

    base_url: str
    key: str
    campaign_id: int
    delivery_id: int
    #: links under this prefix (the refusal page) stay as they are
    keep_prefix: str = ""

    @classmethod
    def of(cls, base_url: str, key: str, campaign_id: int, delivery_id: int) -> "Tracker":
        """The tracker of one delivery, its links under the site's ``base_url``."""
        base = base_url.rstrip("/")
        return cls(base, key, campaign_id, delivery_id, keep_prefix=f"{base}/unsubscribe/")

    def pixel_url(self) -> str:
        sig = signature(self.key, self.campaign_id, self.delivery_id, "")
        return f"{self.base_url}/t/o/{self.campaign_id}/{self.delivery_id}/{sig}.gif"

    def click_url(self, url: str) -> str:
        sig = signature(self.key, self.campaign_id, self.delivery_id, url)
        return f"{self.base_url}/t/c/{self.campaign_id}/{self.delivery_id}/{sig}?u={quote(url, safe='')}"

    def _tracked(self, url: str) -> str:
        if self.keep_prefix and url.startswith(self.keep_prefix):
            return url
        return self.click_url(url)

    def html(self, body: str) -> str:
        def link(match: re.Match) -> str:
            url = html.unescape(match.group(3))
            return f"{match.group(1)}{match.group(2)}{html.escape(self._tracked(url))}{match.group(2)}"

        pixel = f'<img src="{html.escape(self.pixel_url())}" width="1" height="1" alt="">'
        return _HTML_LINK.sub(link, body) + pixel

    def text(self, body: str) -> str:
        return _TEXT_LINK.sub(lambda match: self._tracked(match.group(0)), body)


#: the campaign number in the links of a tracked journey's email (it belongs to no campaign)
JOURNEY_MESSAGES = 0
#: the delivery variable that marks a tracked journey's email (set by ums.journeys.engine)
JOURNEY_VARIABLE = "journey_tracking"


async def site_key(conn, now: datetime) -> str:
    """The HMAC key of tracking links (made the first time it is needed)."""
    return await store.secret(conn, KEY_NAME, lambda: new_secret(32), now)


async def tracker_for(conn, base_url: str, campaign_id: int, delivery_id: int, now: datetime) -> Tracker:
    return Tracker.of(base_url, await site_key(conn, now), campaign_id, delivery_id)


async def _delivery_of(conn, campaign_id: int, delivery_id: int) -> dict:
    """The delivery a link names, when it belongs to that campaign (or is its test send)."""
    delivery = await delivery_store.get(conn, delivery_id)
    if delivery is None:
        raise BadTrackingLink(reason="no such message")
    variables = delivery.get("variables") or {}
    owner = delivery["campaign_id"] or variables.get("campaign_test")
    if owner is None and variables.get(JOURNEY_VARIABLE):
        owner = JOURNEY_MESSAGES
    if owner != campaign_id:
        raise BadTrackingLink(reason="the message is not of that campaign")
    return delivery


async def count_open(conn, campaign_id: int, delivery_id: int, sig: str, now: datetime) -> bool:
    """Count the pixel of a delivery once; raises :class:`BadTrackingLink` for a
    signature that is not ours. True when this was the first open."""
    if not verify(await site_key(conn, now), campaign_id, delivery_id, "", sig):
        raise BadTrackingLink(reason="bad signature")
    delivery = await _delivery_of(conn, campaign_id, delivery_id)
    return await store.record(conn, campaign_id or None, delivery_id, delivery.get("contact_id"), store.OPEN, "", None,
                              now)


async def follow_click(conn, campaign_id: int, delivery_id: int, sig: str, url: str, now: datetime) -> str:
    """The URL a signed redirect goes to, its first click counted (a click also
    counts as an open: the message was read). Raises :class:`BadTrackingLink`
    when the signature does not cover exactly this campaign, delivery and URL."""
    if not url or not verify(await site_key(conn, now), campaign_id, delivery_id, url, sig):
        raise BadTrackingLink(reason="bad signature")
    if not url.lower().startswith(("http://", "https://")):
        raise BadTrackingLink(reason="not a web link")
    delivery = await _delivery_of(conn, campaign_id, delivery_id)
    contact = delivery.get("contact_id")
    await store.record(conn, campaign_id or None, delivery_id, contact, store.CLICK, link_digest(url), url, now)
    await store.record(conn, campaign_id or None, delivery_id, contact, store.OPEN, "", None, now)
    return url
