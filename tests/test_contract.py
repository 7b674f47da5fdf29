"""The API contract has one source: the models that validate requests and build answers.

These check that the served document says what the service does (required fields, limits,
every status an operation can answer, every webhook event), that the docs' tables are
the registries' tables, and that a wrong method's 405 names every method of its path.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import jsonschema_rs
import pytest

from service import doctables
from service.errors import ERRORS
from service.models.events import EVENTS
from service.models.responses import Message
from service.store import MESSAGE_STATUSES, SESSION_STATUSES
from tests.support.server import ROOT


@pytest.fixture
def document(live: str) -> dict[str, Any]:
    response = httpx.get(f"{live}/openapi.json")
    assert response.status_code == 200
    return response.json()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
    ]


def schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = document["components"]["schemas"][name]
    return found


def test_every_operation_that_validates_documents_422(document: dict[str, Any]) -> None:
    """Path parameters are validated, and so is every signed call's query and body."""
    for path, method, op in operations(document):
        validates = "{" in path or path.startswith("/api/")
        if validates:
            assert "422" in op["responses"], f"{method} {path} answers 422 undocumented"
        else:
            assert "422" not in op["responses"], f"{method} {path} never answers 422"
        if "requestBody" in op:
            assert {"400", "413"} <= set(op["responses"]), f"{method} {path}"


def test_signed_operations_document_401_and_unsigned_ones_say_so(
    document: dict[str, Any],
) -> None:
    for path, method, op in operations(document):
        if path.startswith("/api/"):
            assert "401" in op["responses"], f"{method} {path}"
            assert "security" not in op, f"{method} {path} must inherit the HMAC scheme"
        else:
            assert op.get("security") == [], f"{method} {path} needs no API signature"


def test_meta_webhook_documents_its_400_and_its_signature_header(
    document: dict[str, Any],
) -> None:
    post = document["paths"]["/webhooks/meta"]["post"]
    assert {"200", "400", "401"} <= set(post["responses"])
    headers = {p["name"]: p for p in post["parameters"] if p["in"] == "header"}
    assert headers["X-Hub-Signature-256"]["required"] is True


def test_request_schemas_list_required_fields_and_limits(document: dict[str, Any]) -> None:
    create = schema(document, "SessionCreate")
    assert create["required"] == ["workspace_id"]
    assert create["additionalProperties"] is False
    workspace = create["properties"]["workspace_id"]
    assert workspace["maxLength"] == 64
    assert re.fullmatch(workspace["pattern"].strip("^$"), "acme-1")
    assert not re.fullmatch(workspace["pattern"], "a..b")
    send = schema(document, "SendMessage")
    assert set(send["required"]) == {"to", "type"}
    key = send["properties"]["idempotency_key"]["anyOf"][0]
    assert (key["minLength"], key["maxLength"]) == (1, 190)
    for name in ("SessionCreate", "SessionPatch"):
        fields = schema(document, name)["properties"]
        metadata = fields["metadata"]["anyOf"][0]
        assert metadata["type"] == "object" and "4096 bytes" in metadata["description"]
        assert metadata["propertyNames"] == {"minLength": 1, "maxLength": 64}
        events = fields["webhook_events"]["anyOf"][0]
        assert (events["type"], events["items"]["enum"]) == ("array", list(EVENTS))
    session = schema(document, "Session")
    assert {"metadata", "webhook_events", "proxy"} <= set(session["required"])
    for name in ("SessionCreate", "SessionPatch"):
        proxy = schema(document, name)["properties"]["proxy"]["anyOf"][0]
        assert proxy == {"$ref": "#/components/schemas/ProxyInput"}
    proxy_input = schema(document, "ProxyInput")
    assert proxy_input["required"] == ["url"]
    assert proxy_input["properties"]["password"]["anyOf"][0]["writeOnly"] is True
    shown = schema(document, "SessionProxy")
    assert set(shown["properties"]) == {"url", "authenticated"}
    meta = schema(document, "MetaInput")
    assert set(meta["required"]) == {"phone_number_id", "access_token"}
    assert meta["properties"]["access_token"]["writeOnly"] is True


