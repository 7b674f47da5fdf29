"""The Charts page: sessions by status over time, messages per minute, the webhook
backlog's age and each session's browser memory, drawn as inline SVG from the sampled
history (`History`). Live: a chart is sent again when a new sample changes it.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from service.dashboard.history import History
from service.dashboard.live import fragments, stream
from service.dashboard.markup import Html, fmt, join
from service.dashboard.routing import NavEntry, Page, dashboard_of, page, view
from service.dashboard.svg import STATUS_COLOURS, bar_chart, line_chart, mebibytes, seconds

# How many sessions the memory chart names (the largest).
MEMORY_SHOWN = 20


def history_of(request: Request) -> History:
    history: History = dashboard_of(request).ops.history
    return history


def charts(history: History, clustered: bool) -> dict[str, tuple[str, str]]:
    """Each chart by key: its title and its SVG."""
    latest = history.latest()
    backlog = (
        f"{latest.pending} pending, {latest.dead} dead now" if latest is not None else "no sample"
    )
    memory_note = (
        "measured by the workers: see their /metrics"
        if clustered
        else "nothing measured yet (sampled every 30 s while browsers run)"
    )
    return {
        "sessions": (
            "Sessions by status",
            line_chart("Sessions by status", history.sessions_by_status(), colours=STATUS_COLOURS),
        ),
        "messages": (
            "Messages per minute (in and out)",
            line_chart(
                "Messages per minute",
                {"messages": history.messages_per_minute()},
                empty="needs two samples",
                legend=False,
            ),
        ),
        "backlog": (
            f"Webhook backlog: age of the oldest pending ({backlog})",
            line_chart(
                "Webhook backlog age", {"oldest": history.backlog_age()}, fmt=seconds, legend=False
            ),
        ),
        "memory": (
            "Browser memory per session (PSS, largest first)",
            bar_chart(
                "Browser memory per session",
                history.memory_by_session(MEMORY_SHOWN),
                fmt=mebibytes,
                empty=memory_note,
            ),
        ),
    }


def chart_card(key: str, title: str, svg: str) -> Html:
    return fmt(
        '<section class="card chart-card" data-key="{key}"><h2>{title}</h2>{svg}</section>',
        key=key,
        title=title,
        svg=Html(svg),  # built by svg.py, every label escaped there
    )


def chart_cards(cards: dict[str, tuple[str, str]]) -> dict[str, Html]:
    return {key: chart_card(key, title, svg) for key, (title, svg) in cards.items()}


async def charts_page(request: Request) -> Response:
    history = history_of(request)
    clustered = dashboard_of(request).role != "all"
    cards = charts(history, clustered)
    body = fmt(
        '<link rel="stylesheet" href="/dashboard/static/ops.css">'
        '<div class="head"><h1>Charts</h1><span class="live" data-live>live</span></div>'
        '<p class="muted">The last hour, sampled every {interval} s by this process (a '
        "restart starts afresh); times in UTC.</p>"
        '<div class="grid charts" data-stream="/dashboard/stream/charts">{cards}</div>',
        interval=f"{history.interval:g}",
        cards=join(f["html"] for f in fragments(chart_cards(cards)).values()),
    )
    return page(request, "Charts", body, active="/charts")


async def charts_stream(request: Request) -> Response:
    history = history_of(request)
    clustered = dashboard_of(request).role != "all"

    async def snapshot() -> dict[str, Any]:
        return fragments(chart_cards(charts(history, clustered)))

    return stream(request, snapshot, "fragment")


PAGE = Page(
    nav=NavEntry("Charts", "/charts"),
    routes=[view("/charts", charts_page), view("/stream/charts", charts_stream)],
)
