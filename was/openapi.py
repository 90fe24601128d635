"""The OpenAPI 3.1 description of the JSON side of ``/api/v1`` (served at
``/api/openapi.json``). The XML side takes the same fields, validated by
``config/xsd/api-*.xsd``.

Its request schemas (``components.schemas``: Send, Contact, Campaign,
CampaignAction) are not only documentation: :mod:`was.api_input` validates
every JSON body against them (JSON Schema 2020-12, which OpenAPI 3.1 uses), so
what this document says is what the server accepts. Bounds follow the
columns the values are stored in (a name of 128 characters, a priority 0 to
9 as ``api-send.xsd`` says, …); optional fields may also be ``null``.
"""

from __future__ import annotations

_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9]{1,19}$"}}
_CAMPAIGN = {"name": "id", "in": "path", "required": True, "description": "the campaign's id or name",
             "schema": {"type": "string", "maxLength": 128}}
_KEY = {"name": "Idempotency-Key", "in": "header", "required": False,
        "description": "Up to 128 printable ASCII characters. A retry with the same key and the same body gets "
                       "the first answer again (and does nothing twice); the same key with another body is a 409.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 128}}
_ERROR = {"description": "Bad request; `reason` says why (`error` is its code)",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_REFUSED = {
    "401": {"description": "No key, an unknown or revoked key, or no login"},
    "403": {"description": "The key lacks the route's scope, or the login's role may not do this"},
}


def _body(schema: str) -> dict:
    return {"required": True, "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}},
        "application/xml": {"schema": {"type": "string", "description": f"see config/xsd/api-{schema.lower()}.xsd"}},
    }}


def _responses(codes: dict) -> dict:
    return {**codes, **_REFUSED, "422": {"description": "A field has the wrong type or value; `reason` names it"}}


def text(maximum: int, minimum: int = 0) -> dict:
    schema = {"type": ["string", "null"], "maxLength": maximum}
    if minimum:
        schema["minLength"] = minimum
    return schema


def choice(*values: str) -> dict:
    return {"enum": [*values, None]}


FLAG = {"type": ["boolean", "null"]}
SEND = {
    "type": "object", "required": ["channel", "recipient"], "additionalProperties": False, "properties": {
        "channel": {"enum": ["email", "fax", "voice"]},
        "recipient": {"type": "string", "minLength": 1, "maxLength": 320,
                      "description": "one email address, or one fax or voice number (E.164 style)"},
        "template": text(128, 1), "kind": choice("advertising", "transactional"),
        "subject": text(998), "body": text(1_000_000),
        "variables": {"type": ["object", "null"], "maxProperties": 200,
                      "propertyNames": {"minLength": 1, "maxLength": 320},
                      "additionalProperties": {"type": ["string", "number", "boolean", "null"], "maxLength": 100_000}},
        "due_at": {**text(64), "format": "date-time"},
        "priority": {"type": ["integer", "null"], "minimum": 0, "maximum": 9},
    }}
CONSENT = {
    "type": ["object", "null"], "required": ["granted"], "additionalProperties": False, "properties": {
        "granted": {"type": "boolean"}, "source": text(128), "date": text(64), "night_time": FLAG}}
CONTACT = {
    "type": "object", "additionalProperties": False, "properties": {
        "customer_id": text(64), "name": text(200), "email": text(320), "fax": text(32), "phone": text(32),
        "grade": text(32), "timezone": text(64), "locale": text(16), "book": text(128, 1), "consent": CONSENT,
    }}
INLINE_TEMPLATE = {
    "type": "object", "required": ["name"], "additionalProperties": False, "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 128}, "subject": text(998),
        "body_html": text(1_000_000), "body_text": text(1_000_000), "sender_name": text(128),
        "sender_contact": text(128)}}
CAMPAIGN = {
    "type": "object", "required": ["name", "template", "audience"], "additionalProperties": False, "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 128},
        "kind": choice("advertising", "transactional"), "channel": choice("email", "fax", "voice"),
        "template": {"oneOf": [{"type": "string", "minLength": 1, "maxLength": 128}, INLINE_TEMPLATE]},
        "audience": {"type": "object", "additionalProperties": False, "properties": {
            "books": {"type": ["array", "null"], "maxItems": 100, "items": {"type": "string", "maxLength": 128}},
            "segment": {"type": ["object", "null"], "maxProperties": 20, "additionalProperties": {"oneOf": [
                {"type": "string", "maxLength": 128},
                {"type": "array", "maxItems": 1000, "items": {"type": "string", "maxLength": 128}}]}},
            "csv": text(1024)}},
        "schedule": {"type": ["object", "null"], "additionalProperties": False, "properties": {
            "at": {**text(64), "format": "date-time"}, "cron": text(64)}},
        "throttle": {"type": ["object", "null"], "additionalProperties": False, "properties": {
            "rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 100_000},
            "per_hour": {"type": "integer", "minimum": 1, "maximum": 100_000_000},
            "concurrency": {"type": "integer", "minimum": 1, "maximum": 10_000}}},
        "expires_after": {"type": ["integer", "null"], "minimum": 1, "maximum": 31_622_400,
                          "description": "seconds a delivery may keep retrying (at most 366 days)"},
        "expiry_hours": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": 8784},
        "created_by": text(64),
    }}
