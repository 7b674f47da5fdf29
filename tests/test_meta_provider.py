"""The Meta Cloud API provider against the local Graph API stand-in: shapes and error classes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.base import ErrorKind, ProviderError
from adapters.meta import MetaConfig, MetaEngine, classify
from service.store import MessageRecord, SessionRecord
from tests.support.graph import GraphStandIn, graph_standin

PNID, TOKEN = "109876543210", "EAAG-test-token"
CONFIG = MetaConfig(phone_number_id=PNID, access_token=TOKEN, app_secret="s", verify_token="v")
SESSION = SessionRecord(session_id="m1", workspace_id="acme", meta_sealed="x")


@pytest.fixture
def graph() -> Iterator[GraphStandIn]:
    with graph_standin() as g:
        g.add_number(PNID, TOKEN)
        yield g


@pytest.fixture
async def provider(graph: GraphStandIn, tmp_path: Path) -> AsyncIterator[MetaEngine]:
    async with httpx.AsyncClient() as client:
        yield MetaEngine(
            client,
            graph_url=graph.base,
            version="v25.0",
            sessions_root=tmp_path,
            credentials=lambda _record: CONFIG,
            retry_base=0.01,
        )


def message(kind: str, **content: Any) -> MessageRecord:
    return MessageRecord(
        id="msg_1",
        session_id="m1",
        workspace_id="acme",
        direction="out",
        chat_id="5511988880002@c.us",
        type=kind,
        content=json.dumps(content),
        status="sending",
    )


async def test_each_type_has_the_documented_shape(
    provider: MetaEngine, graph: GraphStandIn, tmp_path: Path
) -> None:
    media_dir = tmp_path / "acme" / "m1" / "media" / "out"
    media_dir.mkdir(parents=True)
    (media_dir / "a.png").write_bytes(b"\x89PNG-bytes")
    sends = [
        message("text", text="hello", reply_to="wamid.prev", reply_to_provider_id="wamid.prev"),
        message(
            "image",
            text="pic",
            media={"file": "media/out/a.png", "mimetype": "image/png", "size": 10, "url": None},
        ),
        message(
            "document",
            media={
                "file": "media/out/x.pdf",
                "mimetype": "application/pdf",
                "size": 1,
                "url": "https://files.test/x.pdf",
                "filename": "x.pdf",
            },
        ),
        message("location", location={"latitude": 1.5, "longitude": -2.5, "name": "Here"}),
        message("template", template={"name": "order_update", "language": {"code": "en_US"}}),
    ]
    results = [await provider.send(SESSION, m) for m in sends]
    assert all(r.provider_message_id.startswith("wamid.") for r in results)
    bodies = [s["body"] for s in graph.sent]
    assert [b["type"] for b in bodies] == ["text", "image", "document", "location", "template"]
    assert all(b["messaging_product"] == "whatsapp" and b["to"] == "5511988880002" for b in bodies)
    text, image, document, location, template = bodies
    assert text["text"]["body"] == "hello" and text["context"] == {"message_id": "wamid.prev"}
    assert set(image["image"]) == {"id", "caption"}  # inline bytes were uploaded first
    assert graph.media[image["image"]["id"]].data == b"\x89PNG-bytes"
    assert document["document"] == {"link": "https://files.test/x.pdf", "filename": "x.pdf"}
    assert location["location"] == {"latitude": 1.5, "longitude": -2.5, "name": "Here"}
    assert template["template"]["name"] == "order_update"


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        (1, 500, ErrorKind.TRANSIENT),
        (2, 503, ErrorKind.TRANSIENT),
        (131000, 500, ErrorKind.TRANSIENT),
        (131016, 503, ErrorKind.TRANSIENT),
        (130429, 429, ErrorKind.TRANSIENT),
        (190, 401, ErrorKind.PROVIDER_DOWN),
        (0, 401, ErrorKind.PROVIDER_DOWN),
        (10, 403, ErrorKind.PROVIDER_DOWN),
        (200, 403, ErrorKind.PROVIDER_DOWN),
        (299, 403, ErrorKind.PROVIDER_DOWN),
        (368, 403, ErrorKind.PROVIDER_DOWN),
        (131031, 403, ErrorKind.PROVIDER_DOWN),
        (131048, 400, ErrorKind.PROVIDER_DOWN),
        (131026, 400, ErrorKind.RECIPIENT),
        (131047, 400, ErrorKind.RECIPIENT),
        (131050, 400, ErrorKind.RECIPIENT),
        (131056, 400, ErrorKind.RECIPIENT),
        (100, 400, ErrorKind.REQUEST),
        (131008, 400, ErrorKind.REQUEST),
        (131009, 400, ErrorKind.REQUEST),
        (132000, 400, ErrorKind.REQUEST),
        (132016, 400, ErrorKind.REQUEST),
    ],
)
async def test_error_classes_by_code(
    provider: MetaEngine, graph: GraphStandIn, code: int, status: int, kind: ErrorKind
) -> None:
    assert classify(code, status) is kind
    graph.fail_all(code, status)
    with pytest.raises(ProviderError) as info:
        await provider.send(SESSION, message("text", text="x"))
    assert info.value.kind is kind and info.value.code == code
    assert str(code) in info.value.describe()
    # Transient errors are retried here before giving up; nothing else is.
    assert graph.calls == (3 if kind is ErrorKind.TRANSIENT else 1)
    assert (info.value.recipient_backoff is not None) == (code == 131056)


async def test_a_transient_error_that_clears_is_retried_to_success(
    provider: MetaEngine, graph: GraphStandIn
) -> None:
    graph.fail_next(131000, 500, count=2)
    result = await provider.send(SESSION, message("text", text="x"))
    assert result.provider_message_id.startswith("wamid.") and graph.calls == 3


async def test_unreachable_graph_and_http_status_fallbacks(tmp_path: Path) -> None:
    async with httpx.AsyncClient() as client:
        dead = MetaEngine(
            client,
            graph_url="http://127.0.0.1:9",
            version="v25.0",
            sessions_root=tmp_path,
            credentials=lambda _r: CONFIG,
            retry_base=0.01,
        )
        with pytest.raises(ProviderError) as info:
            await dead.send(SESSION, message("text", text="x"))
    assert info.value.kind is ErrorKind.TRANSIENT
    assert classify(None, 502) is ErrorKind.TRANSIENT
    assert classify(None, 401) is ErrorKind.PROVIDER_DOWN
    assert classify(999999, 400) is ErrorKind.REQUEST


async def test_groups_are_a_recipient_error(provider: MetaEngine, graph: GraphStandIn) -> None:
    group = MessageRecord(
        id="g",
        session_id="m1",
        workspace_id="acme",
        direction="out",
        chat_id="120363025246125486@g.us",
        type="text",
        content='{"text":"x"}',
        status="sending",
    )
    with pytest.raises(ProviderError) as info:
        await provider.send(SESSION, group)
    assert info.value.kind is ErrorKind.RECIPIENT and graph.calls == 0
