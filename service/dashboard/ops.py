"""What the operations pages (webhooks, events, nodes, charts) keep between requests: the
sampled history the charts draw, and the event monitor's streams."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from service.dashboard.events import EventMonitor
from service.dashboard.history import History
from service.dashboard.live import Changes
from service.settings import Settings
from service.store import Store


@dataclass
class Operations:
    """The history (started and stopped with the app) and the event monitor."""

    history: History
    monitor: EventMonitor

    def start(self) -> None:
        self.history.start()

    async def stop(self) -> None:
        await self.history.stop()


def build_operations(
    settings: Settings, store: Store, changes: Changes, memory: Callable[[], dict[str, int]]
) -> Operations:
    """`memory` is this process's last browser memory sample (empty without browsers)."""
    return Operations(
        history=History(store, memory, float(settings.dashboard_sample_s)),
        monitor=EventMonitor(store, changes),
    )
