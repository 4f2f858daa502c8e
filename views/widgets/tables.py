"""Read-only record tables: the shared look, the base table model, the empty state.

:class:`RowsTableModel` is the one base of the views' table models (customers, exceptions,
pending actions, audit entries, a customer's timeline). It owns ``data()`` — the row bounds
check, then the role dispatch — and each model answers per-cell hooks:

- :meth:`~RowsTableModel.display` (DisplayRole; item views never interpret it as markup; cut to
  a cell's worth and isolated for bidirectional text by :func:`~views.widgets.text.shown`);
- :meth:`~RowsTableModel.tooltip` (ToolTipRole, always passed through ``plain_tooltip``, so
  text from an external system is shown as typed);
- :meth:`~RowsTableModel.decoration` (DecorationRole);
- ``RIGHT_ALIGNED`` columns (TextAlignmentRole: right, vertically centred);
- :meth:`~RowsTableModel.role_data` for every other role (foreground, font, background, the
  model's user roles).

A model that shows a view over its records (filtered, sorted) overrides :meth:`record_count`
and :meth:`record`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar

from PySide6.QtCore import (
    QAbstractTableModel,
    QEvent,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
)
from PySide6.QtGui import QFocusEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QSizePolicy,
    QTableView,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from views.widgets.text import plain_label, plain_tooltip, set_muted, shown

R = TypeVar("R")

#: Flags of a read-only, selectable table cell: built once (combining enum flags on every
#: ``flags()`` call is measurable when a 100,000-row table repaints)
ROW_FLAGS = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren

_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
# the roles as plain ints, looked up once: ``data()`` runs for every painted cell and role
_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_DECORATION = int(Qt.ItemDataRole.DecorationRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_ALIGNMENT = int(Qt.ItemDataRole.TextAlignmentRole)


class RowsTableModel(QAbstractTableModel, Generic[R]):
    """A read-only table over a list of records: counts, headers, flags and the ``data()`` role
    dispatch in one place; subclasses set ``HEADERS`` and answer the per-cell hooks."""

    HEADERS: tuple[str, ...] = ()
    #: columns whose text is right-aligned (counts, numbers)
    RIGHT_ALIGNED: ClassVar[frozenset[int]] = frozenset()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[R] = []

    def replace_rows(self, rows: Sequence[R]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def row_item(self, row: int) -> R | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    # -- hooks -------------------------------------------------------------------------------
    def record_count(self) -> int:
        """How many rows the table shows."""
        return len(self._rows)

    def record(self, row: int) -> R:
        """The record shown on ``row`` (``0 <= row < record_count()``)."""
        return self._rows[row]

    def shown_records(self) -> list[R]:
        """The records the table shows, in its order (what an export of the view writes)."""
        return [self.record(row) for row in range(self.record_count())]

    def display(self, record: R, col: int) -> str:
        """The cell's text."""
        return ""

    def tooltip(self, record: R, col: int) -> str | None:
        """The cell's tooltip as plain text (``None``: none)."""
        return None

    def decoration(self, record: R, col: int) -> Any:
        """The cell's icon (``None``: none)."""
        return None

    def role_data(self, record: R, col: int, role: int) -> Any:
        """Any other role of the cell: foreground, font, background, the model's user roles."""
        return None

    def header_tooltip(self, section: int) -> str | None:
        """The column header's tooltip."""
        return None

    # -- Qt model API --------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else self.record_count()

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(self.HEADERS):
            if role == Qt.ItemDataRole.DisplayRole:
                return self.HEADERS[section]
            if role == Qt.ItemDataRole.ToolTipRole:
                return self.header_tooltip(section)
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        return ROW_FLAGS if index.isValid() else Qt.ItemFlag.NoItemFlags

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        row = index.row()
        if not index.isValid() or not 0 <= row < self.record_count():
            return None
        record = self.record(row)
        col = index.column()
        if role == _DISPLAY:
            return shown(self.display(record, col))  # cut to a cell's worth, bidi-isolated
        if role == _DECORATION:
            return self.decoration(record, col)
        if role == _ALIGNMENT:
            return _RIGHT if col in self.RIGHT_ALIGNED else None
        if role == _TOOLTIP:
            tip = self.tooltip(record, col)
            return plain_tooltip(tip) if tip is not None else None
        return self.role_data(record, col, role)


