"""One headline figure as a tile: its label, its value, what it rests on (``Figure.note``: "9 of
189 invoices (posting time known)", so a p95 over three postings is not read as the truth), its
change against the previous period (better or worse in words and colour) and its SLA target (a
breach marked by a red frame and the words "SLA breached"). A tile takes the keyboard focus;
Enter, Space or a click opens the records behind it (``activated``)."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QColor, QFont, QKeyEvent, QMouseEvent, QPalette
from PySide6.QtWidgets import QFrame, QLabel, QSizePolicy, QVBoxLayout, QWidget

from services.metrics.model import Figure, Records
from views.overview.colors import bad_color, good_color
from views.overview.format import change, sla_text, value_text
from views.widgets.text import bold, plain_label, plain_tooltip


def records_text(records: Records) -> tuple[str, str]:
    """(where a click goes: "exceptions" | "customers" | "", what it shows: "12 exceptions")."""
    if records.exceptions:
        n = len(records.exceptions)
        return "exceptions", f"{n:,} exception{'s' if n != 1 else ''}"
    if records.customers:
        n = len(records.customers)
        return "customers", f"{n:,} customer{'s' if n != 1 else ''}"
    return "", ""


class FigureTile(QFrame):
    """A focusable tile for one :class:`Figure` (``set_figure`` swaps the figure in place)."""

    activated = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("overviewTile")  # the style sheet's selector: keep it
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.figure: Figure | None = None
        self.background = QColor()  # the tile's background (from the window's palette)
        self.target = ""  # "exceptions" | "customers" | "": where activating goes
        self.label = plain_label()
        self.label.setWordWrap(True)
        self.value = bold(plain_label(), 1.5)
        self.value.setObjectName("tileValue")
        self.basis = plain_label()  # what the figure rests on, in a smaller font
        self.basis.setObjectName("tileBasis")
        small = QFont(self.basis.font())
        small.setPointSizeF(small.pointSizeF() * 0.9)
        self.basis.setFont(small)
        self.change = plain_label()
        self.change.setObjectName("tileChange")
        self.sla = plain_label()
        self.sla.setObjectName("tileSla")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 6, 10, 6)
        lay.setSpacing(2)
        for w in (self.label, self.value, self.basis, self.change, self.sla):
            lay.addWidget(w)
        for w in (self.basis, self.change, self.sla):
            w.setWordWrap(True)  # a narrow tile wraps them rather than widening the grid
        self._direction = 0
        self._styling = False
        self._style()

    # -- data ------------------------------------------------------------------------------
    def set_figure(self, figure: Figure) -> None:
        self.figure = figure
        self.label.setText(figure.label)
        self.value.setText(value_text(figure.value, figure.unit))
        self.basis.setText(figure.note)
        self.basis.setVisible(bool(figure.note))
        text, self._direction = change(figure)
        self.change.setText(text)
        self.change.setVisible(bool(text))
        sla = sla_text(figure)
        # "target ≥ 99.50 %" wraps as a whole: never "≥" or "%" alone at a line's end or start
        self.sla.setText(sla.replace(" %", "\u00a0%").replace("≥ ", "≥\u00a0").replace("≤ ", "≤\u00a0")
                         .replace("target ", "target\u00a0"))
        self.sla.setVisible(bool(sla))
        self.target, shown = records_text(figure.records)
        self.setCursor(Qt.CursorShape.PointingHandCursor if self.target else Qt.CursorShape.ArrowCursor)
        lines = [f"{figure.label}: {self.value.text()}"]
        if figure.note:
            lines.append(f"Over: {figure.note}")
        if figure.previous is not None:
            lines.append(f"Previous period: {value_text(figure.previous, figure.unit)}")
        if text:
            lines.append(f"Change: {text}")
        if sla:
            lines.append(sla)
        if self.target:
            lines.append(f"Click or press Enter to open the {shown} behind it.")
        self.setToolTip(plain_tooltip("\n".join(lines)))
        self.setAccessibleName(f"{figure.label}: {self.value.text()}")
        self.setAccessibleDescription(" ".join(lines[1:]))
        self._style()

    @property
    def breached(self) -> bool:
        return self.figure is not None and self.figure.breached

    # -- look ------------------------------------------------------------------------------
    def _style(self) -> None:
        """Colours from the palette (again at every palette change): a breach's frame and SLA
        line, the change's colour (better / worse), the focus frame in the highlight colour."""
        if self._styling:  # a style sheet or label palette set here changes the palette again
            return
        self._styling = True
        try:
            # the window's palette: this frame's own is rewritten by its style sheet
            palette = self.window().palette() if self.window() is not self else self.palette()
            bad, good = bad_color(palette), good_color(palette)
            self.background = palette.color(QPalette.ColorRole.Base)
            mid, highlight = palette.color(QPalette.ColorRole.Mid), palette.color(QPalette.ColorRole.Highlight)
            border = f"2px solid {bad.name()}" if self.breached else f"1px solid {mid.name()}"
            sheet = (f"QFrame#overviewTile {{ border: {border}; border-radius: 6px; "
                     f"background: {self.background.name()}; }}"
                     f"QFrame#overviewTile:focus {{ border: 2px solid {highlight.name()}; }}")
            if sheet != self.styleSheet():
                self.setStyleSheet(sheet)
            text = palette.color(QPalette.ColorRole.Text)
            muted = palette.color(QPalette.ColorRole.PlaceholderText)
            _color(self.label, muted)
            _color(self.value, text)
            _color(self.basis, muted)
            _color(self.sla, bad if self.breached else text)
            _color(self.change, good if self._direction > 0 else bad if self._direction < 0 else text)
        finally:
            self._styling = False

    def restyle(self) -> None:
        """Take the colours of the window's palette again (the page calls this when it changes)."""
        self._style()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self._style()
        super().changeEvent(event)

    # -- input -----------------------------------------------------------------------------
    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space) and self.target:
            self.activated.emit()
            return
        super().keyPressEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        inside = self.rect().contains(event.position().toPoint())
        if event.button() is Qt.MouseButton.LeftButton and self.target and inside:
            self.activated.emit()
            return
        super().mouseReleaseEvent(event)


def _color(label: QLabel, color: QColor) -> None:
    """``label``'s text in ``color``."""
    label.setForegroundRole(QPalette.ColorRole.WindowText)
    palette = QPalette(label.palette())
    palette.setColor(QPalette.ColorRole.WindowText, color)
    label.setPalette(palette)


def text_color(label: QLabel) -> QColor:
    """The colour ``label``'s text is drawn in."""
    return label.palette().color(label.foregroundRole())
