"""Users of the web front end and CLI, and the rules for them (WAS's user page
and `ums user` follow the same ones): the roles, a name of 1 to 64 characters,
a password of at least :data:`MIN_PASSWORD` characters, and always one admin
left — no change may remove or demote the last one.

A new password ends the user's web sessions and forgets their failed logins,
so a reset admin can log in at once and nobody keeps a session opened with the
old password.
"""

from __future__ import annotations

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..db.models import address_books, users, web_login_failures, web_sessions
from ..errors import UmsError

#: The web roles (WAS reads them from here); admin reaches everything.
ROLES = ("admin", "operator", "marketer", "user")
MIN_PASSWORD = 10
MAX_NAME = 64


class BadUserName(UmsError):
    """A user name of 1 to {limit} characters is needed, not {name!r}."""


class WeakPassword(UmsError):
    """The password must have at least {minimum} characters."""


class UnknownRole(UmsError):
    """Unknown role {role!r}; choose from {choices}."""


class NoSuchUser(UmsError):
    """No user named {name!r}."""


class UserExists(UmsError):
    """The user name {name!r} is taken."""


class LastAdmin(UmsError):
    """{name!r} is the last admin; make another user admin first."""


class OwnsBooks(UmsError):
    """{name!r} owns {count} address book(s); remove with --with-books to delete them too."""


def check_name(username: str) -> str:
    if not username or len(username) > MAX_NAME or username != username.strip():
        raise BadUserName(name=username, limit=MAX_NAME)
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise WeakPassword(minimum=MIN_PASSWORD)
    return password


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UnknownRole(role=role, choices=", ".join(ROLES))
    return role


async def get_by_name(conn: AsyncConnection, username: str) -> dict | None:
    row = (await conn.execute(select(users).where(users.c.username == username))).first()
    return dict(row._mapping) if row else None


async def existing(conn: AsyncConnection, username: str) -> dict:
    """The user named ``username``, else :class:`NoSuchUser`."""
    user = await get_by_name(conn, username)
    if user is None:
        raise NoSuchUser(name=username)
    return user


async def create(
    conn: AsyncConnection, username: str, password_hash: str, role: str, **fields
) -> int:
    result = await conn.execute(
        insert(users).values(username=username, password_hash=password_hash, role=role, **fields)
    )
    return result.inserted_primary_key[0]


async def count_by_role(conn: AsyncConnection, role: str) -> int:
    return await conn.scalar(select(func.count()).select_from(users).where(users.c.role == role))


async def _keep_an_admin(conn: AsyncConnection, user: dict) -> None:
    if user["role"] == "admin" and await count_by_role(conn, "admin") <= 1:
        raise LastAdmin(name=user["username"])


async def set_password(conn: AsyncConnection, username: str, password_hash: str) -> None:
    user = await existing(conn, username)
    await conn.execute(update(users).where(users.c.id == user["id"]).values(password_hash=password_hash))
    await conn.execute(delete(web_sessions).where(web_sessions.c.user_id == user["id"]))
    await conn.execute(delete(web_login_failures).where(web_login_failures.c.username == username))


async def set_role(conn: AsyncConnection, username: str, role: str) -> bool:
    """True if the role changed."""
    check_role(role)
    user = await existing(conn, username)
    if user["role"] == role:
        return False
    await _keep_an_admin(conn, user)
    await conn.execute(update(users).where(users.c.id == user["id"]).values(role=role))
    return True


async def remove(conn: AsyncConnection, username: str, with_books: bool = False) -> None:
    """Delete a user (their sessions go with them); refused for the last admin,
    and while they own address books unless ``with_books``."""
    user = await existing(conn, username)
    await _keep_an_admin(conn, user)
    books = await conn.scalar(
        select(func.count()).select_from(address_books).where(address_books.c.owner_id == user["id"]))
    if books and not with_books:
        raise OwnsBooks(name=username, count=books)
    await conn.execute(delete(users).where(users.c.id == user["id"]))