CAMPAIGN_ACTION = {
    "type": "object", "additionalProperties": False, "properties": {
        "at": {**text(64), "format": "date-time"}, "now": {"type": ["boolean", "string", "integer", "null"]},
        "force": {"type": ["boolean", "string", "integer", "null"],
                  "description": "schedule although the pre-send check finds a blocking problem"}}}

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {"title": "UMS parameter-passing API", "version": "1",
             "description": "Send messages, manage contacts and campaigns, read the mailbox. "
                            "Authenticate with the X-API-Key header; a key reaches a route only with the "
                            "scope the route names (x-scope: send, contacts, campaigns or mailbox). "
                            "Web logins reach the routes their role reaches on the pages."},
    "security": [{"apiKey": []}, {"bearer": []}],
    "paths": {
        "/api/v1/send": {"post": {
            "summary": "Queue one message", "x-scope": "send", "parameters": [_KEY], "requestBody": _body("Send"),
            "responses": _responses({"202": {"description": "Queued (durable)"}, "400": _ERROR,
                                     "409": {"description": "The Idempotency-Key was used with another body"}})}},
        "/api/v1/deliveries/{id}": {"get": {
            "summary": "A delivery's status (one this key or login queued)", "x-scope": "send", "parameters": [_ID],
            "responses": {"200": {"description": "The delivery"}, "404": {"description": "No such delivery"}}}},
        "/api/v1/contacts": {
            "get": {"summary": "Search the contacts the caller sees (own, shared with them, the organisation's)",
                    "x-scope": "contacts", "parameters": [
                {"name": "q", "in": "query", "schema": {"type": "string"}},
                {"name": "book", "in": "query", "schema": {"type": "integer"}, "description": "one book's contacts"},
                {"name": "id", "in": "query", "schema": {"type": "integer"}, "description": "one contact"},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
                "responses": {"200": {"description": "Matching contacts"}, "400": _ERROR,
                              "404": {"description": "No such book or contact (or not the caller's to see)"}}},
            "post": {"summary": "Add or update a contact", "x-scope": "contacts", "parameters": [_KEY],
                     "requestBody": _body("Contact"),
                     "responses": _responses({"201": {"description": "Created"}, "200": {"description": "Updated"},
                                              "400": _ERROR})}},
        "/api/v1/campaigns": {
            "get": {"summary": "List campaigns", "x-scope": "campaigns",
                    "responses": {"200": {"description": "Campaigns"}}},
            "post": {"summary": "Create a draft campaign (the campaign file format, JSON or XML)",
                     "x-scope": "campaigns", "parameters": [_KEY], "requestBody": _body("Campaign"),
                     "responses": _responses({"201": {"description": "Created"}, "400": _ERROR})}},
        "/api/v1/campaigns/{id}": {"get": {"summary": "A campaign with its progress", "x-scope": "campaigns",
                                           "parameters": [_CAMPAIGN],
                                           "responses": {"200": {"description": "The campaign"},
                                                         "404": {"description": "No such campaign"}}}},
        "/api/v1/campaigns/{id}/{action}": {"post": {
            "summary": "schedule, pause, resume or cancel", "x-scope": "campaigns",
            "parameters": [_CAMPAIGN, _KEY, {"name": "action", "in": "path", "required": True,
                                       "schema": {"enum": ["schedule", "pause", "resume", "cancel"]}}],
            "requestBody": {"required": False, "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/CampaignAction"}}}},
            "responses": _responses({"200": {"description": "New state"}, "400": _ERROR,
                                     "409": {"description": "The pre-send check blocks scheduling (the reason "
                                                            "lists the problems); send force to override"}})}},
        "/api/v1/mailbox": {"get": {
            "summary": "Mailbox messages, newest first, with the total",
            "description": "A key reads the mailboxes of the web user it was made for (`ums apikey create "
                           "--user NAME`), a key made for nobody none.",
            "x-scope": "mailbox", "parameters": [
            {"name": "media", "in": "query", "schema": {"enum": ["email", "fax", "voice"]}},
            {"name": "folder", "in": "query", "schema": {"type": "string"}},
            {"name": "mailbox", "in": "query", "schema": {"type": "string"}},
            {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 200},
             "description": "words sender, subject or body text must contain"},
            {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
            "responses": {"200": {"description": "Messages"}, "400": _ERROR}}},
    },
    "components": {
        "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                            "bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object", "required": ["error", "reason", "status"],
                "description": "Every error, JSON or XML (`<error><error>…</error><reason>…</reason>"
                               "<status>…</status></error>`), the same as EPS's",
                "properties": {
                    "error": {"type": "string", "description": "a stable code: bad_request, unauthorized, "
                                                               "forbidden, not_found, conflict, too_large, invalid…"},
                    "reason": {"type": "string", "description": "one line saying why, for people"},
                    "status": {"type": "integer", "description": "the HTTP status"},
                },
            },
            "Send": SEND, "Contact": CONTACT, "Campaign": CAMPAIGN, "CampaignAction": CAMPAIGN_ACTION,
        },
    },
}
