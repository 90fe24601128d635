"""Unsubscribing and the preference centre: the page behind every unsubscribe link.

``POST /unsubscribe/<token>`` with the body ``List-Unsubscribe=One-Click``
(what mail clients send, RFC 8058) suppresses the delivery's recipient at
once, as before. ``GET`` shows the customer's preference centre (channels,
topics, refuse all advertising, a preferred channel — :mod:`ums.preferences`)
and changes nothing: link scanners and previews fetch URLs.

There is no login: the link's token (one delivery's secret, given only to its
recipient) proves who the customer is. A form POST must carry the hidden
``form_token`` the page handed out — an HMAC of the link's token with the site
key — so a POST made elsewhere, or with another message's token, changes
nothing (403).
"""

from __future__ import annotations

from ums import preferences, refusal
from ums.addresses import CHANNELS
from ums.store import bounces
from ums.web import HttpError, Router

from ..http import Page, Response
from ..roles import ALL_ROLES

router = Router(roles=ALL_ROLES)

#: how a channel is named on the page
CHANNEL_LABELS = {"email": "이메일 · Email", "fax": "팩스 · Fax", "voice": "음성 전화 · Voice call"}


def _topics(page: Page) -> list[str]:
    return page.app.ctx.config.get("preferences", "topics")


async def _show(page: Page, conn, delivery: dict, status: int = 200, **values) -> Response:
    contact = await preferences.contact_of(conn, delivery)
    now = page.app.now()
    return page.app.render(
        page, "unsubscribe.html", status=status, token=page.params["token"], done=False,
        form_token=await preferences.page_token(conn, page.params["token"], now),
        has_contact=contact is not None, current=await preferences.current(conn, contact) if contact else None,
        channels=[(channel, CHANNEL_LABELS[channel]) for channel in CHANNELS], topics=_topics(page), **values)


def _unknown(page: Page) -> Response:
    return page.app.render(page, "unsubscribe.html", status=404, token=page.params["token"], done=True,
                           unknown=True)


@router.get("/unsubscribe/{token}", roles=None)
async def preference_page(page: Page):
    # a transaction only so the site key is kept the first time it is made: nothing of the customer's changes
    async with page.app.db.begin() as conn:
        delivery = await bounces.delivery_by_token(conn, page.params["token"])
        if delivery is None:
            return _unknown(page)
        return await _show(page, conn, delivery)


@router.post("/unsubscribe/{token}", roles=None, csrf=False)
async def unsubscribe(page: Page):
    if page.form.get("List-Unsubscribe") == "One-Click":
        return await _one_click(page)
    token = page.params["token"]
    async with page.app.db.begin() as conn:
        delivery = await bounces.delivery_by_token(conn, token)
        if delivery is None:
            return _unknown(page)
        try:
            await preferences.check_form_token(conn, token, page.form.get("form_token"), page.app.now())
        except preferences.BadFormToken as exc:
            raise HttpError(403, str(exc)) from None
        contact = await preferences.contact_of(conn, delivery)
        if page.form.get("action") != "save" or contact is None:
            return await _refuse_only(page, conn, delivery, contact)
        choice = _choice(page)
        try:
            changes = await preferences.save(conn, delivery, contact, choice, _topics(page), page.app.now())
        except preferences.BadChoice as exc:
            return await _show(page, conn, delivery, status=400, error=str(exc))
        return await _show(page, conn, delivery, saved=True, changes=changes)


async def _one_click(page: Page) -> Response:
    async with page.app.db.begin() as conn:
        result = await refusal.refuse_by_token(conn, page.params["token"], page.app.now(), source="one-click",
                                               detail=page.client)
    if result is None:
        return Response("unknown unsubscribe link\n", 404, "text/plain; charset=utf-8")
    return Response("unsubscribed\n", 200, "text/plain; charset=utf-8")


async def _refuse_only(page: Page, conn, delivery: dict, contact: dict | None) -> Response:
    """The page's one-button unsubscribe: refuse all advertising, the rest kept."""
    if contact is None:
        await refusal.refuse_by_token(conn, page.params["token"], page.app.now(), source="web", detail=page.client)
    else:
        before = await preferences.current(conn, contact)
        wanted = preferences.Choice(before.channels_off, before.topics_off, before.preferred_channel, True)
        await preferences.save(conn, delivery, contact, wanted, _topics(page), page.app.now())
    return page.app.render(page, "unsubscribe.html", token=page.params["token"], done=True, unknown=False)


def _choice(page: Page) -> preferences.Choice:
    """The form as a choice: ticked boxes are what stays on."""
    channels_on, topics_on = set(page.form_list("channel")), set(page.form_list("topic"))
    return preferences.Choice(
        channels_off=frozenset(set(CHANNELS) - channels_on),
        topics_off=frozenset(set(_topics(page)) - topics_on),
        preferred_channel=page.form.get("preferred") or None,
        refuse_advertising=page.form.get("refuse_advertising") == "on",
    )
