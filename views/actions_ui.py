"""Operator actions in the UI: the fix dialog, bulk runs, the pending actions, the operator.

- :class:`FixDialog` shows one fix before it happens: the exception, the operator, the preflight
  checks (the first failure explained at the top), the dry-run preview of the exact API calls
  (redacted bodies), the value editors the action needs (CORRECT / LINK / ACCEPT) and a reason;
  after Confirm a busy state, then the result. It is used non-modally: :func:`run_fix` shows it
  and awaits futures fed by its signals (never ``exec()``, never a nested event loop);
- :class:`BulkDialog` runs one action over a selection with progress, cancel and a summary;
- :class:`PendingActionsPage` lists the outbox (queued / executing / failed) with retry and cancel;
- :class:`OperatorWidget` shows "alice · finance" and switches operator and role;
- :class:`FixLauncher` opens one dialog per exception and starts its flow in the adapter's tasks.

The service enforces roles; these widgets only reflect them (auditors see every fix disabled).
Everything from an external system is shown as plain text.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import (
    QDate,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
    SignalInstance,
)
from PySide6.QtGui import QCloseEvent, QColor, QFont, QFontDatabase
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStackedWidget,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
    QWidgetAction,
)

from services.actions.service import (
    ActionKind,
    ActionRequest,
    ActionResult,
    ActionStatus,
    BulkProgress,
    BulkResult,
    Operator,
    OutboxItem,
    Plan,
    Role,
    auditor_refusal,
)
from services.core.domain import Side, SyncException, System
from services.core.redaction import redact
from views.action_adapter import ActionAdapter
from views.exceptions import format_value, owner_system, plain_tooltip
from views.widgets import (
    MISSING_COLOR,
    OK_COLOR,
    PENDING_COLOR,
    SYSTEM_TITLES,
    EmptyState,
    RowsTableModel,
    dot_icon,
    plain_label,
    set_muted,
    setup_readonly_table,
    system_icon,
)

#: what the auditor role may do, shown where a role is chosen; a refused act says why in the
#: service's own words (services.actions.service: a verdict, or auditor_refusal)
AUDITOR_TIP = "auditors can read, verify and export; they never act"

KIND_TITLES: dict[ActionKind, str] = {
    ActionKind.RETRY: "Retry",
    ActionKind.CORRECT: "Correct",
    ActionKind.CREDIT_REPOST: "Credit + repost",
    ActionKind.ACCEPT: "Accept difference",
    ActionKind.LINK: "Link",
    ActionKind.CREATE: "Create",
    ActionKind.PUSH: "Push owner value",
    ActionKind.REVOKE: "Revoke / downgrade",
    ActionKind.CANCEL: "Cancel extra draft",
    ActionKind.FLAG: "Flag for review",
}
KIND_HINTS: dict[ActionKind, str] = {
    ActionKind.RETRY: "Re-run the synchronization of this object from its owner to the target.",
    ActionKind.CORRECT: "Write the values below to the copy. They are prefilled from the owner's side.",
    ActionKind.CREDIT_REPOST: "Credit the posted ERP invoice (a credit note cancels it), then post a corrected copy "
                              "with billing's lines and currency. Finance only.",
    ActionKind.ACCEPT: "Mark the difference as intended until the expiry date; it reopens if the data changes.",
    ActionKind.LINK: "Map this record to one of the candidates below.",
    ActionKind.CREATE: "Create the missing record from the owner's data.",
    ActionKind.PUSH: "Write the owner's value to the copies.",
    ActionKind.REVOKE: "Revoke or downgrade the support entitlement that has no active subscription.",
    ActionKind.CANCEL: "Cancel the extra draft invoice in the ERP.",
    ActionKind.FLAG: "Flag the record for review; nothing is written to the systems.",
}
#: kinds whose reason is required (the others take an optional one)
REASON_REQUIRED = frozenset({ActionKind.CORRECT, ActionKind.CREDIT_REPOST, ActionKind.ACCEPT, ActionKind.FLAG})
#: kinds that need a value per item, so they are never offered over a selection
NOT_BULK = frozenset({ActionKind.CORRECT, ActionKind.LINK})
ACCEPT_DEFAULT_DAYS = 30

EXECUTING_COLOR = "#2f6fdf"
STATUS_COLORS: dict[str, str] = {
    "queued": PENDING_COLOR,
    "executing": EXECUTING_COLOR,
    "failed": MISSING_COLOR,
    "refused": MISSING_COLOR,
    "succeeded": OK_COLOR,
    "cancelled": PENDING_COLOR,
}
ROLE_COLORS: dict[str, str] = {"finance": "#635bff", "support": "#1f9d8a", "auditor": "#8a8f98"}


# -- small helpers -------------------------------------------------------------------------
def text_of(value: object) -> str:
    """An enum's value, a datetime in UTC, ``""`` for None, else ``str``."""
    if value is None:
        return ""
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, datetime):
        dt = value.astimezone(UTC) if value.tzinfo is not None else value
        return f"{dt:%Y-%m-%d %H:%M:%S}"
    return str(value)


def pretty_json(value: object) -> str:
    """Indented JSON for a read-only box (secrets scrubbed once more, as defence in depth)."""
    return redact(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def kind_of(action: str) -> ActionKind | None:
    """The action kind of a fix-button id (``"retry"`` …); ``None`` for one the service lacks."""
    try:
        return ActionKind(action)
    except ValueError:
        return None


def kind_title(kind: ActionKind | str) -> str:
    k = kind_of(str(kind)) if not isinstance(kind, ActionKind) else kind
    return KIND_TITLES.get(k, str(kind).capitalize()) if k is not None else str(kind).capitalize()


def operator_text(operator: Operator) -> str:
    return f"{operator.name} · {text_of(operator.role)}"


def mono_font() -> QFont:
    return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)


def _bold(label: QLabel, scale: float = 1.0) -> QLabel:
    font = QFont(label.font())
    font.setBold(True)
    if scale != 1.0:
        font.setPointSizeF(font.pointSizeF() * scale)
    label.setFont(font)
    return label


def _tint(color: str, alpha: int) -> str:
    c = QColor(color)
    return f"rgba({c.red()}, {c.green()}, {c.blue()}, {alpha})"


class Banner(QLabel):
    """A plain-text message in a tinted frame: ok (green), bad (red), busy/info (neutral)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setWordWrap(True)
        self.setMargin(8)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # never squeezed below its wrapped text: the tables around it give way instead
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        self.tone = "info"
        self.show_message("", "info")

    def show_message(self, text: str, tone: str = "info") -> None:
        self.tone = tone
        self.setText(text)
        color = {"ok": OK_COLOR, "bad": MISSING_COLOR, "warn": "#d99a1c", "busy": EXECUTING_COLOR}.get(tone)
        if color is None:
            self.setStyleSheet("QLabel { border: 1px solid palette(mid); border-radius: 4px; }")
        else:
            self.setStyleSheet(f"QLabel {{ background: {_tint(color, 38)}; border: 1px solid {color};"
                               " border-radius: 4px; }")


def signal_future(signal: SignalInstance) -> asyncio.Future[Any]:
    """A future set by the next emission of ``signal`` (its first argument, or ``None``)."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def slot(*args: Any) -> None:
        if not future.done():
            future.set_result(args[0] if args else None)

    signal.connect(slot)

    def disconnect(_: asyncio.Future[Any]) -> None:
        with contextlib.suppress(RuntimeError, RuntimeWarning, TypeError):
            signal.disconnect(slot)

    future.add_done_callback(disconnect)
    return future


def dialog_result(dialog: QDialog) -> asyncio.Future[int]:
    """A future set when ``dialog`` finishes (its result code): await it instead of ``exec()``."""
    return signal_future(dialog.finished)


def apply_fix_permissions(buttons: Iterable[QAbstractButton], allowed: Sequence[tuple[ActionKind, bool, str]],
                          operator: Operator) -> None:
    """Enable each fix button (``property("action")`` or object name ``fix_<kind>``) as the
    service allows it for ``operator``; a disabled one says why in its tooltip (the service's
    words: its verdict, or for an auditor's button it has no verdict for, its refusal of auditors)."""
    table = {text_of(kind): (ok, why) for kind, ok, why in allowed}
    auditor = text_of(operator.role) == Role.AUDITOR.value
    for button in buttons:
        action = button.property("action") or button.objectName().removeprefix("fix_")
        ok, why = table.get(str(action), (False, "this action is not available"))
        if auditor:
            ok, why = False, (why if str(action) in table and why else auditor_refusal(operator))
        button.setEnabled(ok)
        button.setToolTip(plain_tooltip(kind_title(str(action)) + "…" if ok else why or "not allowed"))


