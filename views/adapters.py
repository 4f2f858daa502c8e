"""Thin adapters: service results and progress become Qt signals (views connect to them).

The adapters own the background tasks they start (strong references, latest-wins by name,
failures logged and reported), so widgets never carry async business logic.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from PySide6.QtCore import QObject, Signal

from services.compute import run_cpu
from services.core.domain import SyncException, System
from services.core.errors import SyncDeskError
from services.core.overview import CustomerRow, RowFilter, attach_exceptions, build_customer_rows, encode_rows
from services.core.reconcile import Snapshot
from services.core.sysdata import Progress
from services.core.timeline import Timeline, TimelineIndex
from services.engine import Engine, RefreshMode, RefreshReport, SystemOutcome
from services.io.config import Profile
from services.io.health import HealthMonitor, HealthResult
from services.metrics.compute import compute_metrics
from services.metrics.model import MetricsReport, Period
from services.metrics.sla import SlaConfig
from services.runner import InlineLoop, Runner, post_to
from services.store.storage import Storage
from views.coverage import Coverage, coverage_of, skipped_by_data

log = logging.getLogger(__name__)


class TaskRegistry:
    """Named background tasks: strong references, latest wins, failures logged."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[Any]] = {}

    def start(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        self.cancel(name)
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks[name] = task
        task.add_done_callback(lambda t: self._done(name, t))
        return task

    def _done(self, name: str, task: asyncio.Task[Any]) -> None:
        if self._tasks.get(name) is task:
            del self._tasks[name]
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", name, exc_info=task.exception())

    def running(self, name: str) -> bool:
        task = self._tasks.get(name)
        return task is not None and not task.done()

    def cancel(self, name: str) -> bool:
        task = self._tasks.get(name)
        if task is not None and not task.done():
            task.cancel()
            return True
        return False

    async def aclose(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()


@dataclass
class ConsoleState:
    """Everything the views show, computed off the UI thread after each load or refresh."""

    rows: list[CustomerRow]
    exceptions: list[SyncException]
    now: datetime
    #: None while the console is still opening (only the customer list is in: see ``complete``)
    timelines: TimelineIndex | None
    ages: dict[System, datetime | None] = field(default_factory=dict)  # when each system was refreshed
    errors: dict[System, str] = field(default_factory=dict)  # last refresh error per system
    #: False for the first state of a launch: customers and stored exceptions, while invoices,
    #: tickets and events are still being read (no timelines, no actions yet)
    complete: bool = True
    #: search and sort over ``rows``, prepared for the customer table's sort key off the UI
    #: thread (sorting 100,000 rows and joining their search texts take ~0.1 s)
    row_filter: RowFilter | None = None
    #: the engine's configured ownership (``engine.config.ownership``: field -> system of record),
    #: the one the action service enforces; the views show each exception's owner from it
    ownership: dict[str, System] = field(default_factory=dict)
    #: the latest refresh of this session, per configured system: "" when it was read, else why
    #: not (the error); None before a refresh finished in this session
    refreshed: dict[System, str] | None = None
    #: the rules the latest reconciliation could not evaluate (rule -> why: a system without data)
    skipped_rules: dict[str, str] = field(default_factory=dict)

    @cached_property
    def customer_names(self) -> dict[str, str]:
        """Customer id -> name (from the customer list), for tables that show names beside ids."""
        return {r.customer_id: r.name for r in self.rows}

    @property
    def with_data(self) -> frozenset[System]:
        """The systems the local snapshot holds data of (read at least once)."""
        return frozenset(s for s, at in self.ages.items() if at is not None)

    def coverage(self, refreshing: bool = False) -> Coverage:
        """What the data shown rests on (``views.coverage``): which systems the latest refresh
        read, which rules were skipped."""
        return coverage_of(self.with_data, self.refreshed, self.skipped_rules, self.ages, refreshing)

    def timeline(self, customer_id: str) -> Timeline | None:
        if self.timelines is None:
            return None
        return self.timelines.build(customer_id, exceptions=self.exceptions, now=self.now)

    def exceptions_of(self, customer_id: str) -> list[SyncException]:
        return [e for e in self.exceptions if e.customer_id == customer_id]


class HealthAdapter(QObject):
    """Runs :class:`HealthMonitor` every ``interval`` seconds and emits ``checked``."""

    #: system value ("billing"/"erp"/"support"), HealthResult
    checked = Signal(str, object)

    def __init__(self, parent: QObject | None = None, interval: float = 30.0,
                 runner: Runner | None = None) -> None:
        super().__init__(parent)
        self.interval = interval
        self.runner: Runner = runner or InlineLoop()
        self._monitor: HealthMonitor | None = None
        self._tasks = TaskRegistry()

    def start(self, profile: Profile) -> None:
        self._monitor = HealthMonitor(profile.connections)
        self._tasks.start("health", self._run())

    async def check_now(self) -> dict[str, HealthResult]:
        if self._monitor is None:
            return {}
        results = await self.runner.call(self._monitor.check_all())
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
        await self._tasks.aclose()
        if self._monitor is not None:
            monitor, self._monitor = self._monitor, None
            await self.runner.call(monitor.aclose())


class EngineAdapter(QObject):
    """The console's view of :class:`Engine`: load, refresh (cancellable), state updates.

    The engine's coroutines run on ``runner`` (the console's service thread, see
    ``services/runner.py``); this object's own tasks and every signal stay on the UI loop."""

    loading = Signal(str)  # what is being done
    state_changed = Signal(object)  # ConsoleState
    refresh_started = Signal(str)  # mode
    progress = Signal(str, str, int, object)  # system, phase, done, total (int | None)
    system_refreshed = Signal(str, bool, str)  # system, ok, error text
    refresh_finished = Signal(object)  # RefreshReport
    refresh_cancelled = Signal()
    failed = Signal(str)
    metrics_changed = Signal(object)  # MetricsReport, after each complete state
    metrics_failed = Signal(str)  # why the figures could not be computed

    #: the Overview's period: this many days up to the engine's clock (compared with the days before)
    METRICS_DAYS = 30

    PROGRESS_INTERVAL = 0.1  # seconds between progress signals per system and phase

    def __init__(self, engine: Engine, parent: QObject | None = None, runner: Runner | None = None) -> None:
        super().__init__(parent)
        self.engine = engine
        self.runner: Runner = runner or InlineLoop()
        #: the customer-table sort keys whose orders each new state comes with (the window
        #: sets this to report its current sort key; see ``ConsoleState.row_filter``)
        self.sort_keys: Callable[[], Sequence[str]] = lambda: ("name",)
        self.tasks = TaskRegistry()
        self.state: ConsoleState | None = None
        #: the latest refresh's report (None before one finished): each state says what it read
        self.last_report: RefreshReport | None = None
        #: the SLA targets the figures are held to (None: services.metrics.sla's defaults)
        self.sla: SlaConfig | None = None
        #: the audit log's database (the resolving actions, operator effort, retries); None: the
        #: figures that come from it count nothing
        self.audit: Storage | None = None
        #: the latest figures (None before the first were computed)
        self.metrics: MetricsReport | None = None

    # -- load -----------------------------------------------------------------------------
    async def load(self) -> ConsoleState:
        """Open from the local snapshot (worker threads), no network, in two steps: first the
        customer list and the stored exceptions (a third of the records: the window is usable
        at once), then the rest (timelines, rules and actions need everything)."""
        self.loading.emit("Opening the local snapshot…")
        cached = await self.runner.call(self.engine.cached_overview())
        overview: Snapshot | None = None
        if cached is not None:  # the customer list as the last session stored it
            await self._publish_snapshot(cached, complete=False)
        else:
            overview = await self.runner.call(self.engine.load_overview())
            if overview.systems:
                await self._publish_snapshot(overview, complete=False)
        await self.runner.call(self.engine.load(overview))
        # the stored exceptions are the last reconciliation's result; the background refresh
        # that follows reconciles again, so opening does not pay for it
        return await self._publish(reconcile=False, store_overview=cached is None)

    async def _publish(self, reconcile: bool, store_overview: bool = True) -> ConsoleState:
        if reconcile:
            await self.runner.call(self.engine.reconcile())
        return await self._publish_snapshot(None, complete=True, store_overview=store_overview)

    async def _publish_snapshot(self, source: Snapshot | list[CustomerRow] | None, complete: bool,
                                store_overview: bool = True) -> ConsoleState:
        state = await self.runner.call(self._build_state(source, complete, tuple(self.sort_keys()), store_overview))
        self.state = state
        # The snapshot is hundreds of thousands of long-lived objects: keep the cyclic collector
        # from walking them again and again (a full pass holds the GIL, so the UI would stall).
        gc.freeze()
        self.state_changed.emit(state)
        if complete:  # the figures follow each complete state (latest wins)
            self.tasks.start("metrics", self._publish_metrics())
        return state

    async def _publish_metrics(self) -> MetricsReport | None:
        """Compute the metrics on the CPU thread (from the service loop) and emit them."""
        try:
            report = await self.runner.call(self._compute_metrics())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("metrics failed")
            self.metrics_failed.emit(f"{type(exc).__name__}: {exc}")
            return None
        self.metrics = report
        self.metrics_changed.emit(report)
        return report

    async def _compute_metrics(self) -> MetricsReport:
        """On the service loop: the engine's snapshot and store, computed in the CPU thread."""
        engine = self.engine
        snapshot = engine.snapshot()
        now = engine.clock()
        period = Period(now - timedelta(days=self.METRICS_DAYS), now)
        return await run_cpu(compute_metrics, snapshot, engine.storage, self.audit, period=period, now=now,
                             sla=self.sla)

    async def _build_state(self, source: Snapshot | list[CustomerRow] | None, complete: bool,
                           sort_keys: Sequence[str], store_overview: bool) -> ConsoleState:
        """On the service loop: the engine's exceptions and ``source`` — a partial snapshot,
        stored customer rows, or None: the engine's whole snapshot, read there — turned into
        what the views show in the CPU thread. A complete state's customer list is stored for
        the next launch (in the background)."""
        engine = self.engine
        version = engine.data_version
        snapshot = engine.snapshot() if source is None else source
        exceptions = await engine.open_exceptions()
        now = engine.clock()
        ownership = dict(engine.config.ownership)
        report = self.last_report
        refreshed = None if report is None else {
            system: (report.outcomes[system].error_text or "refresh failed") if not report.outcomes[system].ok else ""
            for system in report.outcomes}
        last = engine.last_result

        def build() -> tuple[ConsoleState, str | None]:
            ages: dict[System, datetime | None] = {}
            errors: dict[System, str] = {}
            for system in engine.connectors:
                st = engine.storage.state(system)
                ages[system] = st.refreshed_at if st else None
                if st and st.last_error:
                    errors[system] = st.last_error
            if isinstance(snapshot, Snapshot):
                rows = build_customer_rows(snapshot, exceptions)
            else:
                rows = snapshot
                attach_exceptions(rows, exceptions)
            row_filter = RowFilter(rows)
            for key in sort_keys:
                row_filter.prepare(key)
            timelines = TimelineIndex(snapshot) if complete and isinstance(snapshot, Snapshot) else None
            with_data = frozenset(s for s, at in ages.items() if at is not None)
            skipped = dict(last.skipped_rules) if last is not None else skipped_by_data(with_data)
            # encoded here, before the views get the state: encoding while the UI thread paints
            # it would compete with every one of the paint's calls into Python for the GIL
            stored = encode_rows(rows) if complete and store_overview else None
            return ConsoleState(rows, exceptions, now, timelines, ages, errors, complete, row_filter,
                                ownership, refreshed, skipped), stored

        state, stored = await run_cpu(build)
        if stored is not None:
            engine.remember_overview(stored, version)
        return state

    def republish(self) -> None:
        """Show what the engine holds now (after an action closed or changed exceptions)."""
        self.tasks.start("publish", self._publish(reconcile=False))

    # -- refresh ----------------------------------------------------------------------------
    def start_refresh(self, mode: RefreshMode = RefreshMode.AUTO) -> asyncio.Task[Any]:
        """Start a refresh in the background; a refresh already running is cancelled first."""
        return self.tasks.start("refresh", self._refresh(mode))

    def cancel_refresh(self) -> bool:
        return self.tasks.cancel("refresh")

    @property
    def refreshing(self) -> bool:
        return self.tasks.running("refresh")

    def _progress_sink(self) -> Callable[[Progress], None]:
        """The engine's progress callback: throttled where the engine calls it (the service
        thread), then posted to this loop as ``progress`` signals."""
        emit = post_to(asyncio.get_running_loop(), self.progress.emit)
        last: dict[tuple[str, str], float] = {}

        def on_progress(p: Progress) -> None:
            key = (p.system.value, p.phase)
            now = time.monotonic()
            if p.phase != "done" and now - last.get(key, 0.0) < self.PROGRESS_INTERVAL:
                return
            last[key] = now
            emit(p.system.value, p.phase, p.done, p.total)

        return on_progress

    async def _refresh(self, mode: RefreshMode) -> RefreshReport | None:
        self.refresh_started.emit(mode.value)
        try:
            report = await self.runner.call(self.engine.refresh(mode, self._progress_sink()))
        except asyncio.CancelledError:
            self.refresh_cancelled.emit()
            raise
        except Exception as exc:
            # whatever went wrong, the refresh ends: the error shown and Refresh enabled again
            # (an exception escaping here ended the task with no signal: "refreshing" for ever)
            log.exception("refresh failed")
            text = f"Refresh failed: {type(exc).__name__}: {exc}"
            self.failed.emit(text)
            failed = RefreshReport({s: SystemOutcome(s, False, mode.value, error=SyncDeskError(text))
                                    for s in self.engine.connectors})
            self.refresh_finished.emit(failed)
            return failed
        self.last_report = report
        for system, outcome in report.outcomes.items():
            self.system_refreshed.emit(system.value, outcome.ok, outcome.error_text)
        try:
            await self._publish(reconcile=True)
        except asyncio.CancelledError:
            self.refresh_cancelled.emit()
            raise
        except Exception as exc:
            log.exception("reconciliation failed")
            self.failed.emit(f"Reconciliation failed: {exc}")
        self.refresh_finished.emit(report)
        return report

    async def aclose(self) -> None:
        await self.tasks.aclose()

