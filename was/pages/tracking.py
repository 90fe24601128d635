"""The public ends of engagement tracking (:mod:`ums.tracking`): the open
pixel and the signed click redirects that tracked campaign messages carry
(and a tracked journey's emails, whose links name campaign 0).

No login (a recipient's mail client fetches them), but through the same
guarded edge as every page. A link whose signature does not cover exactly
its campaign, delivery and URL — changed, truncated, guessed — is a 404
with the reason, never a redirect: WAS sends people only to links it
signed into that campaign's own messages. Each open and each link is
counted once per recipient, however often it is fetched.
"""

from __future__ import annotations

from ums import tracking
from ums.web import HttpError, Router

from ..http import Page, Response, path_id
from ..roles import ALL_ROLES

router = Router(roles=ALL_ROLES)


def _ids(page: Page) -> tuple[int, int]:
    text = page.params["campaign"]
    campaign_id = tracking.JOURNEY_MESSAGES if text == "0" else path_id(text)
    delivery_id = path_id(page.params["delivery"])
    if campaign_id is None or delivery_id is None:
        raise HttpError(404, "not a tracking link of this site")
    return campaign_id, delivery_id


@router.get("/t/o/{campaign}/{delivery}/{signature}", roles=None)
async def open_pixel(page: Page):
    campaign_id, delivery_id = _ids(page)
    signature = page.params["signature"].removesuffix(".gif")
    try:
        async with page.app.db.begin() as conn:
            await tracking.count_open(conn, campaign_id, delivery_id, signature, page.app.now())
    except tracking.BadTrackingLink as exc:
        raise HttpError(404, str(exc)) from None
    return Response(tracking.PIXEL, 200, tracking.PIXEL_TYPE, headers={"cache-control": "no-store, private"})


@router.get("/t/c/{campaign}/{delivery}/{signature}", roles=None)
async def click(page: Page):
    campaign_id, delivery_id = _ids(page)
    try:
        async with page.app.db.begin() as conn:
            target = await tracking.follow_click(conn, campaign_id, delivery_id, page.params["signature"],
                                                 page.query.get("u", ""), page.app.now())
    except tracking.BadTrackingLink as exc:
        raise HttpError(404, str(exc)) from None
    return Response(b"", 302, headers={"location": target, "referrer-policy": "no-referrer",
                                       "cache-control": "no-store, private"})