def fix_policy(adapter: ActionAdapter) -> Callable[[SyncException], list[tuple[str, bool, str]]]:
    """For ``ExceptionDetail.set_fix_policy`` / ``CustomerPage.set_fix_policy``: the fixes the
    service offers for an exception, whether the current operator may run each, and why not in
    the service's words."""
    def policy(exc: SyncException) -> list[tuple[str, bool, str]]:
        auditor = text_of(adapter.operator.role) == Role.AUDITOR.value
        return [(text_of(kind), ok and not auditor, (why or auditor_refusal(adapter.operator)) if auditor else why)
                for kind, ok, why in adapter.allowed_actions(exc)]

    return policy


# -- the fix dialog ----------------------------------------------------------------------
_HIDDEN_KEYS = ("owner", "candidates")
MASTER_FIELDS = ("name", "tax_id", "country")
_NOT_COMPARED = ("number",)


def _side_keys(exc: SyncException) -> list[str]:
    keys: list[str] = []
    for side in exc.sides:
        for key in side.values:
            if key not in _HIDDEN_KEYS and key not in keys:
                keys.append(key)
    return keys


def differing_keys(exc: SyncException) -> list[str]:
    out = []
    for key in _side_keys(exc):
        held = {format_value(s.values[key]) for s in exc.sides if key in s.values}
        if key not in _NOT_COMPARED and len(held) > 1:
            out.append(key)
    return out


def owner_side(exc: SyncException) -> Side | None:
    owner = owner_system(exc)
    return next((s for s in exc.sides if s.system is owner), exc.sides[0] if exc.sides else None)


def candidates_of(exc: SyncException) -> list[tuple[System, dict[str, Any]]]:
    out: list[tuple[System, dict[str, Any]]] = []
    for side in exc.sides:
        raw = side.values.get("candidates")
        if isinstance(raw, list | tuple):
            out.extend((side.system, c) for c in raw if isinstance(c, dict))
    return out


def candidate_key(cand: dict[str, Any]) -> str:
    """What a LINK request names: the candidate's reference (``"erp:party.party:7"``)."""
    return str(cand.get("ref") or cand.get("id") or "")


def plan_calls(plan: Plan) -> list[tuple[str, str, str, str]]:
    """What the operator saw in the preview, comparable between two plans."""
    return [(text_of(c.system), c.method, c.path, json.dumps(c.body, sort_keys=True, default=str))
            for c in plan.calls]


