"""Importing this module registers every WAS route on :data:`was.app.router`."""

from . import api  # noqa: F401
from .pages import admin, auth, campaigns, compose, contacts, inbox, metrics, operations, rules, static, unsubscribe  # noqa: F401
