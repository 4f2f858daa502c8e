"""The right-click menu every table has — copy the cell, the row or the record's id, open the
customer, filter by the value, export the view — and a column chooser on the header; and "copy" for whatever
table or field has the keyboard (Edit > Copy, Copy row)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QModelIndex, QPoint, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QTableView,
    QWidget,
)


def cell_text(index: QModelIndex) -> str:
    value = index.data(Qt.ItemDataRole.DisplayRole)
    return "" if value is None else str(value)


def row_text(view: QAbstractItemView, row: int) -> str:
    """The row's visible cells, tab-separated (hidden columns left out)."""
    model = view.model()
    if model is None:
        return ""
    cols = [c for c in range(model.columnCount()) if not (isinstance(view, QTableView) and view.isColumnHidden(c))]
    return "\t".join(cell_text(model.index(row, c)).replace("\t", " ") for c in cols)


def copy_focused(root: QWidget, row: bool = False) -> bool:
    """Copy from the widget with the keyboard focus: a table's current cell (or its row), a text
    field's selection. ``False`` when there was nothing to copy."""
    widget = QApplication.focusWidget()
    if widget is None or not (widget is root or root.isAncestorOf(widget)):
        return False
    if isinstance(widget, QAbstractItemView):
        index = widget.currentIndex()
        if not index.isValid():
            return False
        QGuiApplication.clipboard().setText(row_text(widget, index.row()) if row else cell_text(index))
        return True
    if isinstance(widget, QLineEdit | QPlainTextEdit):
        widget.copy()
        return True
    if isinstance(widget, QLabel) and hasattr(widget, "copy"):
        widget.copy()
        return True
    return False


@dataclass
class TableMenu:
    """What a table's right-click menu offers besides copying: the record's id (``id_of``), its
    customer (``customer_of`` + ``open_customer``), a filter by a cell's value (``filter_by``)."""

    view: QAbstractItemView
    id_of: Callable[[QModelIndex], str | None] | None = None
    id_label: str = "id"
    customer_of: Callable[[QModelIndex], str | None] | None = None
    open_customer: Callable[[str], None] | None = None
    filter_by: Callable[[QModelIndex], bool] | None = None
    #: whether a column can be used to filter (``filter_by`` is offered only there)
    filterable: Callable[[int], bool] | None = None
    #: export the view (the window sets it: "csv" / "xlsx"), offered under every row and below them
    export: Callable[[str], None] | None = None

    def build(self, index: QModelIndex) -> QMenu:
        menu = QMenu(self.view)
        menu.setObjectName("tableMenu")
        if not index.isValid():
            self._add_export(menu)
            return menu
        clipboard = QGuiApplication.clipboard()
        cell = cell_text(index)
        menu.addAction("Copy cell", lambda: clipboard.setText(cell)).setEnabled(bool(cell))
        menu.addAction("Copy row", lambda: clipboard.setText(row_text(self.view, index.row())))
        record_id = self.id_of(index) if self.id_of is not None else None
        if record_id:
            menu.addAction(f"Copy {self.id_label}", lambda: clipboard.setText(record_id))
        customer = self.customer_of(index) if self.customer_of is not None else None
        if customer and self.open_customer is not None:
            open_customer = self.open_customer
            menu.addSeparator()
            menu.addAction("Open the customer", lambda: open_customer(customer))
        if self.filter_by is not None and cell and (self.filterable is None or self.filterable(index.column())):
            filter_by = self.filter_by
            menu.addSeparator()
            shown = cell if len(cell) <= 40 else cell[:40] + "…"
            menu.addAction(f"Filter by “{shown}”", lambda: filter_by(index))
        self._add_export(menu)
        return menu

    def _add_export(self, menu: QMenu) -> None:
        export = self.export
        if export is None:
            return
        if not menu.isEmpty():
            menu.addSeparator()
        menu.addAction("Export this view as CSV…", lambda: export("csv"))
        menu.addAction("Export this view as Excel workbook…", lambda: export("xlsx"))

    def show(self, pos: QPoint) -> QMenu:
        index = self.view.indexAt(pos)
        if index.isValid():
            self.view.setCurrentIndex(index)
        menu = self.build(index)
        menu.popup(self.view.viewport().mapToGlobal(pos))
        return menu


def install_table_menu(view: QAbstractItemView, **options: object) -> TableMenu:
    """Give ``view`` its right-click menu (and, for a table, a column chooser on the header)."""
    table_menu = TableMenu(view, **options)  # type: ignore[arg-type]
    view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
    view.customContextMenuRequested.connect(table_menu.show)
    if isinstance(view, QTableView):
        install_column_chooser(view)
    view.setProperty("tableMenu", True)
    view.table_menu = table_menu  # type: ignore[attr-defined]
    return table_menu


def column_menu(view: QTableView) -> QMenu:
    """Every column, checked when shown; the last shown one cannot be hidden."""
    header: QHeaderView = view.horizontalHeader()
    model = view.model()
    menu = QMenu(header)
    menu.setObjectName("columnMenu")
    if model is None:
        return menu
    shown = [c for c in range(model.columnCount()) if not view.isColumnHidden(c)]
    for col in range(model.columnCount()):
        title = str(model.headerData(col, Qt.Orientation.Horizontal) or f"Column {col + 1}")
        action = menu.addAction(title)
        action.setCheckable(True)
        action.setChecked(not view.isColumnHidden(col))
        action.setEnabled(not (len(shown) == 1 and col in shown))
        action.toggled.connect(lambda on, c=col: _show_column(view, c, on))
    return menu


def _show_column(view: QTableView, col: int, shown: bool) -> None:
    view.setColumnHidden(col, not shown)
    fitter = getattr(view, "column_fit", None)
    if fitter is not None and not fitter.user_sized:
        fitter.fit()


def install_column_chooser(view: QTableView) -> None:
    header = view.horizontalHeader()
    header.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
    header.customContextMenuRequested.connect(lambda pos: column_menu(view).popup(header.mapToGlobal(pos)))
