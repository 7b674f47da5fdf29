"""The registry of error codes: every code an answer can carry is in `ERRORS`, with its status.

The errors themselves refuse an unregistered code, and a scan of the source finds every code
literal there, so a new code cannot reach a client without reaching the docs' table.
"""

from __future__ import annotations

import re

import pytest

from service.errors import (
    ERRORS,
    ApiError,
    Conflict,
    NotFound,
    UnregisteredError,
    error_body,
    error_json,
    registered,
)
from tests.support.server import ROOT

SOURCES = [
    path
    for folder in ("service", "adapters", "webhooks")
    for path in sorted((ROOT / folder).rglob("*.py"))
]

# `code="x"` (raising), `code = "x"` (a class's own code), and the codes the middleware and
# the Meta webhook answer with directly.
CODE_LITERALS = [
    re.compile(r'\bcode\s*=\s*"([a-z_]+)"'),
    re.compile(r'error_body\(\s*"([a-z_]+)"'),
    re.compile(r'_forbidden\(\s*"([a-z_]+)"'),
    re.compile(r'return\s+\(?\s*"([a-z_]+)",\s*f?"'),
]
WITH_STATUS = re.compile(r'error_json\(\s*(\d{3}),\s*"([a-z_]+)"')


def test_an_unregistered_code_is_refused_where_the_error_is_built() -> None:
    with pytest.raises(UnregisteredError, match="no_such_code"):
        Conflict("x", code="no_such_code")
    # Registered, but under another status: 404 `session_exists` is not a thing.
    with pytest.raises(UnregisteredError, match="status 404"):
        NotFound("x", code="session_exists")
    # A 409 must say which conflict it is.
    with pytest.raises(UnregisteredError):
        Conflict("x")
    with pytest.raises(UnregisteredError):
        error_body("no_such_code", "x")
    with pytest.raises(UnregisteredError):
        error_json(400, "stale_timestamp", "x")
    assert Conflict("x", code="delivery_not_dead").status == 409


def test_a_class_with_an_unregistered_code_cannot_be_defined() -> None:
    with pytest.raises(UnregisteredError, match="made_up"):

        class MadeUp(ApiError):
            status = 418
            code = "made_up"


def test_every_code_in_the_source_is_registered() -> None:
    found: dict[str, str] = {}
    for path in SOURCES:
        text = path.read_text()
        for pattern in CODE_LITERALS:
            for code in pattern.findall(text):
                found.setdefault(code, path.name)
        for status, code in WITH_STATUS.findall(text):
            assert registered(code, int(status)), f"{path.name}: {status} {code}"
    # The scan sees the codes it must (a pattern that stopped matching would pass vacuously).
    assert {"stale_timestamp", "verification_failed", "delivery_not_dead", "no_qr"} <= set(found)
    # `code=` also names other things (a template's language): only snake_case error codes
    # ending up in answers matter, and those all are registered.
    unregistered = {c: f for c, f in found.items() if not registered(c)}
    assert unregistered == {}, unregistered


def test_every_registered_code_is_answered_somewhere() -> None:
    """No code in the docs that nothing answers (as the kit's 429 once was)."""
    registry = (ROOT / "service" / "errors.py").read_text()
    start = registry.index("ERRORS: tuple")
    registry = registry[:start] + registry[registry.index("\n)\n", start) :]
    others = [p for p in SOURCES if p != ROOT / "service" / "errors.py"]
    text = registry + "".join(p.read_text() for p in others)
    for error in ERRORS:
        assert f'"{error.code}"' in text, error.code


def test_each_code_has_one_meaning_per_status() -> None:
    pairs = [(e.code, e.status) for e in ERRORS]
    assert len(pairs) == len(set(pairs))
    for error in ERRORS:
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", error.code)
        assert 400 <= error.status < 600 and error.meaning
