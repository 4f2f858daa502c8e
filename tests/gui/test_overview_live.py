"""The Overview page against the real engine, the real metrics and the demo servers over
loopback, run as the console runs it (Qt on a qasync loop, the services on a ServiceLoop
thread, the figures computed on the CPU thread): the tiles show exactly what
``services.metrics.compute_metrics`` computes for that snapshot; an ageing bar clicked opens the
queue with exactly that team's open exceptions of that age; a refresh updates the page in place
and raises one alert naming what is new (the status bar: offscreen there is no system tray)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QSystemTrayIcon
from pytestqt.qtbot import QtBot

from app.console import _wire
from services.core.domain import Severity, System
from services.demo.environment import DemoEnvironment, DemoOptions
from services.demo.faults import FaultConfig
from services.engine import Engine
from services.io.http import HttpPolicy
from services.metrics.compute import compute_metrics
from services.metrics.model import AGE_BOUNDS_S, AGE_BUCKETS, MetricsReport
from services.runner import ServiceLoop
from services.store.storage import Storage
from tests.gui.live_loop import grab_png, run_qasync
from views.adapters import EngineAdapter
from views.coverage import PageState
from views.main_window import MainWindow
from views.overview.colors import contrast, dark
from views.overview.format import value_text
from views.overview.tile import text_color
from views.settings import Appearance

pytestmark = pytest.mark.gui
ANCHOR = 1_780_000_000
FAST = {s: HttpPolicy(max_retries=0, backoff_base=0.01, read_timeout=2.0, breaker_threshold=50) for s in System}
#: a generous bound on one wait (a refresh of 60 customers and its figures take about a second
#: on a loaded machine)
DEADLINE = 60.0


async def until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"waited {DEADLINE:.0f} s for {what}")
        await asyncio.sleep(0.02)


def figures_in(window: MainWindow, adapter: EngineAdapter) -> bool:
    """The figures of the latest state are computed and shown (no computation running, the
    alert of the latest refresh raised)."""
    return (adapter.metrics is not None and not adapter.tasks.running("metrics") and not adapter.refreshing
            and window.overview_page.report is adapter.metrics and not window.alerts.pending)


async def console(tmp_path: Path,
                  scenario: Callable[[MainWindow, EngineAdapter, DemoEnvironment], Awaitable[None]]) -> None:
    opts = DemoOptions(customers=60, seed=3, anchor=ANCHOR, faults={s: FaultConfig() for s in System})
    env = await asyncio.to_thread(lambda: DemoEnvironment(opts).start())
    storage = Storage.open_path(tmp_path / "snap.db")
    engine = Engine.from_profile(env.profile(), storage, policies=FAST, clock=env.now)
    window = MainWindow()
    runner = ServiceLoop(name="test-services").start()
    adapter = EngineAdapter(engine, window, runner=runner)
    _wire(window, adapter)
    window.resize(1280, 800)
    window.show()
    try:
        assert window.stack.currentWidget() is window.overview_page  # the landing page
        assert window.overview_page.page_state is PageState.LOADING
        await adapter.load()
        await adapter.start_refresh()  # as the console does: a first refresh straight after opening
        await until(lambda: figures_in(window, adapter), "the figures of the first refresh")
        await scenario(window, adapter, env)
    finally:
        await adapter.aclose()
        await runner.call(engine.aclose())
        await asyncio.to_thread(runner.stop)
        storage.close()
        window.close()
        window.deleteLater()
        await asyncio.to_thread(env.stop)


def independent_report(adapter: EngineAdapter, shown: MetricsReport) -> MetricsReport:
    """compute_metrics called here, on the same snapshot, store, period and clock."""
    engine = adapter.engine
    return compute_metrics(engine.snapshot(), engine.storage, period=shown.period, now=shown.period.until)


def test_tiles_show_exactly_the_computed_figures_and_a_refresh_updates_them_in_place(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    async def scenario(window: MainWindow, adapter: EngineAdapter, env: DemoEnvironment) -> None:
        page = window.overview_page
        assert page.page_state is PageState.LOADED
        shown = page.report
        assert shown is not None
        expected = await asyncio.to_thread(independent_report, adapter, shown)
        assert [f.key for f in expected.headline] == list(page.tiles)
        for figure in expected.headline:
            tile = page.tiles[figure.key]
            assert tile.figure == figure, figure.key
            assert tile.value.text() == value_text(figure.value, figure.unit)
            assert tile.breached is figure.breached
            assert ("SLA breached" in tile.sla.text()) is figure.breached
        assert any(t.breached for t in page.tiles.values())  # the demo plants breaches: one is marked
        grab_png(window, tmp_path, "overview-live")
        # F5: the same widgets take the new figures (nothing rebuilt, nothing stalls on the UI thread)
        tiles = dict(page.tiles)
        before = page.report
        window.activateWindow()
        qtbot.keyClick(window, Qt.Key.Key_F5)
        await until(lambda: adapter.refreshing, "the refresh F5 started")
        await until(lambda: figures_in(window, adapter) and page.report is not before, "the new figures")
        assert page.tiles == tiles and all(page.tiles[k] is t for k, t in tiles.items())
        again = await asyncio.to_thread(independent_report, adapter, page.report)
        assert [page.tiles[f.key].figure for f in again.headline] == list(again.headline)

    run_qasync(qloop, console(tmp_path, scenario))


def test_an_ageing_bar_opens_exactly_that_teams_open_exceptions_of_that_age(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    async def scenario(window: MainWindow, adapter: EngineAdapter, env: DemoEnvironment) -> None:
        page = window.overview_page
        chart = page.ageing
        rows = chart.rows
        assert rows, "the demo has open exceptions"
        # the team and bucket with the most open exceptions
        i, b = max(((i, b) for i, r in enumerate(rows) for b in range(len(AGE_BUCKETS))),
                   key=lambda ib: rows[ib[0]].counts[ib[1]])
        team = rows[i].owner
        # the exceptions that bar stands for, from the engine's open exceptions, independently
        now = adapter.engine.clock()
        open_now = await adapter.runner.call(adapter.engine.open_exceptions())
        low = 0.0 if b == 0 else AGE_BOUNDS_S[b - 1]
        high = AGE_BOUNDS_S[b]
        expected = {e.id for e in open_now if str(e.owner) == team and e.age(now) >= low
                    and (high is None or e.age(now) < high)}
        assert expected and len(expected) == rows[i].counts[b]
        assert expected < {e.id for e in open_now}  # the bar is a part of the queue, not all of it
        # a real click in the middle of that bar
        series = chart.chart().series()[0]
        below = sum(rows[i].counts[:b])
        scene_point = chart.chart().mapToPosition(QPointF(i, below + rows[i].counts[b] / 2), series)
        qtbot.mouseClick(chart.viewport(), Qt.MouseButton.LeftButton, pos=chart.mapFromScene(scene_point))
        await until(lambda: window.stack.currentWidget() is window.exceptions_page, "the queue")
        queue = window.exceptions_page
        assert set(queue.model.visible_ids()) == expected
        assert queue.shown_label.text().startswith(f"{team}, open {AGE_BUCKETS[b]}: {len(expected)} of ")
        # Clear lifts it: the whole queue again
        qtbot.mouseClick(queue.clear_button, Qt.MouseButton.LeftButton)
        assert set(queue.model.visible_ids()) == {e.id for e in open_now}
        # the keyboard: Ctrl+1 (the Overview), the chart focused, an arrow to the bar, Enter
        window.go_to_page(window.PAGES.index("Overview"))
        chart.setFocus()
        target = next(n for n, (s, c, _what) in enumerate(chart.cells) if (s, c) == (b, i))
        for _ in range(target + 1):
            qtbot.keyClick(chart, Qt.Key.Key_Right)
        qtbot.keyClick(chart, Qt.Key.Key_Return)
        assert window.stack.currentWidget() is window.exceptions_page
        assert set(queue.model.visible_ids()) == expected

    run_qasync(qloop, console(tmp_path, scenario))


def test_a_tile_opens_its_records_with_enter(qtbot: QtBot, qloop: asyncio.AbstractEventLoop,
                                             tmp_path: Path) -> None:
    async def scenario(window: MainWindow, adapter: EngineAdapter, env: DemoEnvironment) -> None:
        page = window.overview_page
        with_exceptions = next(t for t in page.tiles.values() if t.figure and t.figure.records.exceptions)
        assert with_exceptions.figure is not None
        with_exceptions.setFocus()
        qtbot.keyClick(with_exceptions, Qt.Key.Key_Return)
        assert window.stack.currentWidget() is window.exceptions_page
        assert set(window.exceptions_page.model.visible_ids()) == set(with_exceptions.figure.records.exceptions)
        customers_only = [t for t in page.tiles.values()
                          if t.figure and not t.figure.records.exceptions and t.figure.records.customers]
        # e.g. the success rate: the customers whose invoices missed; a click opens the customer
        # list with exactly those customers
        assert customers_only, "the demo has a figure whose records are customers"
        tile = customers_only[0]
        assert tile.figure is not None and window.state is not None
        window.go_to_page(window.PAGES.index("Overview"))
        qtbot.mouseClick(tile, Qt.MouseButton.LeftButton)
        assert window.stack.currentWidget() is window.customers_stack
        model = window.customers_page.model
        shown = {model.customer_id(r) for r in range(model.rowCount())}
        assert shown == set(tile.figure.records.customers)
        assert len(shown) < len(window.state.rows)
        assert window.customers_page.count_label.text().startswith(tile.figure.label)
        # Ctrl+Shift+L clears it: every customer again
        window.clear_filters()
        assert model.rowCount() == len(window.state.rows)

    run_qasync(qloop, console(tmp_path, scenario))


def test_a_refresh_that_finds_new_critical_exceptions_says_so_once_in_the_status_bar(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    async def scenario(window: MainWindow, adapter: EngineAdapter, env: DemoEnvironment) -> None:
        assert not QSystemTrayIcon.isSystemTrayAvailable()  # offscreen: the status bar is the way
        notifier = window.notifier
        assert window.state is not None
        critical = sorted({e.rule for e in window.state.exceptions if e.severity is Severity.CRITICAL})
        assert critical, "the demo plants critical exceptions"
        # the first refresh found them (the snapshot opened empty): one alert, in the status bar
        assert len(notifier.sent) == 1
        text, channel = notifier.sent[0]
        assert channel == "status bar"
        n = sum(1 for e in window.state.exceptions if e.severity is Severity.CRITICAL)
        assert text.startswith(f"Refresh found {n} new critical exception")
        for rule in critical:
            assert rule in text
        report = window.overview_page.report
        assert report is not None
        for figure in report.breaches:
            assert figure.label in text
        assert window.statusBar().currentMessage() == text
        # another refresh finds nothing new: no second alert
        window.refresh_requested.emit("auto")
        await until(lambda: adapter.refreshing, "the second refresh")
        await until(lambda: figures_in(window, adapter), "its figures")
        assert len(notifier.sent) == 1

    run_qasync(qloop, console(tmp_path, scenario))


def test_every_tile_and_chart_text_is_readable_in_the_light_and_the_dark_palette(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    """WCAG contrast ≥ 4.5 between each tile text's colour and the tile's background as rendered
    (a pixel inside its frame), and between each chart's title and axis labels and its
    background, in both appearances."""
    async def scenario(window: MainWindow, adapter: EngineAdapter, env: DemoEnvironment) -> None:
        page = window.overview_page
        assert any(t.breached for t in page.tiles.values())
        assert any(t.change.text() for t in page.tiles.values())
        try:
            for appearance in (Appearance.DARK, Appearance.LIGHT):
                window.set_appearance(appearance)
                await until(lambda a=appearance: dark(page.palette()) is (a is Appearance.DARK), "the palette")
                for key, tile in page.tiles.items():
                    background = tile.grab().toImage().pixelColor(6, tile.height() // 2)
                    assert background == tile.background, (appearance, key)
                    # the tile follows the appearance: a dark tile in the dark palette, a light one in the light
                    assert (background.lightness() < 128) is (appearance is Appearance.DARK), (appearance, key)
                    for label in (tile.label, tile.value, tile.basis, tile.change, tile.sla):
                        if label.text():
                            ratio = contrast(text_color(label), background)
                            assert ratio >= 4.5, (appearance, key, label.text(), ratio)
                for chart in page.charts:
                    q = chart.chart()
                    back = q.backgroundBrush().color()
                    assert contrast(q.titleBrush().color(), back) >= 4.5, (appearance, chart.accessibleName())
                    for axis in q.axes():
                        assert contrast(axis.labelsBrush().color(), back) >= 4.5, (appearance, chart.accessibleName())
                grab_png(window, tmp_path, f"overview-{appearance.value}")
        finally:
            window.set_appearance(Appearance.SYSTEM)

    run_qasync(qloop, console(tmp_path, scenario))
