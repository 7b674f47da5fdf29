"""The module graph: no import cycles, and each layer knows only what it should.

Read from the source with `ast`, so a cycle hidden behind a function-level import counts too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.support.server import ROOT

PACKAGES = ("service", "adapters", "webhooks")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {
        module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }


def imports(path: Path, known: set[str]) -> set[str]:
    """The project modules `path` imports (any `from x import y` that names a module counts
    as an import of that module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in known}
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    # A package's __init__ is imported on the way to any of its modules; leave those edges
    # out (they only re-export) so the graph shows what code really depends on.
    return {
        name: {m for m in imports(path, known) if m != name and not path.name == "__init__.py"}
        for name, path in mods.items()
    }


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_checker_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_module_graph_has_no_cycle() -> None:
    edges = graph()
    assert "adapters.webjs" in edges and "service.messaging.messenger" in edges
    assert find_cycle(edges) is None, f"import cycle: {' -> '.join(find_cycle(edges) or [])}"


def test_messaging_and_adapters_do_not_depend_on_each_others_insides() -> None:
    edges = graph()
    for name, deps in edges.items():
        if name.startswith("adapters"):
            bad = {d for d in deps if d.startswith("service.messaging")}
            bad |= {
                d
                for d in deps
                if d.startswith("service.sessions") and d != "service.sessions.layout"
            }
            assert not bad, f"{name} imports {sorted(bad)}: adapters see neutral interfaces only"
        if name.startswith("service.messaging"):
            bad = {d for d in deps if d.startswith(("service.browser", "service.sessions."))}
            bad -= {"service.sessions.layout"}
            bad |= {d for d in deps if d.startswith("adapters") and d not in ("adapters.base",)}
            bad -= {"adapters.selector"}
            assert not bad, f"{name} imports {sorted(bad)}"


# Fields of wa-js's message model and the page bridge's payloads, and the ACK enum's names:
# only the WhatsApp Web engine may know them.
WA_WEB_WORDS = re.compile(
    r"\b(from_me|quotedStanzaID|quotedMsgId|quoted_id|quoted_ref|notifyName|"
    r"msg_ack_change|new_message|ciphertext|BridgeEvent|MsgKey|sendMsgResult|"
    r"[\"'](chat|ptt|ptv)[\"']|ACK_STATUS|ACK_NAMES|fromMe)\b"
)


def test_messaging_names_no_whatsapp_web_payload_field() -> None:
    found = []
    for path in sorted((ROOT / "service" / "messaging").glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if WA_WEB_WORDS.search(line):
                found.append(f"{path.name}:{number}: {line.strip()}")
    assert found == []


def test_the_wire_models_depend_on_nothing_that_runs() -> None:
    """The contract is plain data: the models may know the store's vocabulary, never the
    API, the sessions, the messaging or an engine."""
    edges = graph()
    assert "service.models.requests" in edges
    allowed = {"service.errors", "service.digits", "service.store", "service.store.base"}
    for name, deps in edges.items():
        if name.startswith("service.models"):
            bad = {d for d in deps if not d.startswith("service.models") and d not in allowed}
            assert not bad, f"{name} imports {sorted(bad)}"
