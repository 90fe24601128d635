"""The OpenAPI 3.1 description of the EPS HTTP API (``/v1``, :mod:`eps.http`).

It documents what back-office systems send and what they may do with their
key's scopes (``x-scope``), and it is what the property-based fuzz of the
edge (``tests/http_fuzz.py``) draws its requests from, so every route of
:data:`eps.http.ROUTES` must be here. The request schemas say what
:func:`eps.events.from_json` and :func:`ums.event_services.definitions.parse` accept; those
readers, not this document, are the authority on a body (they name the
field that is wrong).
"""

from __future__ import annotations

_TOKEN = {"type": ["string", "integer"], "pattern": "^[A-Za-z0-9_.:\\-]{1,64}$", "minimum": 0,
          "description": "1-64 letters, digits or _.:- (an integer is read as its digits)"}
_EVENT_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9]{1,19}$"}}
_CUSTOMER = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:\\-]{1,64}$"}}
_SERVICE = {"name": "name", "in": "path", "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 128}}
_KEY = {"name": "Idempotency-Key", "in": "header", "required": False,
        "description": "1-128 printable characters. A retry with the same key and the same event is answered "
                       "200 duplicate with the original id; the same key with another event is a 409.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 128}}
_ERROR = {"description": "Refused; `error` is a code and `reason` says why",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_REFUSED = {"400": _ERROR, "401": _ERROR, "403": _ERROR, "404": _ERROR, "413": _ERROR}

EVENT = {
    "type": "object", "required": ["type", "customer_id"], "properties": {
        "id": {"type": ["string", "integer", "null"], "minLength": 1, "maxLength": 128, "minimum": 0,
               "description": "the sender's event id; makes a retried post land once"},
        "type": _TOKEN, "customer_id": _TOKEN,
        "occurred": {"type": ["string", "null"], "maxLength": 64, "format": "date-time"},
        "data": {"type": ["object", "null"], "maxProperties": 100,
                 "additionalProperties": {"type": ["string", "number", "boolean", "null"], "maxLength": 1000}},
    }}
CONDITION = {"type": "object", "required": ["field", "op", "value"], "properties": {
    "field": {"type": "string", "minLength": 1, "maxLength": 128},
    "op": {"enum": ["eq", "==", "=", "ne", "!=", "gt", ">", "ge", ">=", "lt", "<", "le", "<=", "in", "contains",
                    "exists"]},
    "value": {"type": ["string", "number", "boolean", "array"]}}}
SERVICE = {
    "type": "object", "required": ["name", "event_type", "templates", "policy"], "properties": {
        "name": {"type": "string", "pattern": "^[^/\\x00-\\x1f\\x7f]{1,128}$"},
        "event_type": {"type": "string", "pattern": "^[A-Za-z0-9_.:\\-]{1,64}$"},
        "kind": {"enum": ["transactional", "advertising"]},
        "priority": {"type": "integer", "minimum": 1, "maximum": 9},
        "description": {"type": "string", "maxLength": 1000},
        "conditions": {"type": "array", "maxItems": 20, "items": CONDITION},
        "recipient": {"type": "object", "properties": {"customer_field": {"type": "string", "maxLength": 128}}},
        "templates": {"type": "object", "propertyNames": {"enum": ["email", "fax", "voice"]},
                      "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 128}},
        "policy": {"type": "object", "maxProperties": 20, "additionalProperties": {
            "type": "array", "minItems": 1, "maxItems": 3, "items": {"enum": ["email", "fax", "voice"]}}},
        "digest": {"type": "object", "required": ["window", "template"], "description":
                   "one customer's events within window of the first become one message (the template gets "
                   "them as events); window from 1s to 24h", "properties": {
                       "window": {"type": "string", "pattern": "^[0-9]{1,6}[smh]?$"},
                       "template": {"type": "string", "minLength": 1, "maxLength": 128}}},
    }}


def _answers(codes: dict) -> dict:
    return {**codes, **_REFUSED}


DOCUMENT = {
    "openapi": "3.1.0",
    "info": {"title": "UMS event processing API", "version": "1",
             "description": "Back-office systems post events and manage their own services. Authenticate with "
                            "`Authorization: Bearer KEY` (or X-Api-Key); a key names its system and reaches a "
                            "route only with the scope the route names (x-scope). A key sees its own system's "
                            "events and services only."},
    "security": [{"bearer": []}],
    "paths": {
        "/v1/events": {"post": {
            "summary": "Post an event (JSON, or XML per config/xsd/event.xsd)", "x-scope": "events:write",
            "parameters": [_KEY],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Event"}},
                "application/xml": {"schema": {"type": "string"}}}},
            "responses": _answers({"202": {"description": "Stored (durable)"},
                                   "200": {"description": "A duplicate of a stored event"},
                                   "409": _ERROR, "503": {"description": "Storage failed; retry after Retry-After"}})}},
        "/v1/events/{id}": {"get": {
            "summary": "One of this system's events with its deliveries", "x-scope": "events:read",
            "parameters": [_EVENT_ID], "responses": _answers({"200": {"description": "The event"}})}},
        "/v1/customers/{id}/timeline": {"get": {
            "summary": "A customer's events and deliveries (this system's only)", "x-scope": "events:read",
            "parameters": [_CUSTOMER], "responses": _answers({"200": {"description": "The timeline"}})}},
        "/v1/services": {
            "get": {"summary": "This system's services", "x-scope": "services:manage",
                    "responses": _answers({"200": {"description": "The services"}})},
            "post": {"summary": "Register (or update) a service definition", "x-scope": "services:manage",
                     "requestBody": {"required": True, "content": {
                         "application/json": {"schema": {"$ref": "#/components/schemas/Service"}},
                         "application/xml": {"schema": {"type": "string"}}}},
                     "responses": _answers({"201": {"description": "Registered"}, "409": _ERROR})}},
        "/v1/services/{name}": {
            "get": {"summary": "A service with its definition", "x-scope": "services:manage",
                    "parameters": [_SERVICE], "responses": _answers({"200": {"description": "The service"}})},
            "delete": {"summary": "Remove a service", "x-scope": "services:manage",
                       "parameters": [_SERVICE], "responses": _answers({"200": {"description": "Removed"}})}},
        "/v1/services/{name}/stop": {"post": {
            "summary": "Stop a service (events for it are held)", "x-scope": "services:manage",
            "parameters": [_SERVICE], "responses": _answers({"200": {"description": "Stopped"}})}},
        "/v1/services/{name}/resume": {"post": {
            "summary": "Resume a service (held events are dispatched)", "x-scope": "services:manage",
            "parameters": [_SERVICE], "responses": _answers({"200": {"description": "Active"}})}},
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {"type": "object", "properties": {"error": {"type": "string"}, "reason": {"type": "string"}}},
            "Event": EVENT, "Service": SERVICE,
        },
    },
}
