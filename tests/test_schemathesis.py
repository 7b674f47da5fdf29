"""The live service against its own /openapi.json, fuzzed by schemathesis.

One sidecar (records only, no Chromium) on 127.0.0.1 serves the whole module. Schemathesis
loads the schema from it and, for every documented operation, sends the schema's examples,
its coverage cases (boundaries and deliberately invalid values) and fuzzed requests, positive
and negative. Every /api/* request is signed over the bytes on the wire. Each answer must not
be a 5xx, must have a documented status code and content type, and its body must match the
documented schema.

No operation is left out. Those that cannot succeed from here are still sent, and must give
their documented refusal:

- `POST /webhooks/meta` needs Meta's X-Hub-Signature-256 under a session's app secret: 400
  (not JSON) or 401.
- `GET /media/{token}` and `GET /qr/{token}.png` need tokens the service signed: 404.
- `GET /webhooks/meta` needs a session's verify token: 403.
- Messages and campaigns need the browser runtime, which this app leaves out: 422 for an
  invalid request, else 409 `runtime_disabled`.

Reproducible: derandomized Hypothesis, no example database, a fixed number of examples per
operation (plus schemathesis' coverage cases). About 15 s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CheckContext

from service.app import create_app
from service.settings import Settings
from service.store import NewEvent, SessionRecord, SQLiteStore
from tests.conftest import API_SECRET, base_env
from tests.support.schema_run import FreshSignature
from tests.support.server import serve_app

MAX_EXAMPLES = 30

# Sessions that exist before the run, so id-taking operations reach past their 404 (see CONFIG).
SEEDED = {"s1": "w1", "s2": "w1", "s3": "w2"}

# Built here rather than discovered, so no schemathesis.toml lying around changes the run.
# Hypothesis settings (examples, derandomize) are on the test itself.
CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {
            "mode": "all",  # positive and negative data
            # The signature headers are computed by FreshSignature, never generated.
            "with-security-parameters": False,
        },
        "phases": {
            # Stateless: every case is one request on its own.
            "stateful": {"enabled": False},
        },
        # A redirect is an answer under test, not something to follow (the next request would
        # also carry the signature of the old path).
        "max-redirects": 0,
        "request-timeout": 30,
        # Some generated ids are those of the seeded sessions, so GET/PATCH/start/qr/... on a
        # real session are exercised, not only their 404.
        "dictionaries": {"seeded_sessions": {"values": list(SEEDED)}},
        "parameters": {
            "path.session_id": {"dictionary": "seeded_sessions", "probability": 0.4},
        },
    }
)


def signed_requests_are_accepted(
    ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """A 401 on /api/* means the harness signed wrongly or the service refused a good
    signature (a false `replayed_request`): either way the request never reached its handler."""
    if case.path.startswith("/api/") and response.status_code == 401:
        raise AssertionError(f"a correctly signed request was refused: {response.text[:300]}")
    return None


signer = FreshSignature(API_SECRET)

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    signed_requests_are_accepted,
]


def seed_session(http: requests.Session, base: str, session_id: str) -> None:
    body: dict[str, str | bool] = {
        "workspace_id": SEEDED[session_id],
        "session_id": session_id,
        "start": False,
    }
    response = http.post(f"{base}/api/sessions", json=body, auth=signer, timeout=30)
    assert response.status_code == 201, response.text


async def seed_deliveries(settings: Settings) -> None:
    store = SQLiteStore(settings.store_url)
    await store.open()
    try:
        await store.create_session(SessionRecord(session_id="events", workspace_id="w3"))
        for status in ("initializing", "qr_required"):
            event = NewEvent("session_status_changed", {"status": status, "previous": "stopped"})
            await store.update_session("events", {"status": status}, [event])
    finally:
        await store.close()


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    """One keep-alive session for every request the run makes."""
    with requests.Session() as session:
        # No proxy or netrc from the environment: the request must reach 127.0.0.1 as signed.
        session.trust_env = False
        yield session


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory, http: requests.Session) -> Iterator[str]:
    """Base URL of one records-only sidecar for the whole module, with SEEDED sessions."""
    storage: Path = tmp_path_factory.mktemp("schemathesis") / "storage"
    # Far above what the run creates: a create must reach its handler, not the 503 at capacity
    # (which not_a_server_error would report; that limit has its own tests).
    env = base_env(storage, MAX_SESSIONS="1000")
    settings = Settings.from_mapping(env)
    # Deliveries to list, so the Delivery schema is checked against real rows: events written
    # through the store before the service starts (with no webhook URL they wait for one).
    asyncio.run(seed_deliveries(settings))
    app = create_app(settings, with_browsers=False)
    with serve_app(app) as base:
        for session_id in SEEDED:
            seed_session(http, base, session_id)
        yield base


@pytest.fixture(scope="module")
def sidecar_schema(sidecar: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{sidecar}/openapi.json", config=CONFIG)


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.32's lazy schema reads and rewrites `node._nodeid`, which pytest 9.2 no
    # longer has (the id is a property over `_id`). Giving it the plain id keeps it working;
    # the per-operation labels still come from the subtests.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


# Every path. Naming them also brings in GET /openapi.json, which schemathesis otherwise leaves
# out because the schema was loaded from it.
schema = schemathesis.pytest.from_fixture("sidecar_schema").include(path_regex="^/")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # Each example is a round trip to a server, and negative data is partly filtered.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_live_service_matches_its_openapi(
    case: schemathesis.Case, sidecar: str, http: requests.Session
) -> None:
    response = case.call_and_validate(base_url=sidecar, session=http, auth=signer, checks=CHECKS)
    # A seeded session that was just deleted comes back, so the operations after DELETE in the
    # schema still find it.
    session_id = (case.path_parameters or {}).get("session_id")
    if case.method == "DELETE" and response.status_code == 204 and session_id in SEEDED:
        seed_session(http, sidecar, session_id)
