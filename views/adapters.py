"""Thin adapters: service results and progress become Qt signals (views connect to them)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from PySide6.QtCore import QObject, Signal

from services.config import Profile
from services.health import HealthMonitor, HealthResult

log = logging.getLogger(__name__)


class HealthAdapter(QObject):
    """Runs :class:`HealthMonitor` every ``interval`` seconds and emits ``checked``."""

    #: system value ("billing"/"erp"/"support"), HealthResult
    checked = Signal(str, object)

    def __init__(self, parent: QObject | None = None, interval: float = 15.0) -> None:
        super().__init__(parent)
        self.interval = interval
        self._monitor: HealthMonitor | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self, profile: Profile) -> None:
        self._monitor = HealthMonitor(profile.connections)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="health-monitor")

    async def check_now(self) -> dict[str, HealthResult]:
        if self._monitor is None:
            return {}
        results = await self._monitor.check_all()
        for system, result in results.items():
            self.checked.emit(system.value, result)
        return {s.value: r for s, r in results.items()}

    async def _run(self) -> None:
        while True:
            try:
                await self.check_now()
            except Exception:  # a probe bug must not kill the monitor
                log.exception("health check failed")
            await asyncio.sleep(self.interval)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._monitor is not None:
            await self._monitor.aclose()
            self._monitor = None
