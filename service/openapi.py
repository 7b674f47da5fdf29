"""The OpenAPI 3.1 document served at /openapi.json, written from the routes and their models.

Every route is a `Resource` whose operations name the pydantic models that validate their
requests and build their answers, and every webhook event has a model in `EVENTS`: the
document is generated from those, so it says what the service does. A route without a
contract cannot be served, because building the document fails first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute

from service import __version__
from service.api.routing import Operation, Raw, Resource
from service.errors import ERRORS
from service.models.base import Output
from service.models.events import EVENTS, Envelope
from service.models.params import PATH_PARAMS
from service.models.responses import ErrorBody

Mode = Literal["validation", "serialization"]


def _error_text(status: int) -> str:
    return "; ".join(f"`{e.code}`: {e.meaning}" for e in ERRORS if e.status == status)


# Each error status the document names, described by the codes it carries.
ERROR_TEXT = {status: _error_text(status) for status in sorted({e.status for e in ERRORS})}

# Headers every webhook POST carries.
WEBHOOK_HEADERS = [
    ("X-Timestamp", "Unix seconds when this attempt was sent", {"type": "string"}),
    (
        "X-HMAC-Signature",
        "hex HMAC-SHA256 of timestamp + raw body with SIDECAR_WEBHOOK_SECRET, no separator",
        {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    ),
    (
        "Signature",
        "hex HMAC-SHA256 of the raw body alone (spatie/laravel-webhook-client)",
        {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    ),
    ("X-Webhook-Id", "the event id, the same on every retry", {"type": "string"}),
    ("X-Webhook-Event", "the event name", {"type": "string"}),
]

SIGNING = (
    "Every /api/* request carries X-Timestamp (Unix seconds, within the tolerance) and "
    "X-HMAC-Signature: lowercase hex HMAC-SHA256 over "
    "'{timestamp}\\n{METHOD}\\n{path with ?query}\\n{raw body}' with SIDECAR_API_SECRET. "
    "A state-changing request whose signature was already seen in the window is 401 "
    "`replayed_request`. Webhooks (see `webhooks`) are signed with SIDECAR_WEBHOOK_SECRET."
)


class _Schemas:
    """Component schemas for every model the document names, each under its own name."""

    def __init__(self, wanted: Iterable[tuple[type[BaseModel], Mode]]) -> None:
        pairs = list(dict.fromkeys(wanted))
        keys, document = models_json_schema(pairs, ref_template="#/components/schemas/{model}")
        self.refs = dict(keys)
        self.components: dict[str, Any] = document.get("$defs", {})

    def ref(self, model: type[BaseModel], mode: Mode) -> dict[str, Any]:
        return dict(self.refs[(model, mode)])


_PATH_SCHEMAS = {name: TypeAdapter(kind).json_schema() for name, kind in PATH_PARAMS.items()}


def _operations(routes: Iterable[BaseRoute]) -> list[tuple[str, str, Operation]]:
    found = []
    seen: set[str] = set()
    for route in routes:
        if not isinstance(route, Resource):
            raise TypeError(f"{getattr(route, 'path', route)!r} is not a Resource with a contract")
        if route.path in seen:
            raise TypeError(f"{route.path} is routed twice: give it one Resource")
        seen.add(route.path)
        for method, operation in route.operations.items():
            found.append((route.path, method.lower(), operation))
    return found


def _wanted(operations: list[tuple[str, str, Operation]]) -> list[tuple[type[BaseModel], Mode]]:
    wanted: list[tuple[type[BaseModel], Mode]] = [(ErrorBody, "serialization")]
    for _, _, op in operations:
        if op.body is not None:
            wanted.append((op.body, "validation"))
        for answer in op.answers.values():
            if isinstance(answer, type) and issubclass(answer, Output):
                wanted.append((answer, "serialization"))
    wanted.append((Envelope, "serialization"))
    wanted.extend((model, "serialization") for model in EVENTS.values())
    return wanted


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or a string, never JSON null: drop the null branch."""
    options = schema.get("anyOf")
    if options:
        rest = [s for s in options if s.get("type") != "null"]
        if len(rest) == 1:
            merged = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
            return {**rest[0], **merged}
    return {k: v for k, v in schema.items() if k != "default" or v is not None}


