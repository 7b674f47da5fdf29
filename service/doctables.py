"""The docs' tables of error codes and webhook events, generated from their registries.

`ERRORS` (service/errors.py) and `EVENTS` (service/models/events.py) are the only lists; the
tables in docs/ sit between marker comments (`<!-- errors:begin -->` ... `<!-- errors:end -->`)
and `python -m service docs` rewrites them. `--check` only says whether they are current.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from service.errors import ERRORS
from service.models.events import EVENTS

ROOT = Path(__file__).resolve().parent.parent


def errors_table() -> str:
    """Every error code, by status, with what it means."""
    rows = ["| status | code | meaning |", "|---|---|---|"]
    for error in sorted(ERRORS, key=lambda e: e.status):
        rows.append(f"| {error.status} | `{error.code}` | {error.meaning} |")
    return "\n".join(rows)


def events_table() -> str:
    """Every webhook event, its `data` fields (`?` when it may be left out) and when it comes."""
    rows = ["| event | `data` | when |", "|---|---|---|"]
    for name, model in EVENTS.items():
        fields = ", ".join(
            (field.alias or key) + ("" if field.is_required() else "?")
            for key, field in model.model_fields.items()
        )
        when = " ".join((model.__doc__ or "").split())
        rows.append(f"| `{name}` | `{{{fields}}}` | {when} |")
    return "\n".join(rows)


# Which table goes in which file.
TABLES: dict[str, tuple[str, Callable[[], str]]] = {
    "errors": ("docs/api.md", errors_table),
    "events": ("docs/webhooks.md", events_table),
}


def render(text: str, name: str, table: str) -> str:
    """`text` with the lines between `name`'s markers replaced by `table`."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise ValueError(f"expected one {begin} before one {end}")
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n{table}\n{end}{tail}"


def generated(root: Path = ROOT) -> dict[Path, str]:
    """Each docs file that holds a table, as it should read."""
    files: dict[Path, str] = {}
    for name, (relative, build) in TABLES.items():
        path = root / relative
        text = files.get(path) or path.read_text(encoding="utf-8")
        files[path] = render(text, name, build())
    return files


def cmd_docs(args: argparse.Namespace) -> int:
    """Rewrite the generated tables, or with --check say which are out of date (exit 1)."""
    missing = [relative for relative, _ in TABLES.values() if not (ROOT / relative).is_file()]
    if missing:
        # An installed package has no docs/: the tables live in a checkout of the repository.
        print(f"wa-sidecar: no {missing[0]} under {ROOT}: run this in a checkout", file=sys.stderr)
        return 2
    stale = []
    for path, text in generated().items():
        if path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(text, encoding="utf-8")
    for path in stale:
        verb = "out of date" if args.check else "rewritten"
        print(f"{path.relative_to(ROOT)}: {verb}", file=sys.stderr if args.check else sys.stdout)
    return 1 if args.check and stale else 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `docs` on the CLI's subparsers."""
    docs = sub.add_parser(
        "docs", help="rewrite the error and event tables in docs/ from their registries"
    )
    docs.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 when a table is out of date"
    )
    docs.set_defaults(func=cmd_docs)
