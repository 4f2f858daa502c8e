"""The fix dialog's table of the exception's values on each side (the owner's column marked)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from services.core.domain import SyncException, System
from services.core.ownership import owner_system
from views.exception_card import record_text
from views.widgets.icons import system_icon
from views.widgets.sides import differing_keys, side_keys, sides_currency
from views.widgets.table_menu import install_table_menu
from views.widgets.tables import WholeRows
from views.widgets.text import SYSTEM_TITLES, money_value_text, plain_tooltip, shown


class SidesTable(QTableWidget):
    """The exception's values on each side, differing rows in bold (read-only); the owner is the
    configured one (``ownership``: the engine's ``config.ownership``)."""

    #: rows shown whole before the table scrolls
    SHOWN_ROWS = 6

    def __init__(self, exc: SyncException, ownership: Mapping[str, System], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        keys = side_keys(exc)
        differ = set(differing_keys(exc))
        owner = owner_system(exc, ownership)
        self.setColumnCount(len(exc.sides))
        self.setRowCount(len(keys))
        for col, side in enumerate(exc.sides):
            title = SYSTEM_TITLES[side.system] + (" (owner)" if side.system is owner else "")
            head = QTableWidgetItem(shown(f"{title}: {record_text(side)}", 200) if side.ref else f"{title}: no record")
            head.setIcon(system_icon(side.system))
            self.setHorizontalHeaderItem(col, head)
        bold = QFont(self.font())
        bold.setBold(True)
        #: the exception's currency: its amounts are shown with it ("1,234.50 EUR")
        self.currency = currency = sides_currency(exc.sides)
        for row, key in enumerate(keys):
            self.setVerticalHeaderItem(row, QTableWidgetItem(f"≠ {key}" if key in differ else key))
            for col, side in enumerate(exc.sides):
                item = QTableWidgetItem(shown(money_value_text(key, side.values[key], currency), 500)
                                        if key in side.values else "—")
                item.setToolTip(plain_tooltip(item.text()))
                item.setFlags(Qt.ItemFlag.ItemIsEnabled)
                if key in differ:
                    item.setFont(bold)
                self.setItem(row, col, item)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.horizontalHeader().setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        vh = self.verticalHeader()
        vh.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vh.setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)  # past SHOWN_ROWS rows
        # as tall as its rows, measured on the table as drawn (no row cut by the frame or header)
        self.fit = WholeRows(self, self.SHOWN_ROWS)
        install_table_menu(self)
        self.keys = keys

    def show_after(self, read_back: Mapping[str, Any]) -> int:
        """After a verified write: a column per system re-read, with the values it holds now
        (``ActionResult.after["read_back"]``: system -> {record: {field: value}}). Returns how
        many columns were added."""
        added = 0
        for system_value, records in read_back.items():
            if not isinstance(records, Mapping) or not records:
                continue
            values: dict[str, Any] = {}
            for fields in records.values():
                if isinstance(fields, Mapping):
                    values.update(fields)
            try:
                title = SYSTEM_TITLES[System(system_value)]
            except ValueError:
                title = str(system_value)
            col = self.columnCount()
            self.insertColumn(col)
            head = QTableWidgetItem(f"{title} now (re-read)")
            head.setToolTip(plain_tooltip(f"What {title} holds after the write: "
                                          + "; ".join(str(k) for k in records)))
            self.setHorizontalHeaderItem(col, head)
            bold = QFont(self.font())
            bold.setBold(True)
            for row, key in enumerate(self.keys):
                currency = values.get("currency") or self.currency
                item = QTableWidgetItem(shown(money_value_text(key, values[key], currency), 500)
                                        if key in values else "—")
                item.setToolTip(plain_tooltip(item.text()))
                item.setFlags(Qt.ItemFlag.ItemIsEnabled)
                if key in values:
                    item.setFont(bold)
                self.setItem(row, col, item)
            added += 1
        return added
