"""The pages' honest states against the real engine and the demo servers over loopback, run as
the console runs them (Qt on a qasync loop, the services on a ServiceLoop thread): with all
three systems unreachable nothing claims "all clear" and F5 retries; with the ERP down from the
start its rules are named as skipped (the engine's own reconcile result)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from app.console import _wire
from services.core.domain import System
from services.core.reconcile import RULE_SYSTEMS
from services.demo.environment import DemoEnvironment, DemoOptions
from services.demo.faults import FaultConfig
from services.engine import Engine
from services.io.http import HttpPolicy
from services.runner import ServiceLoop
from services.store.storage import Storage
from tests.gui.live_loop import grab_png, run_qasync
from views.adapters import EngineAdapter
from views.coverage import PageState
from views.main_window import MainWindow

pytestmark = pytest.mark.gui
ANCHOR = 1_780_000_000
FAST = {s: HttpPolicy(max_retries=0, backoff_base=0.01, read_timeout=2.0, breaker_threshold=50) for s in System}
#: a generous bound on one wait (a refresh of 60 customers takes about a second on a loaded machine)
DEADLINE = 60.0


async def until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"waited {DEADLINE:.0f} s for {what}")
        await asyncio.sleep(0.02)


async def console(tmp_path: Path, down: set[System],
                  scenario: Callable[[MainWindow, EngineAdapter, DemoEnvironment], Awaitable[None]]) -> None:
    opts = DemoOptions(customers=60, seed=3, anchor=ANCHOR, faults={s: FaultConfig() for s in System})
    env = await asyncio.to_thread(lambda: DemoEnvironment(opts).start())
    for system in down:
        env.injectors[system].config.update({"outage": True})
    storage = Storage.open_path(tmp_path / "snap.db")
    engine = Engine.from_profile(env.profile(), storage, policies=FAST, clock=env.now)
    window = MainWindow()
    runner = ServiceLoop(name="test-services").start()
    adapter = EngineAdapter(engine, window, runner=runner)
    _wire(window, adapter)
    window.resize(1280, 760)
    window.show()
    try:
        await adapter.load()
        # as the console does: a first refresh straight after opening
        await adapter.start_refresh()
        await scenario(window, adapter, env)
    finally:
        await adapter.aclose()
        await runner.call(engine.aclose())
        await asyncio.to_thread(runner.stop)
        storage.close()
        window.close()
        window.deleteLater()
        await asyncio.to_thread(env.stop)


def test_all_three_unreachable_then_back_on_f5(qtbot: QtBot, qloop: asyncio.AbstractEventLoop,
                                              tmp_path: Path) -> None:
    async def scenario(window: MainWindow, adapter: EngineAdapter, env: DemoEnvironment) -> None:
        customers, exceptions = window.customers_page, window.exceptions_page
        assert customers.page_state is PageState.NOT_LOADED
        assert customers.empty.title() == "Billing could not be read"
        assert "unavailable" in customers.empty.text()
        assert exceptions.page_state is PageState.NOT_LOADED
        assert exceptions.table_empty.title() == "No system could be read"
        shown = exceptions.table_empty.title() + exceptions.table_empty.text() + exceptions.detail.empty.title()
        assert "agree" not in shown
        assert "could not be read" in window.statusBar().currentMessage()
        grab_png(window, tmp_path, "state-all-down")
        # the systems come back; F5 on the window reads them
        for system in System:
            env.injectors[system].config.update({"outage": False})
        window.activateWindow()
        window.exceptions_page.table.setFocus()
        qtbot.keyClick(window, Qt.Key.Key_F5)
        await until(lambda: adapter.refreshing, "the refresh F5 started")
        await until(lambda: not adapter.refreshing, "the refresh to end")
        await until(lambda: customers.page_state is PageState.LOADED, "the customers")
        assert exceptions.page_state is PageState.LOADED
        assert not exceptions.banner.isVisibleTo(exceptions)

    run_qasync(qloop, console(tmp_path, set(System), scenario))


def test_erp_down_from_the_start_its_rules_are_named_as_skipped(qtbot: QtBot, qloop: asyncio.AbstractEventLoop,
                                                               tmp_path: Path) -> None:
    async def scenario(window: MainWindow, adapter: EngineAdapter, env: DemoEnvironment) -> None:
        result = adapter.engine.last_result
        assert result is not None
        erp_rules = {r for r, needs in RULE_SYSTEMS.items() if System.ERP in needs}
        assert set(result.skipped_rules) == erp_rules  # the engine's own verdict
        page = window.exceptions_page
        assert page.banner.isVisibleTo(page)
        assert f"Skipped — {len(erp_rules)} rules could not be checked (no data from erp)" in page.banner.text()
        for rule in erp_rules:
            assert rule in page.banner.text()
            assert page._rule_items[rule].text(1) == "skipped"
        # support's rules ran: their exceptions are listed
        assert page.page_state is PageState.LOADED
        assert {e.rule for e in page.model.exceptions()} <= set(RULE_SYSTEMS) - erp_rules
        grab_png(window, tmp_path, "state-erp-skipped")

    run_qasync(qloop, console(tmp_path, {System.ERP}, scenario))
