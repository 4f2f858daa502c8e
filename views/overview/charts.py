"""The Overview's four charts (QtCharts), each filled from a :class:`MetricsReport` in place (their
series and axes are made once; a new report replaces the values, categories and ranges):

- :class:`MonthlyChart` — invoice sync success rate (line, right axis) and posting latency p95
  (bars, left axis) for each of the last 12 months;
- :class:`AgeingChart` — open exceptions by owner team, stacked by age bucket; a bar opens
  exactly its exceptions (``open_exceptions``);
- :class:`LatencyHistogram` — how long postings took to reach the ERP;
- :class:`FreshnessChart` — how old each system's data is, over its target in red.
"""

from __future__ import annotations

import html
import math

from PySide6.QtCharts import (
    QAbstractAxis,
    QAbstractSeries,
    QBarCategoryAxis,
    QBarSeries,
    QBarSet,
    QHorizontalStackedBarSeries,
    QLineSeries,
    QStackedBarSeries,
    QValueAxis,
)
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QWidget

from services.metrics.model import AGE_BUCKETS, AgeingRow, Freshness, Histogram, MetricsReport, MonthPoint, Unit
from views.overview.chart_view import ChartPanel
from views.overview.colors import (
    BUCKET_COLORS,
    HISTOGRAM_COLOR,
    LATENCY_COLOR,
    OVER_COLOR,
    SUCCESS_COLOR,
    WITHIN_COLOR,
)
from views.overview.format import duration_text, percent_text, target_text, value_text

#: ticks on a count axis before they are made whole numbers (QValueAxis's default)
COUNT_TICKS = 5
#: where an axis goes
BOTTOM, LEFT = Qt.AlignmentFlag.AlignBottom, Qt.AlignmentFlag.AlignLeft


def _time_scale(largest: float) -> tuple[float, str]:
    """(seconds per axis unit, unit name) for values up to ``largest`` seconds."""
    if largest >= 2 * 86400:
        return 86400.0, "d"
    if largest >= 2 * 3600:
        return 3600.0, "h"
    if largest >= 120:
        return 60.0, "min"
    return 1.0, "s"


def _nice_max(value: float) -> float:
    """A round axis maximum a little above ``value`` (1, 2, 2.5, 5 × 10^n)."""
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp * 0.95:
            return step * exp
    return 10 * exp


def rich_safe(texts: list[str]) -> list[str]:
    """Texts for what QtCharts renders as rich text (legend entries, category labels): escaped,
    so ``"< 1 h"`` shows as typed instead of vanishing as a broken tag."""
    return [html.escape(t, quote=False) for t in texts]


def _count_axis(axis: QValueAxis, largest: int) -> None:
    """0 .. a little above ``largest`` (the highest bar never touches the frame), with
    whole-number ticks. The same ``largest`` always gives the same axis (the axis is reused from
    report to report: its tick count is set again, not kept from the report before)."""
    top = max(4, math.ceil(largest * 1.1))
    axis.setTickCount(COUNT_TICKS)
    axis.setRange(0, top)
    axis.applyNiceNumbers()
    step = (axis.max() - axis.min()) / max(1, axis.tickCount() - 1)
    if step != int(step):  # e.g. 0..5 in 4 steps: 1.25
        axis.setTickCount(int(axis.max()) + 1 if axis.max() <= 10 else axis.tickCount())
    axis.setLabelFormat("%d")


def _bar_set(label: str, color: str, values: list[float]) -> QBarSet:
    bar_set = QBarSet(rich_safe([label])[0])
    bar_set.setColor(QColor(color))
    bar_set.setBorderColor(QColor(color))
    bar_set.append(values)
    return bar_set


def _set_values(bar_set: QBarSet, values: list[float]) -> None:
    """``bar_set`` holds exactly ``values`` (in place: the bars of equal length are replaced)."""
    if bar_set.count() == len(values):
        for i, v in enumerate(values):
            if bar_set.at(i) != v:
                bar_set.replace(i, v)
        return
    if bar_set.count():
        bar_set.remove(0, bar_set.count())
    bar_set.append(values)


