"""The bulk dialog: one action over a selection — setup (reason, expiry), progress with cancel,
and a summary of what failed or was refused (with why).

Non-modal; :meth:`BulkDialog.bind` connects it to an :class:`~views.action_adapter.ActionAdapter`.
Everything from an external system is shown as plain text.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import QDate, QSize, Qt, Signal
from PySide6.QtGui import QCloseEvent, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDateEdit,
    QDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from services.actions.model import ActionKind, ActionRequest, BulkProgress, BulkResult, Operator, Role
from services.actions.roles import auditor_refusal
from services.core.domain import SyncException
from services.core.redaction import redact
from views.action_adapter import ActionAdapter
from views.actions.wording import ACCEPT_DEFAULT_DAYS, KIND_HINTS, REASON_REQUIRED, kind_title, operator_text
from views.widgets.banner import Banner
from views.widgets.icons import MISSING_COLOR, PENDING_COLOR, STATUS_COLORS, dot_icon
from views.widgets.screen import fit_to_screen
from views.widgets.table_menu import install_table_menu
from views.widgets.text import bold, plain_label, plain_tooltip, set_muted, text_of


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
        self.setMinimumWidth(420)

        self.title = bold(plain_label(f"{kind_title(kind)} {n} selected exception{'s' if n != 1 else ''}"), 1.3)
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
        # what it will touch, listed before it touches anything
        self.targets = QTableWidget(len(self.eligible), 4)
        self.targets.setObjectName("targets")
        self.targets.setHorizontalHeaderLabels(["Rule", "Customer", "Object", "Summary"])
        self.targets.verticalHeader().hide()
        self.targets.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.targets.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.targets.setWordWrap(False)
        self.targets.setTabKeyNavigation(False)
        install_table_menu(self.targets)
        for row, exc in enumerate(self.eligible):
            for col, text in enumerate((exc.rule, exc.customer_id or "—", exc.object_id,
                                        exc.summary.replace("\n", " "))):
                item = QTableWidgetItem(text)
                item.setToolTip(plain_tooltip(text))
                self.targets.setItem(row, col, item)
        th = self.targets.horizontalHeader()
        th.setStretchLastSection(True)
        for col, width in enumerate((190, 150, 130)):
            self.targets.setColumnWidth(col, width)
        self.targets.setMinimumHeight(110)
        self.targets_label = plain_label(f"Will act on these {n} exception{'s' if n != 1 else ''}:")
        form.addRow(self.targets_label)
        form.addRow(self.targets)
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
        self.failures.setTabKeyNavigation(False)
        install_table_menu(self.failures)
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
        # Enter starts (in the reason field too) once the setup allows it; Enter on a focused
        # Cancel cancels
        self.start_button.setAutoDefault(True)
        self.start_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancel")
        self.cancel_button.setAutoDefault(True)
        self.start_button.clicked.connect(self._start_clicked)
        self.cancel_button.clicked.connect(self._cancel_clicked)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.start_button)

        body = QWidget()
        inner = QVBoxLayout(body)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.addLayout(head)
        inner.addWidget(self.banner)
        inner.addWidget(self.pages, 1)
        self.scroll_area = QScrollArea()
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll_area.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.scroll_area.setWidget(body)
        lay = QVBoxLayout(self)
        lay.addWidget(self.scroll_area, 1)
        lay.addLayout(buttons)
        fit_to_screen(self, QSize(760, 560))
        self.reason_edit.setFocus(Qt.FocusReason.OtherFocusReason)
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
