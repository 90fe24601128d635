"""The shared HTTP layer (ums.web): one router, one error body, one key parser."""

from __future__ import annotations

import json

import pytest
from lxml import etree
from twisted.web.http_headers import Headers

from ums.web import HttpError, Refusal, Router, checked_key, error_body, presented_key


async def _handler(page):  # a stand-in: routing never calls it
    ...


def test_literal_segments_beat_parameters_from_the_left():
    router = Router()
    by_id = router.add("GET", "/campaigns/{id}/{action}", _handler)
    progress = router.add("GET", "/campaigns/{id}/progress", _handler)
    named = router.add("GET", "/campaigns/new/{action}", _handler)
    assert router.match("GET", "/campaigns/7/progress") == (progress, {"id": "7"}, True)
    assert router.match("GET", "/campaigns/7/pause") == (by_id, {"id": "7", "action": "pause"}, True)
    assert router.match("GET", "/campaigns/new/progress") == (named, {"action": "progress"}, True)


def test_head_uses_the_get_route_and_another_method_is_known_but_not_matched():
    router = Router()
    route = router.add("GET", "/inbox", _handler)
    assert router.match("HEAD", "/inbox").route is route
    assert router.match("POST", "/inbox") == (None, {}, True)
    assert router.match("POST", "/outbox") == (None, {}, False)


def test_a_mounted_router_keeps_each_routes_facts_and_its_own_defaults():
    area = Router(roles=("admin",), limit=100)
    open_route = area.add("GET", "/status", _handler, roles=None)
    admin_route = area.add("POST", "/users", _handler, csrf=False, scope="users")
    site = Router().include(area)
    assert site.match("GET", "/status").route is open_route and open_route.roles is None
    found = site.match("POST", "/users").route
    assert found is admin_route
    assert (found.roles, found.csrf, found.scope, found.limit) == (("admin",), False, "users", 100)


def test_one_error_body_in_json_and_in_xml():
    error = HttpError(404, "no event 7")
    body, kind = error_body(error)
    assert kind.startswith("application/json")
    assert json.loads(body) == {"error": "not_found", "reason": "no event 7", "status": 404}
    body, kind = error_body(HttpError(422, "priority must be at most 9", "invalid"), xml=True)
    root = etree.fromstring(body)
    assert kind.startswith("application/xml") and root.tag == "error"
    assert [(child.tag, child.text) for child in root] == [
        ("error", "invalid"), ("reason", "priority must be at most 9"), ("status", "422")]


def test_a_refusal_is_an_http_error_with_its_headers_in_the_raw_answer():
    refusal = Refusal(401, "malformed API key", headers={"WWW-Authenticate": "Bearer"})
    assert isinstance(refusal, HttpError) and refusal.code == "unauthorized"
    head, _, body = refusal.response({"X-Frame-Options": "SAMEORIGIN"}).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 ") and b"\r\nWWW-Authenticate: Bearer" in head
    assert b"\r\nX-Frame-Options: SAMEORIGIN" in head and b"Connection: close" in head
    assert json.loads(body)["reason"] == "malformed API key"


class _Request:
    """The part of a twisted.web request the parser reads (no reactor needed)."""

    def __init__(self, headers: Headers):
        self.requestHeaders = headers

    def getHeader(self, name: bytes):
        values = self.requestHeaders.getRawHeaders(name)
        return values[-1] if values else None


def _request(**headers) -> _Request:
    return _Request(Headers({name.replace("_", "-").encode(): [value] for name, value in headers.items()}))


def test_a_key_is_read_from_bearer_or_x_api_key():
    assert presented_key(_request(authorization=b"Bearer ums_abcdefgh")) == "ums_abcdefgh"
    assert presented_key(_request(x_api_key=b" ums_abcdefgh ")) == "ums_abcdefgh"
    assert presented_key(_request(authorization=b"Basic dXNlcjpwdw==", x_api_key=b"ums_12345678")) == "ums_12345678"
    assert presented_key(_request(authorization=b"Basic dXNlcjpwdw==")) is None
    assert presented_key(_request()) is None


@pytest.mark.parametrize("raw", [b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", "키키키키키키키키".encode(), b"short", b"a b c d e f g h",
                                 b"x" * 257])
def test_a_key_that_cannot_be_a_key_is_a_401(raw):
    key = presented_key(_request(x_api_key=raw))
    with pytest.raises(Refusal) as refused:
        checked_key(key)
    assert refused.value.status == 401 and refused.value.headers["WWW-Authenticate"].startswith("Bearer")
