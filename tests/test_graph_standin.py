"""The Cloud API stand-in (tests/support/graph.py) answers as graph.facebook.com documents."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.graph import (
    GraphStandIn,
    graph_standin,
    inbound_text,
    parse_multipart,
    sign,
    status_update,
)

NUMBER_ID = "106540352242922"
TOKEN = "EAAG-test-token-for-106540352242922"
OTHER_ID = "106540352242999"
OTHER_TOKEN = "EAAG-test-token-for-other"


@pytest.fixture(scope="module")
def graph() -> Iterator[GraphStandIn]:
    with graph_standin() as standin:
        standin.add_number(NUMBER_ID, TOKEN)
        standin.add_number(OTHER_ID, OTHER_TOKEN)
        yield standin


@pytest.fixture
def client(graph: GraphStandIn) -> Iterator[httpx.Client]:
    graph.heal()
    graph.delay = 0.0
    with httpx.Client(
        base_url=graph.base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ) as c:
        yield c


def text(to: str = "+5511999990000", body: str = "hello") -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"body": body},
    }


def send(client: httpx.Client, payload: Any, number: str = NUMBER_ID) -> httpx.Response:
    return client.post(f"/v25.0/{number}/messages", json=payload)


def assert_graph_error(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) >= {"message", "type", "code", "error_data", "fbtrace_id"}
    assert error["code"] == code
    assert error["type"] == "OAuthException"
    assert isinstance(error["fbtrace_id"], str) and error["fbtrace_id"]
    return error


def test_text_success_shape_and_record(graph: GraphStandIn, client: httpx.Client) -> None:
    before = len(graph.sent)
    payload = {**text(), "context": {"message_id": "wamid.previous"}}
    response = send(client, payload)
    assert response.status_code == 200
    data = response.json()
    assert data["messaging_product"] == "whatsapp"
    assert data["contacts"] == [{"input": "+5511999990000", "wa_id": "5511999990000"}]
    [message] = data["messages"]
    assert set(message) == {"id"} and message["id"].startswith("wamid.")
    record = graph.sent[before]
    assert record["phone_number_id"] == NUMBER_ID
    assert record["body"] == payload
    assert record["wamid"] == message["id"]
    assert abs(record["timestamp"] - time.time()) < 60


def test_other_types_accepted(client: httpx.Client) -> None:
    base = {"messaging_product": "whatsapp", "to": "15551234567"}
    bodies = [
        {"type": "image", "image": {"link": "https://example.com/a.jpg", "caption": "c"}},
        {"type": "document", "document": {"id": "123", "filename": "a.pdf"}},
        {"type": "audio", "audio": {"id": "123"}},
        {"type": "video", "video": {"link": "http://example.com/v.mp4"}},
        {"type": "location", "location": {"latitude": -23.5, "longitude": -46.6, "name": "SP"}},
    ]
    for extra in bodies:
        response = send(client, {**base, **extra})
        assert response.status_code == 200, response.text
        assert "message_status" not in response.json()["messages"][0]
    template = {"type": "template", "template": {"name": "hello", "language": {"code": "en_US"}}}
    response = send(client, {**base, **template})
    assert response.json()["messages"][0]["message_status"] == "accepted"


def test_auth_failures_are_190(graph: GraphStandIn, client: httpx.Client) -> None:
    calls = graph.calls
    wrong_token = client.post(
        f"/v25.0/{NUMBER_ID}/messages", json=text(), headers={"Authorization": "Bearer nope"}
    )
    # A token valid for another number is still wrong for this one.
    other_token = client.post(
        f"/v25.0/{NUMBER_ID}/messages",
        json=text(),
        headers={"Authorization": f"Bearer {OTHER_TOKEN}"},
    )
    unknown_number = send(client, text(), number="999")
    missing = httpx.post(f"{graph.base}/v25.0/{NUMBER_ID}/messages", json=text())
    for response in (wrong_token, other_token, unknown_number, missing):
        error = assert_graph_error(response, 401, 190)
        assert error["message"] == "Invalid OAuth access token - Cannot parse access token"
        assert error["error_data"]["details"]
    assert graph.calls == calls + 4


def test_wrong_version_is_400(client: httpx.Client) -> None:
    response = client.post(f"/v19.0/{NUMBER_ID}/messages", json=text())
    assert response.status_code == 400
    assert "v19.0" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"messaging_product": "sms"}, "messaging_product"),
        ({"to": "12345"}, "to"),
        ({"to": "55-11-9999"}, "to"),
        ({"to": "+1234567890123456"}, "to"),
        ({"recipient_type": "group"}, "recipient_type"),
        ({"type": "hologram"}, "type"),
        ({"text": {"body": ""}}, "text['body']"),
        ({"text": {"body": "x" * 4097}}, "text['body']"),
        ({"text": {}}, "text['body']"),
        ({"context": {}}, "context['message_id']"),
        ({"type": "image", "image": {}}, "image['link']"),
        ({"type": "image", "image": {"link": "https://e.x/a", "id": "1"}}, "image['link']"),
        ({"type": "image", "image": {"link": "ftp://e.x/a"}}, "image['link']"),
        ({"type": "audio", "audio": {"id": "1", "caption": "no"}}, "audio['caption']"),
        ({"type": "video", "video": {"id": "1", "filename": "v.mp4"}}, "video['filename']"),
        ({"type": "location", "location": {"latitude": "1", "longitude": 2}}, "latitude"),
        ({"type": "location", "location": {"latitude": 1}}, "longitude"),
        ({"type": "template", "template": {"language": {"code": "en"}}}, "template['name']"),
        ({"type": "template", "template": {"name": "t", "language": {}}}, "['code']"),
    ],
)
def test_validation_is_100_naming_the_field(
    client: httpx.Client, change: dict[str, Any], field: str
) -> None:
    error = assert_graph_error(send(client, {**text(), **change}), 400, 100)
    assert error["message"] == "(#100) Invalid parameter"
    assert field in error["error_data"]["details"]


def test_scripted_failures(graph: GraphStandIn, client: httpx.Client) -> None:
    calls = graph.calls
    graph.fail_next(131048, count=2, details="too many", retry_after=7)
    graph.fail_next(190, http_status=401, message="Error validating access token")
    for _ in range(2):
        response = send(client, text())
        error = assert_graph_error(response, 400, 131048)
        assert error["error_data"]["details"] == "too many"
        assert response.headers["retry-after"] == "7"
    error = assert_graph_error(send(client, text()), 401, 190)
    assert error["message"] == "Error validating access token"
    assert send(client, text()).status_code == 200

    graph.fail_all(131000, http_status=500)
    for _ in range(3):
        assert_graph_error(send(client, text()), 500, 131000)
    graph.heal()
    assert send(client, text()).status_code == 200
    assert graph.calls == calls + 8
    assert [a["status"] for a in graph.attempts[-8:]] == [400, 400, 401, 200, 500, 500, 500, 200]


def test_delay_slows_messages(graph: GraphStandIn, client: httpx.Client) -> None:
    graph.delay = 0.5
    with pytest.raises(httpx.ReadTimeout):
        client.post(f"/v25.0/{NUMBER_ID}/messages", json=text(), timeout=0.1)
    graph.delay = 0.0


def test_media_round_trip(graph: GraphStandIn, client: httpx.Client) -> None:
    # Every byte value, CRLFs and dashes included, must survive the hand-written parser.
    data = bytes(range(256)) * 8 + b"\r\n--\r\n\r\n"
    upload = client.post(
        f"/v25.0/{NUMBER_ID}/media",
        data={"messaging_product": "whatsapp", "type": "image/png"},
        files={"file": ("pic.png", data, "image/png")},
    )
    assert upload.status_code == 200, upload.text
    media_id = upload.json()["id"]
    assert set(upload.json()) == {"id"} and media_id.isdigit()

    info = client.get(f"/v25.0/{media_id}")
    assert info.status_code == 200
    meta = info.json()
    assert meta == {
        "messaging_product": "whatsapp",
        "url": meta["url"],
        "mime_type": "image/png",
        "sha256": hashlib.sha256(data).hexdigest(),
        "file_size": len(data),
        "id": media_id,
    }
    assert meta["url"].startswith(f"{graph.base}/media-download/{media_id}?token=")

    download = client.get(meta["url"])
    assert download.status_code == 200
    assert download.content == data
    assert download.headers["content-type"] == "image/png"
    assert httpx.get(meta["url"]).status_code == 401

    unknown = client.get("/v25.0/1234567890")
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == 100
    assert client.get(f"/v25.0/{media_id}", headers={"Authorization": "Bearer x"}).status_code == (
        401
    )
    bad_upload = client.post(
        f"/v25.0/{NUMBER_ID}/media",
        data={"messaging_product": "whatsapp"},
        files={"other": ("a", b"a")},
    )
    assert "file" in assert_graph_error(bad_upload, 400, 100)["error_data"]["details"]


def test_parse_multipart_keeps_filename_and_type() -> None:
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="messaging_product"\r\n\r\nwhatsapp'
        b'\r\n--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a b.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nline1\r\nline2\r\n--XyZ--\r\n"
    )
    fields = parse_multipart(body, "multipart/form-data; boundary=XyZ")
    assert fields["messaging_product"] == (b"whatsapp", None, None)
    assert fields["file"] == (b"line1\r\nline2", "a b.txt", "text/plain")


def test_inbound_text_shape() -> None:
    payload = inbound_text(NUMBER_ID, "15550783881", "5511988887777", "oi")
    assert payload["object"] == "whatsapp_business_account"
    [entry] = payload["entry"]
    [change] = entry["changes"]
    assert change["field"] == "messages"
    value = change["value"]
    assert value["messaging_product"] == "whatsapp"
    assert value["metadata"] == {
        "display_phone_number": "15550783881",
        "phone_number_id": NUMBER_ID,
    }
    assert value["contacts"] == [{"profile": {"name": "Maria"}, "wa_id": "5511988887777"}]
    [message] = value["messages"]
    assert message["from"] == "5511988887777"
    assert message["id"].startswith("wamid.")
    assert message["timestamp"].isdigit()
    assert message["type"] == "text" and message["text"] == {"body": "oi"}


def test_inbound_image_media_downloads(graph: GraphStandIn, client: httpx.Client) -> None:
    data = b"\xff\xd8\xff\xe0 jpeg-ish"
    payload = graph.inbound_image(NUMBER_ID, "15550783881", "5511988887777", data, caption="c")
    [message] = payload["entry"][0]["changes"][0]["value"]["messages"]
    assert message["type"] == "image"
    image = message["image"]
    assert set(image) == {"caption", "mime_type", "sha256", "id"}
    assert image["mime_type"] == "image/jpeg" and image["caption"] == "c"
    url = client.get(f"/v25.0/{image['id']}").json()["url"]
    assert client.get(url).content == data


def test_status_update_shapes() -> None:
    sent = status_update(NUMBER_ID, "15550783881", "wamid.X", "sent", "5511988887777")
    value = sent["entry"][0]["changes"][0]["value"]
    assert "messages" not in value and "contacts" not in value
    [status] = value["statuses"]
    assert status["id"] == "wamid.X" and status["status"] == "sent"
    assert status["recipient_id"] == "5511988887777" and status["timestamp"].isdigit()
    assert "conversation" in status and "pricing" in status and "errors" not in status

    failed = status_update(NUMBER_ID, "15550783881", "wamid.X", "failed", "5511988887777")
    [status] = failed["entry"][0]["changes"][0]["value"]["statuses"]
    [error] = status["errors"]
    assert set(error) >= {"code", "title", "message", "error_data"}
    assert error["error_data"]["details"]

    custom = [{"code": 131047, "title": "t", "message": "t", "error_data": {"details": "d"}}]
    failed = status_update(NUMBER_ID, "1", "wamid.X", "failed", "2", errors=custom)
    assert failed["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"] == custom


def test_sign_matches_meta_header() -> None:
    body = json.dumps(inbound_text(NUMBER_ID, "1", "2", "x")).encode()
    expected = hmac.new(b"app-secret", body, hashlib.sha256).hexdigest()
    assert sign(body, "app-secret") == f"sha256={expected}"