def _set_categories(axis: QBarCategoryAxis, labels: list[str]) -> None:
    """The axis's categories as plain text (escaped), one placeholder when there are none."""
    categories = rich_safe(labels) or ["—"]
    if axis.categories() != categories:
        axis.setCategories(categories)


def _attach(panel: ChartPanel, series: list[QAbstractSeries],
            axes: list[tuple[QAbstractAxis, Qt.AlignmentFlag]]) -> None:
    """Add ``series`` and ``axes`` to ``panel``'s chart once, each series attached to every axis.
    The charts update them in place afterwards (``set_report``): removing and re-adding axes at
    each refresh would leave the old axes' graphics in the scene, and every paint slower."""
    chart = panel.chart()
    for s in series:
        chart.addSeries(s)
    for axis, where in axes:
        chart.addAxis(axis, where)
        for s in series:
            s.attachAxis(axis)


class MonthlyChart(ChartPanel):
    """Success rate and posting latency p95, month by month."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Success rate and posting latency p95, last 12 months",
                         "Monthly invoice sync success rate and posting latency p95", parent)
        self.months: tuple[MonthPoint, ...] = ()
        self.bars = _bar_set("Posting latency p95", LATENCY_COLOR, [])
        self.bars.hovered.connect(lambda on, i: self.show_tip(self._month_text(i) if on else ""))
        self.bar_series = QBarSeries()
        self.bar_series.append(self.bars)
        self.line = QLineSeries()
        self.line.setName(rich_safe(["Success rate (%)"])[0])
        self.line.setPen(QPen(QColor(SUCCESS_COLOR), 2.5))
        self.line.setPointsVisible(True)
        self.line.hovered.connect(lambda point, on: self.show_tip(self._month_text(round(point.x())) if on else ""))
        self.x_axis = QBarCategoryAxis()
        self.left = QValueAxis()
        self.left.setLabelFormat("%.3g")
        self.right = QValueAxis()
        self.right.setTitleText("success (%)")
        self.right.setLabelFormat("%.0f")
        chart = self.chart()
        chart.addSeries(self.bar_series)
        chart.addSeries(self.line)
        chart.addAxis(self.x_axis, Qt.AlignmentFlag.AlignBottom)
        chart.addAxis(self.left, Qt.AlignmentFlag.AlignLeft)
        chart.addAxis(self.right, Qt.AlignmentFlag.AlignRight)
        for series, y in ((self.bar_series, self.left), (self.line, self.right)):
            series.attachAxis(self.x_axis)
            series.attachAxis(y)

    def set_report(self, report: MetricsReport) -> None:
        months = self.months = tuple(report.monthly[-12:])
        latencies = [m.posting_latency_p95 for m in months]
        known = [v for v in latencies if v is not None]
        scale, unit = _time_scale(max(known, default=0.0))
        self.bars.setLabel(rich_safe([f"Posting latency p95 ({unit})"])[0])
        _set_values(self.bars, [(v or 0.0) / scale for v in latencies])
        rates = [(i, m.success_rate) for i, m in enumerate(months) if m.success_rate is not None]
        self.line.replace([QPointF(i, rate) for i, rate in rates])
        _set_categories(self.x_axis, [m.month for m in months])
        self.x_axis.setLabelsAngle(-45 if len(months) > 6 else 0)
        self.left.setTitleText(f"p95 ({unit})")
        self.left.setRange(0, _nice_max(max(known, default=0.0) / scale))
        self.left.applyNiceNumbers()
        low = min((r for _, r in rates), default=100.0)
        self.right.setRange(max(0.0, math.floor(low / 5) * 5 - (5 if low >= 5 else 0)), 100.0)
        self.right.applyNiceNumbers()
        self.set_title("" if months else "no data yet")
        self.describe([self._month_text(i) for i in range(len(months))] or ["No month with data yet."])
        self.theme()

    def _month_text(self, i: int) -> str:
        if not 0 <= i < len(self.months):
            return ""
        m = self.months[i]
        rate = percent_text(m.success_rate) if m.success_rate is not None else "no invoice due"
        p95 = duration_text(m.posting_latency_p95) if m.posting_latency_p95 is not None else "no posting"
        return (f"{m.month}: success rate {rate} ({m.invoices:,} invoices); posting latency p95 {p95} "
                f"({m.postings:,} postings)")


class AgeingChart(ChartPanel):
    """Open exceptions by owner team, stacked by age bucket; a bar opens its exceptions."""

    #: (exception ids, what they are: "finance, open < 1 d")
    open_exceptions = Signal(object, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Open exceptions by owner team and age", "Ageing of open exceptions by owner team", parent)
        self.rows: tuple[AgeingRow, ...] = ()
        self.bar_activated.connect(self._open)
        self.series = QStackedBarSeries()
        sets = []
        for b, bucket in enumerate(AGE_BUCKETS):
            bar_set = _bar_set(bucket, BUCKET_COLORS[b % len(BUCKET_COLORS)], [])
            bar_set.hovered.connect(lambda on, i, b=b: self.show_tip(self._bar_text(i, b) if on else ""))
            self.series.append(bar_set)
            sets.append(bar_set)
        self.series.setBarWidth(0.6)
        self.x_axis = QBarCategoryAxis()
        self.y_axis = QValueAxis()
        self.y_axis.setTitleText("open exceptions")
        _attach(self, [self.series], [(self.x_axis, BOTTOM), (self.y_axis, LEFT)])
        self.watch_sets(sets)

    @staticmethod
    def bar_label(owner: str, bucket: int) -> str:
        return f"{owner}, open {AGE_BUCKETS[bucket]}"

    def set_report(self, report: MetricsReport) -> None:
        rows = self.rows = tuple(report.ageing)
        for b, bar_set in enumerate(self._sets):
            _set_values(bar_set, [float(r.counts[b]) for r in rows])
        _set_categories(self.x_axis, [r.owner for r in rows])
        _count_axis(self.y_axis, max((sum(r.counts) for r in rows), default=0))
        self.choose_none()
        self.cells = [(b, i, self._bar_text(i, b)) for i, r in enumerate(rows)
                      for b in range(len(AGE_BUCKETS)) if r.counts[b]]
        total = sum(sum(r.counts) for r in rows)
        self.set_title("none open" if not total else "")
        lines = [f"{r.owner}: " + ", ".join(f"{r.counts[b]} {AGE_BUCKETS[b]}" for b in range(len(AGE_BUCKETS)))
                 for r in rows]
        self.describe(lines + (["Use the arrow keys to choose a bar and Enter to open its exceptions."]
                               if self.cells else ["No exception is open."]))
        self.theme()

    def _bar_text(self, i: int, b: int) -> str:
        if not 0 <= i < len(self.rows):
            return ""
        n = self.rows[i].counts[b]
        return f"{self.bar_label(self.rows[i].owner, b)}: {n:,} exception{'s' if n != 1 else ''}"

    def _open(self, b: int, i: int) -> None:
        if 0 <= i < len(self.rows) and self.rows[i].counts[b]:
            self.open_exceptions.emit(frozenset(self.rows[i].exceptions[b]), self.bar_label(self.rows[i].owner, b))


class LatencyHistogram(ChartPanel):
    """How many postings reached the ERP within each latency band, in the period."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Posting latency, this period", "Histogram of invoice posting latency", parent)
        self.histogram: Histogram | None = None
        self.labels: list[str] = []
        self.bars = _bar_set("Postings", HISTOGRAM_COLOR, [])
        self.bars.hovered.connect(lambda on, i: self.show_tip(self._band_text(i) if on else ""))
        self.series = QBarSeries()
        self.series.append(self.bars)
        self.series.setBarWidth(0.9)
        self.chart().legend().setVisible(False)
        self.x_axis = QBarCategoryAxis()
        self.y_axis = QValueAxis()
        self.y_axis.setTitleText("postings")
        _attach(self, [self.series], [(self.x_axis, BOTTOM), (self.y_axis, LEFT)])

    @staticmethod
    def band_labels(edges: tuple[float, ...]) -> list[str]:
        out = []
        for i in range(len(edges) - 1):
            lo, hi = edges[i], edges[i + 1]
            out.append(f"≥ {duration_text(lo)}" if math.isinf(hi) else
                       f"< {duration_text(hi)}" if lo <= 0 else f"{duration_text(lo)}–{duration_text(hi)}")
        return out

    def set_report(self, report: MetricsReport) -> None:
        hist = self.histogram = report.latency_histogram
        self.labels = self.band_labels(hist.edges)
        _set_values(self.bars, [float(c) for c in hist.counts])
        _set_categories(self.x_axis, self.labels)
        self.x_axis.setLabelsAngle(-45 if len(self.labels) > 5 else 0)
        _count_axis(self.y_axis, max(hist.counts, default=0))
        self.set_title("" if sum(hist.counts) else "no posting yet")
        self.describe([self._band_text(i) for i in range(len(hist.counts))] or ["No posting in the period."])
        self.theme()

    def _band_text(self, i: int) -> str:
        if self.histogram is None or not 0 <= i < len(self.histogram.counts):
            return ""
        n = self.histogram.counts[i]
        return f"{self.labels[i]}: {n:,} posting{'s' if n != 1 else ''}"


