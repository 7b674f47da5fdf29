"""A campaign in cluster mode: created through the api process, run by the worker that
holds its session, and taken over where it stopped when that worker is killed -9."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster, running_cluster
from tests.support.mariadb import PrivateMariaDB
from tests.support.sandbox import Phone, eventually, sandbox_process

pytestmark = pytest.mark.browser

NUMBER = "5511999990091"
COUNT = 150


@pytest.fixture
def cluster(tmp_path: Path, mariadb_server: PrivateMariaDB) -> Iterator[tuple[Cluster, Phone]]:
    with (
        sandbox_process() as phone,
        running_cluster(tmp_path / "storage", phone, mariadb_server, "campaigns") as group,
    ):
        yield group, phone


def texts(phone: Phone) -> list[str]:
    return [str(m["text"]) for m in phone.sent(NUMBER) if str(m.get("text", "")).startswith("c ")]


def test_a_killed_workers_campaign_goes_on_from_another_worker(
    cluster: tuple[Cluster, Phone],
) -> None:
    group, phone = cluster
    group.start("w1", "w2")
    group.link("s1", NUMBER)
    body: dict[str, Any] = {
        "name": "cluster",
        "message": {"type": "text", "text": "c {{i}}"},
        "recipients": [{"to": f"55118{i:08d}", "variables": {"i": str(i)}} for i in range(COUNT)],
        "rate": {"per_minute": 6000, "jitter": 0},
    }
    created = group.api.api.post("/api/sessions/s1/campaigns", json=body)
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    eventually(lambda: len(texts(phone)) >= 20 or None, 90, "the owner to start sending")
    victim = group.owners()["s1"]
    group.workers[victim].kill9()
    assert len(texts(phone)) < COUNT, "the campaign ended before the kill"
    survivor = "w2" if victim == "w1" else "w1"
    eventually(lambda: group.owners().get("s1") == survivor, 60, "the survivor to take s1")

    def done() -> dict[str, Any] | None:
        answer: dict[str, Any] = group.api.api.get(
            f"/api/sessions/s1/campaigns/{campaign_id}"
        ).json()
        return answer if answer["status"] == "completed" else None

    final = eventually(done, 180, "the campaign to complete on the survivor")
    sent = texts(phone)
    assert len(sent) == len(set(sent)), "a recipient got the message twice"
    assert sent == sorted(sent, key=lambda t: int(t.split()[1])), "the order was not kept"
    counts = final["counts"]
    assert counts["failed"] <= 1  # at most the send the kill cut off: interrupted
    assert counts["sent"] + counts["failed"] == COUNT
    assert counts["sent"] <= len(sent) <= COUNT
