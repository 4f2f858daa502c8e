"""The Overview page without servers: it is the window's first page; it says its state like every
page (loading, not loaded with Retry and the Systems page, loaded and empty — from the real
``compute_metrics`` over an empty store); figures are worded by unit and direction; text is
shown as plain text (tiles, tooltips, chart labels)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from services.core.domain import System
from services.core.overview import CustomerRow, RowFilter
from services.core.reconcile import Snapshot
from services.metrics.compute import compute_metrics
from services.metrics.model import Comparison, Figure, MetricsReport, Period, Records, SlaTarget, Unit
from services.store.storage import Storage
from tests.gui.fake_actions import NOW
from views.adapters import ConsoleState
from views.coverage import PageState, skipped_by_data
from views.main_window import MainWindow
from views.overview.format import change, sla_text, value_text
from views.overview.tile import FigureTile

pytestmark = pytest.mark.gui

DOWN = {System.BILLING: "billing unavailable: connection failed (ConnectError)",
        System.ERP: "erp unavailable: HTTP 503", System.SUPPORT: "support unavailable: timed out"}


@pytest.fixture
def window(qtbot: QtBot) -> MainWindow:
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1024, 640)
    w.show()
    qtbot.waitExposed(w)
    return w


def empty_state(with_data: tuple[System, ...], refreshed: dict[System, str] | None) -> ConsoleState:
    have = frozenset(with_data)
    ages = {s: (NOW - timedelta(hours=1) if s in have else None) for s in System}
    rows: list[CustomerRow] = []
    return ConsoleState(rows, [], NOW, None, ages, row_filter=RowFilter(rows), refreshed=refreshed,
                        skipped_rules=skipped_by_data(have))


def empty_report(tmp_path: Path) -> MetricsReport:
    """The real computation over an empty snapshot and an empty store."""
    storage = Storage.open_path(tmp_path / "empty.db")
    try:
        return compute_metrics(Snapshot({}), storage, period=Period(NOW - timedelta(days=30), NOW), now=NOW)
    finally:
        storage.close()


def test_the_overview_is_the_first_page_and_ctrl_1_shows_it(qtbot: QtBot, window: MainWindow) -> None:
    assert window.PAGES[0] == "Overview"
    assert window.stack.currentWidget() is window.overview_page and window.nav.currentRow() == 0
    window.go_to_page(window.PAGES.index("Systems"))
    window.activateWindow()
    qtbot.waitActive(window)
    qtbot.keyClick(window, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert window.stack.currentWidget() is window.overview_page
    assert window.nav.item(0).toolTip() == "Overview (Ctrl+1)"


def test_loading_then_not_loaded_with_retry_and_the_systems_page(qtbot: QtBot, window: MainWindow) -> None:
    page = window.overview_page
    assert page.page_state is PageState.LOADING
    window.on_refresh_started("auto")
    window.set_state(empty_state((), None))
    assert page.page_state is PageState.LOADING and page.empty.title() == "Reading billing, ERP and support…"
    window.set_state(empty_state((), DOWN))
    window.on_refresh_ended(None)
    assert page.page_state is PageState.NOT_LOADED
    assert page.empty.title() == "No system could be read"
    for why in DOWN.values():
        assert why in page.empty.text()
    asked: list[str] = []
    window.refresh_requested.connect(asked.append)
    qtbot.mouseClick(page.empty.retry_button, Qt.MouseButton.LeftButton)
    assert asked == ["auto"]
    qtbot.mouseClick(page.empty.systems_button, Qt.MouseButton.LeftButton)
    assert window.stack.currentWidget() is window.systems_page


def test_loaded_and_empty_from_the_real_computation_over_an_empty_store(
        qtbot: QtBot, window: MainWindow, tmp_path: Path) -> None:
    page = window.overview_page
    window.set_state(empty_state(tuple(System), {s: "" for s in System}))
    assert page.page_state is PageState.LOADING and page.empty.title() == "Computing the figures…"
    window.set_metrics(empty_report(tmp_path))
    assert page.page_state is PageState.EMPTY
    assert page.empty.title() == "Nothing to measure yet"
    assert not page.empty.retry_button.isVisibleTo(page.empty)


def test_figures_that_cannot_be_computed_say_why(qtbot: QtBot, window: MainWindow) -> None:
    page = window.overview_page
    window.set_state(empty_state(tuple(System), {s: "" for s in System}))
    window.on_metrics_failed("StorageError: database is locked")
    assert page.page_state is PageState.NOT_LOADED
    assert page.empty.title() == "The figures could not be computed"
    assert "database is locked" in page.empty.text()
    assert page.empty.retry_button.isVisibleTo(page.empty)


def test_nothing_could_be_opened_says_why(qtbot: QtBot, window: MainWindow) -> None:
    window.show_error("config.toml: [profiles.x] has no [billing] table")
    page = window.overview_page
    assert page.page_state is PageState.NOT_LOADED and "has no [billing] table" in page.empty.text()


def test_figures_are_worded_by_unit_and_by_what_is_better() -> None:
    at_least = SlaTarget("invoice_sync_success_rate", Comparison.AT_LEAST, 99.5)
    rate = Figure("invoice_sync_success_rate", "Success", 99.2, 99.6, Unit.PERCENT, at_least, breached=True)
    assert value_text(rate.value, rate.unit) == "99.20 %"
    assert change(rate) == ("↓ −0.40 pts, worse", -1)
    assert sla_text(rate) == "SLA breached: target ≥ 99.50 %"
    at_most = SlaTarget("posting_latency_p95", Comparison.AT_MOST, 3600)
    p95 = Figure("posting_latency_p95", "p95", 3000.0, 7500.0, Unit.SECONDS, at_most)
    assert value_text(p95.value, p95.unit) == "50 min"
    assert change(p95) == ("↓ −1 h 15 min, better", 1)
    assert sla_text(p95) == "SLA met: target ≤ 1 h"
    count = Figure("open_exceptions", "Open", 12.0, None, Unit.COUNT)
    assert change(count) == ("no previous figure", 0)
    assert value_text(None, Unit.SECONDS) == "no data"


def test_tile_text_and_tooltip_are_plain_text(qtbot: QtBot) -> None:
    tile = FigureTile()
    qtbot.addWidget(tile)
    hostile = "<b>bold</b> <img src=x>"
    tile.set_figure(Figure("x", hostile, 3.0, 1.0, Unit.COUNT, records=Records(exceptions=("e1",))))
    assert tile.label.textFormat() is Qt.TextFormat.PlainText and tile.label.text() == hostile
    tip = tile.toolTip()
    assert "<b>bold</b>" not in tip and "&lt;b&gt;bold&lt;/b&gt;" in tip  # escaped: shown, never rendered
    opened: list[bool] = []
    tile.activated.connect(lambda: opened.append(True))
    tile.setFocus()
    qtbot.keyClick(tile, Qt.Key.Key_Return)
    assert opened == [True]
    tile.set_figure(Figure("x", "No records", 3.0, 1.0, Unit.COUNT))
    qtbot.keyClick(tile, Qt.Key.Key_Return)
    assert opened == [True]  # nothing behind it: nothing to open


def test_chart_labels_from_outside_are_escaped(qtbot: QtBot, tmp_path: Path) -> None:
    from dataclasses import replace

    from services.metrics.model import AgeingRow
    from views.overview.charts import AgeingChart

    report = replace(empty_report(tmp_path), ageing=(AgeingRow("<i>ops</i>", (1, 0, 0, 0, 0),
                                                                (("e1",), (), (), (), ())),))
    chart = AgeingChart()
    qtbot.addWidget(chart)
    chart.set_report(report)
    axis = chart.chart().axes(Qt.Orientation.Horizontal)[0]
    assert axis.categories() == ["&lt;i&gt;ops&lt;/i&gt;"]  # QtCharts renders labels as rich text
    first_bucket = chart._sets[0]
    assert first_bucket.label() == "&lt; 1 h"
    assert chart.accessibleName() and "<i>ops</i>: 1 < 1 h" in chart.accessibleDescription()
