"""Charts as inline SVG, drawn on the server: no script library to ship, and a page that
works with scripts off. Each function returns one `<svg>` element as text, every label
escaped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from html import escape

from service.dashboard.history import Point

WIDTH, HEIGHT = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 14, 26
# A colour per session status (the rest take the palette in turn).
STATUS_COLOURS = {
    "connected": "#2e7d32",
    "qr_required": "#f9a825",
    "authenticating": "#0277bd",
    "initializing": "#6a1b9a",
    "disconnected": "#ef6c00",
    "failed": "#c62828",
    "stopped": "#757575",
}
PALETTE = ("#1565c0", "#00838f", "#ad1457", "#558b2f", "#4e342e", "#283593")

Format = Callable[[float], str]


def plain(value: float) -> str:
    """A count or rate, rounded for an axis label."""
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def seconds(value: float) -> str:
    """A duration: seconds, minutes or hours."""
    if value < 120:
        return f"{plain(value)}s"
    if value < 7200:
        return f"{value / 60:.0f}m"
    return f"{value / 3600:.1f}h"


def mebibytes(value: float) -> str:
    return f"{value / 2**20:.0f} MiB"


def _clock(at: float) -> str:
    return time.strftime("%H:%M", time.gmtime(at))


def _ceiling(peak: float) -> float:
    """A round top for the y axis, at or above `peak` (1, 2 or 5 times a power of ten)."""
    if peak <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(peak))
    for step in (1, 2, 5, 10):
        if step * power >= peak:
            return float(step * power)
    return float(10 * power)


def _empty(title: str, note: str) -> str:
    return (
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} 60" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        f'<text x="{LEFT}" y="34" class="chart-note">{escape(note)}</text></svg>'
    )


def line_chart(
    title: str,
    series: Mapping[str, Sequence[Point]],
    *,
    fmt: Format = plain,
    colours: dict[str, str] | None = None,
    empty: str = "no samples yet",
    legend: bool = True,
) -> str:
    """One line per series over their shared time span (named in a legend unless `legend`
    is off), the y axis from 0 to a round top."""
    points = [p for line in series.values() for p in line]
    if not points:
        return _empty(title, empty)
    start, end = min(p.at for p in points), max(p.at for p in points)
    span = max(end - start, 1.0)
    top = _ceiling(max(p.value for p in points))
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(at: float) -> float:
        return LEFT + (at - start) / span * inner_w

    def y(value: float) -> float:
        return TOP + inner_h - value / top * inner_h

    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for fraction in (0.0, 0.5, 1.0):
        level = y(top * fraction)
        parts.append(
            f'<line class="chart-grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" '
            f'y1="{level:.1f}" y2="{level:.1f}"/>'
            f'<text class="chart-axis" x="{LEFT - 6}" y="{level + 4:.1f}" '
            f'text-anchor="end">{escape(fmt(top * fraction))}</text>'
        )
    parts.append(
        f'<text class="chart-axis" x="{LEFT}" y="{HEIGHT - 6}">{_clock(start)}</text>'
        f'<text class="chart-axis" x="{WIDTH - RIGHT}" y="{HEIGHT - 6}" '
        f'text-anchor="end">{_clock(end)} UTC</text>'
    )
    colours = colours or {}
    for index, (name, line) in enumerate(series.items()):
        colour = colours.get(name) or PALETTE[index % len(PALETTE)]
        coords = " ".join(f"{x(p.at):.1f},{y(p.value):.1f}" for p in line)
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}">'
            f"<title>{escape(name)}: {escape(fmt(line[-1].value))} now</title></polyline>"
            if line
            else ""
        )
        if legend:
            parts.append(
                f'<text class="chart-legend" x="{LEFT + 8 + index * 100}" y="{TOP + 2}" '
                f'fill="{colour}">{escape(name)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    title: str,
    bars: Sequence[tuple[str, float]],
    *,
    fmt: Format = plain,
    empty: str = "nothing measured",
) -> str:
    """Horizontal bars, one per (label, value), longest scaled to the full width."""
    if not bars:
        return _empty(title, empty)
    row = 22
    height = TOP + row * len(bars) + 6
    label_w = 170
    inner_w = WIDTH - label_w - RIGHT - 70
    top = max(value for _, value in bars) or 1.0
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for index, (label, value) in enumerate(bars):
        y = TOP + index * row
        length = max(value / top * inner_w, 1.0)
        parts.append(
            f'<text class="chart-axis" x="{label_w - 6}" y="{y + 14}" '
            f'text-anchor="end">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{length:.1f}" height="{row - 8}" '
            f'fill="{PALETTE[0]}"/>'
            f'<text class="chart-axis" x="{label_w + length + 6:.1f}" y="{y + 14}">'
            f"{escape(fmt(value))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
