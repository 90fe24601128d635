"""Unsubscribing: the RFC 8058 one-click endpoint and the page people open.

``POST /unsubscribe/<token>`` with the body ``List-Unsubscribe=One-Click``
(what mail clients send) suppresses the delivery's recipient at once. A GET
only shows a page with a confirm button: link scanners and previews fetch
URLs, so a GET alone never unsubscribes anyone.
"""

from __future__ import annotations

from ums import refusal
from ums.web import Router

from ..http import Page, Response
from ..roles import ALL_ROLES

router = Router(roles=ALL_ROLES)


async def refuse(page: Page, source: str):
    async with page.app.db.begin() as conn:
        return await refusal.refuse_by_token(conn, page.params["token"], page.app.now(), source=source,
                                             detail=page.client)


@router.get("/unsubscribe/{token}", roles=None)
async def confirm_page(page: Page):
    return page.app.render(page, "unsubscribe.html", token=page.params["token"], done=False)


@router.post("/unsubscribe/{token}", roles=None, csrf=False)
async def unsubscribe(page: Page):
    one_click = page.form.get("List-Unsubscribe") == "One-Click"
    result = await refuse(page, "one-click" if one_click else "web")
    if one_click:
        if result is None:
            return Response("unknown unsubscribe link\n", 404, "text/plain; charset=utf-8")
        return Response("unsubscribed\n", 200, "text/plain; charset=utf-8")
    status = 404 if result is None else 200
    return page.app.render(page, "unsubscribe.html", status=status, token=page.params["token"], done=True,
                           unknown=result is None)
