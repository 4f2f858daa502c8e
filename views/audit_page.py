"""The Audit log page: who changed what, where, when, why and with what result.

Filters (operator, customer, system, action, outcome, dates, text) become an
:class:`~services.store.audit.AuditFilter` that the page emits; the adapter reads the log in a worker
thread and hands the entries back. The page also verifies the hash chain (green "intact", or
red naming the first bad entry) and exports the filtered log as CSV or JSON through a
window-modal file dialog (no nested event loop). Every value is shown as plain text (item views,
a plain-text detail box).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QDate,
    QModelIndex,
    QObject,
    QStandardPaths,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from services.actions.model import ActionKind
from services.core.domain import System
from services.core.redaction import redact
from services.store.audit import AuditEntry, AuditFilter, VerifyResult
from views.action_adapter import AUDIT_PAGE_LIMIT, ActionAdapter
from views.actions.wording import kind_title
from views.coverage import PageState
from views.widgets.banner import Banner
from views.widgets.focus import shrinkable, tab_chain
from views.widgets.icons import PENDING_COLOR, STATUS_COLORS, dot_icon, system_icon
from views.widgets.state import StatePanel
from views.widgets.table_menu import install_table_menu
from views.widgets.tables import RowsTableModel, fit_columns, setup_readonly_table
from views.widgets.text import SYSTEM_TITLES, mono_font, plain_label, pretty_json, set_muted

OUTCOMES = ("pending", "queued", "succeeded", "failed", "refused", "cancelled")
SEQ_ROLE = Qt.ItemDataRole.UserRole


class AuditColumn(enum.IntEnum):
    SEQ = 0
    TIME = 1
    OPERATOR = 2
    ROLE = 3
    ACTION = 4
    OUTCOME = 5
    EXCEPTION = 6
    CUSTOMER = 7
    SYSTEM = 8
    REQUEST = 9
    ERROR = 10


#: the columns the right-click menu can filter by (each has a filter of its own)
FILTERABLE = frozenset({AuditColumn.OPERATOR, AuditColumn.CUSTOMER, AuditColumn.SYSTEM, AuditColumn.ACTION,
                        AuditColumn.OUTCOME})

AUDIT_HEADERS = ("#", "Time (UTC)", "Operator", "Role", "Action", "Phase / outcome", "Exception", "Customer",
                 "System", "Request", "Error")


def request_summary(entry: AuditEntry) -> str:
    """``"POST /v1/customers/cus_1"`` (``"… (+2 more)"`` for several calls); ``""`` for none."""
    calls = entry.request.get("calls") if isinstance(entry.request, dict) else None
    if not isinstance(calls, list) or not calls:
        return ""
    first = calls[0] if isinstance(calls[0], dict) else {}
    text = f"{first.get('method', '')} {first.get('path', '')}".strip()
    return text + (f" (+{len(calls) - 1} more)" if len(calls) > 1 else "")


def entry_time(entry: AuditEntry) -> str:
    at = entry.at.astimezone(UTC) if entry.at.tzinfo is not None else entry.at
    return f"{at:%Y-%m-%d %H:%M:%S}"


def entry_detail(entry: AuditEntry) -> str:
    """Everything recorded for one entry, as plain text for a read-only box."""
    at = entry.at.astimezone(UTC) if entry.at.tzinfo is not None else entry.at
    lines = [
        f"Entry {entry.seq} · {at.isoformat(timespec='microseconds')}",
        f"Operator: {entry.operator} ({entry.role})",
        f"Action: {entry.action_kind} · id {entry.action_id} · {entry.phase} → {entry.outcome}",
        f"Exception: {entry.exception_id or '—'} · customer {entry.customer_id or '—'} · "
        f"system {entry.target_system or '—'}",
    ]
    if entry.reason:
        lines.append(f"Reason: {entry.reason}")
    if entry.error:
        lines.append(f"Error: {entry.error}")
    calls = entry.request.get("calls") if isinstance(entry.request, dict) else None
    if isinstance(calls, list) and calls:
        lines.append("")
        lines.append("Request:")
        for call in calls:
            if isinstance(call, dict):
                lines.append(f"{call.get('method', '')} {call.get('path', '')}")
                if call.get("body") not in (None, {}, ""):
                    lines.append(pretty_json(call.get("body")))
    elif entry.request:
        lines += ["", "Request:", pretty_json(entry.request)]
    if entry.before:
        lines += ["", "Before:", pretty_json(entry.before)]
    if entry.after:
        lines += ["", "After:", pretty_json(entry.after)]
    lines += ["", f"Previous hash: {entry.prev_hash}", f"Hash:          {entry.hash}"]
    return redact("\n".join(lines))


class AuditModel(RowsTableModel[AuditEntry]):
    """Audit entries, newest first as loaded (plain data; tested with qtmodeltester)."""

    HEADERS = AUDIT_HEADERS
    RIGHT_ALIGNED = frozenset({AuditColumn.SEQ})

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._row_of: dict[int, int] = {}

    def set_entries(self, entries: Sequence[AuditEntry]) -> None:
        self.beginResetModel()
        self._rows = list(entries)
        self._row_of = {e.seq: i for i, e in enumerate(self._rows)}
        self.endResetModel()

    def entries(self) -> list[AuditEntry]:
        return list(self._rows)

    def entry_at(self, row: int) -> AuditEntry | None:
        return self.row_item(row)

    def row_of(self, seq: int) -> int | None:
        return self._row_of.get(seq)

    # -- cells -------------------------------------------------------------------------------
    def display(self, entry: AuditEntry, col: int) -> str:
        if col == AuditColumn.SEQ:
            return str(entry.seq)
        if col == AuditColumn.TIME:
            return entry_time(entry)
        if col == AuditColumn.OPERATOR:
            return entry.operator
        if col == AuditColumn.ROLE:
            return entry.role
        if col == AuditColumn.ACTION:
            return kind_title(entry.action_kind)
        if col == AuditColumn.OUTCOME:
            return f"{entry.phase} · {entry.outcome}"
        if col == AuditColumn.EXCEPTION:
            return entry.exception_id or ""
        if col == AuditColumn.CUSTOMER:
            return entry.customer_id or ""
        if col == AuditColumn.SYSTEM:
            t = entry.target_system or ""
            return SYSTEM_TITLES[System(t)] if t in {s.value for s in System} else t
        if col == AuditColumn.REQUEST:
            return redact(request_summary(entry))
        return redact(entry.error or "").replace("\n", " ")

    def tooltip(self, entry: AuditEntry, col: int) -> str | None:
        text = f"action {entry.action_id}" if col == AuditColumn.ACTION else self.display(entry, col)
        return text or None

    def decoration(self, entry: AuditEntry, col: int) -> Any:
        if col == AuditColumn.OUTCOME:
            return dot_icon(STATUS_COLORS.get(entry.outcome, PENDING_COLOR), hollow=entry.phase == "intent")
        if col == AuditColumn.SYSTEM and entry.target_system in {s.value for s in System}:
            return system_icon(System(entry.target_system))
        return None

    def role_data(self, entry: AuditEntry, col: int, role: int) -> Any:
        if role == Qt.ItemDataRole.ForegroundRole and col == AuditColumn.ERROR and entry.error:
            return QColor(STATUS_COLORS["failed"])
        if role == SEQ_ROLE:
            return entry.seq
        return None


class _OptionalDate(QWidget):
    """A check box that enables a date edit: "from" / "to" may be left open."""

    changed = Signal()

    def __init__(self, text: str, default: QDate, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.check = QCheckBox(text)
        self.edit = QDateEdit(default)
        self.edit.setCalendarPopup(True)
        self.edit.setDisplayFormat("yyyy-MM-dd")
        self.edit.setEnabled(False)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.check)
        lay.addWidget(self.edit)
        self.check.toggled.connect(self.edit.setEnabled)
        self.check.toggled.connect(self.changed)
        self.edit.dateChanged.connect(self.changed)

    def value(self) -> QDate | None:
        return self.edit.date() if self.check.isChecked() else None

    def set_value(self, date: QDate | None) -> None:
        if date is not None:
            self.edit.setDate(date)
        self.check.setChecked(date is not None)


class AuditPage(QWidget):
    """Filter bar, the entries table, the detail pane, Export… and Verify."""

    open_customer = Signal(str)  # customer id (the right-click menu)
    filter_changed = Signal(object)  # AuditFilter
    verify_requested = Signal()
    cancel_verify_requested = Signal()
    export_requested = Signal(str, str, object)  # fmt, path, AuditFilter

    FILTER_DELAY_MS = 250

    def __init__(self, parent: QWidget | None = None, today: datetime | None = None) -> None:
        super().__init__(parent)
        self.model = AuditModel(self)
        self.limit = AUDIT_PAGE_LIMIT
        self.file_dialog: QFileDialog | None = None
        self.last_verify: VerifyResult | None = None
        self._loaded = False
        self._problem = ""  # why the latest read failed ("" when it did not)
        self._select_action: str | None = None  # an action whose entry to select once loaded (show_action)
        now = (today or datetime.now(UTC)).astimezone(UTC).date()
        qtoday = QDate(now.year, now.month, now.day)

        # -- filters -----------------------------------------------------------------------------
        self.operator_edit = QLineEdit()
        self.operator_edit.setObjectName("operatorFilter")
        self.operator_edit.setPlaceholderText("Operator")
        self.operator_edit.setClearButtonEnabled(True)
        self.customer_edit = QLineEdit()
        self.customer_edit.setObjectName("customerFilter")
        self.customer_edit.setPlaceholderText("Customer (cus_…)")
        self.customer_edit.setClearButtonEnabled(True)
        self.system_combo = QComboBox()
        self.system_combo.setObjectName("systemFilter")
        self.system_combo.addItem("All systems", None)
        for system in System:
            self.system_combo.addItem(system_icon(system), SYSTEM_TITLES[system], system.value)
        self.kind_combo = QComboBox()
        self.kind_combo.setObjectName("kindFilter")
        self.kind_combo.addItem("All actions", None)
        for kind in ActionKind:
            self.kind_combo.addItem(kind_title(kind), kind.value)
        self.outcome_combo = QComboBox()
        self.outcome_combo.setObjectName("outcomeFilter")
        self.outcome_combo.addItem("Any outcome", None)
        for outcome in OUTCOMES:
            self.outcome_combo.addItem(dot_icon(STATUS_COLORS.get(outcome, PENDING_COLOR)), outcome, outcome)
        self.since_edit = _OptionalDate("From", qtoday.addDays(-30))
        self.since_edit.setObjectName("sinceFilter")
        self.until_edit = _OptionalDate("To", qtoday)
        self.until_edit.setObjectName("untilFilter")
        self.text_edit = QLineEdit()
        self.text_edit.setObjectName("textFilter")
        self.text_edit.setPlaceholderText("Text in request, error, reason, exception…")
        self.text_edit.setClearButtonEnabled(True)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self.clear_filters)

        # two rows of filters: who, where and what; when and which text (fits a 1024-pixel window)
        filters = QVBoxLayout()
        filters.setSpacing(4)
        who = QHBoxLayout()
        who.setSpacing(6)
        when = QHBoxLayout()
        when.setSpacing(6)
        for widget in (self.operator_edit, self.customer_edit):
            widget.setMinimumWidth(90)
        self.text_edit.setMinimumWidth(160)
        for combo, chars in ((self.system_combo, 7), (self.kind_combo, 10), (self.outcome_combo, 9)):
            shrinkable(combo, chars)
        for edit in (self.operator_edit, self.customer_edit):
            who.addWidget(edit, 1)
        for combo in (self.system_combo, self.kind_combo, self.outcome_combo):
            who.addWidget(combo)
        for date_item in (self.since_edit, self.until_edit):
            when.addWidget(date_item)
        when.addWidget(self.text_edit, 1)
        when.addWidget(self.clear_button)
        filters.addLayout(who)
        filters.addLayout(when)

        # -- actions: verify, export ----------------------------------------------------------
        self.count_label = set_muted(plain_label(""))
        self.count_label.setObjectName("auditCount")
        self.verify_label = Banner()
        self.verify_label.setObjectName("verifyResult")
        self.verify_label.hide()
        self.verify_button = QPushButton("Verify")
        self.verify_button.setObjectName("verify")
        self.verify_button.setToolTip("Check the hash chain of the whole log: any edited, removed or reordered "
                                      "entry is found and named")
        self.cancel_verify_button = QPushButton("Stop")
        self.cancel_verify_button.setObjectName("cancelVerify")
        self.cancel_verify_button.setToolTip("Stop verifying (nothing is concluded about the log)")
        self.cancel_verify_button.hide()
        self.format_combo = QComboBox()
        self.format_combo.setObjectName("exportFormat")
        self.format_combo.addItem("CSV", "csv")
        self.format_combo.addItem("JSON", "json")
        self.export_button = QPushButton("Export…")
        self.export_button.setObjectName("export")
        self.export_button.setToolTip("Write every entry matching the filters (not only the ones shown)")
        self.refresh_button = QPushButton("Refresh")
        for button in (self.clear_button, self.refresh_button, self.export_button, self.verify_button,
                       self.cancel_verify_button):
            button.setAutoDefault(True)  # Enter presses the focused button (Space too)
        self.verify_button.clicked.connect(self._verify_clicked)
        self.cancel_verify_button.clicked.connect(self.cancel_verify_requested.emit)
        self.export_button.clicked.connect(self.choose_export_file)
        self.refresh_button.clicked.connect(self.emit_filter)
        actions = QHBoxLayout()
        actions.addWidget(self.count_label, 1)
        actions.addWidget(self.refresh_button)
        actions.addWidget(self.format_combo)
        actions.addWidget(self.export_button)
        actions.addWidget(self.verify_button)
        actions.addWidget(self.cancel_verify_button)

        # -- table and detail ------------------------------------------------------------------
        self.table = QTableView()
        self.table.setObjectName("auditTable")
        self.table.setModel(self.model)
        widths: dict[int, int] = {
                  AuditColumn.SEQ: 50, AuditColumn.TIME: 140, AuditColumn.OPERATOR: 90, AuditColumn.ROLE: 70,
                  AuditColumn.ACTION: 120, AuditColumn.OUTCOME: 160, AuditColumn.EXCEPTION: 210,
                  AuditColumn.CUSTOMER: 110, AuditColumn.SYSTEM: 80, AuditColumn.REQUEST: 200,
                  AuditColumn.ERROR: 160}
        setup_readonly_table(self.table, stretch=None, selection=QAbstractItemView.SelectionMode.SingleSelection,
                             widths=widths)
        fit_columns(self.table, widths)
        install_table_menu(self.table, id_of=lambda i: self._entry_at(i, "action_id"), id_label="action id",
                           customer_of=lambda i: self._entry_at(i, "customer_id"),
                           open_customer=self.open_customer.emit, filter_by=self.filter_by_cell,
                           filterable=lambda col: col in FILTERABLE)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._show_selected())
        self.empty = StatePanel("Loading the audit log…", retry_text="Try again", systems_link=False)
        self.empty.retry_requested.connect(self.emit_filter)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.table)
        self.stack.addWidget(self.empty)

        self.detail = QPlainTextEdit()
        self.detail.setObjectName("auditDetail")
        self.detail.setReadOnly(True)
        self.detail.setFont(mono_font())
        self.detail.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.detail.setTabChangesFocus(True)
        self.detail.setPlaceholderText("Select an entry to see its request, before and after values and hashes.")
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.stack)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.addLayout(filters)
        lay.addLayout(actions)
        lay.addWidget(self.verify_label)
        lay.addWidget(self.splitter, 1)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(self.FILTER_DELAY_MS)
        self._timer.timeout.connect(self.emit_filter)
        for edit in (self.operator_edit, self.customer_edit, self.text_edit):
            edit.textChanged.connect(self._schedule)
        for combo in (self.system_combo, self.kind_combo, self.outcome_combo):
            # -1: the combo is being emptied (the page is being destroyed), not a choice
            combo.currentIndexChanged.connect(lambda index: self.emit_filter() if index >= 0 else None)
        self.since_edit.changed.connect(self._schedule)
        self.until_edit.changed.connect(self._schedule)
        tab_chain(self.focus_chain())
        self._update_states()

    def focus_chain(self) -> list[QWidget]:
        """Tab order: the filters left to right, the log's buttons, the table, the detail."""
        return [self.operator_edit, self.customer_edit, self.system_combo, self.kind_combo, self.outcome_combo,
                self.since_edit.check, self.since_edit.edit, self.until_edit.check, self.until_edit.edit,
                self.text_edit, self.clear_button, self.refresh_button, self.format_combo, self.export_button,
                self.verify_button, self.cancel_verify_button, self.table, self.empty.retry_button, self.detail]

    # -- filters -----------------------------------------------------------------------------
    def _entry_at(self, index: QModelIndex, attr: str) -> str | None:
        entry = self.model.entry_at(index.row())
        value = getattr(entry, attr, None) if entry is not None else None
        return str(value) if value else None

    def filter_by_cell(self, index: QModelIndex) -> bool:
        """Right-click "Filter by": the operator, customer, system or action filter."""
        entry = self.model.entry_at(index.row())
        col = index.column()
        if entry is None or col not in FILTERABLE:
            return False
        if col == AuditColumn.OPERATOR:
            self.operator_edit.setText(entry.operator)
        elif col == AuditColumn.CUSTOMER and entry.customer_id:
            self.customer_edit.setText(entry.customer_id)
        elif col == AuditColumn.SYSTEM:
            self.system_combo.setCurrentIndex(max(0, self.system_combo.findData(entry.target_system)))
        elif col == AuditColumn.ACTION:
            self.kind_combo.setCurrentIndex(max(0, self.kind_combo.findData(entry.action_kind)))
        elif col == AuditColumn.OUTCOME:
            self.outcome_combo.setCurrentIndex(max(0, self.outcome_combo.findData(entry.outcome)))
        self.emit_filter()
        return True

    def current_filter(self) -> AuditFilter:
        since, until = self.since_edit.value(), self.until_edit.value()
        return AuditFilter(
            operator=self.operator_edit.text().strip() or None,
            customer_id=self.customer_edit.text().strip() or None,
            target_system=self.system_combo.currentData(),
            action_kind=self.kind_combo.currentData(),
            outcome=self.outcome_combo.currentData(),
            since=datetime.combine(_day(since), time.min, UTC) if since is not None else None,
            until=datetime.combine(_day(until), time.max, UTC) if until is not None else None,
            text=self.text_edit.text().strip() or None,
        )

    def _schedule(self, *_: object) -> None:
        self._timer.start()

    def emit_filter(self, *_: object) -> None:
        """Ask for the entries matching the filters now (typing waits for a short pause)."""
        self._timer.stop()
        self.filter_changed.emit(self.current_filter())

    def clear_filters(self) -> None:
        widgets = (self.operator_edit, self.customer_edit, self.text_edit, self.system_combo, self.kind_combo,
                   self.outcome_combo, self.since_edit, self.until_edit)
        for w in widgets:
            w.blockSignals(True)
        for edit in (self.operator_edit, self.customer_edit, self.text_edit):
            edit.clear()
        for combo in (self.system_combo, self.kind_combo, self.outcome_combo):
            combo.setCurrentIndex(0)
        for date_edit in (self.since_edit, self.until_edit):
            date_edit.check.blockSignals(True)
            date_edit.set_value(None)
            date_edit.check.blockSignals(False)
        for w in widgets:
            w.blockSignals(False)
        self.emit_filter()

    def show_action(self, exception_id: str, action_id: str) -> None:
        """Show one action's entries: the filters cleared but the text, its exception's id; once
        they are in, its newest entry is selected."""
        self._select_action = action_id
        self.clear_filters()
        self.text_edit.blockSignals(True)
        self.text_edit.setText(exception_id)
        self.text_edit.blockSignals(False)
        self.emit_filter()

    def filter_for_customer(self, customer_id: str) -> None:
        """Show one customer's entries (e.g. from the customer view)."""
        self.customer_edit.setText(customer_id)
        self.emit_filter()

    # -- data in -----------------------------------------------------------------------------
    @property
    def page_state(self) -> PageState:
        return PageState.LOADED if self.stack.currentWidget() is self.table else self.empty.state

    def show_problem(self, text: str) -> None:
        """The audit log could not be read: say why (and offer to try again)."""
        self._problem = text
        self._update_states()

    def set_entries(self, entries: Sequence[AuditEntry]) -> None:
        selected = self.selected_entry()
        self._loaded = True
        self._problem = ""
        self.model.set_entries(entries)
        wanted = next((e for e in entries if e.action_id == self._select_action), None) \
            if self._select_action else None
        if wanted is not None:
            self._select_action = None
            self.select_seq(wanted.seq)
        elif selected is not None:
            self.select_seq(selected.seq)
        self._show_selected()
        self._update_states()

    def selected_entry(self) -> AuditEntry | None:
        rows = self.table.selectionModel().selectedRows()
        return self.model.entry_at(rows[0].row()) if rows else None

    def select_seq(self, seq: int) -> bool:
        row = self.model.row_of(seq)
        if row is None:
            return False
        self.table.selectRow(row)
        self.table.scrollTo(self.model.index(row, 0))
        return True

    def _show_selected(self) -> None:
        entry = self.selected_entry()
        self.detail.setPlainText(entry_detail(entry) if entry is not None else "")

    def _update_states(self) -> None:
        n = self.model.rowCount()
        if self._problem and (n == 0 or not self._loaded):
            self.empty.show_state(PageState.NOT_LOADED, "The audit log could not be read", self._problem, retry=True)
            self.stack.setCurrentWidget(self.empty)
            self.count_label.setText("")
            return
        if not self._loaded:
            self.empty.show_state(PageState.LOADING, "Loading the audit log…")
            self.stack.setCurrentWidget(self.empty)
            self.count_label.setText("")
            return
        if n == 0:
            flt = self.current_filter()
            active = any(v for v in vars(flt).values())
            self.empty.show_state(PageState.EMPTY,
                                  "No entry matches the filters" if active else "The audit log is empty",
                                  "Clear the filters to see every entry." if active
                                  else "Every action writes an intent and an outcome entry here.")
            self.stack.setCurrentWidget(self.empty)
        else:
            self.stack.setCurrentWidget(self.table)
        more = " (the newest; narrow the filters to see older ones — Export writes them all)" \
            if n >= self.limit else ""
        self.count_label.setText(f"{n:,} entr{'y' if n == 1 else 'ies'} shown{more}")

    # -- verify ------------------------------------------------------------------------------
    def _verify_clicked(self) -> None:
        self.verify_button.setEnabled(False)
        self.cancel_verify_button.show()
        self.verify_label.show_message("Verifying the hash chain…", "busy")
        self.verify_label.show()
        self.verify_requested.emit()

    def show_verify_progress(self, checked: int, total: int) -> None:
        if self.verify_label.tone != "busy":
            return  # a late progress signal after the result
        share = f" ({checked / total:.0%})" if total else ""
        self.verify_label.show_message(f"Verifying the hash chain… {checked:,} of {total:,} entries{share}", "busy")

    def show_verify_cancelled(self, checked: int) -> None:
        self.cancel_verify_button.hide()
        self.verify_button.setEnabled(True)
        self.verify_label.show_message(f"Verification stopped after {checked:,} entries: nothing is concluded "
                                       "about the log.", "bad")

    def show_verify(self, result: VerifyResult) -> None:
        self.last_verify = result
        self.cancel_verify_button.hide()
        self.verify_button.setEnabled(True)
        if result.ok:
            self.verify_label.show_message(f"Intact: {result.checked:,} entries verified — no entry was edited, "
                                           "removed or reordered.", "ok")
        else:
            where = f" First bad entry: {result.first_bad}." if result.first_bad is not None else ""
            self.verify_label.show_message(f"NOT intact: {result.problem}.{where} "
                                           f"({result.checked:,} entries before it verified.)", "bad")
            if result.first_bad is not None:
                self.select_seq(result.first_bad)
        self.verify_label.show()

    # -- export ------------------------------------------------------------------------------
    def export_format(self) -> str:
        return str(self.format_combo.currentData())

    def choose_export_file(self) -> QFileDialog:
        """Ask where to write: a window-modal sheet (``open()`` + ``fileSelected``; no nested loop,
        never a static dialog)."""
        fmt = self.export_format()
        if self.file_dialog is not None:
            self.file_dialog.close()
            self.file_dialog.deleteLater()
        dialog = QFileDialog(self, "Export the audit log")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setFileMode(QFileDialog.FileMode.AnyFile)
        dialog.setNameFilter("CSV files (*.csv)" if fmt == "csv" else "JSON files (*.json)")
        dialog.setDefaultSuffix(fmt)
        dialog.setDirectory(documents_folder())  # never the process's working folder
        dialog.selectFile(f"syncdesk-audit-{datetime.now(UTC):%Y%m%d-%H%M%S}.{fmt}")
        dialog.fileSelected.connect(lambda path: self.export_to(path, fmt))
        self.file_dialog = dialog
        dialog.open()
        return dialog

    def export_to(self, path: str, fmt: str | None = None) -> None:
        fmt = fmt or self.export_format()
        self.export_button.setEnabled(False)
        self.verify_label.show_message(f"Exporting to {path}…", "busy")
        self.verify_label.show()
        self.export_requested.emit(fmt, path, self.current_filter())

    def show_exported(self, path: str) -> None:
        self.export_button.setEnabled(True)
        self.verify_label.show_message(f"Exported to {path}", "ok")
        self.verify_label.show()

    def show_error(self, text: str) -> None:
        self.verify_button.setEnabled(True)
        self.export_button.setEnabled(True)
        self.verify_label.show_message(redact(text), "bad")
        self.verify_label.show()

    # -- wiring ------------------------------------------------------------------------------
    def bind(self, adapter: ActionAdapter) -> None:
        """Filters, verify and export through ``adapter``; buttons come back when it is done."""
        self.limit = AUDIT_PAGE_LIMIT
        self.filter_changed.connect(lambda flt: adapter.load_audit(flt, self.limit))
        self.verify_requested.connect(adapter.verify_audit)
        self.cancel_verify_requested.connect(adapter.cancel_verify)
        adapter.verify_progress.connect(self.show_verify_progress)
        adapter.verify_cancelled.connect(self.show_verify_cancelled)
        self.export_requested.connect(adapter.export_audit)
        adapter.audit_loaded.connect(self.set_entries)
        adapter.failed.connect(lambda what, text: self.show_problem(text) if what == "audit" else None)
        adapter.verify_done.connect(self.show_verify)
        adapter.export_done.connect(self.show_exported)
        adapter.busy.connect(self._busy)
        adapter.result.connect(lambda *_: self.emit_filter() if self.isVisible() else None)

    def _busy(self, what: str, running: bool) -> None:
        # whatever happened (done, failed, cancelled), the buttons come back: adapter.busy(…, False)
        # is emitted from a ``finally``
        if not running and what == "verify":
            self.verify_button.setEnabled(True)
            self.cancel_verify_button.hide()
            if self.verify_label.tone == "busy":
                self.verify_label.show_message("Verification did not finish (see the status bar).", "bad")
        if not running and what == "export":
            self.export_button.setEnabled(True)
            if self.verify_label.tone == "busy":
                self.verify_label.show_message("Export did not finish (see the status bar).", "bad")

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if not self._loaded:
            self.emit_filter()


def documents_folder() -> str:
    """The user's documents folder (else the home folder): where file dialogs open."""
    found = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    return found if found and Path(found).is_dir() else str(Path.home())


def _day(value: QDate) -> date:
    return date(value.year(), value.month(), value.day())
