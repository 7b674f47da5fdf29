"""A tiny HTML template approach: everything is escaped unless it is already `Html`.

`fmt("<td>{name}</td>", name=value)` escapes `value` (unless it is `Html`, built by `fmt`
itself), so a page is a composition of `fmt` calls and nothing user-controlled reaches the
page unescaped. No inline scripts or styles: the CSP allows only the dashboard's own files.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

# What an empty value shows (an en dash).
NONE = "\u2013"


class Html(str):
    """Markup that is safe to put in a page as it is."""

    __slots__ = ()


def esc(value: object) -> Html:
    """`value` as text in HTML (None is empty); `Html` passes as it is."""
    if isinstance(value, Html):
        return value
    return Html(html.escape("" if value is None else str(value), quote=True))


def fmt(template: str, **values: object) -> Html:
    """`template` (trusted markup) with `{name}` placeholders filled with escaped values."""
    return Html(template.format(**{name: esc(value) for name, value in values.items()}))


def join(parts: Iterable[Html], separator: str = "") -> Html:
    return Html(separator.join(esc(p) for p in parts))


def data_json(value: Any) -> Html:
    """JSON for a `data-*` attribute (escaped: the script reads it back with JSON.parse)."""
    return esc(json.dumps(value, separators=(",", ":")))


def when(timestamp: float | None) -> Html:
    """A Unix time as UTC text in a `<time>` the script turns into local time."""
    if not timestamp:
        return Html(NONE)
    moment = datetime.fromtimestamp(timestamp, UTC)
    return fmt(
        '<time datetime="{iso}">{text}</time>',
        iso=moment.isoformat(timespec="seconds"),
        text=moment.strftime("%Y-%m-%d %H:%M:%S UTC"),
    )


def options(values: Iterable[str], chosen: str | None, everything: str | None = None) -> Html:
    """The `<option>`s of a filter's select, `chosen` selected; `everything` names a first,
    empty option (no filter)."""
    first = [fmt('<option value="">{label}</option>', label=everything)] if everything else []
    return join(
        first
        + [
            fmt(
                '<option value="{v}"{sel}>{v}</option>',
                v=v,
                sel=Html(" selected") if v == chosen else Html(""),
            )
            for v in values
        ]
    )


def text_field(name: str, label: str, value: str, hint: str = "") -> Html:
    """A labelled text input of a filter form (`hint` as its placeholder)."""
    placeholder = fmt(' placeholder="{hint}"', hint=hint) if hint else Html("")
    return fmt(
        '<label>{label}<input name="{name}" value="{value}"{placeholder}></label>',
        name=name,
        label=label,
        value=value,
        placeholder=placeholder,
    )
