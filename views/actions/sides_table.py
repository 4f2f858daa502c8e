"""The fix dialog's table of the exception's values on each side (the owner's column marked)."""

from __future__ import annotations

from collections.abc import Mapping

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from services.core.domain import SyncException, System
from services.core.ownership import owner_system
from views.widgets.icons import system_icon
from views.widgets.sides import differing_keys, side_keys
from views.widgets.text import SYSTEM_TITLES, format_value, plain_tooltip


class SidesTable(QTableWidget):
    """The exception's values on each side, differing rows in bold (read-only); the owner is the
    configured one (``ownership``: the engine's ``config.ownership``)."""

    def __init__(self, exc: SyncException, ownership: Mapping[str, System], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        keys = side_keys(exc)
        differ = set(differing_keys(exc))
        owner = owner_system(exc, ownership)
        self.setColumnCount(len(exc.sides))
        self.setRowCount(len(keys))
        for col, side in enumerate(exc.sides):
            title = SYSTEM_TITLES[side.system] + (" (owner)" if side.system is owner else "")
            head = QTableWidgetItem(f"{title}: {side.ref.id}" if side.ref else f"{title}: no record")
            head.setIcon(system_icon(side.system))
            self.setHorizontalHeaderItem(col, head)
        bold = QFont(self.font())
        bold.setBold(True)
        for row, key in enumerate(keys):
            self.setVerticalHeaderItem(row, QTableWidgetItem(f"≠ {key}" if key in differ else key))
            for col, side in enumerate(exc.sides):
                item = QTableWidgetItem(format_value(side.values[key]) if key in side.values else "—")
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
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        rows = min(len(keys), 6)
        self.setFixedHeight(self.horizontalHeader().sizeHint().height() + vh.defaultSectionSize() * rows
                            + 2 * self.frameWidth() + 2)
        if len(keys) > rows:
            self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
