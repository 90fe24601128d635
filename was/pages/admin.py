"""User administration (admins only)."""

from __future__ import annotations

import asyncio

from sqlalchemy.exc import IntegrityError

from ums.errors import UmsError
from ums.security import hash_password
from ums.store import users, web
from ums.web import HttpError, Router

from ..http import Page, redirect
from ..roles import ADMINS, ALL_ROLES

router = Router(roles=ALL_ROLES)


@router.get("/admin/users", roles=ADMINS)
async def user_list(page: Page):
    async with page.app.db.connect() as conn:
        people = await web.all_users(conn)
    return page.app.render(page, "users.html", people=people, roles=ALL_ROLES,
                           flash=page.query.get("flash"))


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