def test_message_schema_has_every_field_the_service_sends(document: dict[str, Any]) -> None:
    message = schema(document, "Message")
    fields = set(message["properties"])
    for name in ("reply_to", "priority", "notify_name", "timestamp", "from_phone", "chat_phone"):
        assert name in fields
    assert "from" in fields and "to" in fields
    assert set(message["properties"]["status"]["enum"]) == set(MESSAGE_STATUSES)
    assert "received" in MESSAGE_STATUSES
    assert message["additionalProperties"] is False


def test_session_status_enum_is_the_stores(document: dict[str, Any]) -> None:
    status = schema(document, "Session")["properties"]["status"]
    assert status["enum"] == list(SESSION_STATUSES)


def test_answers_validate_against_the_document(api: httpx.Client, document: dict) -> None:
    """A created session, a listed one and an error, checked against their schemas."""

    def check(answer: httpx.Response, ref: str) -> None:
        resolved = {**document, "$ref": ref}
        errors = list(jsonschema_rs.Draft202012Validator(resolved).iter_errors(answer.json()))
        assert not errors, [e.message for e in errors]

    created = api.post("/api/sessions", json={"workspace_id": "acme", "start": False})
    assert created.status_code == 201
    check(created, "#/components/schemas/Session")
    check(api.get("/api/sessions"), "#/components/schemas/SessionList")
    bad = api.post("/api/sessions", json={"workspace_id": "a..b", "start": "yes"})
    assert bad.status_code == 422
    check(bad, "#/components/schemas/ErrorBody")


def test_a_bad_body_lists_every_problem(api: httpx.Client) -> None:
    response = api.post(
        "/api/sessions", json={"workspace_id": "../x", "start": "yes", "colour": "red"}
    )
    assert response.status_code == 422
    details = response.json()["error"]["details"]
    assert details["field"] == "workspace_id"
    assert {e["field"] for e in details["errors"]} == {"workspace_id", "start", "colour"}
    # The value sent is never echoed back: it could be a secret.
    assert "../x" not in response.text


def test_strict_types_refuse_coercion(api: httpx.Client) -> None:
    """`"false"` is not false and `1` is not a string."""
    response = api.post("/api/sessions", json={"workspace_id": "w", "start": "false"})
    assert response.status_code == 422
    assert response.json()["error"]["details"]["field"] == "start"
    response = api.post("/api/sessions", json={"workspace_id": 1})
    assert response.status_code == 422


def test_a_query_parameter_given_twice_is_refused(api: httpx.Client) -> None:
    response = api.get("/api/sessions?workspace_id=a&workspace_id=b")
    assert response.status_code == 422
    assert response.json()["error"]["details"]["field"] == "workspace_id"


def test_an_unknown_query_parameter_is_refused(api: httpx.Client) -> None:
    """A misspelt filter must not widen a list to every tenant's rows."""
    response = api.get("/api/sessions?workspace=acme")
    assert response.status_code == 422
    assert response.json()["error"]["details"]["field"] == "workspace"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/sessions/s1", {"GET", "HEAD", "PATCH", "DELETE"}),
        ("DELETE", "/api/sessions", {"GET", "HEAD", "POST"}),
        ("PUT", "/webhooks/meta", {"GET", "HEAD", "POST"}),
    ],
)
def test_405_names_every_method_of_the_path(
    api: httpx.Client, method: str, path: str, allowed: set[str]
) -> None:
    response = api.request(method, path)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed


