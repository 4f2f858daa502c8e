"""The real main window, engine adapter and engine on the demo environment, run as the console
runs them (Qt on a qasync loop, the services on their own loop in the service thread): refresh
with one system down, cancel a refresh, search, open a customer, and external text shown as
plain text."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot

from app.console import _wire
from services.core.domain import System
from services.demo.environment import DemoEnvironment, DemoOptions
from services.demo.faults import FaultConfig
from services.engine import Engine, RefreshMode
from services.io.health import Health
from services.io.http import HttpPolicy
from services.runner import ServiceLoop
from services.store.storage import Storage
from tests.gui.live_loop import run_qasync
from views.adapters import EngineAdapter
from views.main_window import MainWindow

pytestmark = pytest.mark.gui
ANCHOR = 1_780_000_000
FAST = {s: HttpPolicy(max_retries=0, backoff_base=0.01, read_timeout=2.0, breaker_threshold=50) for s in System}


async def console(tmp_path: Path, scenario: Callable[[MainWindow, EngineAdapter, DemoEnvironment], Awaitable[None]],
                  customers: int = 80) -> None:
    opts = DemoOptions(customers=customers, seed=3, anchor=ANCHOR, faults={s: FaultConfig() for s in System})
    env = await asyncio.to_thread(lambda: DemoEnvironment(opts).start())
    storage = Storage.open_path(tmp_path / "snap.db")
    engine = Engine.from_profile(env.profile(), storage, policies=FAST, clock=env.now)
    window = MainWindow()
    runner = ServiceLoop(name="test-services").start()
    adapter = EngineAdapter(engine, window, runner=runner)
    _wire(window, adapter)
    window.show()
    try:
        await adapter.load()
        await scenario(window, adapter, env)
    finally:
        await adapter.aclose()
        await runner.call(engine.aclose())
        await asyncio.to_thread(runner.stop)
        storage.close()
        window.close()
        window.deleteLater()
        await asyncio.to_thread(env.stop)


def test_refresh_with_one_system_down_shows_it_and_keeps_the_others(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    async def scenario(window: MainWindow, adapter: EngineAdapter, env: DemoEnvironment) -> None:
        assert window.state is not None and window.state.rows == []  # nothing fetched yet: empty snapshot
        env.injectors[System.ERP].config.update({"outage": True})
        await adapter.start_refresh(RefreshMode.FULL)
        assert window.lights[System.ERP].state is Health.DOWN
        assert "unavailable" in window.lights[System.ERP].toolTip()
        assert window.lights[System.BILLING].state is not Health.DOWN
        state = window.state
        assert state is not None and len(state.rows) > 50  # billing and support arrived regardless
        model = window.customers_page.model
        erp_col = next(c for c in range(model.columnCount()) if model.headerData(c, Qt.Orientation.Horizontal) == "ERP")
        assert model.index(0, erp_col).data() == "not loaded"  # never "unmapped" for a system we could not read
        assert not window.refresh_status.isVisible()
        assert window.refresh_action.isEnabled()
        # the ERP comes back: the next refresh fills it in and the light turns green again
        env.injectors[System.ERP].config.update({"outage": False})
        await adapter.start_refresh(RefreshMode.AUTO)
        assert window.lights[System.ERP].state is not Health.DOWN
        assert model.index(0, erp_col).data() != "not loaded"
        assert window.exceptions_page.model.total_count() == len(env.dataset.manifest)

    run_qasync(qloop, console(tmp_path, scenario))


def test_cancel_a_refresh_keeps_the_snapshot_and_restores_the_ui(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    async def scenario(window: MainWindow, adapter: EngineAdapter, env: DemoEnvironment) -> None:
        await adapter.start_refresh(RefreshMode.FULL)
        before = {s: d.count() for s, d in adapter.engine.data.items()}
        rows_before = len(window.state.rows) if window.state else 0
        for injector in env.injectors.values():
            injector.config.update({"latency_ms": 150})
        progressed = asyncio.Event()
        adapter.progress.connect(lambda *_: progressed.set())
        task = adapter.start_refresh(RefreshMode.FULL)
        await progressed.wait()
        # the refresh runs on the service loop, not on the UI's
        assert isinstance(adapter.runner, ServiceLoop)
        on_services = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_task_names(), adapter.runner.loop))
        assert "Engine.refresh" in on_services
        assert "Engine.refresh" not in {t.get_coro().__qualname__ for t in asyncio.all_tasks()}
        assert window.refresh_status.isVisible() and window.cancel_action.isEnabled()
        window.cancel_action.trigger()  # what Esc or the Cancel button does
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not window.refresh_status.isVisible()
        assert window.refresh_action.isEnabled() and not window.cancel_action.isEnabled()
        assert {s: d.count() for s, d in adapter.engine.data.items()} == before
        assert window.state is not None and len(window.state.rows) == rows_before

    run_qasync(qloop, console(tmp_path, scenario))


async def _overview_stored(engine: Engine) -> None:
    task = engine._overview_task
    if task is not None:
        await task


async def _task_names() -> set[str]:
    return {t.get_coro().__qualname__ for t in asyncio.all_tasks()}


def test_search_open_customer_and_hostile_names_as_plain_text(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    async def scenario(window: MainWindow, adapter: EngineAdapter, env: DemoEnvironment) -> None:
        hostile = "<b>Bold</b> & <img src=x> Ltd"
        first = next(iter(env.dataset.billing.customers.values()))
        first.name = hostile
        await adapter.start_refresh(RefreshMode.FULL)
        page = window.customers_page
        page.search_edit.setText("<img")
        page.apply_filter()
        assert page.model.rowCount() == 1
        assert page.model.index(0, 1).data() == hostile
        window.open_customer(first.id)
        assert window.customers_stack.currentWidget() is window.customer_page
        labels = [w for w in window.customer_page.findChildren(QLabel) if w.text() == hostile]
        assert labels and all(label.textFormat() == Qt.TextFormat.PlainText for label in labels)
        window.grab().save(str(tmp_path / "customer.png"))
        assert (tmp_path / "customer.png").stat().st_size > 10_000

    run_qasync(qloop, console(tmp_path, scenario))


def test_reopening_shows_customers_first_then_the_whole_snapshot(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    """A launch publishes the customer list and the stored exceptions before the rest of the
    snapshot is read: meanwhile a customer shows "Loading…" and fixes are held back, never run
    on half a snapshot; then the same customer is shown with its timeline."""
    async def scenario(window: MainWindow, adapter: EngineAdapter, env: DemoEnvironment) -> None:
        await adapter.start_refresh(RefreshMode.FULL)
        assert window.state is not None
        rows, exceptions = len(window.state.rows), len(window.state.exceptions)
        target = next(e for e in window.state.exceptions if e.customer_id and e.fix_actions)
        await adapter.runner.call(_overview_stored(adapter.engine))  # as the first session leaves it
        storage = Storage.open_path(tmp_path / "snap.db")  # a second console on the same snapshot
        assert storage.load_overview() is not None
        engine = Engine.from_profile(env.profile(), storage, policies=FAST, clock=env.now)

        async def not_needed() -> Any:
            raise AssertionError("the stored customer list should have been shown instead")

        engine.load_overview = not_needed  # type: ignore[method-assign]
        second = MainWindow()
        reopened = EngineAdapter(engine, second, runner=adapter.runner)
        _wire(second, reopened)
        second.show()
        seen: list[tuple[bool, int, int, str, str]] = []
        shown_rows: list[list[tuple[Any, ...]]] = []

        def on_state(state: Any) -> None:  # after the window's own slot
            if not seen:  # the first state: the customer list only
                assert target.customer_id is not None
                second.open_customer(target.customer_id)
                second.request_fix(target.id, target.fix_actions[0])
            seen.append((state.complete, len(state.rows), len(state.exceptions),
                         second.customer_page.empty.title_label.text() if not state.complete else "",
                         second.statusBar().currentMessage()))
            shown_rows.append([(r.customer_id, r.name, r.erp_party, r.support_org, r.status, r.plan, r.tier,
                                r.open_exceptions, r.worst, r.rules, r.search, r.unknown) for r in state.rows])

        reopened.state_changed.connect(on_state)
        try:
            await reopened.load()
            assert [s[:3] for s in seen] == [(False, rows, exceptions), (True, rows, exceptions)]
            assert seen[0][3] == "Loading…"
            assert "still being read" in seen[0][4]
            # the first list came from the stored one and is exactly what the snapshot gives
            # (in another order: the table sorts)
            assert sorted(shown_rows[0]) == sorted(shown_rows[1])
            assert engine.data and all(d.invoices or d.cases or d.events for d in engine.data.values())
            # the customer opened while loading is shown now, with its history
            assert second.customer_page.customer_id() == target.customer_id
            assert second.customer_page.timeline_model.rowCount() > 0
        finally:
            await reopened.aclose()
            await reopened.runner.call(engine.aclose())
            storage.close()
            second.close()
            second.deleteLater()

    run_qasync(qloop, console(tmp_path, scenario))
