"""Static files (CSS, JS) from was/static/."""

from __future__ import annotations

from pathlib import Path

from ums.web import HttpError, Router

from ..http import Page, Response
from ..roles import ALL_ROLES

router = Router(roles=ALL_ROLES)

TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
STATIC = Path(__file__).resolve().parent.parent / "static"


@router.get("/static/{name}", roles=None)
async def static_file(page: Page):
    name = page.params["name"]
    path = (STATIC / name).resolve()
    if path.parent != STATIC or path.suffix not in TYPES or not path.is_file():
        raise HttpError(404, "no such file")
    response = Response(path.read_bytes(), 200, TYPES[path.suffix])
    response.headers["cache-control"] = "public, max-age=300"
    return response
