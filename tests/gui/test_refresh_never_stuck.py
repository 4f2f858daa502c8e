"""The console never stays in "refreshing" after an error, however unexpected: the real window,
adapter and engine on the demo, run as the console runs them (Qt on a qasync loop, the services
on their service thread). Every refresh ends with ``refresh_finished`` — the error shown, the
progress gone, Refresh enabled again:

- a connector that fails mid-refresh with an exception type nobody expects (a transport that
  answers a few requests, then raises ``KeyError``): that system is reported failed, the others
  are read;
- the service thread gone (its loop stopped): the adapter itself cannot run the refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
import pytest
from pytestqt.qtbot import QtBot

from app.console import _wire
from services.core.domain import System
from services.demo.environment import DemoEnvironment, DemoOptions
from services.demo.faults import FaultConfig
from services.engine import Engine, RefreshMode, RefreshReport, connector_for
from services.io.http import HttpPolicy
from services.runner import ServiceLoop
from services.store.storage import Storage
from tests.gui.live_loop import run_qasync
from views.adapters import EngineAdapter
from views.main_window import MainWindow

pytestmark = pytest.mark.gui
ANCHOR = 1_780_000_000
FAST = {s: HttpPolicy(rate_per_second=None, max_retries=0, backoff_base=0.01, read_timeout=5.0) for s in System}


class FailsMidway(httpx.AsyncBaseTransport):
    """The real loopback transport for ``after`` requests, then an error of a type no
    connector expects (as a bug below the connector would raise)."""

    def __init__(self, after: int) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.after = after
        self.count = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        if self.count > self.after:
            raise KeyError("a bug below the connector")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def assert_refresh_over(window: MainWindow) -> None:
    assert window.refresh_action.isEnabled() and window.full_refresh_action.isEnabled()
    assert not window.cancel_action.isEnabled()
    assert not window.refresh_status.isVisible()


def test_a_connector_failing_with_an_unexpected_exception_ends_the_refresh(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    async def scenario() -> None:
        opts = DemoOptions(customers=40, seed=3, anchor=ANCHOR, faults={s: FaultConfig() for s in System})
        env = await asyncio.to_thread(lambda: DemoEnvironment(opts).start())
        storage = Storage.open_path(tmp_path / "snap.db")
        engine = Engine.from_profile(env.profile(), storage, policies=FAST, clock=env.now)
        transport = FailsMidway(after=3)
        await engine.connectors[System.BILLING].aclose()
        engine.connectors[System.BILLING] = connector_for(env.profile().connections[System.BILLING],
                                                          policy=FAST[System.BILLING], transport=transport,
                                                          clock=env.now)
        window = MainWindow()
        runner = ServiceLoop(name="test-services").start()
        adapter = EngineAdapter(engine, window, runner=runner)
        _wire(window, adapter)
        finished: list[RefreshReport] = []
        adapter.refresh_finished.connect(finished.append)
        window.show()
        try:
            await adapter.load()
            report = await adapter.start_refresh(RefreshMode.FULL)
            assert transport.count > 3  # it did fail mid-refresh
            assert finished == [report]
            billing = report.outcomes[System.BILLING]
            assert not billing.ok and "unexpected error (KeyError" in billing.error_text
            assert report.outcomes[System.ERP].ok and report.outcomes[System.SUPPORT].ok
            assert "unexpected error" in window.lights[System.BILLING].toolTip()
            assert_refresh_over(window)
            # the other systems were read and stored all the same
            assert engine.data[System.ERP].customers and engine.data[System.SUPPORT].customers
            assert window.state is not None and window.state.ages[System.ERP] is not None
        finally:
            await adapter.aclose()
            await runner.call(engine.aclose())
            await asyncio.to_thread(runner.stop)
            storage.close()
            window.close()
            window.deleteLater()
            await asyncio.to_thread(env.stop)

    run_qasync(qloop, scenario())


def test_a_refresh_that_cannot_even_run_shows_the_error_and_re_enables_refresh(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    async def scenario() -> None:
        opts = DemoOptions(customers=10, seed=3, anchor=ANCHOR, faults={s: FaultConfig() for s in System})
        env = await asyncio.to_thread(lambda: DemoEnvironment(opts).start())
        storage = Storage.open_path(tmp_path / "snap.db")
        engine = Engine.from_profile(env.profile(), storage, policies=FAST, clock=env.now)
        window = MainWindow()
        runner = ServiceLoop(name="test-services").start()
        adapter = EngineAdapter(engine, window, runner=runner)
        _wire(window, adapter)
        failures: list[str] = []
        finished: list[RefreshReport] = []
        adapter.failed.connect(failures.append)
        adapter.refresh_finished.connect(finished.append)
        window.show()
        try:
            await adapter.load()
            await asyncio.to_thread(runner.stop)  # the service thread is gone
            report = await adapter.start_refresh(RefreshMode.AUTO)
            assert finished == [report] and not report.ok
            assert len(failures) == 1 and "ServiceLoopClosed" in failures[0]
            assert "Refresh failed" in window.source_label.text()
            assert_refresh_over(window)
        finally:
            await adapter.aclose()
            with contextlib.suppress(Exception):
                await engine.aclose()
            storage.close()
            window.close()
            window.deleteLater()
            await asyncio.to_thread(env.stop)

    run_qasync(qloop, scenario())