class SidesTable(QTableWidget):
    """The exception's values on each side, differing rows in bold (read-only)."""

    def __init__(self, exc: SyncException, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        keys = _side_keys(exc)
        differ = set(differing_keys(exc))
        owner = owner_system(exc)
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


class FixDialog(QDialog):
    """One fix, before and after it happens. Non-modal: ``show()`` it and let :func:`run_fix`
    drive it; it never runs an event loop of its own."""

    #: the value editors changed: re-plan the preview with this ActionRequest
    request_changed = Signal(object)
    #: the operator confirmed this ActionRequest
    confirmed = Signal(object)

    EDIT_DELAY_MS = 400

    def __init__(self, exc: SyncException, kind: ActionKind, operator: Operator, *, allowed: bool = True,
                 why_not: str = "", today: datetime | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.exception = exc
        self.kind = kind
        self.operator = operator
        self.allowed = allowed and text_of(operator.role) != Role.AUDITOR.value
        self.why_not = ((why_not or auditor_refusal(operator)) if text_of(operator.role) == Role.AUDITOR.value
                        else why_not)
        self.plan: Plan | None = None
        self.outcome: ActionResult | None = None
        self.state = "idle"  # idle | planning | ready | busy | done
        self._stale = True  # the preview does not match the editors (yet)
        self._shown_calls: list[tuple[str, str, str, str]] = []
        self._today = (today or datetime.now(UTC)).astimezone(UTC).date()
        self.setWindowTitle(f"{kind_title(kind)} — {exc.rule}")
        self.setObjectName("fixDialog")
        self.setMinimumSize(860, 640)
        self.resize(1040, 820)

        # -- head: what and who --------------------------------------------------------------
        self.title = _bold(plain_label(f"{kind_title(kind)} — {exc.rule}"), 1.3)
        self.operator_label = plain_label(f"acting as {operator_text(operator)}")
        set_muted(self.operator_label)
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.operator_label, 0, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.banner = Banner()
        self.banner.setObjectName("preflightBanner")
        self.hint = plain_label(KIND_HINTS.get(kind, ""))
        self.hint.setWordWrap(True)
        self.hint.setVisible(kind is not ActionKind.CORRECT)  # its editor explains itself
        set_muted(self.hint)

        # -- the exception ---------------------------------------------------------------------
        exc_box = QGroupBox("Exception")
        exc_lay = QVBoxLayout(exc_box)
        owner = owner_system(exc)
        self.object_label = plain_label(
            f"object {exc.object_id} · customer {exc.customer_id or '—'} · severity {text_of(exc.severity)}"
            f" · owner {SYSTEM_TITLES[owner]}")
        self.object_label.setWordWrap(True)
        self.summary_label = plain_label(exc.summary)
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.sides_table = SidesTable(exc)
        exc_lay.addWidget(self.object_label)
        exc_lay.addWidget(self.summary_label)
        exc_lay.addWidget(self.sides_table)

        # -- value editors -----------------------------------------------------------------------
        self.value_box = QGroupBox(self._value_title())
        self.value_edits: dict[str, QLineEdit] = {}
        self.candidate_list: QTreeWidget | None = None
        self.expiry_edit: QDateEdit | None = None
        self.target_combo: QComboBox | None = None
        self.date_check: QCheckBox | None = None
        self.date_edit: QDateEdit | None = None
        self.acknowledge = ""  # a Tryton warning the operator chose to acknowledge on the next run
        self._build_value_editor()
        self.value_box.setVisible(self._has_value_editor())

        # -- preflight checks and the dry-run preview ----------------------------------------------
        checks_box = QGroupBox("Preflight checks")
        self.checks = QTableWidget(0, 2)
        self.checks.setObjectName("checks")
        self.checks.setHorizontalHeaderLabels(["Check", "Detail"])
        self.checks.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.checks.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.checks.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.checks.setShowGrid(False)
        self.checks.setWordWrap(True)  # the detail is the explanation: wrapped, never elided
        self.checks.verticalHeader().hide()
        self.checks.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.checks.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.checks.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.checks.horizontalHeader().setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        QVBoxLayout(checks_box).addWidget(self.checks)

        preview_box = QGroupBox("Preview (dry run) — nothing is written until you confirm")
        self.calls = QTableWidget(0, 4)
        self.calls.setObjectName("calls")
        self.calls.setHorizontalHeaderLabels(["System", "Method", "Path", "What it does"])
        self.calls.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.calls.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.calls.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.calls.verticalHeader().hide()
        self.calls.verticalHeader().setDefaultSectionSize(self.calls.fontMetrics().height() + 10)
        self.calls.setWordWrap(False)
        hh = self.calls.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(2, QHeaderView.ResizeMode.Interactive)
        hh.setStretchLastSection(True)
        self.calls.setColumnWidth(2, 170)
        self.calls.itemSelectionChanged.connect(self._show_call_body)
        self.body = QPlainTextEdit()
        self.body.setObjectName("body")
        self.body.setReadOnly(True)
        self.body.setFont(mono_font())
        self.body.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.body.setPlaceholderText("The request body (secrets masked) appears here.")
        self.key_label = plain_label("")
        self.key_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        set_muted(self.key_label)
        self.notes_label = Banner()
        self.notes_label.setObjectName("planNotes")
        self.notes_label.hide()
        pv = QVBoxLayout(preview_box)
        pv.addWidget(self.notes_label)
        pv.addWidget(self.calls)
        pv.addWidget(self.body, 1)
        pv.addWidget(self.key_label)
        middle = QSplitter(Qt.Orientation.Horizontal)
        middle.addWidget(checks_box)
        middle.addWidget(preview_box)
        middle.setStretchFactor(0, 1)
        middle.setStretchFactor(1, 1)
        middle.setChildrenCollapsible(False)
        middle.setSizes([450, 500])

        # -- reason, progress, result, buttons ------------------------------------------------
        self.reason_edit = QLineEdit()
        self.reason_edit.setObjectName("reason")
        self.reason_edit.setMaxLength(500)
        required = kind in REASON_REQUIRED
        self.reason_edit.setPlaceholderText("Why (required; recorded in the audit log)" if required
                                            else "Why (optional; recorded in the audit log)")
        reason_row = QFormLayout()
        reason_row.addRow(plain_label("Reason *" if required else "Reason"), self.reason_edit)
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)
        self.busy_bar.setTextVisible(False)
        self.busy_bar.setMaximumHeight(8)
        self.busy_bar.hide()
        self.result_banner = Banner()
        self.result_banner.setObjectName("resultBanner")
        self.result_banner.hide()
        self.confirm_button = QPushButton(f"Confirm {kind_title(kind).lower()}")
        self.confirm_button.setObjectName("confirm")
        self.confirm_button.setAutoDefault(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancel")
        self.cancel_button.setAutoDefault(False)
        self.acknowledge_button = QPushButton("Acknowledge and run again…")
        self.acknowledge_button.setObjectName("acknowledge")
        self.acknowledge_button.setAutoDefault(False)
        self.acknowledge_button.hide()
        self.confirm_button.clicked.connect(self._confirm_clicked)
        self.cancel_button.clicked.connect(self.reject)
        self.acknowledge_button.clicked.connect(self._acknowledge_clicked)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.acknowledge_button)
        buttons.addWidget(self.confirm_button)

        lay = QVBoxLayout(self)
        lay.setSpacing(8)
        lay.addLayout(head)
        lay.addWidget(self.banner)
        lay.addWidget(self.hint)
        lay.addWidget(exc_box)
        lay.addWidget(self.value_box)
        lay.addWidget(middle, 1)
        lay.addLayout(reason_row)
        lay.addWidget(self.busy_bar)
        lay.addWidget(self.result_banner)
        lay.addLayout(buttons)

        self._edit_timer = QTimer(self)
        self._edit_timer.setSingleShot(True)
        self._edit_timer.setInterval(self.EDIT_DELAY_MS)
        self._edit_timer.timeout.connect(self.flush_edits)
        self.reason_edit.textChanged.connect(self._reason_edited)
        if not self.allowed:
            self.banner.show_message(f"You cannot do this: {self.why_not or 'not allowed for your role'}", "bad")
        elif not self.request_complete():
            self.banner.show_message(self._incomplete_text(), "info")
        else:
            self.banner.show_message("Running the preflight checks…", "busy")
        self._update_buttons()

    # -- value editors -----------------------------------------------------------------------
    def _value_title(self) -> str:
        return {ActionKind.CORRECT: "Values to write", ActionKind.LINK: "Link to",
                ActionKind.ACCEPT: "Accept until", ActionKind.RETRY: "Invoice date"}.get(self.kind, "Value")

    def _has_value_editor(self) -> bool:
        return self.kind in (ActionKind.CORRECT, ActionKind.LINK, ActionKind.ACCEPT) or (
            self.kind is ActionKind.RETRY and self.exception.rule == "invoice.missing_in_erp")

    def _date_edit(self, days: int) -> QDateEdit:
        edit = QDateEdit()
        edit.setCalendarPopup(True)
        edit.setDisplayFormat("yyyy-MM-dd")
        today = QDate(self._today.year, self._today.month, self._today.day)
        edit.setDate(today.addDays(days))
        return edit

    def _build_value_editor(self) -> None:
        lay = QVBoxLayout(self.value_box)
        exc = self.exception
        if self.kind is ActionKind.CORRECT:
            self._build_correct_editor(lay)
        elif self.kind is ActionKind.LINK:
            cands = candidates_of(exc)
            tree = QTreeWidget()
            tree.setObjectName("candidates")
            tree.setRootIsDecorated(False)
            tree.setHeaderLabels(["Candidate", "Score", "Why it matches"])
            tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
            for system, cand in cands:
                name, ref = str(cand.get("name") or ""), candidate_key(cand)
                reasons = cand.get("reasons") or []
                why = ", ".join(str(r) for r in reasons) if isinstance(reasons, list | tuple) else str(reasons)
                item = QTreeWidgetItem([f"{name} ({ref})" if ref else name, str(cand.get("score", "")), why])
                item.setData(0, Qt.ItemDataRole.UserRole, ref)
                item.setIcon(0, system_icon(system))
                item.setToolTip(0, plain_tooltip(f"{name}\n{ref}"))
                tree.addTopLevelItem(item)
            for col in range(3):
                tree.resizeColumnToContents(col)
            tree.setMaximumHeight(tree.header().sizeHint().height() + max(1, len(cands)) * 24 + 8)
            tree.itemSelectionChanged.connect(self._values_edited_now)
            self.candidate_list = tree
            if cands:
                lay.addWidget(tree)
            else:
                lay.addWidget(set_muted(plain_label("No candidate matches its tax id, email domain or name: "
                                                    "create the record instead.")))
        elif self.kind is ActionKind.ACCEPT:
            self.expiry_edit = self._date_edit(ACCEPT_DEFAULT_DAYS)
            self.expiry_edit.setObjectName("expiry")
            today = QDate(self._today.year, self._today.month, self._today.day)
            self.expiry_edit.setMinimumDate(today.addDays(1))
            self.expiry_edit.dateChanged.connect(self._values_edited_now)
            row = QHBoxLayout()
            row.addWidget(plain_label("Expires on"))
            row.addWidget(self.expiry_edit)
            row.addWidget(set_muted(plain_label("(UTC; the exception reopens then, or earlier if the data changes)")))
            row.addStretch(1)
            lay.addLayout(row)
        elif self._has_value_editor():  # RETRY of a missing invoice: the date may be chosen
            self.date_check = QCheckBox("Choose the invoice date")
            self.date_check.setObjectName("chooseDate")
            self.date_edit = self._date_edit(0)
            self.date_edit.setObjectName("invoiceDate")
            self.date_edit.setEnabled(False)
            self.date_check.toggled.connect(self.date_edit.setEnabled)
            self.date_check.toggled.connect(self._values_edited_now)
            self.date_edit.dateChanged.connect(self._values_edited_now)
            row = QHBoxLayout()
            row.addWidget(self.date_check)
            row.addWidget(self.date_edit)
            row.addWidget(set_muted(plain_label("(otherwise billing's finalization date, or today when the ERP's "
                                                "invoice sequence is already later)")))
            row.addStretch(1)
            lay.addLayout(row)

    def _build_correct_editor(self, lay: QVBoxLayout) -> None:
        """CORRECT: the owner's values prefilled; for master data, which copy to write."""
        exc = self.exception
        source = owner_side(exc)
        owner_values = source.values if source is not None else {}
        if exc.rule == "invoice.amount_mismatch":
            keys = ["currency"]
            note = ("The draft ERP invoice's lines are replaced by billing's lines (billing owns the invoice's "
                    "content); the currency is prefilled from billing.")
        elif exc.rule == "customer.master_drift":
            keys = [k for k in MASTER_FIELDS if k in owner_values] or list(MASTER_FIELDS)
            note = ("Writes these values to the copy you choose; the ERP (the owner) is never written from "
                    "here. Prefilled from the ERP.")
            copies = [s.system for s in exc.sides if s is not source and s.system is not System.ERP]
            self.target_combo = QComboBox()
            self.target_combo.setObjectName("target")
            for system in copies or [System.BILLING]:
                self.target_combo.addItem(system_icon(system), SYSTEM_TITLES[system], system.value)
            self.target_combo.currentIndexChanged.connect(self._target_changed)
        else:
            keys = differing_keys(exc) or [k for k in owner_values if k not in _HIDDEN_KEYS]
            note = f"Prefilled from {SYSTEM_TITLES[source.system]} (the owner)." if source is not None else ""
        form = QFormLayout()
        if self.target_combo is not None:
            form.addRow(plain_label("Write to"), self.target_combo)
        for key in keys:
            edit = QLineEdit(format_value(owner_values[key]) if key in owner_values else "")
            edit.setObjectName(f"value_{key}")
            copies_text = [f"{SYSTEM_TITLES[s.system]} holds {format_value(s.values[key])}"
                           for s in exc.sides if s is not source and key in s.values]
            edit.setToolTip(plain_tooltip("; ".join(copies_text) or key))
            edit.textEdited.connect(self._values_edited)
            self.value_edits[key] = edit
            row = QHBoxLayout()
            row.addWidget(edit, 1)
            if copies_text:
                row.addWidget(set_muted(plain_label("; ".join(copies_text))))
            form.addRow(plain_label(key), row)
        if note:
            hint = set_muted(plain_label(note))
            hint.setWordWrap(True)
            lay.addWidget(hint)
        lay.addLayout(form)
        self._target_changed()

    def _target_changed(self, *_: object) -> None:
        if self.target_combo is None:
            return
        support = self.target_combo.currentData() == System.SUPPORT.value
        for key, edit in self.value_edits.items():
            edit.setEnabled(not support or key == "name")  # the organization holds only the name
            edit.setToolTip(plain_tooltip("the support organization holds only the name")
                            if support and key != "name" else edit.toolTip())
        if _:
            self._values_edited_now()

    def value(self) -> dict[str, Any] | None:
        """The ActionRequest value the editors hold (``None`` when the action takes none)."""
        value: dict[str, Any] | None = None
        if self.kind is ActionKind.CORRECT:
            value = {key: edit.text().strip() for key, edit in self.value_edits.items() if edit.isEnabled()}
            if self.target_combo is not None:
                value = {"target": self.target_combo.currentData(), **value}
        elif self.kind is ActionKind.LINK:
            items = self.candidate_list.selectedItems() if self.candidate_list is not None else []
            value = {"candidate": str(items[0].data(0, Qt.ItemDataRole.UserRole))} if items else None
        elif self.kind is ActionKind.ACCEPT and self.expiry_edit is not None:
            d = self.expiry_edit.date()
            value = {"expires_at": datetime(d.year(), d.month(), d.day(), tzinfo=UTC).isoformat()}
        elif self.date_check is not None and self.date_edit is not None and self.date_check.isChecked():
            value = {"invoice_date": self.date_edit.date().toString("yyyy-MM-dd")}
        if self.acknowledge:
            value = {**(value or {}), "acknowledge_warning": self.acknowledge}
        return value

    def reason(self) -> str:
        return self.reason_edit.text().strip()

    def request(self) -> ActionRequest:
        return ActionRequest(kind=self.kind, exception_id=self.exception.id, reason=self.reason(), value=self.value())

    def reason_required(self) -> bool:
        return self.kind in REASON_REQUIRED

    def request_complete(self) -> bool:
        """Whether the editors hold enough to plan: a LINK needs a candidate, CORRECT its values,
        and the kinds whose preflight checks the reason need one."""
        if self.kind is ActionKind.LINK and self.value() is None:
            return False
        if self.kind is ActionKind.CORRECT and not (
                self.value_edits and all(e.text().strip() for e in self.value_edits.values() if e.isEnabled())):
            return False
        return not (self.reason_required() and not self.reason())

    def _incomplete_text(self) -> str:
        if self.kind is ActionKind.LINK and self.value() is None:
            return "Pick a candidate to see the preflight checks and the preview."
        if self.kind is ActionKind.CORRECT and not all(e.text().strip() for e in self.value_edits.values()
                                                       if e.isEnabled()):
            return "Fill in every value to see the preflight checks and the preview."
        return "Give a reason (required) to run the preflight checks and see the preview."

    def _plan_matches(self, plan: Plan) -> bool:
        """Whether ``plan`` was made for what the editors hold now (the reason counts only where
        the preflight checks it; the final plan is made again on Confirm anyway)."""
        req, now = plan.request, self.request()
        if (text_of(req.kind), req.exception_id, req.value) != (text_of(now.kind), now.exception_id, now.value):
            return False
        return not self.reason_required() or req.reason.strip() == now.reason

    def _values_edited(self, *_: object) -> None:
        self._stale = True
        self._edit_timer.start()
        if self.state not in ("busy", "done") and self.allowed:
            if self.request_complete():
                self.banner.show_message("The preflight checks run again when you stop typing…", "busy")
            else:
                self.banner.show_message(self._incomplete_text(), "info")
        self._update_buttons()

    def _reason_edited(self, *_: object) -> None:
        if self.reason_required():
            self._values_edited()
        else:
            self._update_buttons()

    def _values_edited_now(self, *_: object) -> None:
        self._stale = True
        self.flush_edits()

    def flush_edits(self) -> None:
        """Ask for a new preview now (typing waits ``EDIT_DELAY_MS`` for a pause first)."""
        self._edit_timer.stop()
        if self.state in ("busy", "done"):
            return
        if not self.request_complete():
            self.banner.show_message(self._incomplete_text(), "info")
            self._update_buttons()
            return
        if self.allowed:
            self.banner.show_message("Running the preflight checks…", "busy")
        self._update_buttons()
        self.request_changed.emit(self.request())

    # -- showing a plan -------------------------------------------------------------------
    def set_planning(self) -> None:
        self.state = "planning"
        self.banner.show_message("Running the preflight checks…", "busy")
        self._update_buttons()

    def set_plan(self, plan: Plan, note: str = "") -> None:
        """Show the preflight checks and the dry-run preview of ``plan``."""
        self.plan = plan
        self.state = "ready"
        self._stale = not self._plan_matches(plan)
        self._fill_checks(plan)
        self._fill_calls(plan)
        if not self.allowed:
            self.banner.show_message(f"You cannot do this: {self.why_not or 'not allowed for your role'}", "bad")
        elif plan.ok:
            n = len(plan.calls)
            calls = f"{n} call{'s' if n != 1 else ''}" if n else "no call to an external system"
            self.banner.show_message((note + "\n" if note else "")
                                     + f"✓ Preflight passed ({len(plan.checks)} checks) — {calls}; "
                                     "review the preview and confirm.", "warn" if note else "ok")
        else:
            self.banner.show_message((note + "\n" if note else "")
                                     + "✗ Preflight failed — nothing will be written.\n" + self.failure_text(plan),
                                     "bad")
        self._update_buttons()

    @staticmethod
    def failure_text(plan: Plan) -> str:
        """The first failed check, named and explained (``Plan.explanation`` is its detail)."""
        first = next((c for c in plan.checks if not c.ok), None)
        explanation = ""
        with contextlib.suppress(Exception):
            explanation = str(plan.explanation or "")
        if first is None:
            return explanation
        text = f"{first.name}: {first.detail}"
        return text if not explanation or explanation in text else f"{text}\n{explanation}"

    def _fill_checks(self, plan: Plan) -> None:
        red = QColor(MISSING_COLOR)
        bold = QFont(self.checks.font())
        bold.setBold(True)
        self.checks.setRowCount(len(plan.checks))
        for row, check in enumerate(plan.checks):
            name = QTableWidgetItem(f"{'✓' if check.ok else '✗'} {check.name}")
            name.setIcon(dot_icon(OK_COLOR if check.ok else MISSING_COLOR))
            detail = QTableWidgetItem(check.detail)
            detail.setToolTip(plain_tooltip(check.detail))
            if not check.ok:
                for item in (name, detail):
                    item.setForeground(red)
                name.setFont(bold)
            name.setTextAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
            detail.setTextAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
            self.checks.setItem(row, 0, name)
            self.checks.setItem(row, 1, detail)
        self.checks.resizeRowsToContents()

    def _fill_calls(self, plan: Plan) -> None:
        self._shown_calls = plan_calls(plan)
        self.calls.setRowCount(len(plan.calls))
        for row, call in enumerate(plan.calls):
            system = call.system if isinstance(call.system, System) else System(text_of(call.system))
            cells = [SYSTEM_TITLES.get(system, text_of(call.system)), call.method, call.path, call.description]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(plain_tooltip(text))
                if col == 0:
                    item.setIcon(system_icon(system))
                if col in (1, 2):
                    item.setFont(mono_font())
                self.calls.setItem(row, col, item)
        self.key_label.setText(f"Idempotency key: {plan.idempotency_key}" if plan.idempotency_key else "")
        notes = [str(n) for n in getattr(plan, "notes", None) or []]
        self.notes_label.show_message("\n".join(f"Note: {n}" for n in notes), "warn")
        self.notes_label.setVisible(bool(notes))
        rows = max(1, min(len(plan.calls), 6))
        self.calls.setFixedHeight(self.calls.horizontalHeader().sizeHint().height()
                                  + rows * self.calls.verticalHeader().defaultSectionSize()
                                  + 2 * self.calls.frameWidth() + 2)
        if plan.calls:
            self.calls.selectRow(0)
            self._show_call_body()
        else:
            self.body.setPlainText(self._change_text(plan) or "(no call: nothing is sent to the systems)")

    def _change_text(self, plan: Plan) -> str:
        parts = []
        if plan.before:
            parts.append("before:\n" + pretty_json(plan.before))
        if plan.expected_after:
            parts.append("expected after:\n" + pretty_json(plan.expected_after))
        return "\n\n".join(parts)

    def _show_call_body(self) -> None:
        if self.plan is None:
            return
        rows = self.calls.selectionModel().selectedRows()
        row = rows[0].row() if rows else 0
        if not 0 <= row < len(self.plan.calls):
            return
        call = self.plan.calls[row]
        what = f"# {call.description}\n" if call.description else ""
        text = f"{what}{call.method} {call.path}\n{pretty_json(call.body)}"
        change = self._change_text(self.plan)
        self.body.setPlainText(text + ("\n\n" + change if change else ""))

    def shown_calls(self) -> list[tuple[str, str, str, str]]:
        return list(self._shown_calls)

    def set_operator(self, operator: Operator, allowed: bool, why_not: str = "") -> None:
        """The operator switched while the dialog is open: show who acts now and preview again
        (the service refuses a plan made for another operator)."""
        self.operator = operator
        auditor = text_of(operator.role) == Role.AUDITOR.value
        self.allowed = allowed and not auditor
        self.why_not = (why_not or auditor_refusal(operator)) if auditor else why_not
        self.operator_label.setText(f"acting as {operator_text(operator)}")
        if self.state in ("busy", "done"):
            return
        self.plan = None
        self._stale = True
        if not self.allowed:
            self.banner.show_message(f"You cannot do this: {self.why_not or 'not allowed for your role'}", "bad")
            self._update_buttons()
            return
        self.flush_edits()

    # -- busy, error, result --------------------------------------------------------------
    def set_busy(self, text: str) -> None:
        self.state = "busy"
        self.banner.show_message(text, "busy")
        self.busy_bar.show()
        self._set_editable(False)
        self._update_buttons()

    def set_idle(self) -> None:
        """Back to reviewing (after an error, or a preview that changed)."""
        if self.state == "busy":
            self.state = "ready" if self.plan is not None else "idle"
        self.busy_bar.hide()
        self._set_editable(True)
        self._update_buttons()

    def set_error(self, text: str) -> None:
        self.state = "ready" if self.plan is not None else "idle"
        self.busy_bar.hide()
        self._set_editable(True)
        self.banner.show_message(redact(text), "bad")
        self._update_buttons()

    def show_result(self, result: ActionResult) -> None:
        self.outcome = result
        self.state = "done"
        self.busy_bar.hide()
        self._set_editable(False)  # the record of what was done; "acknowledge" re-opens the editors
        status = text_of(result.status)
        message = redact(result.message or "")
        if status == ActionStatus.SUCCEEDED.value and result.verified:
            text, tone = "✓ Done and verified: the target was re-read and now agrees.", "ok"
        elif status == ActionStatus.SUCCEEDED.value:
            text, tone = "✓ Written, but not verified yet: the next refresh re-checks it.", "warn"
        elif status == ActionStatus.QUEUED.value:
            text, tone = ("⧗ Queued: the target system is not reachable; the action replays by itself when it "
                          "returns (see Pending actions)."), "info"
        elif status == ActionStatus.CANCELLED.value:
            text, tone = "Cancelled: nothing more will be written.", "info"
        elif self.warning_name(result):
            text, tone = "⚠ Stopped at an ERP warning: nothing was posted.", "warn"
        else:
            text, tone = f"✗ {status.capitalize()}: the action did not complete.", "bad"
        self.result_banner.show_message(text + (f"\n{message}" if message else "")
                                        + f"\nAction {result.action_id}", tone)
        self.result_banner.show()
        self.banner.show_message(f"{kind_title(self.kind)}: {status}", tone)
        self.confirm_button.hide()
        self.cancel_button.setText("Close")
        warning = self.warning_name(result)
        self.acknowledge_button.setVisible(bool(warning))
        if warning:
            self.acknowledge_button.setText("Acknowledge the warning and run again…")
            self.acknowledge_button.setToolTip(plain_tooltip(f"Run again with the ERP warning {warning} "
                                                             "acknowledged once (audited)"))
            self.banner.show_message(f"The ERP asks for a confirmation ({warning}). Nothing was posted. If the "
                                     "warning is expected, acknowledge it: the action runs again and the "
                                     "acknowledgement is audited.", "warn")
        self._update_buttons()

    @staticmethod
    def warning_name(result: ActionResult | None) -> str:
        """The Tryton warning a failed action stopped at (``""`` when none)."""
        if result is None or text_of(result.status) != ActionStatus.FAILED.value:
            return ""
        after = result.after if isinstance(result.after, dict) else {}
        return str(after.get("warning") or "")

    @property
    def awaiting_acknowledgement(self) -> bool:
        return self.state == "done" and bool(self.warning_name(self.outcome))

    def _acknowledge_clicked(self) -> None:
        """Back to reviewing, with the warning acknowledged in the next request."""
        warning = self.warning_name(self.outcome)
        if not warning:
            return
        self.acknowledge = warning
        self.state = "idle"
        self.plan = None
        self._stale = True
        self.acknowledge_button.hide()
        self.confirm_button.setText(f"Confirm {kind_title(self.kind).lower()} (acknowledging {warning})")
        self.confirm_button.show()
        self.cancel_button.setText("Cancel")
        self._set_editable(True)
        self.flush_edits()

    def _set_editable(self, editable: bool) -> None:
        for edit in self.value_edits.values():
            edit.setReadOnly(not editable)
        if self.candidate_list is not None:
            self.candidate_list.setEnabled(editable)
        if self.expiry_edit is not None:
            self.expiry_edit.setEnabled(editable)
        if self.target_combo is not None:
            self.target_combo.setEnabled(editable)
        if self.date_check is not None:
            self.date_check.setEnabled(editable)
        self.reason_edit.setReadOnly(not editable)

    # -- buttons ----------------------------------------------------------------------------
    def missing(self) -> str:
        """Why Confirm is disabled (``""`` when it is enabled)."""
        if not self.allowed:
            return self.why_not or "not allowed for your role"
        if self.state == "done":
            return "done"
        if self.state == "busy":
            return "working…"
        if not self.request_complete():
            return self._incomplete_text()
        if self.plan is None or self.state == "planning" or self._stale:
            return "waiting for the preflight checks and the preview"
        if not self.plan.ok:
            return "the preflight failed"
        if self.kind in REASON_REQUIRED and not self.reason():
            return "give a reason"
        return ""

    def _update_buttons(self) -> None:
        why = self.missing()
        self.confirm_button.setEnabled(not why)
        self.confirm_button.setToolTip(plain_tooltip(why) if why else "Run the calls shown in the preview")
        self.cancel_button.setEnabled(self.state != "busy")

    def _confirm_clicked(self) -> None:
        if not self.missing():
            self.confirmed.emit(self.request())

    # -- closing: never while a write is under way -------------------------------------------
    def reject(self) -> None:
        if self.state == "busy":
            return
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.state == "busy":
            event.ignore()
            return
        super().closeEvent(event)


async def run_fix(adapter: ActionAdapter, dialog: FixDialog) -> ActionResult | None:
    """Drive a shown :class:`FixDialog`: preview on every edit, and on Confirm re-run the
    preflight, execute if the preview is unchanged, and show the result. Returns the result,
    or ``None`` when the operator closed the dialog without confirming. No nested event loop:
    it awaits futures fed by the dialog's signals. When the ERP stopped at a warning, the dialog
    offers to acknowledge it and the flow waits for a second confirmation."""
    preview_name = f"fix-preview:{dialog.exception.id}:{id(dialog)}"

    async def preview(request: ActionRequest) -> None:
        dialog.set_planning()
        try:
            plan = await adapter.plan(request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            dialog.set_error(f"The preflight could not run: {exc}")
            return
        if dialog.state not in ("busy", "done"):
            dialog.set_plan(plan)

    def replan(request: ActionRequest) -> None:
        adapter.tasks.start(preview_name, preview(request))

    closed = dialog_result(dialog)
    dialog.request_changed.connect(replan)
    confirm: asyncio.Future[Any] | None = None
    last: ActionResult | None = None
    try:
        if dialog.allowed and dialog.request_complete():
            replan(dialog.request())
        while True:
            confirm = signal_future(dialog.confirmed)
            await asyncio.wait({confirm, closed}, return_when=asyncio.FIRST_COMPLETED)
            if closed.done() or not confirm.done():
                return last
            request: ActionRequest = confirm.result()
            adapter.tasks.cancel(preview_name)
            dialog.set_busy("Running the preflight checks again…")
            try:
                plan = await adapter.plan(request)
            except Exception as exc:
                dialog.set_error(f"The preflight could not run: {exc}")
                continue
            if not plan.ok:
                dialog.set_idle()
                dialog.set_plan(plan, "The preflight failed when checked again just before writing.")
                continue
            if plan_calls(plan) != dialog.shown_calls():
                dialog.set_idle()
                dialog.set_plan(plan, "⚠ The preview changed since you reviewed it: review it and confirm again.")
                continue
            dialog.set_busy(f"{kind_title(dialog.kind)}: writing and verifying…")
            task = adapter.start_execute(plan)
            try:
                # shielded: the write goes on if this flow is cancelled (the outbox records it)
                result: ActionResult = await asyncio.shield(task)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                dialog.set_error(f"The action could not run: {exc}")
                continue
            finally:
                if dialog.state == "busy":  # UI state restored whatever happened
                    dialog.set_idle()
            dialog.show_result(result)
            last = result
            if not dialog.awaiting_acknowledgement:
                return result
            # the ERP asked for a confirmation: wait for "acknowledge" + confirm, or for close
    finally:
        adapter.tasks.cancel(preview_name)
        if confirm is not None and not confirm.done():
            confirm.cancel()
        if not closed.done():
            closed.cancel()
        with contextlib.suppress(RuntimeError, RuntimeWarning, TypeError):
            dialog.request_changed.disconnect(replan)


# -- bulk --------------------------------------------------------------------------------
class BulkDialog(QDialog):
    """One action over a selection: setup (reason, expiry), progress with cancel, summary.

    Non-modal; :meth:`bind` connects it to an :class:`ActionAdapter`."""

    start_requested = Signal(list)  # list[ActionRequest]
    cancel_requested = Signal()

    def __init__(self, kind: ActionKind, eligible: Sequence[SyncException],
                 skipped: Sequence[tuple[SyncException, str]] = (), *, operator: Operator,
                 today: datetime | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = kind
        self.eligible = list(eligible)
        self.skipped = list(skipped)
        self.operator = operator
        self.state = "setup"  # setup | running | cancelling | done
        self.outcome: BulkResult | None = None
        self.last_progress: BulkProgress | None = None
        self._adapter: ActionAdapter | None = None
        self._today = (today or datetime.now(UTC)).astimezone(UTC).date()
        n = len(self.eligible)
        self.setWindowTitle(f"{kind_title(kind)} — {n} exception{'s' if n != 1 else ''}")
        self.setObjectName("bulkDialog")
        self.setMinimumWidth(640)

        self.title = _bold(plain_label(f"{kind_title(kind)} {n} selected exception{'s' if n != 1 else ''}"), 1.3)
        self.operator_label = set_muted(plain_label(f"acting as {operator_text(operator)}"))
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.operator_label)
        self.banner = Banner()
        self.banner.setObjectName("bulkBanner")

        # -- setup -----------------------------------------------------------------------------
        setup = QWidget()
        form = QFormLayout(setup)
        form.setContentsMargins(0, 0, 0, 0)
        self.skipped_label = plain_label(self._skipped_text())
        self.skipped_label.setWordWrap(True)
        set_muted(self.skipped_label)
        self.reason_edit = QLineEdit()
        self.reason_edit.setObjectName("reason")
        self.reason_edit.setMaxLength(500)
        required = kind in REASON_REQUIRED
        self.reason_edit.setPlaceholderText("Why (required; recorded for every action)" if required
                                            else "Why (optional; recorded for every action)")
        self.reason_edit.textChanged.connect(self._update_buttons)
        form.addRow(plain_label("Action"), plain_label(KIND_HINTS.get(kind, kind_title(kind))))
        form.addRow(plain_label("Reason *" if required else "Reason"), self.reason_edit)
        self.expiry_edit: QDateEdit | None = None
        if kind is ActionKind.ACCEPT:
            self.expiry_edit = QDateEdit()
            self.expiry_edit.setObjectName("expiry")
            self.expiry_edit.setCalendarPopup(True)
            self.expiry_edit.setDisplayFormat("yyyy-MM-dd")
            qtoday = QDate(self._today.year, self._today.month, self._today.day)
            self.expiry_edit.setMinimumDate(qtoday.addDays(1))
            self.expiry_edit.setDate(qtoday.addDays(ACCEPT_DEFAULT_DAYS))
            form.addRow(plain_label("Expires on (UTC)"), self.expiry_edit)
        form.addRow(self.skipped_label)

        # -- progress --------------------------------------------------------------------------
        running = QWidget()
        rl = QVBoxLayout(running)
        rl.setContentsMargins(0, 0, 0, 0)
        self.progress = QProgressBar()
        self.progress.setObjectName("bulkProgress")
        self.progress.setRange(0, max(1, n))
        self.progress.setValue(0)
        self.progress.setFormat("%v of %m")
        self.counts_label = plain_label("")
        self.counts_label.setObjectName("counts")
        self.current_label = plain_label("")
        self.current_label.setObjectName("current")
        set_muted(self.current_label)
        rl.addWidget(self.progress)
        rl.addWidget(self.counts_label)
        rl.addWidget(self.current_label)
        rl.addStretch(1)

        # -- summary ---------------------------------------------------------------------------
        summary = QWidget()
        sl = QVBoxLayout(summary)
        sl.setContentsMargins(0, 0, 0, 0)
        self.summary_label = plain_label("")
        self.summary_label.setObjectName("summary")
        self.summary_label.setWordWrap(True)
        self.failures = QTableWidget(0, 3)
        self.failures.setObjectName("failures")
        self.failures.setHorizontalHeaderLabels(["Exception", "Status", "Message"])
        self.failures.verticalHeader().hide()
        self.failures.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.failures.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.failures.setWordWrap(False)
        fh = self.failures.horizontalHeader()
        fh.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        fh.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        fh.setStretchLastSection(True)
        self.failures.setColumnWidth(0, 260)
        self.no_failures = set_muted(plain_label("No failure."))
        self.summary_label.hide()  # the banner shows it; kept as the plain summary text
        self.failures_title = plain_label("Failed or refused (their exceptions stay open; failed actions can be "
                                          "retried from Pending actions):")
        self.failures_title.setWordWrap(True)
        sl.addWidget(self.summary_label)
        sl.addWidget(self.failures_title)
        sl.addWidget(self.failures, 1)
        sl.addWidget(self.no_failures)

        self.pages = QStackedWidget()
        for page in (setup, running, summary):
            self.pages.addWidget(page)
        self.setup_page, self.running_page, self.summary_page = setup, running, summary

        self.start_button = QPushButton(f"Start: {kind_title(kind).lower()} {n}")
        self.start_button.setObjectName("start")
        self.start_button.setAutoDefault(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancel")
        self.cancel_button.setAutoDefault(False)
        self.start_button.clicked.connect(self._start_clicked)
        self.cancel_button.clicked.connect(self._cancel_clicked)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.start_button)

        lay = QVBoxLayout(self)
        lay.addLayout(head)
        lay.addWidget(self.banner)
        lay.addWidget(self.pages, 1)
        lay.addLayout(buttons)
        auditor = text_of(operator.role) == Role.AUDITOR.value
        if auditor:
            self.banner.show_message(f"You cannot do this: {auditor_refusal(operator)}", "bad")
        elif not self.eligible:
            self.banner.show_message("No exception in the selection allows this action.", "bad")
        else:
            self.banner.show_message("Each action runs its own preflight; one that fails is skipped and "
                                     "reported. Cancel stops after the actions already started.", "info")
        self._auditor = auditor
        self._update_buttons()

    def _skipped_text(self) -> str:
        if not self.skipped:
            return ""
        reasons: dict[str, int] = {}
        for _exc, why in self.skipped:
            reasons[why or "not allowed"] = reasons.get(why or "not allowed", 0) + 1
        n, total = len(self.skipped), len(self.skipped) + len(self.eligible)
        parts = "; ".join(f"{count} × {why}" for why, count in reasons.items())
        return f"Left out: {n} of the {total} selected — {parts}."

    # -- setup -----------------------------------------------------------------------------
    def set_operator(self, operator: Operator) -> None:
        """Who will act (a bulk run plans each action for the operator current when it starts)."""
        self.operator = operator
        self._auditor = text_of(operator.role) == Role.AUDITOR.value
        self.operator_label.setText(f"acting as {operator_text(operator)}")
        if self.state == "setup":
            if self._auditor:
                self.banner.show_message(f"You cannot do this: {auditor_refusal(operator)}", "bad")
            self._update_buttons()

    def reason(self) -> str:
        return self.reason_edit.text().strip()

    def value(self) -> dict[str, Any] | None:
        if self.expiry_edit is not None:
            d = self.expiry_edit.date()
            return {"expires_at": datetime(d.year(), d.month(), d.day(), tzinfo=UTC).isoformat()}
        return None

    def requests(self) -> list[ActionRequest]:
        return [ActionRequest(kind=self.kind, exception_id=e.id, reason=self.reason(), value=self.value())
                for e in self.eligible]

    def missing(self) -> str:
        if self._auditor:
            return auditor_refusal(self.operator)
        if not self.eligible:
            return "nothing to do"
        if self.kind in REASON_REQUIRED and not self.reason():
            return "give a reason"
        return ""

    def _update_buttons(self) -> None:
        if self.state == "setup":
            why = self.missing()
            self.start_button.setEnabled(not why)
            self.start_button.setToolTip(plain_tooltip(why) if why else "Run the action on every eligible exception")
            self.cancel_button.setText("Cancel")
            self.cancel_button.setEnabled(True)
        elif self.state == "running":
            self.start_button.hide()
            self.cancel_button.setText("Cancel run")
            self.cancel_button.setEnabled(True)
            self.cancel_button.setToolTip("Stop after the actions already started; the rest are not started")
        elif self.state == "cancelling":
            self.start_button.hide()
            self.cancel_button.setEnabled(False)
        else:
            self.start_button.hide()
            self.cancel_button.setText("Close")
            self.cancel_button.setEnabled(True)
            self.cancel_button.setToolTip("")

    def _start_clicked(self) -> None:
        if self.state != "setup" or self.missing():
            return
        self.state = "running"
        self.pages.setCurrentWidget(self.running_page)
        self.reason_edit.setReadOnly(True)
        self.set_progress(BulkProgress(done=0, total=len(self.eligible), succeeded=0, failed=0, queued=0, current=""))
        self.banner.show_message(f"Running {kind_title(self.kind).lower()} on {len(self.eligible)} exceptions…",
                                 "busy")
        self._update_buttons()
        self.start_requested.emit(self.requests())

    def _cancel_clicked(self) -> None:
        if self.state == "running":
            self.state = "cancelling"
            self.banner.show_message("Cancelling — the actions already started finish first…", "warn")
            self._update_buttons()
            self.cancel_requested.emit()
        elif self.state in ("setup", "done"):
            self.reject() if self.state == "setup" else self.accept()

    # -- progress and summary --------------------------------------------------------------
    def set_progress(self, p: BulkProgress) -> None:
        self.last_progress = p
        self.progress.setRange(0, max(1, p.total))
        self.progress.setValue(p.done)
        self.counts_label.setText(f"{p.done} of {p.total} done — {p.succeeded} succeeded · {p.failed} failed · "
                                  f"{p.queued} queued")
        self.current_label.setText(f"now: {p.current}" if p.current else "")

    def show_summary(self, result: BulkResult) -> None:
        """The end: counts per outcome and a table of what failed or was refused (with why)."""
        self.outcome = result
        self.state = "done"
        counts: dict[str, int] = {}
        for r in result.results:
            counts[text_of(r.status)] = counts.get(text_of(r.status), 0) + 1
        total = len(self.eligible)
        # the service lists the actions a cancel left unstarted as "cancelled"
        done = len(result.results) - counts.get("cancelled", 0)
        if not result.results and self.last_progress is not None:
            done = self.last_progress.done
        names = {"succeeded": "succeeded", "queued": "queued (replay when the system returns)",
                 "executing": "still executing", "failed": "failed", "refused": "refused by the preflight",
                 "cancelled": "not started"}
        parts = [f"{counts[s]} {names[s]}" for s in names if counts.get(s)]
        head = f"Cancelled after {done} of {total}." if result.cancelled else f"Finished: {done} of {total}."
        self.summary_label.setText(head + (" " + ", ".join(parts) + "." if parts else ""))
        bad = [r for r in result.results if text_of(r.status) in ("failed", "refused")]
        self.failures.setRowCount(len(bad))
        red = QColor(MISSING_COLOR)
        for row, r in enumerate(bad):
            status = text_of(r.status)
            cells = [r.exception_id, status, redact(r.message or "")]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text.replace("\n", " "))
                item.setToolTip(plain_tooltip(text))
                if col == 1:
                    item.setIcon(dot_icon(STATUS_COLORS.get(status, PENDING_COLOR)))
                    item.setForeground(red)
                self.failures.setItem(row, col, item)
        self.failures.setVisible(bool(bad))
        self.failures_title.setVisible(bool(bad))
        self.no_failures.setVisible(not bad)
        self.pages.setCurrentWidget(self.summary_page)
        tone = "bad" if bad else ("warn" if result.cancelled or counts.get("queued") else "ok")
        self.banner.show_message(self.summary_label.text(), tone)
        self._update_buttons()

    # -- wiring ----------------------------------------------------------------------------
    def bind(self, adapter: ActionAdapter) -> None:
        """Start, progress, cancel and summary through ``adapter`` (disconnected when closed)."""
        self._adapter = adapter
        self.start_requested.connect(adapter.start_bulk)
        self.cancel_requested.connect(adapter.cancel_bulk)
        adapter.bulk_progress.connect(self._progress_slot)
        adapter.bulk_done.connect(self._done_slot)
        self.finished.connect(self._unbind)

    def _progress_slot(self, p: BulkProgress) -> None:
        if self.state in ("running", "cancelling"):
            self.set_progress(p)

    def _done_slot(self, result: BulkResult) -> None:
        if self.state in ("running", "cancelling"):
            self.show_summary(result)

    def _unbind(self, *_: object) -> None:
        adapter, self._adapter = self._adapter, None
        if adapter is None:
            return
        with contextlib.suppress(RuntimeError, RuntimeWarning, TypeError):
            adapter.bulk_progress.disconnect(self._progress_slot)
        with contextlib.suppress(RuntimeError, RuntimeWarning, TypeError):
            adapter.bulk_done.disconnect(self._done_slot)

    # -- closing: Esc during a run cancels it, the dialog stays until the summary ----------
    def reject(self) -> None:
        if self.state == "running":
            self._cancel_clicked()
            return
        if self.state == "cancelling":
            return
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.state in ("running", "cancelling"):
            event.ignore()
            if self.state == "running":
                self._cancel_clicked()
            return
        super().closeEvent(event)


# -- pending actions ----------------------------------------------------------------------
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


class PendingModel(RowsTableModel):
    """The outbox items, one row each (data in plain Python, tested with qtmodeltester)."""

    HEADERS = PENDING_HEADERS

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[OutboxItem] = []

    def set_items(self, items: Sequence[OutboxItem]) -> None:
        self.beginResetModel()
        self._rows = list(items)
        self.endResetModel()

    def items(self) -> list[OutboxItem]:
        return list(self._rows)

    def item_at(self, row: int) -> OutboxItem | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        item = self._rows[index.row()]
        col = index.column()
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            text = self._display(item, col)
            if role == Qt.ItemDataRole.ToolTipRole:
                if col == PendingColumn.STATUS:
                    return plain_tooltip(f"action {item.action_id}: {text_of(item.status)}")
                if col == PendingColumn.ERROR:
                    return plain_tooltip(redact(item.last_error or "")) or None
                return plain_tooltip(text) if text else None
            return text
        if role == Qt.ItemDataRole.DecorationRole:
            if col == PendingColumn.STATUS:
                return dot_icon(STATUS_COLORS.get(text_of(item.status), PENDING_COLOR))
            if col == PendingColumn.TARGET and text_of(item.target_system) in {s.value for s in System}:
                return system_icon(System(text_of(item.target_system)))
            return None
        if role == Qt.ItemDataRole.ForegroundRole and col == PendingColumn.ERROR and item.last_error:
            return QColor(MISSING_COLOR)
        if role == Qt.ItemDataRole.TextAlignmentRole and col == PendingColumn.ATTEMPTS:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == ACTION_ID_ROLE:
            return item.action_id
        if role == STATUS_ROLE:
            return text_of(item.status)
        return None

    @staticmethod
    def _display(item: OutboxItem, col: int) -> str:
        if col == PendingColumn.STATUS:
            return text_of(item.status)
        if col == PendingColumn.KIND:
            return kind_title(text_of(item.kind))
        if col == PendingColumn.EXCEPTION:
            return item.exception_id or ""
        if col == PendingColumn.CUSTOMER:
            return item.customer_id or "—"
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
        setup_readonly_table(
            self.table, stretch=PendingColumn.ERROR, selection=QAbstractItemView.SelectionMode.ExtendedSelection,
            widths={PendingColumn.STATUS: 95, PendingColumn.KIND: 110, PendingColumn.EXCEPTION: 220,
                    PendingColumn.CUSTOMER: 90, PendingColumn.TARGET: 80, PendingColumn.OPERATOR: 120,
                    PendingColumn.ATTEMPTS: 65, PendingColumn.CREATED: 135, PendingColumn.UPDATED: 135})
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())

        self.empty = EmptyState("No pending action", "Queued, executing and failed actions are listed here.")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.table)
        self.stack.addWidget(self.empty)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.addLayout(bar)
        lay.addWidget(self.stack, 1)

        self.timer = QTimer(self)
        self.timer.setInterval(self.REFRESH_MS)
        self.timer.timeout.connect(self.refresh_requested)
        self._update_states()

    # -- data ------------------------------------------------------------------------------
    def set_items(self, items: Sequence[OutboxItem]) -> None:
        """Replace the rows (from ``pending_changed``); the selection is kept by action id."""
        selected = set(self.selected_ids())
        self.model.set_items(items)
        if selected:
            sel = self.table.selectionModel()
            for row in range(self.proxy.rowCount()):
                index = self.proxy.index(row, 0)
                if self.proxy.data(index, ACTION_ID_ROLE) in selected:
                    sel.select(index, sel.SelectionFlag.Select | sel.SelectionFlag.Rows)
        self._update_states()

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
        if total == 0:
            self.empty.set_message("No pending action", "Queued, executing and failed actions are listed here.")
            self.stack.setCurrentWidget(self.empty)
        elif shown == 0:
            self.empty.set_message("No action with this status", "Choose “All statuses” to see every one.")
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


