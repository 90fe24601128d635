"""Writing answers: the one JSON writer, the XML document writer and the one
error body of the HTTP services.

* :func:`json_bytes` — compact UTF-8 JSON (non-ASCII kept, dates and other
  values as ``str``); :func:`write_json` finishes a twisted.web request with it.
* :func:`xml_document` — a payload (dicts, lists, scalars) as an XML document;
  names' ``_`` become ``-``, characters XML cannot carry become U+FFFD.
* :func:`error_body` — an :class:`~ums.web.errors.HttpError` as JSON
  ``{"error": code, "reason": text, "status": n}`` or as the XML equivalent
  ``<error><error>code</error><reason>text</reason><status>n</status></error>``.
* :func:`render_error` — the same from a twisted.web ``render`` method.
* :func:`refusal_response` — the whole raw HTTP/1.1 response of a refusal
  given before the body was read (``Connection: close``).

This module needs no other part of :mod:`ums.web` (errors are read by their
``status``, ``code``, ``reason`` and ``headers``).
"""

from __future__ import annotations

import json
import re
from datetime import datetime

from lxml import etree
from twisted.web.http import RESPONSES

JSON_TYPE = "application/json; charset=utf-8"
XML_TYPE = "application/xml; charset=utf-8"
_JSON = json.JSONEncoder(ensure_ascii=False, default=str)
_XML_UNSAFE = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def json_bytes(payload) -> bytes:
    """``payload`` as compact UTF-8 JSON."""
    return _JSON.encode(payload).encode("utf-8")


def write_json(request, status: int, payload, headers: dict | None = None) -> None:
    """Answer a twisted.web request with ``payload`` as JSON and finish it."""
    request.setResponseCode(status)
    request.setHeader(b"content-type", JSON_TYPE.encode())
    for name, value in (headers or {}).items():
        request.setHeader(name.encode(), value.encode("latin-1", "replace"))
    body = json_bytes(payload)
    request.setHeader(b"content-length", str(len(body)).encode())
    request.write(body)
    request.finish()


def json_body(request, status: int, payload) -> bytes:
    """Set status and content type on ``request``; the JSON body for a ``render`` method to return."""
    request.setResponseCode(status)
    request.setHeader(b"content-type", JSON_TYPE.encode())
    return json_bytes(payload)


def _xml_text(value) -> str:
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return _XML_UNSAFE.sub("\ufffd", text)


def _xml_value(parent, name: str, value) -> None:
    child = etree.SubElement(parent, name.replace("_", "-"))
    if isinstance(value, dict):
        for key, item in value.items():
            _xml_value(child, str(key), item)
    elif isinstance(value, list):
        for item in value:
            _xml_value(child, "item", item)
    elif value is not None:
        child.text = _xml_text(value)


def xml_document(root_name: str, payload: dict) -> bytes:
    """``payload`` as the children of ``<root_name>``, with an XML declaration."""
    root = etree.Element(root_name)
    for key, value in payload.items():
        _xml_value(root, str(key), value)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def error_payload(error) -> dict:
    """What every error body says: ``error`` (the code), ``reason`` and ``status``."""
    return {"error": error.code, "reason": error.reason, "status": error.status}


def error_body(error, xml: bool = False) -> tuple[bytes, str]:
    """An error's body and its content type, in JSON or (``xml``) in XML."""
    if xml:
        return xml_document("error", error_payload(error)), XML_TYPE
    return json_bytes(error_payload(error)), JSON_TYPE


def render_error(request, error) -> bytes:
    """Set an error's status and headers on ``request``; its JSON body for a ``render`` method to return."""
    for name, value in error.headers.items():
        request.setHeader(name.encode(), value.encode("latin-1", "replace"))
    return json_body(request, error.status, error_payload(error))


def refusal_response(error, extra_headers: dict | None = None) -> bytes:
    """The whole HTTP/1.1 response for ``error``, closing the connection."""
    body, content_type = error_body(error)
    headers = {**(extra_headers or {}), **error.headers}
    lines = [f"HTTP/1.1 {error.status} {RESPONSES.get(error.status, b'Refused').decode('ascii')}",
             f"Content-Type: {content_type}", f"Content-Length: {len(body)}", "Connection: close",
             *(f"{name}: {value}" for name, value in headers.items())]
    return "\r\n".join(lines).encode("latin-1", "replace") + b"\r\n\r\n" + body
