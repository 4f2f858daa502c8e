"""Small shared view helpers: plain-text labels, system colours and icons, an empty state.

Everything that may carry text from an external system goes through ``plain_label`` (or an
item model's DisplayRole, which Qt never interprets as markup): a customer named
``<b>x</b>`` is shown as those eight characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPalette, QPen, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QSizePolicy, QTableView, QVBoxLayout, QWidget

from services.core.domain import Severity, System

SYSTEM_COLORS: dict[System, str] = {
    System.BILLING: "#635bff",
    System.ERP: "#e07a1f",
    System.SUPPORT: "#1f9d8a",
}
SYSTEM_TITLES: dict[System, str] = {System.BILLING: "Billing", System.ERP: "ERP", System.SUPPORT: "Support"}

SEVERITY_COLORS: dict[Severity, str] = {
    Severity.LOW: "#8a8f98",
    Severity.MEDIUM: "#d99a1c",
    Severity.HIGH: "#e0603a",
    Severity.CRITICAL: "#c62f2f",
}

#: Flags of a read-only, selectable table cell: built once (combining enum flags on every
#: ``flags()`` call is measurable when a 100,000-row table repaints)
ROW_FLAGS = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren

#: Accent colours for states (used on icons and foreground accents only, never as text colour
#: for long runs of text, so both light and dark palettes stay readable).
OK_COLOR = "#2e9d5b"
LATE_COLOR = "#d99a1c"
MISSING_COLOR = "#d0453b"
PENDING_COLOR = "#8a8f98"


def plain_label(text: str = "") -> QLabel:
    """A label that never interprets its text as rich text (external data is shown as typed)."""
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


def set_muted(label: QLabel) -> QLabel:
    """Secondary text: the palette's placeholder colour (readable in light and dark themes,
    unlike a disabled label)."""
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return label


@cache
def dot_icon(color: str, size: int = 12, hollow: bool = False) -> QIcon:
    """A filled (or hollow) coloured circle."""
    pix = QPixmap(size, size)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    if hollow:
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QPen(QColor(color), 2))
        p.drawEllipse(2, 2, size - 4, size - 4)
    else:
        p.setBrush(QColor(color))
        p.setPen(Qt.PenStyle.NoPen)
        p.drawEllipse(1, 1, size - 2, size - 2)
    p.end()
    return QIcon(pix)


def system_icon(system: System) -> QIcon:
    """A dot in the system's colour (billing violet, ERP orange, support teal)."""
    return dot_icon(SYSTEM_COLORS[system])


def unlinked_icon() -> QIcon:
    """A hollow red ring: the record has no counterpart in that system."""
    return dot_icon(MISSING_COLOR, hollow=True)


@cache
def _diamond_icon(color: str, size: int = 12) -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setBrush(QColor(color))
    p.setPen(Qt.PenStyle.NoPen)
    h = size / 2
    from PySide6.QtCore import QPointF

    p.drawPolygon([QPointF(h, 0.5), QPointF(size - 0.5, h), QPointF(h, size - 0.5), QPointF(0.5, h)])
    p.end()
    return QIcon(pix)


def severity_icon(severity: Severity) -> QIcon:
    """A diamond coloured by severity (grey low … red critical)."""
    return _diamond_icon(SEVERITY_COLORS[severity])


class EmptyState(QWidget):
    """A centred title and explanation shown instead of an empty table."""

    def __init__(self, title: str = "", text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title_label = plain_label(title)
        font = self.title_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.4)
        font.setBold(True)
        self.title_label.setFont(font)
        self.text_label = plain_label(text)
        self.text_label.setWordWrap(True)
        for label in (self.title_label, self.text_label):
            label.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        set_muted(self.text_label)
        self.text_label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        lay = QVBoxLayout(self)
        lay.addStretch(1)
        lay.addWidget(self.title_label)
        lay.addWidget(self.text_label)
        lay.addStretch(2)

    def set_message(self, title: str, text: str = "") -> None:
        self.title_label.setText(title)
        self.text_label.setText(text)

    def title(self) -> str:
        return self.title_label.text()

    def text(self) -> str:
        return self.text_label.text()


class RowsTableModel(QAbstractTableModel):
    """A read-only table over a plain list of rows: counts, headers and flags in one place;
    subclasses set ``HEADERS`` and answer ``data`` from ``self._rows``."""

    HEADERS: tuple[str, ...] = ()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[Any] = []

    def replace_rows(self, rows: Sequence[Any]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def row_item(self, row: int) -> Any:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole \
                and 0 <= section < len(self.HEADERS):
            return self.HEADERS[section]
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        return ROW_FLAGS if index.isValid() else Qt.ItemFlag.NoItemFlags


def setup_readonly_table(table: QTableView, *, stretch: int, widths: dict[int, int],
                         selection: QAbstractItemView.SelectionMode) -> None:
    """The look every read-only record table shares: whole-row selection, no editing,
    alternating rows, one line per row, no row numbers, interactive column widths with one
    stretching column."""
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(selection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setAlternatingRowColors(True)
    table.setWordWrap(False)
    table.verticalHeader().hide()
    table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 10)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    for col, width in widths.items():
        table.setColumnWidth(col, width)
