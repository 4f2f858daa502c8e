"""Each refresh's figures are swapped into the Overview's charts in place: every chart keeps its
series and axes (the same objects), its scene holds as many graphics items when the first
figures come back after ten others as it did the first time (rebuilding the axes at each
report left the old ones' items in the scene, so every refresh made each paint slower), and
the values shown are the new report's."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from PySide6.QtCharts import QBarSeries, QStackedBarSeries
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from services.core.reconcile import Snapshot
from services.metrics.compute import compute_metrics
from services.metrics.model import AgeingRow, MetricsReport, Period
from services.store.storage import Storage
from tests.gui.fake_actions import NOW
from views.overview.page import OverviewPage

pytestmark = pytest.mark.gui


def report_with(base: MetricsReport, finance: int, support: int) -> MetricsReport:
    ids = tuple(f"e{i}" for i in range(finance))
    return replace(base, ageing=(AgeingRow("finance", (finance, 0, 0, 0, 0), (ids, (), (), (), ())),
                                 AgeingRow("support", (0, support, 0, 0, 0), ((), ("s1",) * support, (), (), ()))),
                   latency_histogram=replace(base.latency_histogram,
                                             counts=(finance, support, 0, 0, 0, 0, 0, 0)))


def test_charts_are_updated_in_place_and_their_scenes_do_not_grow(qtbot: QtBot, tmp_path: Path) -> None:
    storage = Storage.open_path(tmp_path / "empty.db")
    try:
        base = compute_metrics(Snapshot({}), storage, period=Period(NOW - timedelta(days=30), NOW), now=NOW)
    finally:
        storage.close()
    page = OverviewPage()
    qtbot.addWidget(page)
    page.resize(1600, 900)
    page.show()
    qtbot.waitExposed(page)
    page.set_report(report_with(base, 3, 1))
    qtbot.wait(1)  # laid out and painted once
    items = [len(chart.scene().items()) for chart in page.charts]
    series = [list(chart.chart().series()) for chart in page.charts]
    axes = [list(chart.chart().axes()) for chart in page.charts]
    for n in range(10):
        page.set_report(report_with(base, 4 + n, n % 3))
        qtbot.wait(1)
    assert [list(chart.chart().series()) for chart in page.charts] == series
    assert [list(chart.chart().axes()) for chart in page.charts] == axes
    page.set_report(report_with(base, 3, 1))  # the first figures again: the same scene as then
    qtbot.wait(1)
    assert [len(chart.scene().items()) for chart in page.charts] == items
    page.set_report(report_with(base, 13, 0))
    qtbot.wait(1)
    # the last report's values are the ones drawn
    stacked = page.ageing.chart().series()[0]
    assert isinstance(stacked, QStackedBarSeries)
    first_bucket, second_bucket = stacked.barSets()[0], stacked.barSets()[1]
    assert [first_bucket.at(i) for i in range(first_bucket.count())] == [13.0, 0.0]
    assert [second_bucket.at(i) for i in range(second_bucket.count())] == [0.0, 0.0]
    assert page.ageing.chart().axes(Qt.Orientation.Vertical)[0].max() >= 13
    bars = page.histogram.chart().series()[0]
    assert isinstance(bars, QBarSeries)
    counts = bars.barSets()[0]
    assert [counts.at(i) for i in range(counts.count())][:2] == [13.0, 0.0]
    assert "finance: 13 < 1 h" in page.ageing.accessibleDescription()