# -- the operator --------------------------------------------------------------------------
class OperatorWidget(QToolButton):
    """"alice · finance" in the toolbar; click to switch the operator's name and role.

    Emits ``operator_changed(Operator)``; :meth:`set_operator` only shows (no signal)."""

    operator_changed = Signal(object)

    def __init__(self, operator: Operator, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("operatorWidget")
        self.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.operator = operator

        self.form = QFrame()
        self.form.setObjectName("operatorForm")
        self.form.setMinimumWidth(300)
        form = QFormLayout(self.form)
        form.setContentsMargins(10, 8, 10, 8)
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("operatorName")
        self.name_edit.setPlaceholderText("your name")
        self.name_edit.setMaxLength(80)
        self.role_combo = QComboBox()
        self.role_combo.setObjectName("operatorRole")
        for role in Role:
            self.role_combo.addItem(dot_icon(ROLE_COLORS.get(role.value, PENDING_COLOR)), role.value, role.value)
        self.role_hint = set_muted(plain_label(""))
        self.role_hint.setWordWrap(True)
        self.apply_button = QPushButton("Switch")
        self.apply_button.setObjectName("operatorApply")
        self.apply_button.setDefault(True)
        form.addRow(plain_label("Operator"), self.name_edit)
        form.addRow(plain_label("Role"), self.role_combo)
        form.addRow(self.role_hint)
        form.addRow(self.apply_button)
        self.role_combo.currentIndexChanged.connect(self._role_hint)
        self.name_edit.textChanged.connect(self._validate)
        self.name_edit.returnPressed.connect(self.apply)
        self.apply_button.clicked.connect(self.apply)

        self._menu = QMenu(self)
        action = QWidgetAction(self._menu)
        action.setDefaultWidget(self.form)
        self._menu.addAction(action)
        self._menu.aboutToShow.connect(self._fill_form)
        self.setMenu(self._menu)
        self.set_operator(operator)

    def set_operator(self, operator: Operator) -> None:
        self.operator = operator
        role = text_of(operator.role)
        self.setText(operator_text(operator))
        self.setIcon(dot_icon(ROLE_COLORS.get(role, PENDING_COLOR)))
        self.setToolTip(plain_tooltip(f"Acting as {operator.name} ({role}). Click to switch operator or role."
                                      + (f"\n{AUDITOR_TIP}" if role == Role.AUDITOR.value else "")))
        self._fill_form()

    def _fill_form(self) -> None:
        self.name_edit.setText(self.operator.name)
        self.role_combo.setCurrentIndex(max(0, self.role_combo.findData(text_of(self.operator.role))))
        self._role_hint()

    def _role_hint(self, *_: object) -> None:
        role = self.role_combo.currentData()
        self.role_hint.setText({
            Role.FINANCE.value: "fixes finance exceptions (invoices, customers, subscriptions)",
            Role.SUPPORT.value: "fixes entitlement exceptions (tiers, SLAs)",
            Role.AUDITOR.value: AUDITOR_TIP,
        }.get(role, ""))

    def _validate(self) -> None:
        self.apply_button.setEnabled(bool(self.name_edit.text().strip()))

    def apply(self) -> None:
        name = self.name_edit.text().strip()
        if not name:
            return
        new = Operator(name=name, role=Role(self.role_combo.currentData()))
        self._menu.hide()
        if new != self.operator:
            self.set_operator(new)
            self.operator_changed.emit(new)


# -- opening dialogs --------------------------------------------------------------------------
class FixLauncher(QObject):
    """Opens one :class:`FixDialog` per exception (raising an open one) and one bulk run at a
    time; each flow runs as a task owned by the adapter."""

    def __init__(self, adapter: ActionAdapter, parent_widget: QWidget | None = None,
                 today: Callable[[], datetime] | None = None) -> None:
        super().__init__(parent_widget)
        self.adapter = adapter
        self.parent_widget = parent_widget
        self.today = today or (lambda: datetime.now(UTC))
        self.dialogs: dict[str, FixDialog] = {}
        self.bulk_dialog: BulkDialog | None = None
        adapter.operator_changed.connect(self._operator_changed)

    def _operator_changed(self, operator: Operator) -> None:
        for dialog in list(self.dialogs.values()):
            allowed = {text_of(k): (ok, why) for k, ok, why in self.adapter.allowed_actions(dialog.exception)}
            ok, why = allowed.get(dialog.kind.value, (False, "this exception does not allow that action"))
            dialog.set_operator(operator, ok, why)
        if self.bulk_dialog is not None:
            self.bulk_dialog.set_operator(operator)

    def open_fix(self, exc: SyncException, kind: ActionKind | str) -> FixDialog | None:
        k = kind if isinstance(kind, ActionKind) else kind_of(kind)
        if k is None:
            self.adapter.error.emit(f"The action {kind!r} is not available yet")
            return None
        open_dialog = self.dialogs.get(exc.id)
        if open_dialog is not None:
            open_dialog.raise_()
            open_dialog.activateWindow()
            return open_dialog
        allowed = {text_of(kk): (ok, why) for kk, ok, why in self.adapter.allowed_actions(exc)}
        ok, why = allowed.get(k.value, (False, "this exception does not allow that action"))
        dialog = FixDialog(exc, k, self.adapter.operator, allowed=ok, why_not=why, today=self.today(),
                           parent=self.parent_widget)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.dialogs[exc.id] = dialog
        dialog.finished.connect(lambda *_: self.dialogs.pop(exc.id, None))
        dialog.show()
        self.adapter.tasks.start(f"fix:{exc.id}", run_fix(self.adapter, dialog))
        return dialog

    def open_bulk(self, exceptions: Sequence[SyncException], kind: ActionKind | str) -> BulkDialog | None:
        k = kind if isinstance(kind, ActionKind) else kind_of(kind)
        if k is None or k in NOT_BULK:
            self.adapter.error.emit(f"{kind_title(str(kind))} needs a value per exception: do it one by one")
            return None
        if self.bulk_dialog is not None or self.adapter.bulk_running:
            if self.bulk_dialog is not None:
                self.bulk_dialog.raise_()
            self.adapter.error.emit("A bulk action is already running")
            return self.bulk_dialog
        eligible, skipped = bulk_eligible(self.adapter, exceptions, k)
        dialog = BulkDialog(k, eligible, skipped, operator=self.adapter.operator, today=self.today(),
                            parent=self.parent_widget)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.bind(self.adapter)
        self.bulk_dialog = dialog
        dialog.finished.connect(self._bulk_closed)
        dialog.show()
        return dialog

    def _bulk_closed(self, *_: object) -> None:
        self.bulk_dialog = None


def bulk_eligible(adapter: ActionAdapter, exceptions: Sequence[SyncException], kind: ActionKind,
                  ) -> tuple[list[SyncException], list[tuple[SyncException, str]]]:
    """Split a selection: the exceptions that allow ``kind`` for this operator, and the rest
    with the reason each is left out."""
    eligible: list[SyncException] = []
    skipped: list[tuple[SyncException, str]] = []
    for exc in exceptions:
        allowed = {text_of(k): (ok, why) for k, ok, why in adapter.allowed_actions(exc)}
        ok, why = allowed.get(kind.value, (False, f"{kind_title(kind).lower()} is not a fix for its rule"))
        if ok:
            eligible.append(exc)
        else:
            skipped.append((exc, why))
    return eligible, skipped
