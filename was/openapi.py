"""The OpenAPI 3.1 description of the JSON side of ``/api/v1`` (served at
``/api/openapi.json``). The XML side takes the same fields, validated by
``config/xsd/api-*.xsd``."""

_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_ERROR = {"description": "Bad request; `error` says why",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _body(schema: str) -> dict:
    return {"required": True, "content": {
        "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}},
        "application/xml": {"schema": {"type": "string", "description": f"see config/xsd/api-{schema.lower()}.xsd"}},
    }}


DOCUMENT = {
    "openapi": "3.1.0",
    "info": {"title": "UMS parameter-passing API", "version": "1",
             "description": "Send messages, manage contacts and campaigns, read the mailbox. "
                            "Authenticate with the X-API-Key header."},
    "security": [{"apiKey": []}],
    "paths": {
        "/api/v1/send": {"post": {"summary": "Queue one message", "requestBody": _body("Send"),
                                  "responses": {"202": {"description": "Queued (durable)"}, "400": _ERROR}}},
        "/api/v1/deliveries/{id}": {"get": {"summary": "A delivery's status", "parameters": [_ID],
                                            "responses": {"200": {"description": "The delivery"}}}},
        "/api/v1/contacts": {
            "get": {"summary": "Search contacts", "parameters": [
                {"name": "q", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "Matching contacts"}}},
            "post": {"summary": "Add or update a contact", "requestBody": _body("Contact"),
                     "responses": {"201": {"description": "Created"}, "200": {"description": "Updated"},
                                   "400": _ERROR}}},
        "/api/v1/campaigns": {
            "get": {"summary": "List campaigns", "responses": {"200": {"description": "Campaigns"}}},
            "post": {"summary": "Create a draft campaign (the campaign file format, JSON or XML)",
                     "responses": {"201": {"description": "Created"}, "400": _ERROR}}},
        "/api/v1/campaigns/{id}": {"get": {"summary": "A campaign with its progress", "parameters": [_ID],
                                           "responses": {"200": {"description": "The campaign"}}}},
        "/api/v1/campaigns/{id}/{action}": {"post": {
            "summary": "schedule, pause, resume or cancel",
            "parameters": [_ID, {"name": "action", "in": "path", "required": True,
                                 "schema": {"enum": ["schedule", "pause", "resume", "cancel"]}}],
            "responses": {"200": {"description": "New state"}, "400": _ERROR}}},
        "/api/v1/mailbox": {"get": {"summary": "Mailbox messages", "parameters": [
            {"name": "media", "in": "query", "schema": {"enum": ["email", "fax", "voice"]}},
            {"name": "folder", "in": "query", "schema": {"type": "string"}}],
            "responses": {"200": {"description": "Messages"}}}},
    },
    "components": {
        "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        "schemas": {
            "Error": {"type": "object", "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}},
            "Send": {"type": "object", "required": ["channel", "recipient"], "properties": {
                "channel": {"enum": ["email", "fax", "voice"]}, "recipient": {"type": "string"},
                "template": {"type": "string"}, "kind": {"enum": ["advertising", "transactional"]},
                "subject": {"type": "string"}, "body": {"type": "string"},
                "variables": {"type": "object", "additionalProperties": {"type": "string"}},
                "due_at": {"type": "string", "format": "date-time"},
                "priority": {"type": "integer", "minimum": 0, "maximum": 9}}},
            "Contact": {"type": "object", "properties": {
                "customer_id": {"type": "string"}, "name": {"type": "string"}, "email": {"type": "string"},
                "fax": {"type": "string"}, "phone": {"type": "string"}, "grade": {"type": "string"},
                "book": {"type": "string"},
                "consent": {"type": "object", "properties": {
                    "granted": {"type": "boolean"}, "source": {"type": "string"},
                    "date": {"type": "string"}, "night_time": {"type": "boolean"}}}}},
        },
    },
}
