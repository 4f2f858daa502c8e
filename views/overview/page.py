"""The Overview page, the console's landing page: the headline figures as tiles (their change
against the previous period, SLA breaches marked), then four charts — success rate and posting
latency p95 month by month, the ageing of open exceptions by owner team, the posting-latency
histogram, each system's freshness.

The figures are computed off the UI thread (``views.adapters.EngineAdapter`` runs
``services.metrics.compute.compute_metrics`` on the CPU thread after each state); this page only
swaps them in (:meth:`OverviewPage.set_report`), keeping its widgets, scroll position and focus.
A tile or an ageing bar opens exactly the records behind it: ``open_exceptions`` /
``open_customers`` carry their ids and what they are.

Like every page it says its state (``views.coverage``): loading, not loaded (why, Retry, the
Systems page), loaded and empty, loaded.
"""

from __future__ import annotations

from datetime import UTC, datetime

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QFrame, QGridLayout, QScrollArea, QStackedWidget, QVBoxLayout, QWidget

from services.metrics.model import Figure, MetricsReport
from views.coverage import Coverage, PageState, View, names, stale_banner
from views.overview.chart_view import ChartPanel
from views.overview.charts import AgeingChart, FreshnessChart, LatencyHistogram, MonthlyChart
from views.overview.format import value_text
from views.overview.tile import FigureTile
from views.widgets.banner import Banner
from views.widgets.focus import tab_chain
from views.widgets.state import StatePanel
from views.widgets.text import bold, plain_label, set_muted

#: a tile's width the grid aims at (columns = available width // this)
TILE_WIDTH = 200
#: the width from which the charts stand two by two
TWO_CHART_COLUMNS = 900


def has_data(report: MetricsReport) -> bool:
    """Anything measured: a figure, an invoice in a month, an open exception, a posting."""
    return (any(f.value for f in report.headline) or any(m.invoices or m.postings for m in report.monthly)
            or any(sum(r.counts) for r in report.ageing) or any(report.latency_histogram.counts))


def overview_view(cov: Coverage | None, report: MetricsReport | None, error: str | None) -> View:
    """What the page says: loading / not loaded (why, Retry) / empty / loaded."""
    if report is not None and has_data(report):
        return View(PageState.LOADED)
    if error:
        return View(PageState.NOT_LOADED, "The figures could not be computed", error, retry=True)
    if cov is None or not cov.opened:
        return View(PageState.LOADING, "Opening the local snapshot…", "The figures follow in a moment.")
    if not cov.with_data:
        if cov.refreshing or not cov.refreshed:
            return View(PageState.LOADING, "Reading billing, ERP and support…",
                        "The figures are computed once the systems are read.")
        reasons = "; ".join(f"{names({s})}: {why}" for s, why in cov.unread.items())
        return View(PageState.NOT_LOADED, "No system could be read", f"Nothing to measure. {reasons}", retry=True)
    if report is None:
        return View(PageState.LOADING, "Computing the figures…", "Success rate, latencies, ageing, freshness.")
    return View(PageState.EMPTY, "Nothing to measure yet",
                "No invoice, posting or exception in the period: the figures appear as the systems fill in.")


