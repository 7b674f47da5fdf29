"""A template campaign through the Cloud API stand-in (a meta session: no browser): each
recipient's variables fill the template's parameters; free text is refused up front."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.graph import GraphStandIn, graph_standin
from tests.support.sandbox import eventually
from tests.support.sidecar import Sidecar

PNID, TOKEN = "109876543211", "EAAG-campaign-token"
META = {"phone_number_id": PNID, "access_token": TOKEN, "app_secret": "s", "verify_token": "v"}


@pytest.fixture
def graph() -> Iterator[GraphStandIn]:
    with graph_standin() as g:
        g.add_number(PNID, TOKEN)
        yield g


def test_a_template_campaign_goes_through_the_cloud_api(
    tmp_path: Path, graph: GraphStandIn
) -> None:
    car = Sidecar(tmp_path / "storage", META_GRAPH_URL=graph.base, SIDECAR_PACING="off").start()
    try:
        created = car.api.post(
            "/api/sessions",
            json={
                "workspace_id": "acme",
                "session_id": "m1",
                "provider_mode": "meta",
                "meta": META,
            },
        )
        assert created.status_code == 201, created.text
        car.wait_status("m1", "connected")
        recipients = [
            {"to": f"55119888800{i:02d}", "variables": {"name": f"N{i}"}} for i in range(3)
        ]
        text = car.api.post(
            "/api/sessions/m1/campaigns",
            json={"name": "t", "message": {"type": "text", "text": "hi"}, "recipients": recipients},
        )
        assert text.status_code == 422, text.text
        assert text.json()["error"]["details"]["field"] == "message.type"
        component = {"type": "body", "parameters": [{"type": "text", "text": "{{name}}"}]}
        body: dict[str, Any] = {
            "name": "reminder",
            "message": {
                "type": "template",
                "template": {"name": "reminder", "language": "en_US", "components": [component]},
            },
            "recipients": recipients,
            "rate": {"per_minute": 6000, "jitter": 0},
        }
        campaign = car.api.post("/api/sessions/m1/campaigns", json=body)
        assert campaign.status_code == 201, campaign.text
        path = f"/api/sessions/m1/campaigns/{campaign.json()['id']}"
        done = eventually(
            lambda: (c := car.api.get(path).json())["status"] == "completed" and c,
            60,
            "the template campaign to complete",
        )
        assert done["counts"]["sent"] == 3
        sent = [s["body"] for s in graph.sent if s["body"]["type"] == "template"]
        assert [s["to"] for s in sent] == [f"55119888800{i:02d}" for i in range(3)]
        assert [s["template"]["components"][0]["parameters"][0]["text"] for s in sent] == [
            "N0",
            "N1",
            "N2",
        ]
    finally:
        car.close()