class SelectOnFocus(QObject):
    """A table reached by the keyboard (Tab, a shortcut) with nothing selected selects its
    current row (else its first): the arrow keys then move from a visible selection, and a
    one-row table is not a dead end."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (event.type() == QEvent.Type.FocusIn and isinstance(watched, QAbstractItemView)
                and isinstance(event, QFocusEvent) and event.reason() != Qt.FocusReason.MouseFocusReason):
            model, selection = watched.model(), watched.selectionModel()
            if model is not None and selection is not None and model.rowCount() and not selection.hasSelection():
                index = watched.currentIndex()
                if not index.isValid():
                    index = model.index(0, 0)
                selection.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect
                                          | QItemSelectionModel.SelectionFlag.Rows)
        return False


def setup_readonly_table(table: QTableView, *, stretch: int | None, widths: Mapping[int, int],
                         selection: QAbstractItemView.SelectionMode, alternating: bool = True) -> None:
    """The look every read-only record table shares: whole-row selection, no editing, Tab that
    leaves the table (arrow keys move inside it),
    alternating rows (unless ``alternating`` is off: rows the model tints itself), one line per
    row, no row numbers, interactive column widths with one stretching column (``None``: the
    last one fills the rest)."""
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(selection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setAlternatingRowColors(alternating)
    table.setWordWrap(False)
    table.setTabKeyNavigation(False)  # Tab leaves the table (arrows move within it)
    select_on_focus = SelectOnFocus(table)
    table.installEventFilter(select_on_focus)
    table.verticalHeader().hide()
    table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 10)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setSectionsMovable(True)  # the order is remembered with the widths (views.memory)
    if stretch is None:
        header.setStretchLastSection(True)
    else:
        header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    for col, width in widths.items():
        table.setColumnWidth(col, width)


class WholeRows(QObject):
    """Keeps a short list or table exactly as tall as its first ``rows`` rows, its header, its
    frame and — when it is shown — its horizontal scroll bar, so no row is cut and no scroll
    bar covers one (more rows than ``rows`` scroll). The height is measured on the view as it is
    drawn — when it is polished and shown, and again whenever its font, its style or its
    sideways scroll range changes — never estimated beforehand (a style's frame and header
    padding are only known once it is polished, and a row is as tall as its icon or font)."""

    def __init__(self, view: QAbstractItemView, rows: int) -> None:
        super().__init__(view)
        self.view = view
        self.rows = rows
        view.installEventFilter(self)
        view.horizontalScrollBar().rangeChanged.connect(lambda *_: self.fit())
        self.fit()

    def height(self) -> int:
        view = self.view
        model = view.model()
        shown = min(self.rows, model.rowCount() if model is not None else 0)
        height = 2 * view.frameWidth()
        if isinstance(view, QTableView):
            header: QHeaderView | None = view.horizontalHeader()
            rows = sum(view.rowHeight(r) or view.verticalHeader().defaultSectionSize() for r in range(shown))
        elif isinstance(view, QTreeView):
            header = view.header()
            rows = sum(view.rowHeight(model.index(r, 0)) or view.sizeHintForRow(r) for r in range(shown)) \
                if model is not None else 0
        else:
            header = None
            rows = sum(view.sizeHintForRow(r) for r in range(shown))
        if header is not None and not header.isHidden():
            height += max(header.minimumHeight(), header.sizeHint().height())
        height += max(rows, view.fontMetrics().height() if shown == 0 else 0)
        bar = view.horizontalScrollBar()
        policy = view.horizontalScrollBarPolicy()
        if policy == Qt.ScrollBarPolicy.ScrollBarAlwaysOn or (
                policy == Qt.ScrollBarPolicy.ScrollBarAsNeeded and bar.maximum() > bar.minimum()):
            height += bar.sizeHint().height()
        return height

    def fit(self) -> None:
        height = self.height()
        if self.view.minimumHeight() != height or self.view.maximumHeight() != height:
            self.view.setFixedHeight(height)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.view and event.type() in (QEvent.Type.Polish, QEvent.Type.Show, QEvent.Type.FontChange,
                                                      QEvent.Type.StyleChange):
            self.fit()
        return False


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


class ProportionalColumns(QObject):
    """Columns that share the table's width in proportion to their default widths: on a wide
    screen every column grows (not only the last), on a narrow one they keep their defaults and
    the table scrolls sideways. Once the operator drags a column (or a remembered layout is
    restored: :meth:`stop`), the widths are theirs."""

    def __init__(self, table: QTableView, widths: Mapping[int, int]) -> None:
        super().__init__(table)
        self.table = table
        self.widths = dict(widths)
        self.user_sized = False
        self._fitting = False
        header = table.horizontalHeader()
        # no stretching column: the columns share the width. Hidden columns are shown while the
        # stretch is switched off and hidden again (a column hidden while the last one stretched
        # would otherwise keep counting its old width in the position of every column after it)
        hidden = [c for c in range(header.count()) if header.isSectionHidden(c)]
        for col in hidden:
            header.showSection(col)
        header.setStretchLastSection(False)
        for col in hidden:
            header.hideSection(col)
        header.sectionResized.connect(self._resized)
        self._header_viewport = header.viewport()
        self._viewport = table.viewport()
        self._header_viewport.installEventFilter(self)  # a drag of a column's edge is the operator's
        self._viewport.installEventFilter(self)
        self._dragging = False
        self.fit()

    def _resized(self, *_: object) -> None:
        if self._dragging and not self._fitting:
            self.user_sized = True

    def stop(self) -> None:
        self.user_sized = True

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind == QEvent.Type.Resize:
            if watched is self._viewport and not self.user_sized:
                self.fit()
        elif watched is self._header_viewport:
            if kind == QEvent.Type.MouseButtonPress:
                self._dragging = True
            elif kind == QEvent.Type.MouseButtonRelease:
                self._dragging = False
        return False

    def fit(self) -> None:
        """Spread the viewport's width over the shown columns, never below their defaults."""
        shown = [c for c in sorted(self.widths) if not self.table.isColumnHidden(c)]
        total = sum(self.widths[c] for c in shown)
        if not shown or total <= 0:
            return
        room = self.table.viewport().width()
        factor = max(1.0, room / total)
        self._fitting = True
        try:
            used = 0
            for col in shown[:-1]:
                width = int(self.widths[col] * factor)
                self.table.setColumnWidth(col, width)
                used += width
            last = shown[-1]
            self.table.setColumnWidth(last, max(self.widths[last], room - used) if factor > 1.0 else self.widths[last])
        finally:
            self._fitting = False


def fit_columns(table: QTableView, widths: Mapping[int, int]) -> ProportionalColumns:
    """Give ``table`` :class:`ProportionalColumns` over ``widths`` (column -> default width)."""
    fitter = ProportionalColumns(table, widths)
    table.setProperty("proportionalColumns", True)
    table.column_fit = fitter  # type: ignore[attr-defined]
    return fitter