class OverviewPage(QWidget):
    """Tiles and charts over the latest :class:`MetricsReport`."""

    #: (exception ids: frozenset[str], what they are)
    open_exceptions = Signal(object, str)
    #: (customer ids: frozenset[str], what they are)
    open_customers = Signal(object, str)
    retry_requested = Signal()
    systems_requested = Signal()
    #: the set of tiles changed (the window chains the keyboard focus through them again)
    tiles_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.report: MetricsReport | None = None
        self.coverage: Coverage | None = None
        self.error: str | None = None
        self.tiles: dict[str, FigureTile] = {}

        self.heading = bold(plain_label("Overview"), 1.6)
        self.period = set_muted(plain_label(""))
        self.period.setWordWrap(True)
        self.banner = Banner()
        self.banner.setObjectName("coverageBanner")
        self.banner.hide()

        self.tile_box = QWidget()  # the tiles' grid, laid out again when the columns change
        self.monthly = MonthlyChart()
        self.ageing = AgeingChart()
        self.histogram = LatencyHistogram()
        self.freshness = FreshnessChart()
        self.charts: tuple[ChartPanel, ...] = (self.monthly, self.ageing, self.histogram, self.freshness)
        self.ageing.open_exceptions.connect(self.open_exceptions)
        self.chart_box = QWidget()  # the charts' grid, likewise

        body = QWidget()
        body.setObjectName("overviewBody")
        body_lay = QVBoxLayout(body)
        body_lay.setContentsMargins(0, 0, 0, 0)
        body_lay.setSpacing(10)
        body_lay.addWidget(self.tile_box)
        body_lay.addWidget(self.chart_box, 1)
        self.scroll_area = QScrollArea()
        self.scroll_area.setObjectName("overviewScroll")
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll_area.setWidget(body)
        self.body = body
        # the grids follow the viewport's width (the page's own may not change when it does)
        self.scroll_area.viewport().installEventFilter(self)

        self.empty = StatePanel("Opening the local snapshot…")
        self.empty.retry_requested.connect(self.retry_requested)
        self.empty.systems_requested.connect(self.systems_requested)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.scroll_area)
        self.stack.addWidget(self.empty)
        self.stack.setCurrentWidget(self.empty)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.addWidget(self.heading)
        lay.addWidget(self.period)
        lay.addWidget(self.banner)
        lay.addWidget(self.stack, 1)
        self._columns = (0, 0)
        self._layout_charts(force=True)
        self._update_state()

    # -- state ---------------------------------------------------------------------------
    @property
    def page_state(self) -> PageState:
        return PageState.LOADED if self.stack.currentWidget() is self.scroll_area else self.empty.state

    def set_coverage(self, coverage: Coverage | None, now: datetime | None = None) -> None:
        """What the figures rest on: a banner names the systems the latest refresh did not read."""
        self.coverage = coverage
        banner = stale_banner(coverage, list(coverage.unread), now or datetime.now(UTC)) if coverage else None
        if banner is None:
            self.banner.hide()
        else:
            self.banner.show_message(*banner)
            self.banner.show()
        self._update_state()

    def show_failed(self, text: str) -> None:
        """The figures could not be computed (the report keeps showing if there was one)."""
        self.error = text
        self._update_state()

    def show_not_loaded(self, title: str, text: str) -> None:
        """The data could not be opened at all (e.g. the snapshot database): say why."""
        self.error = text
        self.empty.show_state(PageState.NOT_LOADED, title, text, retry=True)
        self.stack.setCurrentWidget(self.empty)

    def _update_state(self) -> None:
        view = overview_view(self.coverage, self.report, self.error)
        if view.state is PageState.LOADED:
            self.stack.setCurrentWidget(self.scroll_area)
        else:
            self.empty.show_view(view)
            self.stack.setCurrentWidget(self.empty)

    # -- data in -------------------------------------------------------------------------
    def set_report(self, report: MetricsReport) -> None:
        """Swap the figures in: tiles and charts keep their widgets, the scroll position and focus."""
        self.report = report
        self.error = None
        p = report.period
        days = max(1, round(p.length.total_seconds() / 86400))
        self.period.setText(f"Last {days} days ({p.since:%Y-%m-%d} to {p.until:%Y-%m-%d} UTC), each figure "
                            f"compared with the {days} days before; computed {report.generated_at:%Y-%m-%d %H:%M} UTC")
        keys = [f.key for f in report.headline]
        if keys != list(self.tiles):
            self._rebuild_tiles(keys)
        for figure in report.headline:
            self.tiles[figure.key].set_figure(figure)
        for chart in self.charts:
            chart.set_report(report)
        self._update_state()

    def _rebuild_tiles(self, keys: list[str]) -> None:
        old = self.tiles
        self.tiles = {}
        for key in keys:
            tile = old.pop(key, None)
            if tile is None:
                tile = FigureTile()
                tile.setProperty("figureKey", key)
                tile.activated.connect(lambda k=key: self.open_tile(k))
            self.tiles[key] = tile
        for tile in old.values():
            tile.setParent(None)
            tile.deleteLater()
        self._columns = (0, self._columns[1])
        self._layout_tiles()
        tab_chain(self.focus_chain())
        self.tiles_changed.emit()

    def open_tile(self, key: str) -> None:
        """A tile's records: its exceptions in the queue, else its customers in the list."""
        tile = self.tiles.get(key)
        figure = tile.figure if tile is not None else None
        if figure is None:
            return
        label = f"{figure.label} ({value_text(figure.value, figure.unit)})"
        if figure.records.exceptions:
            self.open_exceptions.emit(frozenset(figure.records.exceptions), label)
        elif figure.records.customers:  # e.g. the customers of the invoices a latency figure rests on
            if figure.records.invoices:
                label += f": customers of {len(figure.records.invoices):,} invoice(s)"
            self.open_customers.emit(frozenset(figure.records.customers), label)

    def figure(self, key: str) -> Figure | None:
        tile = self.tiles.get(key)
        return tile.figure if tile is not None else None

    def focus_chain(self) -> list[QWidget]:
        """Tab order: the tiles, the charts, then the state panel's buttons."""
        return [*self.tiles.values(), *self.charts, self.empty.retry_button, self.empty.systems_button]

    # -- layout (1024×640 to 4K) ---------------------------------------------------------
    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._layout_tiles()
        self._layout_charts()

    def changeEvent(self, event: QEvent) -> None:
        """A new palette (light, dark): the tiles take their colours again (a frame with a style
        sheet is not told of the application's palette itself)."""
        if event.type() == QEvent.Type.PaletteChange:
            for tile in self.tiles.values():
                tile.restyle()
        super().changeEvent(event)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.scroll_area.viewport() and event.type() == QEvent.Type.Resize:
            self._layout_tiles()
            self._layout_charts()
        return super().eventFilter(watched, event)

    def _layout_tiles(self) -> None:
        width = self.scroll_area.viewport().width() or self.width()
        fits = max(1, min(len(self.tiles) or 1, width // TILE_WIDTH))
        rows = -(-max(1, len(self.tiles)) // fits)
        columns = -(-max(1, len(self.tiles)) // rows)  # the rows evenly filled: 15 tiles as 5 × 3, not 7 + 7 + 1
        if columns == self._columns[0]:
            return
        self._columns = (columns, self._columns[1])
        grid = _new_grid(self.tile_box)
        for i, tile in enumerate(self.tiles.values()):
            grid.addWidget(tile, i // columns, i % columns, Qt.AlignmentFlag.AlignTop)
        for c in range(columns):
            grid.setColumnStretch(c, 1)

    def _layout_charts(self, force: bool = False) -> None:
        width = self.scroll_area.viewport().width() or self.width()
        columns = 2 if width >= TWO_CHART_COLUMNS else 1
        if columns == self._columns[1] and not force:
            return
        self._columns = (self._columns[0], columns)
        grid = _new_grid(self.chart_box)
        for i, chart in enumerate(self.charts):
            grid.addWidget(chart, i // columns, i % columns)
        # charts fill a large screen's height; on a small one they keep a readable minimum
        for c in range(columns):
            grid.setColumnStretch(c, 1)
        for r in range((len(self.charts) + columns - 1) // columns):
            grid.setRowStretch(r, 1)


def _new_grid(box: QWidget) -> QGridLayout:
    """A fresh grid on ``box`` (its old one, emptied, goes): a grid keeps the rows and columns
    it once had, which would keep their room after the columns change."""
    old = box.layout()
    if old is not None:
        while old.count():
            old.takeAt(0)
        QWidget().setLayout(old)  # re-parented to a temporary widget, deleted with it
    grid = QGridLayout(box)
    grid.setContentsMargins(0, 0, 0, 0)
    grid.setSpacing(8)
    return grid