def test_every_webhook_event_is_documented(document: dict[str, Any]) -> None:
    assert set(document["webhooks"]) == set(EVENTS)
    for name, item in document["webhooks"].items():
        body = item["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body["properties"]["event"] == {"const": name}
        assert body["properties"]["data"] == {
            "$ref": f"#/components/schemas/{EVENTS[name].__name__}"
        }
        assert {"id", "timestamp", "workspace_id", "session_id", "metadata", "data"} <= set(
            body["required"]
        )
        assert body["properties"]["metadata"]["anyOf"][0]["type"] == "object"


def test_the_message_record_in_message_received_is_the_api_message() -> None:
    assert EVENTS["message_received"].model_fields["message"].annotation is Message


def test_the_docs_tables_are_generated_from_the_registries() -> None:
    """docs/api.md's error table and docs/webhooks.md's event table are `python -m service
    docs` output: a code or event added without regenerating fails here."""
    for path, text in doctables.generated().items():
        assert path.read_text() == text, f"{path.name} is stale: run python -m service docs"


def test_the_event_table_names_every_event_and_its_fields() -> None:
    text = (ROOT / "docs" / "webhooks.md").read_text()
    table = text[text.index("<!-- events:begin -->") : text.index("<!-- events:end -->")]
    rows = [line.split("|")[1:3] for line in table.splitlines()[3:]]
    assert [name.strip(" `") for name, _ in rows] == list(EVENTS)
    for name, data in rows:
        model = EVENTS[name.strip(" `")]
        documented = {f.alias or key for key, f in model.model_fields.items()}
        assert documented == set(re.findall(r"[a-z_]+", data)), name


def test_the_error_table_names_every_registered_code_under_its_status() -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    table = text[text.index("<!-- errors:begin -->") : text.index("<!-- errors:end -->")]
    rows = {
        (int(cells[1]), cells[2].strip(" `"))
        for cells in (line.split("|") for line in table.splitlines()[3:])
    }
    assert rows == {(e.status, e.code) for e in ERRORS}
    for code in ("no_qr", "session_not_connected", "delivery_not_dead", "message_not_found"):
        assert code in {c for _, c in rows}


def test_the_documents_error_answers_name_every_code_of_their_status(
    document: dict[str, Any],
) -> None:
    responses = document["components"]["responses"]
    for error in ERRORS:
        assert f"`{error.code}`" in responses[f"E{error.status}"]["description"], error.code


def test_null_means_the_default_as_a_left_out_field_does(api: httpx.Client) -> None:
    """PHP arrays carry nulls: `'start' => $start ?? null` must not be a 422."""
    response = api.post(
        "/api/sessions",
        json={"workspace_id": "w", "session_id": "n1", "start": None, "provider_mode": None},
    )
    assert response.status_code == 201, response.text
    assert response.json()["provider_mode"] == "auto"
    assert response.json()["desired_state"] == "running"


def test_unknown_query_parameters_are_refused_on_every_signed_call(api: httpx.Client) -> None:
    api.post("/api/sessions", json={"workspace_id": "w", "session_id": "q1", "start": False})
    response = api.get("/api/sessions/q1?colour=red")
    assert response.status_code == 422
    assert response.json()["error"]["details"]["field"] == "colour"


def test_ids_in_a_patch_say_how_to_change_them(api: httpx.Client) -> None:
    api.post("/api/sessions", json={"workspace_id": "w", "session_id": "p1", "start": False})
    response = api.patch("/api/sessions/p1", json={"workspace_id": "other"})
    assert response.status_code == 422
    assert "create a new session" in response.json()["error"]["message"]


def test_an_unknown_field_name_is_not_echoed_at_any_length(api: httpx.Client) -> None:
    response = api.post("/api/sessions", json={"workspace_id": "w", "x" * 5000: 1})
    assert response.status_code == 422
    assert len(response.json()["error"]["details"]["field"]) <= 64


async def test_a_stored_webhook_body_matches_its_documented_schema(
    document: dict[str, Any], settings: Any
) -> None:
    """The envelope is written by the store: check real bodies against `webhooks`."""
    from service.models.events import MessageStatusUpdated, SessionStatusChanged
    from service.store import SessionRecord, SQLiteStore

    store = SQLiteStore(settings.storage_dir / "contract.sqlite3")
    await store.open()
    try:
        await store.create_session(
            SessionRecord(session_id="s", workspace_id="w", metadata='{"account_id":42}')
        )
        events = [
            SessionStatusChanged.model_validate(
                {"status": "initializing", "previous": "stopped"}
            ).new_event(),
            MessageStatusUpdated.model_validate(
                {
                    "message_id": "msg_1",
                    "provider_message_id": None,
                    "status": "failed",
                    "provider": "webjs",
                    "error": "interrupted",
                }
            ).new_event(),
        ]
        await store.update_session("s", {"status": "initializing"}, events)
        written = await store.list_events(session_id="s")
    finally:
        await store.close()
    assert [e.event for e in written] == ["session_status_changed", "message_status_updated"]
    for event in written:
        body = document["webhooks"][event.event]["post"]["requestBody"]["content"]
        schema = {**document, **body["application/json"]["schema"]}
        validator = jsonschema_rs.Draft202012Validator(schema)
        errors = [e.message for e in validator.iter_errors(json.loads(event.body))]
        assert not errors, (event.event, errors)
        # And a body for another event does not pass as this one.
        other = {**json.loads(event.body), "event": "qr_code_generated"}
        assert not validator.is_valid(other)
