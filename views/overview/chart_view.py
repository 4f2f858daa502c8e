"""The base of the Overview's charts: a QtCharts view that follows the palette (light, dark),
shows plain-text tooltips, says what it draws in its accessible name and description, and — for
the charts whose bars open records — lets the keyboard walk the bars (Left/Right) and open one
(Enter), as a click does."""

from __future__ import annotations

import html

from PySide6.QtCharts import QBarSet, QChart, QChartView
from PySide6.QtCore import QEvent, QMargins, QSize, Qt, Signal
from PySide6.QtGui import QColor, QCursor, QFocusEvent, QKeyEvent, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from services.metrics.model import MetricsReport
from views.overview.colors import dark
from views.widgets.text import plain_tooltip


class ChartPanel(QChartView):
    """A chart view; subclasses fill ``self.chart()`` in ``set_report`` and call :meth:`theme`.

    ``bar_activated(set index, category index)``: a bar was clicked, or chosen with the
    keyboard and Enter pressed (only the bars listed in ``self.cells``)."""

    bar_activated = Signal(int, int)
    MIN_HEIGHT = 230

    def __init__(self, title: str, accessible_name: str, parent: QWidget | None = None) -> None:
        chart = QChart()
        chart.setTitle(html.escape(title, quote=False))
        chart.setAnimationOptions(QChart.AnimationOption.NoAnimation)
        chart.setMargins(QMargins(2, 2, 2, 2))
        chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        super().__init__(chart, parent)
        self.base_title = title
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setMinimumHeight(self.MIN_HEIGHT)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAccessibleName(accessible_name)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        #: the bars the keyboard can choose: (set index, category index, what it is)
        self.cells: list[tuple[int, int, str]] = []
        self.current = -1
        self._sets: list[QBarSet] = []

    def sizeHint(self) -> QSize:
        """Small: the page's grid gives the charts what the screen has (a 4K screen, a lot)."""
        return QSize(420, self.minimumHeight())

    def set_report(self, report: MetricsReport) -> None:
        """Fill the chart from ``report`` (each chart draws its part)."""
        raise NotImplementedError

    # -- look ------------------------------------------------------------------------------
    def theme(self) -> None:
        """The palette's colours on the chart's background, title, legend and axes."""
        palette = self.palette()
        chart = self.chart()
        text, mid = palette.text().color(), palette.mid().color()
        chart.setBackgroundBrush(palette.base())
        chart.setBackgroundPen(QPen(mid))
        chart.setTitleBrush(palette.text())
        chart.legend().setLabelColor(text)
        grid = QColor(mid)
        grid.setAlpha(120 if dark(palette) else 90)
        for axis in chart.axes():
            axis.setLabelsBrush(palette.text())
            axis.setTitleBrush(palette.text())
            axis.setGridLineColor(grid)
            axis.setLinePenColor(mid)
        highlight = palette.highlight().color()
        for bar_set in self._sets:
            bar_set.setSelectedColor(highlight)
            bar_set.setLabelColor(text)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self.theme()
        super().changeEvent(event)

    def show_tip(self, text: str) -> None:
        """A plain-text tooltip at the mouse (external text is never interpreted)."""
        if text:
            QToolTip.showText(QCursor.pos(), plain_tooltip(text), self)
        else:
            QToolTip.hideText()

    def set_title(self, suffix: str = "") -> None:
        title = f"{self.base_title} — {suffix}" if suffix else self.base_title
        self.chart().setTitle(html.escape(title, quote=False))  # QtCharts renders titles as rich text

    def describe(self, lines: list[str]) -> None:
        """What the chart shows, as plain sentences (screen readers; the tests read it too)."""
        self.setAccessibleDescription("\n".join(lines))

    # -- bars the user can open ------------------------------------------------------------
    def watch_sets(self, sets: list[QBarSet]) -> None:
        """Clicks on these sets' bars emit ``bar_activated``; they follow the palette's highlight
        when chosen with the keyboard."""
        self._sets = sets
        for i, bar_set in enumerate(sets):
            bar_set.clicked.connect(lambda index, s=i: self._clicked(s, index))
        self.current = -1

    def choose_none(self) -> None:
        """No bar chosen (new data: the bars the keyboard walked may be gone)."""
        for bar_set in self._sets:
            bar_set.deselectAllBars()
        self.current = -1

    def _clicked(self, set_index: int, category: int) -> None:
        if any(c[0] == set_index and c[1] == category for c in self.cells):
            self.bar_activated.emit(set_index, category)

    def _choose(self, position: int) -> None:
        for bar_set in self._sets:
            bar_set.deselectAllBars()
        self.current = position
        if 0 <= position < len(self.cells):
            s, c, what = self.cells[position]
            self._sets[s].selectBar(c)
            self.setAccessibleDescription(f"{what}. Press Enter to open them.")
            QToolTip.showText(self.mapToGlobal(self.rect().center()), plain_tooltip(what), self)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if self.cells and key in (Qt.Key.Key_Right, Qt.Key.Key_Down, Qt.Key.Key_Left, Qt.Key.Key_Up):
            step = 1 if key in (Qt.Key.Key_Right, Qt.Key.Key_Down) else -1
            self._choose((self.current + step) % len(self.cells) if self.current >= 0 else 0)
            return
        if self.cells and key in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space) and self.current >= 0:
            s, c, _what = self.cells[self.current]
            self.bar_activated.emit(s, c)
            return
        super().keyPressEvent(event)

    def focusOutEvent(self, event: QFocusEvent) -> None:
        for bar_set in self._sets:
            bar_set.deselectAllBars()
        self.current = -1
        super().focusOutEvent(event)
