"""The one router of the HTTP services (EPS's ``/v1`` and WAS's pages and ``/api/v1``).

A :class:`Route` is a method, a path pattern (``/v1/events/{id}``: literal
segments and ``{name}`` parameters, one segment each), a handler, and the
facts the services judge a request by before its handler runs:

* ``roles`` — who may use it after logging in (WAS; None: public),
* ``csrf`` — whether a form POST must carry the session's token (WAS),
* ``scope`` — the API-key scope it needs (None: no key may use it),
* ``limit`` — the most bytes of body it takes (None: the service's default).

:meth:`Router.match` finds the route for a method and a path: a path is its
non-empty ``/``-separated segments, as given (the caller decodes them if it
wants); a literal segment beats a parameter (``/contacts/export`` before
``/contacts/{id}``, decided from the left), and ``HEAD`` uses a ``GET`` route.
It also says whether the path exists for another method (405 rather than
404). EPS's edge asks the same router for a route's limit and scope from
the headers, before the body is read.

Each area of a service keeps its own :class:`Router`; the service's
application mounts them into one with :meth:`Router.include`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Sequence

_PARAMETER = re.compile(r"^{(\w+)}$")
_UNSET = object()


@dataclass(frozen=True, eq=False)
class Route:
    method: str
    path: str
    handler: Callable
    roles: tuple[str, ...] | None = None
    csrf: bool = True
    scope: str | None = None
    limit: int | None = None
    #: per segment: the literal it must be, or None for a parameter
    shape: tuple[str | None, ...] = field(init=False)
    #: the parameters' names, in order
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self):
        segments = [s for s in self.path.split("/") if s]
        found = [_PARAMETER.match(s) for s in segments]
        object.__setattr__(self, "shape", tuple(None if m else s for s, m in zip(segments, found)))
        object.__setattr__(self, "names", tuple(m.group(1) for m in found if m))

    def params(self, parts: Sequence[str]) -> dict[str, str] | None:
        """The parameters when ``parts`` fit this route's shape; else None."""
        values = []
        for want, part in zip(self.shape, parts):
            if want is None:
                values.append(part)
            elif want != part:
                return None
        return dict(zip(self.names, values))

    @property
    def precedence(self) -> tuple[int, ...]:
        """Sorts literal segments before parameters, from the left."""
        return tuple(0 if want is not None else 1 for want in self.shape)


class Match(NamedTuple):
    route: Route | None
    params: dict
    #: whether the path exists (for some method)
    known: bool


class Router:
    """Routes, added with :meth:`add` or the :meth:`get`/:meth:`post`/
    :meth:`delete` decorators. ``roles``, ``csrf`` and ``limit`` given here
    are the defaults of this router's routes."""

    def __init__(self, roles: tuple[str, ...] | None = None, csrf: bool = True, limit: int | None = None):
        self.defaults = {"roles": roles, "csrf": csrf, "limit": limit}
        self.routes: list[Route] = []
        self._by_length: dict[int, list[Route]] = {}

    def add(self, method: str, path: str, handler: Callable, roles=_UNSET, csrf=_UNSET, scope: str | None = None,
            limit=_UNSET) -> Route:
        given = {"roles": roles, "csrf": csrf, "limit": limit}
        facts = {name: self.defaults[name] if value is _UNSET else value for name, value in given.items()}
        route = Route(method.upper(), path, handler, scope=scope, **facts)
        self._keep(route)
        return route

    def _keep(self, route: Route) -> None:
        self.routes.append(route)
        same_length = self._by_length.setdefault(len(route.shape), [])
        same_length.append(route)
        same_length.sort(key=lambda r: r.precedence)  # stable: among equals, the first added wins

    def route(self, method: str, path: str, **facts) -> Callable:
        """A decorator adding its function as the handler of ``method path``."""
        def register(handler):
            self.add(method, path, handler, **facts)
            return handler
        return register

    def get(self, path: str, **facts) -> Callable:
        return self.route("GET", path, **facts)

    def post(self, path: str, **facts) -> Callable:
        return self.route("POST", path, **facts)

    def delete(self, path: str, **facts) -> Callable:
        return self.route("DELETE", path, **facts)

    def include(self, *routers: "Router") -> "Router":
        """Mount the routes of ``routers`` here (their facts as they are); returns self."""
        for router in routers:
            for route in router.routes:
                self._keep(route)
        return self

    def match(self, method: str, path: str) -> Match:
        """The route for ``method path`` (see the module docstring)."""
        return self.match_parts(method, [s for s in path.split("/") if s])

    def match_parts(self, method: str, parts: Sequence[str]) -> Match:
        """As :meth:`match`, for a path already split into its segments."""
        known = False
        for route in self._by_length.get(len(parts), ()):
            params = route.params(parts)
            if params is None:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return Match(route, params, True)
            known = True
        return Match(None, {}, known)
