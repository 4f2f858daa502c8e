"""The Pending actions page: the outbox — queued, executing and failed actions — with retry
(failed) and cancel (queued or failed) on the selection, and a status filter.

:class:`PendingModel` holds the outbox items in plain Python (tested with qtmodeltester);
:meth:`PendingActionsPage.bind` refreshes the page on the adapter's ``pending_changed``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, QSortFilterProxyModel, Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QPushButton,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from services.actions.model import Operator, OutboxItem, Role
from services.actions.roles import auditor_refusal
from services.core.domain import System
from services.core.redaction import redact
from views.action_adapter import ActionAdapter
from views.actions.wording import kind_title
from views.coverage import PageState
from views.exceptions.model import customer_text
from views.widgets.focus import tab_chain
from views.widgets.icons import MISSING_COLOR, PENDING_COLOR, STATUS_COLORS, dot_icon, system_icon
from views.widgets.state import StatePanel
from views.widgets.table_menu import install_table_menu
from views.widgets.tables import RowsTableModel, fit_columns, setup_readonly_table
from views.widgets.text import SYSTEM_TITLES, plain_label, set_muted, text_of


class PendingColumn(enum.IntEnum):
    STATUS = 0
    KIND = 1
    EXCEPTION = 2
    CUSTOMER = 3
    TARGET = 4
    OPERATOR = 5
    ATTEMPTS = 6
    ERROR = 7
    CREATED = 8
    UPDATED = 9


PENDING_HEADERS = ("Status", "Action", "Exception", "Customer", "Target", "Operator", "Attempts", "Last error",
                   "Created (UTC)", "Updated (UTC)")
STATUS_ROLE = Qt.ItemDataRole.UserRole + 2
ACTION_ID_ROLE = Qt.ItemDataRole.UserRole


class PendingModel(RowsTableModel[OutboxItem]):
    """The outbox items, one row each (data in plain Python, tested with qtmodeltester)."""

    HEADERS = PENDING_HEADERS
    RIGHT_ALIGNED = frozenset({PendingColumn.ATTEMPTS})

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        #: customer id -> name (the customer list's), shown beside the id
        self.names: Mapping[str, str] = {}

    def set_customer_names(self, names: Mapping[str, str]) -> None:
        self.names = names
        if self._rows:
            self.dataChanged.emit(self.index(0, PendingColumn.CUSTOMER),
                                  self.index(len(self._rows) - 1, PendingColumn.CUSTOMER))

    def set_items(self, items: Sequence[OutboxItem]) -> None:
        self.replace_rows(items)

    def items(self) -> list[OutboxItem]:
        return list(self._rows)

    def item_at(self, row: int) -> OutboxItem | None:
        return self.row_item(row)

    # -- cells -------------------------------------------------------------------------------
    def display(self, item: OutboxItem, col: int) -> str:
        if col == PendingColumn.STATUS:
            return text_of(item.status)
        if col == PendingColumn.KIND:
            return kind_title(text_of(item.kind))
        if col == PendingColumn.EXCEPTION:
            return item.exception_id or ""
        if col == PendingColumn.CUSTOMER:
            cid = item.customer_id or ""
            return customer_text(self.names.get(cid, ""), cid) or "—"
        if col == PendingColumn.TARGET:
            t = text_of(item.target_system)
            return SYSTEM_TITLES.get(System(t), t) if t in {s.value for s in System} else t
        if col == PendingColumn.OPERATOR:
            return f"{item.operator} · {text_of(item.role)}"
        if col == PendingColumn.ATTEMPTS:
            return str(item.attempts)
        if col == PendingColumn.ERROR:
            return redact(item.last_error or "").replace("\n", " ")
        if col == PendingColumn.CREATED:
            return text_of(item.created_at)
        return text_of(item.updated_at)

    def tooltip(self, item: OutboxItem, col: int) -> str | None:
        if col == PendingColumn.STATUS:
            return f"action {item.action_id}: {text_of(item.status)}"
        if col == PendingColumn.ERROR:
            return redact(item.last_error or "") or None
        return self.display(item, col) or None

    def decoration(self, item: OutboxItem, col: int) -> Any:
        if col == PendingColumn.STATUS:
            return dot_icon(STATUS_COLORS.get(text_of(item.status), PENDING_COLOR))
        if col == PendingColumn.TARGET and text_of(item.target_system) in {s.value for s in System}:
            return system_icon(System(text_of(item.target_system)))
        return None

    def role_data(self, item: OutboxItem, col: int, role: int) -> Any:
        if role == Qt.ItemDataRole.ForegroundRole and col == PendingColumn.ERROR and item.last_error:
            return QColor(MISSING_COLOR)
        if role == ACTION_ID_ROLE:
            return item.action_id
        if role == STATUS_ROLE:
            return text_of(item.status)
        return None


class _StatusFilter(QSortFilterProxyModel):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.status: str | None = None

    def set_status(self, status: str | None) -> None:
        self.beginFilterChange()
        self.status = status
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        if not self.status:
            return True
        model = self.sourceModel()
        return model.data(model.index(source_row, 0, source_parent), STATUS_ROLE) == self.status


class PendingActionsPage(QWidget):
    """The outbox: queued, executing and failed actions; retry (failed) and cancel (queued or
    failed) on the selection. ``bind(adapter)`` refreshes it on ``pending_changed``."""

    open_customer = Signal(str)  # customer id (the right-click menu)
    retry_requested = Signal(list)  # action ids
    cancel_requested = Signal(list)  # action ids
    refresh_requested = Signal()

    STATUSES = ("queued", "executing", "failed")
    REFRESH_MS = 5000

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = PendingModel(self)
        self.proxy = _StatusFilter(self)
        self.proxy.setSourceModel(self.model)
        self.operator: Operator | None = None
        self._loaded = False  # the outbox was read at least once
        self._problem = ""  # why the latest read failed ("" when it did not)

        self.status_combo = QComboBox()
        self.status_combo.setObjectName("statusFilter")
        self.status_combo.addItem("All statuses", None)
        for status in self.STATUSES:
            self.status_combo.addItem(dot_icon(STATUS_COLORS[status]), status, status)
        self.status_combo.currentIndexChanged.connect(self._filter_changed)
        self.count_label = set_muted(plain_label(""))
        self.retry_button = QPushButton("Retry")
        self.retry_button.setObjectName("retry")
        self.cancel_button = QPushButton("Cancel action")
        self.cancel_button.setObjectName("cancelAction")
        self.refresh_button = QPushButton("Refresh")
        for button in (self.retry_button, self.cancel_button, self.refresh_button):
            button.setAutoDefault(True)  # Enter presses the focused button (Space too)
        self.retry_button.clicked.connect(self._retry_clicked)
        self.cancel_button.clicked.connect(self._cancel_clicked)
        self.refresh_button.clicked.connect(self.refresh_requested)
        bar = QHBoxLayout()
        bar.addWidget(plain_label("Show"))
        bar.addWidget(self.status_combo)
        bar.addWidget(self.count_label, 1)
        bar.addWidget(self.refresh_button)
        bar.addWidget(self.cancel_button)
        bar.addWidget(self.retry_button)

        self.table = QTableView()
        self.table.setObjectName("pendingTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(PendingColumn.CREATED, Qt.SortOrder.DescendingOrder)
        widths: dict[int, int] = {PendingColumn.STATUS: 90, PendingColumn.KIND: 130, PendingColumn.EXCEPTION: 210,
                  PendingColumn.CUSTOMER: 170, PendingColumn.TARGET: 80, PendingColumn.OPERATOR: 120,
                  PendingColumn.ATTEMPTS: 65, PendingColumn.ERROR: 200, PendingColumn.CREATED: 135,
                  PendingColumn.UPDATED: 135}
        setup_readonly_table(self.table, stretch=None,
                             selection=QAbstractItemView.SelectionMode.ExtendedSelection, widths=widths)
        fit_columns(self.table, widths)
        install_table_menu(self.table, id_of=lambda i: self._item_at(i, "action_id"), id_label="action id",
                           customer_of=lambda i: self._item_at(i, "customer_id"),
                           open_customer=self.open_customer.emit, filter_by=self._filter_by_cell,
                           filterable=lambda col: col == PendingColumn.STATUS)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())

        self.empty = StatePanel("Reading the pending actions…", "From the outbox on this computer.",
                                retry_text="Try again", systems_link=False)
        self.empty.retry_requested.connect(self.refresh_requested)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.table)
        self.stack.addWidget(self.empty)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.addLayout(bar)
        lay.addWidget(self.stack, 1)

        tab_chain(self.focus_chain())
        self.timer = QTimer(self)
        self.timer.setInterval(self.REFRESH_MS)
        self.timer.timeout.connect(self.refresh_requested)
        self._update_states()

    def focus_chain(self) -> list[QWidget]:
        """Tab order: the status filter, the buttons, the table."""
        return [self.status_combo, self.refresh_button, self.cancel_button, self.retry_button, self.table,
                self.empty.retry_button]

    # -- data ------------------------------------------------------------------------------
    def set_items(self, items: Sequence[OutboxItem]) -> None:
        """Replace the rows (from ``pending_changed``); the selection is kept by action id."""
        selected = set(self.selected_ids())
        self._loaded = True
        self._problem = ""
        self.model.set_items(items)
        if selected:
            sel = self.table.selectionModel()
            for row in range(self.proxy.rowCount()):
                index = self.proxy.index(row, 0)
                if self.proxy.data(index, ACTION_ID_ROLE) in selected:
                    sel.select(index, sel.SelectionFlag.Select | sel.SelectionFlag.Rows)
        self._update_states()

    def show_problem(self, text: str) -> None:
        """The outbox could not be read: say why (and offer to try again)."""
        self._problem = text
        self._update_states()

    @property
    def page_state(self) -> PageState:
        return PageState.LOADED if self.stack.currentWidget() is self.table else self.empty.state

    def _item_at(self, index: QModelIndex, attr: str) -> str | None:
        item = self.model.item_at(self.proxy.mapToSource(index).row())
        value = getattr(item, attr, None) if item is not None else None
        return str(value) if value else None

    def _filter_by_cell(self, index: QModelIndex) -> bool:
        """Right-click "Filter by" on a status: show only that status."""
        item = self.model.item_at(self.proxy.mapToSource(index).row())
        if item is None or index.column() != PendingColumn.STATUS:
            return False
        self.set_status_filter(text_of(item.status))
        return True

    def set_customer_names(self, names: Mapping[str, str]) -> None:
        """Customer id -> name: the Customer column shows the name beside the id."""
        self.model.set_customer_names(names)

    def set_operator(self, operator: Operator) -> None:
        self.operator = operator
        self._update_buttons()

    def set_status_filter(self, status: str | None) -> None:
        self.status_combo.setCurrentIndex(max(0, self.status_combo.findData(status)) if status else 0)

    def _filter_changed(self) -> None:
        self.proxy.set_status(self.status_combo.currentData())
        self._update_states()

    # -- selection and buttons ---------------------------------------------------------------
    def selected_items(self) -> list[OutboxItem]:
        rows = self.table.selectionModel().selectedRows()
        out = []
        for index in rows:
            item = self.model.item_at(self.proxy.mapToSource(index).row())
            if item is not None:
                out.append(item)
        return out

    def selected_ids(self) -> list[str]:
        return [i.action_id for i in self.selected_items()]

    def select_action(self, action_id: str) -> bool:
        for row in range(self.proxy.rowCount()):
            index = self.proxy.index(row, 0)
            if self.proxy.data(index, ACTION_ID_ROLE) == action_id:
                self.table.selectRow(row)
                return True
        return False

    def _retryable(self) -> list[str]:
        return [i.action_id for i in self.selected_items() if text_of(i.status) == "failed"]

    def _cancellable(self) -> list[str]:
        return [i.action_id for i in self.selected_items() if text_of(i.status) in ("queued", "failed")]

    def _update_buttons(self) -> None:
        auditor = self.operator is not None and text_of(self.operator.role) == Role.AUDITOR.value
        retry, cancel = self._retryable(), self._cancellable()
        self.retry_button.setEnabled(bool(retry) and not auditor)
        self.cancel_button.setEnabled(bool(cancel) and not auditor)
        if self.operator is not None and auditor:  # the service's refusal (PermissionDenied)
            self.retry_button.setToolTip(auditor_refusal(self.operator))
            self.cancel_button.setToolTip(auditor_refusal(self.operator))
        else:
            self.retry_button.setToolTip(f"Retry {len(retry)} failed action(s) now" if retry
                                         else "Select failed actions to retry them")
            self.cancel_button.setToolTip(f"Cancel {len(cancel)} queued or failed action(s)" if cancel
                                          else "Select queued or failed actions to cancel them")
        self.retry_button.setText(f"Retry ({len(retry)})" if len(retry) > 1 else "Retry")
        self.cancel_button.setText(f"Cancel action ({len(cancel)})" if len(cancel) > 1 else "Cancel action")

    def _update_states(self) -> None:
        total = self.model.rowCount()
        shown = self.proxy.rowCount()
        counts: dict[str, int] = {}
        for item in self.model.items():
            counts[text_of(item.status)] = counts.get(text_of(item.status), 0) + 1
        summary = " · ".join(f"{counts[s]} {s}" for s in self.STATUSES if counts.get(s))
        self.count_label.setText((f"{shown} of {total} shown — " if shown != total else "")
                                 + (summary or "nothing pending"))
        if self._problem and (total == 0 or not self._loaded):
            self.empty.show_state(PageState.NOT_LOADED, "The pending actions could not be read", self._problem,
                                  retry=True)
            self.stack.setCurrentWidget(self.empty)
        elif not self._loaded:
            self.empty.show_state(PageState.LOADING, "Reading the pending actions…",
                                  "From the outbox on this computer.")
            self.stack.setCurrentWidget(self.empty)
        elif total == 0:
            self.empty.show_state(PageState.EMPTY, "No pending action",
                                  "Queued, executing and failed actions are listed here.")
            self.stack.setCurrentWidget(self.empty)
        elif shown == 0:
            self.empty.show_state(PageState.EMPTY, "No action with this status",
                                  "Choose “All statuses” to see every one.")
            self.stack.setCurrentWidget(self.empty)
        else:
            self.stack.setCurrentWidget(self.table)
        self._update_buttons()

    def _retry_clicked(self) -> None:
        ids = self._retryable()
        if ids:
            self.retry_requested.emit(ids)

    def _cancel_clicked(self) -> None:
        ids = self._cancellable()
        if ids:
            self.cancel_requested.emit(ids)

    # -- wiring ----------------------------------------------------------------------------
    def bind(self, adapter: ActionAdapter) -> None:
        adapter.pending_changed.connect(self.set_items)
        adapter.failed.connect(lambda what, text: self.show_problem(text) if what == "pending" else None)
        adapter.operator_changed.connect(self.set_operator)
        self.retry_requested.connect(lambda ids: [adapter.retry_failed(i) for i in ids])
        self.cancel_requested.connect(lambda ids: [adapter.cancel_pending(i) for i in ids])
        self.refresh_requested.connect(adapter.refresh_pending)
        self.set_operator(adapter.operator)

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self.timer.start()  # queued actions replay by themselves: keep the list current while shown
        self.refresh_requested.emit()

    def hideEvent(self, event: Any) -> None:
        self.timer.stop()
        super().hideEvent(event)