def _query_params(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(mode="validation")
    required = set(schema.get("required", ()))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": _not_null(prop)}
        for name, prop in schema.get("properties", {}).items()
    ]


def _content(answer: type[Output] | Raw, schemas: _Schemas) -> dict[str, Any]:
    if isinstance(answer, Raw):
        return {answer.media_type: {"schema": answer.schema}}
    return {"application/json": {"schema": schemas.ref(answer, "serialization")}}


def _operation(path: str, op: Operation, schemas: _Schemas) -> dict[str, Any]:
    doc: dict[str, Any] = {"summary": op.summary}
    if op.description:
        doc["description"] = op.description
    path_params = re.findall(r"{(\w+)}", path)
    params = [
        {"name": name, "in": "path", "required": True, "schema": _PATH_SCHEMAS[name]}
        for name in path_params
    ]
    if op.query is not None:
        params += _query_params(op.query)
    params += [
        {
            "name": h.name,
            "in": "header",
            "required": h.required,
            "schema": h.adapter.json_schema(),
            "description": h.description,
        }
        for h in op.headers
    ]
    if params:
        doc["parameters"] = params
    if op.body is not None or op.raw_body is not None:
        body = schemas.ref(op.body, "validation") if op.body is not None else op.raw_body
        doc["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": body}},
        }
    responses: dict[str, Any] = {}
    for index, (status, answer) in enumerate(op.answers.items()):
        if answer is None:
            responses[str(status)] = {"description": "no content"}
            continue
        content = _content(answer, schemas)
        if index == 0:
            for other in op.alternatives:
                content |= _content(other, schemas)
        if isinstance(answer, Raw):
            description = answer.description
        else:
            description = (answer.__doc__ or answer.__name__).strip().splitlines()[0]
        responses[str(status)] = {"description": description, "content": content}
    errors = set(op.errors)
    if op.signed:
        errors.add(401)
    if op.body is not None:
        errors |= {400, 408, 413, 422}
    # Path parameters are validated; so is every signed call's query string (an unknown
    # parameter is refused).
    if path_params or op.signed:
        errors.add(422)
    for status in sorted(errors):
        responses[str(status)] = {"$ref": f"#/components/responses/E{status}"}
    doc["responses"] = responses
    if not op.signed:
        doc["security"] = []
    return doc


def _webhook(name: str, schemas: _Schemas) -> dict[str, Any]:
    model = EVENTS[name]
    envelope = schemas.components[Envelope.__name__]
    body = {
        "type": "object",
        "description": envelope.get("description", ""),
        "required": [*envelope["required"], "data"],
        "additionalProperties": False,
        "properties": {
            **envelope["properties"],
            "event": {"const": name},
            "data": schemas.ref(model, "serialization"),
        },
    }
    return {
        "post": {
            "summary": (model.__doc__ or name).strip().splitlines()[0],
            "parameters": [
                {"name": n, "in": "header", "required": True, "description": d, "schema": s}
                for n, d, s in WEBHOOK_HEADERS
            ],
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {
                "2XX": {"description": "delivered"},
                "default": {
                    "description": "408, 425, 429, 3xx and 5xx are retried with backoff; "
                    "any other answer makes the event dead"
                },
            },
            "security": [],
        }
    }


def build_openapi(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The whole document, built once per app."""
    operations = _operations(routes)
    schemas = _Schemas(_wanted(operations))
    paths: dict[str, Any] = {}
    for path, method, op in operations:
        paths.setdefault(path, {})[method] = _operation(path, op, schemas)
    error = schemas.ref(ErrorBody, "serialization")
    return {
        "openapi": "3.1.0",
        "info": {"title": "wa-sidecar", "version": __version__, "description": SIGNING},
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {
                "hmac": {"type": "apiKey", "in": "header", "name": "X-HMAC-Signature"},
                "timestamp": {"type": "apiKey", "in": "header", "name": "X-Timestamp"},
            },
            "responses": {
                f"E{status}": {
                    "description": text,
                    "content": {"application/json": {"schema": error}},
                }
                for status, text in ERROR_TEXT.items()
            },
        },
        "security": [{"hmac": [], "timestamp": []}],
        "paths": paths,
        "webhooks": {name: _webhook(name, schemas) for name in EVENTS},
    }
