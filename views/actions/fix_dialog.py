"""The fix dialog: one fix before it happens, and its result.

It shows the exception, the operator, the preflight checks (the first failure explained at the
top), the dry-run preview of the exact API calls (redacted bodies), the value editors the action
needs (CORRECT / LINK / ACCEPT, :mod:`views.actions.value_editor`) and a reason; after Confirm a
busy state, then the result. It is used non-modally: :func:`views.actions.fix_flow.run_fix`
shows it and awaits futures fed by its signals (never ``exec()``, never a nested event loop).
Everything from an external system is shown as plain text.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QColor, QFont
from PySide6.QtWidgets import (
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
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QVBoxLayout,
    QWidget,
)

from services.actions.model import ActionKind, ActionRequest, ActionResult, ActionStatus, Operator, Plan, Role
from services.actions.roles import auditor_refusal
from services.core.domain import SyncException, System
from services.core.ownership import owner_system
from services.core.redaction import redact
from views.actions.sides_table import SidesTable
from views.actions.value_editor import ValueEditor
from views.actions.wording import KIND_HINTS, REASON_REQUIRED, kind_title, operator_text
from views.widgets.banner import Banner
from views.widgets.focus import tab_chain
from views.widgets.icons import MISSING_COLOR, system_icon, tone_icon
from views.widgets.screen import fit_to_screen
from views.widgets.table_menu import install_table_menu
from views.widgets.tables import setup_readonly_table
from views.widgets.text import (
    SYSTEM_TITLES,
    bold,
    mono_font,
    plain_label,
    plain_tooltip,
    pretty_json,
    set_muted,
    shown,
    text_of,
    wrapping_label,
)


def plan_calls(plan: Plan) -> list[tuple[str, str, str, str]]:
    """What the operator saw in the preview, comparable between two plans."""
    return [(text_of(c.system), c.method, c.path, json.dumps(c.body, sort_keys=True, default=str))
            for c in plan.calls]


class FixDialog(QDialog):
    """One fix, before and after it happens. Non-modal: ``show()`` it and let :func:`run_fix`
    drive it; it never runs an event loop of its own.

    ``ownership`` is the configured ownership (the engine's ``config.ownership``, the one the
    action service enforces): the owner shown is the configured one."""

    #: the value editors changed: re-plan the preview with this ActionRequest
    request_changed = Signal(object)
    #: the operator confirmed this ActionRequest
    confirmed = Signal(object)

    EDIT_DELAY_MS = 400

    def __init__(self, exc: SyncException, kind: ActionKind, operator: Operator, *,
                 ownership: Mapping[str, System], allowed: bool = True, why_not: str = "",
                 today: datetime | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.exception = exc
        self.kind = kind
        self.operator = operator
        self.ownership = ownership
        self.allowed = allowed and text_of(operator.role) != Role.AUDITOR.value
        self.why_not = ((why_not or auditor_refusal(operator)) if text_of(operator.role) == Role.AUDITOR.value
                        else why_not)
        self.plan: Plan | None = None
        self.outcome: ActionResult | None = None
        self.state = "idle"  # idle | planning | ready | busy | done
        self._stale = True  # the preview does not match the editors (yet)
        self._shown_calls: list[tuple[str, str, str, str]] = []
        self._today = (today or datetime.now(UTC)).astimezone(UTC).date()
        self.acknowledge = ""  # a Tryton warning the operator chose to acknowledge on the next run
        self.setWindowTitle(f"{kind_title(kind)} — {exc.rule}")
        self.setObjectName("fixDialog")

        head = self._build_head()
        exc_box = self._build_exception_box()
        self._build_value_editors()
        checks_box = self._build_checks()
        preview_box = self._build_preview()
        middle = QSplitter(Qt.Orientation.Horizontal)
        middle.addWidget(checks_box)
        middle.addWidget(preview_box)
        middle.setStretchFactor(0, 1)
        middle.setStretchFactor(1, 1)
        middle.setChildrenCollapsible(False)
        middle.setSizes([450, 500])
        middle.setMinimumHeight(220)
        reason_row = self._build_reason()
        buttons = self._build_buttons()

        # everything that can grow scrolls; the reason, the result and the buttons stay in sight
        body = QWidget()
        inner = QVBoxLayout(body)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.setSpacing(8)
        inner.addLayout(head)
        inner.addWidget(self.banner)
        inner.addWidget(self.hint)
        inner.addWidget(exc_box)
        inner.addWidget(self.value_box)
        inner.addWidget(middle, 1)
        self.scroll_area = QScrollArea()
        self.scroll_area.setObjectName("fixScroll")
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll_area.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.scroll_area.setWidget(body)
        lay = QVBoxLayout(self)
        lay.setSpacing(8)
        lay.addWidget(self.scroll_area, 1)
        lay.addLayout(reason_row)
        lay.addWidget(self.busy_bar)
        lay.addWidget(self.result_banner)
        lay.addLayout(buttons)
        self.setMinimumSize(480, 360)
        fit_to_screen(self, QSize(1040, 820))
        # Tab: the value editors, the preview's calls and body, the reason, then the buttons
        tab_chain([*self.value_box.focus_chain(), self.calls, self.body, self.reason_edit, self.cancel_button,
                   self.acknowledge_button, self.confirm_button])

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
        # the keyboard starts where the operator acts: the values a correction or a link needs,
        # else the reason (the other editors hold a default)
        editors = self.value_box.focus_chain() if kind in (ActionKind.CORRECT, ActionKind.LINK) else []
        (editors[0] if editors else self.reason_edit).setFocus(Qt.FocusReason.OtherFocusReason)

    # -- building, section by section ----------------------------------------------------------
    def _build_head(self) -> QHBoxLayout:
        """What and who: the title, the operator; the preflight banner and the kind's hint."""
        self.title = bold(plain_label(f"{kind_title(self.kind)} — {self.exception.rule}"), 1.3)
        self.operator_label = plain_label(f"acting as {operator_text(self.operator)}")
        set_muted(self.operator_label)
        head = QHBoxLayout()
        head.addWidget(self.title, 1)
        head.addWidget(self.operator_label, 0, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.banner = Banner()
        self.banner.setObjectName("preflightBanner")
        self.hint = plain_label(KIND_HINTS.get(self.kind, ""))
        self.hint.setWordWrap(True)
        self.hint.setVisible(self.kind is not ActionKind.CORRECT)  # its editor explains itself
        set_muted(self.hint)
        return head

    def _build_exception_box(self) -> QGroupBox:
        """The exception: object, customer, severity, the configured owner; its sides' values."""
        exc = self.exception
        exc_box = QGroupBox("Exception")
        exc_lay = QVBoxLayout(exc_box)
        owner = owner_system(exc, self.ownership)
        self.object_label = wrapping_label(
            shown(f"object {exc.object_id} · customer {exc.customer_id or '—'} · severity {text_of(exc.severity)}"
                  f" · owner {SYSTEM_TITLES[owner]}", 600))
        self.summary_label = wrapping_label(shown(exc.summary, 4000))
        self.sides_table = SidesTable(exc, self.ownership)
        exc_lay.addWidget(self.object_label)
        exc_lay.addWidget(self.summary_label)
        exc_lay.addWidget(self.sides_table)
        return exc_box

    def _build_value_editors(self) -> None:
        """The values the action writes (hidden for kinds that take none)."""
        self.value_box = ValueEditor(self.exception, self.kind, self._today, self.ownership)
        self.value_edits: dict[str, QLineEdit] = self.value_box.value_edits
        self.candidate_list: QTreeWidget | None = self.value_box.candidate_list
        self.expiry_edit: QDateEdit | None = self.value_box.expiry_edit
        self.target_combo: QComboBox | None = self.value_box.target_combo
        self.date_check: QCheckBox | None = self.value_box.date_check
        self.date_edit: QDateEdit | None = self.value_box.date_edit
        self.value_box.edited.connect(self._values_edited)
        self.value_box.edited_now.connect(self._values_edited_now)

    def _build_checks(self) -> QGroupBox:
        """The preflight checks: one row each, the detail wrapped."""
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
        return checks_box

    def _build_preview(self) -> QGroupBox:
        """The dry run: the calls, the selected call's body (secrets masked), the idempotency key."""
        preview_box = QGroupBox("Preview (dry run) — nothing is written until you confirm")
        self.calls = QTableWidget(0, 4)
        self.calls.setObjectName("calls")
        self.calls.setHorizontalHeaderLabels(["System", "Method", "Path", "What it does"])
        setup_readonly_table(self.calls, stretch=None, widths={2: 170}, alternating=False,
                             selection=QAbstractItemView.SelectionMode.SingleSelection)
        hh = self.calls.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.calls.itemSelectionChanged.connect(self._show_call_body)
        install_table_menu(self.calls)
        self.body = QPlainTextEdit()
        self.body.setObjectName("body")
        self.body.setReadOnly(True)
        self.body.setFont(mono_font())
        self.body.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.body.setPlaceholderText("The request body (secrets masked) appears here.")
        self.body.setTabChangesFocus(True)  # Tab moves on to the reason and Confirm
        self.body.setMinimumHeight(80)
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
        return preview_box

    def _build_reason(self) -> QFormLayout:
        """The reason (required for some kinds; recorded in the audit log)."""
        self.reason_edit = QLineEdit()
        self.reason_edit.setObjectName("reason")
        self.reason_edit.setMaxLength(500)
        required = self.kind in REASON_REQUIRED
        self.reason_edit.setPlaceholderText("Why (required; recorded in the audit log)" if required
                                            else "Why (optional; recorded in the audit log)")
        reason_row = QFormLayout()
        reason_row.addRow(plain_label("Reason *" if required else "Reason"), self.reason_edit)
        return reason_row

    def _build_buttons(self) -> QHBoxLayout:
        """Progress, result, and Cancel / Acknowledge / Confirm."""
        self.busy_bar = QProgressBar()
        self.busy_bar.setRange(0, 0)
        self.busy_bar.setTextVisible(False)
        self.busy_bar.setMaximumHeight(8)
        self.busy_bar.hide()
        self.result_banner = Banner()
        self.result_banner.setObjectName("resultBanner")
        self.result_banner.hide()
        self.confirm_button = QPushButton(f"Confirm {kind_title(self.kind).lower()}")
        self.confirm_button.setObjectName("confirm")
        # Enter confirms (in the reason field too) once the preview allows it; Enter on a focused
        # Cancel cancels (an auto-default button takes Enter while it has the focus)
        self.confirm_button.setAutoDefault(True)
        self.confirm_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancel")
        self.cancel_button.setAutoDefault(True)
        self.cancel_button.setToolTip("Close without writing anything (Esc)")
        self.acknowledge_button = QPushButton("Acknowledge and run again…")
        self.acknowledge_button.setObjectName("acknowledge")
        self.acknowledge_button.setAutoDefault(True)
        self.acknowledge_button.hide()
        self.confirm_button.clicked.connect(self._confirm_clicked)
        self.cancel_button.clicked.connect(self.reject)
        self.acknowledge_button.clicked.connect(self._acknowledge_clicked)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.acknowledge_button)
        buttons.addWidget(self.confirm_button)
        return buttons

    # -- the request the editors hold ----------------------------------------------------------
    def value(self) -> dict[str, Any] | None:
        """The ActionRequest value the editors hold (``None`` when the action takes none)."""
        value = self.value_box.value()
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
        if self.kind is ActionKind.CORRECT and not (self.value_edits and self.value_box.values_filled()):
            return False
        return not (self.reason_required() and not self.reason())

    def _incomplete_text(self) -> str:
        if self.kind is ActionKind.LINK and self.value() is None:
            return "Pick a candidate to see the preflight checks and the preview."
        if self.kind is ActionKind.CORRECT and not self.value_box.values_filled():
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
                                     + f"Preflight passed ({len(plan.checks)} checks) — {calls}; "
                                     "review the preview and confirm.", "warn" if note else "ok")
        else:
            self.banner.show_message((note + "\n" if note else "")
                                     + "Preflight failed — nothing will be written.\n" + self.failure_text(plan),
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
        bold_font = QFont(self.checks.font())
        bold_font.setBold(True)
        self.checks.setRowCount(len(plan.checks))
        for row, check in enumerate(plan.checks):
            # passed or failed: a drawn mark (no font needs a check-mark glyph), the result in its data
            name = QTableWidgetItem(check.name)
            name.setIcon(tone_icon("ok" if check.ok else "bad"))
            name.setData(Qt.ItemDataRole.UserRole, check.ok)
            name.setData(Qt.ItemDataRole.AccessibleTextRole, f"{'passed' if check.ok else 'failed'}: {check.name}")
            detail = QTableWidgetItem(shown(check.detail, 2000))
            detail.setToolTip(plain_tooltip(check.detail))
            if not check.ok:
                for item in (name, detail):
                    item.setForeground(red)
                name.setFont(bold_font)
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
            text, tone = "Done and verified: the target was re-read and now agrees.", "ok"
        elif status == ActionStatus.SUCCEEDED.value:
            text, tone = "Written, but not verified yet: the next refresh re-checks it.", "warn"
        elif status == ActionStatus.QUEUED.value:
            text, tone = ("Queued: the target system is not reachable; the action replays by itself when it "
                          "returns (see Pending actions)."), "info"
        elif status == ActionStatus.CANCELLED.value:
            text, tone = "Cancelled: nothing more will be written.", "info"
        elif self.warning_name(result):
            text, tone = "Stopped at an ERP warning: nothing was posted.", "warn"
        else:
            text, tone = f"{status.capitalize()}: the action did not complete.", "bad"
        self.result_banner.show_message(text + (f"\n{message}" if message else "")
                                        + f"\nAction {result.action_id}", tone)
        read_back = result.after.get("read_back") if isinstance(result.after, dict) else None
        if status == ActionStatus.SUCCEEDED.value and isinstance(read_back, dict) and read_back:
            # the new values, as re-read from the target: beside the old ones, and in the body
            self.sides_table.show_after(read_back)
            self.body.setPlainText("Read back after the write:\n" + pretty_json(read_back))
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
        self.value_box.set_editable(editable)
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
