"""User administration (admins only): users and roles, and which mailboxes
each user reads (one owner a mailbox; a user may have several)."""

from __future__ import annotations

import asyncio
from urllib.parse import quote_plus

from sqlalchemy.exc import IntegrityError

from ums.errors import UmsError
from ums.security import hash_password
from ums.store import mailbox as mailbox_store
from ums.store import users, web
from ums.web import HttpError, Router

from ..http import Page, redirect
from ..roles import ADMINS, ALL_ROLES

router = Router(roles=ALL_ROLES)


@router.get("/admin/users", roles=ADMINS)
async def user_list(page: Page):
    async with page.app.db.connect() as conn:
        people = await web.all_users(conn)
        boxes = await mailbox_store.with_owners(conn)
    owned: dict[int, list[str]] = {}
    for box in boxes:
        if box["owner_id"] is not None:
            owned.setdefault(box["owner_id"], []).append(box["address"])
    return page.app.render(page, "users.html", people=people, roles=ALL_ROLES, mailboxes=boxes, owned=owned,
                           domains=local_domains(page), flash=page.query.get("flash"))


@router.post("/admin/users", roles=ADMINS)
async def add_user(page: Page):
    form = page.form
    username, password, role = form.get("username", "").strip(), form.get("password", ""), form.get("role", "")
    try:  # the same rules as `ums user add`
        users.check_name(username)
        users.check_password(password)
        users.check_role(role)
    except UmsError as exc:
        raise HttpError(400, str(exc)) from None
    hashed = await asyncio.to_thread(hash_password, password)
    try:
        async with page.app.db.begin() as conn:
            await users.create(conn, username, hashed, role, display_name=form.get("display_name") or None,
                               email=form.get("email") or None)
    except IntegrityError:
        raise HttpError(409, f"the user name {username!r} is taken") from None
    return redirect("/admin/users?flash=User+" + username + "+added")


def local_domains(page: Page) -> list[str]:
    return list(page.app.ctx.config.get("mas", "local_domains") or [])


@router.post("/admin/mailboxes", roles=ADMINS)
async def assign_mailbox(page: Page):
    """Give a mailbox (made if new) to a user: the same rules as `ums mailbox assign`."""
    form = page.form
    try:
        address = mailbox_store.assignable_address(form.get("address", ""), local_domains(page))
        async with page.app.db.begin() as conn:
            owner = await users.existing(conn, form.get("username", "").strip())
            await mailbox_store.assign(conn, address, owner["id"], page.app.now())
    except UmsError as exc:
        raise HttpError(400, str(exc)) from None
    return redirect("/admin/users?flash=" + quote_plus(f"{address} now belongs to {owner['username']}"))


@router.post("/admin/mailboxes/unassign", roles=ADMINS)
async def unassign_mailbox(page: Page):
    try:
        async with page.app.db.begin() as conn:
            box = await mailbox_store.unassign(conn, page.form.get("address", ""))
    except UmsError as exc:
        raise HttpError(400, str(exc)) from None
    return redirect("/admin/users?flash=" + quote_plus(f"{box['address']} belongs to nobody now"))