class FreshnessChart(ChartPanel):
    """How long ago each system was read; bars over their target in red (and said so)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Data freshness per system", "Age of each system's data", parent)
        self.rows: tuple[Freshness, ...] = ()
        self.MIN_HEIGHT = 170
        self.setMinimumHeight(self.MIN_HEIGHT)
        self.within = _bar_set("within target", WITHIN_COLOR, [])
        self.over = _bar_set("over target", OVER_COLOR, [])
        for bar_set in (self.within, self.over):
            bar_set.hovered.connect(lambda on, i: self.show_tip(self._system_text(i) if on else ""))
        self.series = QHorizontalStackedBarSeries()
        self.series.append(self.within)
        self.series.append(self.over)
        self.series.setBarWidth(0.6)
        self.y_axis = QBarCategoryAxis()
        self.x_axis = QValueAxis()
        self.x_axis.setLabelFormat("%.3g")
        _attach(self, [self.series], [(self.y_axis, LEFT), (self.x_axis, BOTTOM)])

    def set_report(self, report: MetricsReport) -> None:
        rows = self.rows = tuple(report.freshness)
        ages = [f.age or 0.0 for f in rows]
        scale, unit = _time_scale(max(ages, default=0.0))
        pairs = list(zip(rows, ages, strict=True))
        _set_values(self.within, [0.0 if f.breached else a / scale for f, a in pairs])
        _set_values(self.over, [a / scale if f.breached else 0.0 for f, a in pairs])
        _set_categories(self.y_axis, [_system_title(f.system) + (" (never read)" if f.age is None else "")
                                      for f in rows])
        self.x_axis.setTitleText(f"age ({unit})")
        self.x_axis.setRange(0, _nice_max(max(ages, default=0.0) / scale))
        self.x_axis.applyNiceNumbers()
        breached = [f for f in rows if f.breached]
        self.set_title(f"{len(breached)} over target" if breached else "")
        self.describe([self._system_text(i) for i in range(len(rows))] or ["No system configured."])
        self.theme()

    def _system_text(self, i: int) -> str:
        if not 0 <= i < len(self.rows):
            return ""
        f = self.rows[i]
        if f.last_read is None or f.age is None:
            return f"{_system_title(f.system)}: never read"
        target = target_text(f.target, Unit.SECONDS) if f.target is not None else ""
        verdict = f" — over the target ({target})" if f.breached else f" ({target})" if target else ""
        return f"{_system_title(f.system)}: read {value_text(f.age, Unit.SECONDS)} ago{verdict}"


def _system_title(system: str) -> str:
    return {"billing": "Billing", "erp": "ERP", "support": "Support"}.get(system, system)
