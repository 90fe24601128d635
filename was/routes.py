"""Importing this module registers every WAS route on :data:`was.app.router`."""

from .pages import admin, auth, inbox, static  # noqa: F401
