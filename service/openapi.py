"""The OpenAPI 3.1 document served at /openapi.json, written by hand to match the contract.

A test checks that every route the app serves appears here, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from service import __version__
from service.store import PROVIDER_MODES, SESSION_STATUSES

_ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"}
_SESSION_ID_PARAM = {"name": "session_id", "in": "path", "required": True, "schema": _ID}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _list_of(schema: str, description: str) -> dict[str, Any]:
    """A `{"data": [...]}` answer, the shape every list endpoint returns."""
    data = {"type": "array", "items": _ref(schema)}
    return _json({"type": "object", "properties": {"data": data}}, description)


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"$ref": f"#/components/responses/E{s}"} for s in statuses}


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
    signed: bool = True,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = params
    if not signed:
        op["security"] = []
    return op


def _session_action(summary: str) -> dict[str, Any]:
    return {
        "post": _op(
            summary,
            {"202": _json(_ref("Session"), "accepted"), **_errors(401, 404, 503)},
            params=[_SESSION_ID_PARAM],
        )
    }


_META_INPUT = {
    "type": ["object", "null"],
    "required": ["phone_number_id", "access_token"],
    "additionalProperties": False,
    "properties": {
        "phone_number_id": {"type": "string"},
        "access_token": {"type": "string", "writeOnly": True},
        "app_secret": {"type": "string", "writeOnly": True},
        "verify_token": {"type": "string", "writeOnly": True},
    },
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "details"],
                "properties": {
                    "code": {"type": "string", "examples": ["invalid_signature"]},
                    "message": {"type": "string"},
                    "details": {"type": "object"},
                },
            }
        },
    },
    "Session": {
        "type": "object",
        "properties": {
            "session_id": _ID,
            "workspace_id": _ID,
            "provider_mode": {"enum": list(PROVIDER_MODES)},
            "status": {"enum": list(SESSION_STATUSES)},
            "desired_state": {"enum": ["running", "stopped"]},
            "phone_number": {"type": ["string", "null"]},
            "webhook_url": {"type": ["string", "null"], "format": "uri"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "last_error": {"type": ["string", "null"]},
            "qr_expires_at": {"type": ["string", "null"], "format": "date-time"},
            "meta": {
                "type": "object",
                "properties": {
                    "configured": {"type": "boolean"},
                    "phone_number_id": {"type": ["string", "null"]},
                },
            },
        },
    },
    "Qr": {
        "type": "object",
        "properties": {
            "qr": {"type": "string", "description": "the string to render as a QR code"},
            "expires_at": {"type": ["string", "null"], "format": "date-time"},
            "image_url": {"type": "string", "format": "uri"},
        },
    },
    "SendMessage": {
        "type": "object",
        "required": ["to", "type"],
        "additionalProperties": False,
        "properties": {
            "to": {
                "type": "string",
                "description": "+<digits>, <digits>, <digits>@c.us or <id>@g.us",
                "examples": ["+5511999990001"],
            },
            "type": {
                "enum": ["text", "image", "document", "audio", "video", "location", "template"]
            },
            "template": {
                "type": "object",
                "description": "Cloud API only: {name, language: en_US | {code}, components?}",
            },
            "text": {"type": "string", "description": "the text, or the caption of media"},
            "media": {
                "type": "object",
                "description": "exactly one of url (fetched when accepted) or base64",
                "properties": {
                    "url": {"type": "string", "format": "uri"},
                    "base64": {"type": "string"},
                    "mimetype": {"type": "string"},
                    "filename": {"type": "string"},
                },
            },
            "location": {
                "type": "object",
                "required": ["latitude", "longitude"],
                "properties": {
                    "latitude": {"type": "number", "minimum": -90, "maximum": 90},
                    "longitude": {"type": "number", "minimum": -180, "maximum": 180},
                    "name": {"type": "string"},
                },
            },
            "reply_to": {"type": "string", "description": "provider_message_id to quote"},
            "priority": {"enum": ["normal", "bulk"], "default": "normal"},
            "idempotency_key": {"type": "string", "maxLength": 190},
        },
    },
    "Message": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "session_id": _ID,
            "workspace_id": _ID,
            "direction": {"enum": ["out", "in"]},
            "chat_id": {"type": "string"},
            "to": {"type": "string"},
            "from": {"type": "string"},
            "type": {"type": "string"},
            "text": {"type": ["string", "null"]},
            "media": {"type": ["object", "null"]},
            "location": {"type": ["object", "null"]},
            "status": {
                "enum": [
                    "queued",
                    "sending",
                    "sent",
                    "delivered",
                    "read",
                    "played",
                    "failed",
                    "received",
                ]
            },
            "provider": {"type": ["string", "null"], "enum": ["webjs", "meta", None]},
            "provider_message_id": {"type": ["string", "null"]},
            "idempotency_key": {"type": ["string", "null"]},
            "error": {"type": ["string", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
        },
    },
    "Delivery": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "description": "evt_..., also the X-Webhook-Id header"},
            "event": {"type": "string"},
            "workspace_id": _ID,
            "session_id": _ID,
            "status": {"enum": ["pending", "delivered", "dead"]},
            "attempts": {"type": "integer"},
            "url": {"type": ["string", "null"]},
            "last_status_code": {"type": ["integer", "null"]},
            "last_error": {"type": ["string", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "next_attempt_at": {"type": ["string", "null"], "format": "date-time"},
            "delivered_at": {"type": ["string", "null"], "format": "date-time"},
            "payload": {"type": "object", "description": "the exact body delivered"},
        },
    },
    "SessionCreate": {
        "type": "object",
        "required": ["workspace_id"],
        "additionalProperties": False,
        "properties": {
            "workspace_id": _ID,
            "session_id": _ID,
            "provider_mode": {"enum": list(PROVIDER_MODES), "default": "auto"},
            "start": {"type": "boolean", "default": True},
            "webhook_url": {"type": "string", "format": "uri"},
            "meta": _META_INPUT,
        },
    },
    "SessionPatch": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "provider_mode": {"enum": list(PROVIDER_MODES)},
            "webhook_url": {"type": ["string", "null"], "format": "uri"},
            "meta": _META_INPUT,
        },
    },
}

_ERROR_TEXT = {
    400: "malformed JSON",
    401: "missing, invalid, stale or replayed signature",
    404: "unknown id",
    409: "conflict with the current state",
    413: "body larger than the limit",
    422: "validation failed; details.field names the field",
    429: "rate limited",
    503: "at capacity (MAX_SESSIONS)",
}


def build_openapi() -> dict[str, Any]:
    """The whole document; cheap enough to build per request, but built once per app."""
    paths: dict[str, Any] = {
        "/api/sessions": {
            "post": _op(
                "Create a session (starts it unless start is false)",
                {"201": _json(_ref("Session"), "created"), **_errors(400, 401, 409, 413, 422, 503)},
                body=_ref("SessionCreate"),
            ),
            "get": _op(
                "List sessions",
                {
                    "200": _list_of("Session", "sessions"),
                    **_errors(401, 422),
                },
                params=[
                    {"name": "workspace_id", "in": "query", "schema": _ID},
                    {"name": "status", "in": "query", "schema": {"enum": list(SESSION_STATUSES)}},
                ],
            ),
        },
        "/api/sessions/{session_id}": {
            "get": _op(
                "Read a session",
                {"200": _json(_ref("Session"), "the session"), **_errors(401, 404)},
                params=[_SESSION_ID_PARAM],
            ),
            "patch": _op(
                "Change provider_mode, webhook_url or Meta credentials",
                {"200": _json(_ref("Session"), "updated"), **_errors(400, 401, 404, 422)},
                body=_ref("SessionPatch"),
                params=[_SESSION_ID_PARAM],
            ),
            "delete": _op(
                "Stop the session and purge its profile and rows",
                {"204": {"description": "deleted"}, **_errors(401, 404)},
                params=[_SESSION_ID_PARAM],
            ),
        },
        "/api/sessions/{session_id}/start": _session_action("Set desired_state running"),
        "/api/sessions/{session_id}/stop": _session_action(
            "Set desired_state stopped (keeps the login)"
        ),
        "/api/sessions/{session_id}/restart": _session_action("Restart the browser"),
        "/api/sessions/{session_id}/logout": _session_action(
            "Unlink the device and wipe the profile"
        ),
        "/api/sessions/{session_id}/qr": {
            "get": _op(
                "The current QR: JSON, or the PNG with Accept: image/png",
                {
                    "200": {
                        "description": "the QR",
                        "content": {
                            "application/json": {"schema": _ref("Qr")},
                            "image/png": {"schema": {"type": "string", "format": "binary"}},
                        },
                    },
                    **_errors(401, 404, 409),
                },
                params=[_SESSION_ID_PARAM],
            )
        },
        "/api/sessions/{session_id}/pairing-code": {
            "post": _op(
                "A link code to type on the phone instead of scanning",
                {
                    "200": _json(
                        {"type": "object", "properties": {"code": {"type": "string"}}}, "the code"
                    ),
                    **_errors(400, 401, 404, 409, 422),
                },
                body={
                    "type": "object",
                    "required": ["phone"],
                    "properties": {"phone": {"type": "string", "examples": ["+5511999999999"]}},
                },
                params=[_SESSION_ID_PARAM],
            )
        },
        "/api/sessions/{session_id}/messages": {
            "post": _op(
                "Queue a message; the same idempotency key in the workspace returns the first "
                "record (header Idempotent-Replayed: true) and never sends twice",
                {
                    "202": _json(_ref("Message"), "queued (or the first record for the key)"),
                    **_errors(400, 401, 404, 409, 413, 422),
                },
                body=_ref("SendMessage"),
                params=[
                    _SESSION_ID_PARAM,
                    {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}},
                ],
            )
        },
        "/api/sessions/{session_id}/messages/{message_id}": {
            "get": _op(
                "One message and its status",
                {"200": _json(_ref("Message"), "the message"), **_errors(401, 404)},
                params=[
                    _SESSION_ID_PARAM,
                    {"name": "message_id", "in": "path", "required": True, "schema": _ID},
                ],
            )
        },
        "/api/webhooks/deliveries": {
            "get": _op(
                "List webhook deliveries, oldest first",
                {
                    "200": _list_of("Delivery", "deliveries"),
                    **_errors(401, 422),
                },
                params=[
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"enum": ["pending", "delivered", "dead"]},
                    },
                    {"name": "session_id", "in": "query", "schema": _ID},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                ],
            )
        },
        "/api/webhooks/deliveries/{delivery_id}/retry": {
            "post": _op(
                "Replay a dead delivery (same X-Webhook-Id, a fresh 24 h retry window)",
                {"202": _json(_ref("Delivery"), "queued again"), **_errors(401, 404, 409, 422)},
                params=[
                    {
                        "name": "delivery_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^evt_"},
                    }
                ],
            )
        },
        "/media/{token}": {
            "get": _op(
                "A message's media behind a signed link valid one hour (media.url)",
                {"200": {"description": "the file"}, **_errors(404)},
                params=[
                    {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                signed=False,
            )
        },
        "/qr/{token}.png": {
            "get": _op(
                "The QR as PNG behind a short-lived signed token (for <img src>)",
                {
                    "200": {"description": "PNG", "content": {"image/png": {}}},
                    **_errors(404),
                },
                params=[
                    {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                signed=False,
            )
        },
        "/webhooks/meta": {
            "get": _op(
                "Meta's verify handshake: hub.challenge back when hub.verify_token matches",
                {"200": {"description": "the challenge, as text"}, "403": {"description": "no"}},
                params=[
                    {"name": n, "in": "query", "schema": {"type": "string"}}
                    for n in ("hub.mode", "hub.verify_token", "hub.challenge")
                ],
                signed=False,
            ),
            "post": _op(
                "Cloud API events, verified by X-Hub-Signature-256 (the app secret)",
                {"200": {"description": "recorded"}, **_errors(400, 401)},
                params=[
                    {
                        "name": "X-Hub-Signature-256",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^sha256=[0-9a-f]{64}$"},
                    }
                ],
                signed=False,
            ),
        },
        "/health": {
            "get": _op("Liveness", {"200": _json({"type": "object"}, "alive")}, signed=False)
        },
        "/ready": {
            "get": _op(
                "Readiness: the store answers and Chromium is available",
                {
                    "200": _json({"type": "object"}, "ready"),
                    "503": _json({"type": "object"}, "not ready"),
                },
                signed=False,
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics",
                {"200": {"description": "text exposition format"}},
                signed=False,
            )
        },
        "/openapi.json": {
            "get": _op("This document", {"200": {"description": "OpenAPI 3.1"}}, signed=False)
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "wa-sidecar",
            "version": __version__,
            "description": (
                "Every /api/* request carries X-Timestamp (Unix seconds, within the tolerance) "
                "and X-HMAC-Signature: lowercase hex HMAC-SHA256 over "
                "'{timestamp}\\n{METHOD}\\n{path with ?query}\\n{raw body}'."
            ),
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "hmac": {"type": "apiKey", "in": "header", "name": "X-HMAC-Signature"},
                "timestamp": {"type": "apiKey", "in": "header", "name": "X-Timestamp"},
            },
            "responses": {
                f"E{status}": _json(_ref("Error"), text) for status, text in _ERROR_TEXT.items()
            },
        },
        "security": [{"hmac": [], "timestamp": []}],
        "paths": paths,
    }
