"""The main window: navigation, pages, a toolbar, and a status bar with one health light per
system, the snapshot's age, and refresh progress with a cancel button.

The window only draws: it emits ``refresh_requested`` / ``cancel_requested`` and receives
:class:`ConsoleState` objects (computed off the UI thread) through :meth:`set_state`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QStyle,
    QTableWidget,
    QTableWidgetItem,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from services.actions.model import ActionKind
from services.core.domain import SyncException, System
from services.io.config import Profile
from services.io.health import Health, HealthResult
from views.action_adapter import ActionAdapter
from views.actions.launcher import FixLauncher
from views.actions.operator import OperatorWidget
from views.actions.pending import PendingActionsPage
from views.actions.permissions import fix_policy
from views.adapters import ConsoleState, HealthAdapter
from views.audit_page import AuditPage
from views.customer_view import CustomerPage
from views.customers import CustomersPage
from views.exceptions.page import ExceptionsPage
from views.widgets.icons import dot_icon
from views.widgets.tables import EmptyState
from views.widgets.text import SYSTEM_TITLES, plain_label, set_muted

HEALTH_COLORS: dict[Health, str] = {
    Health.OK: "#2e9d5b",
    Health.DEGRADED: "#d99a1c",
    Health.DOWN: "#d0453b",
    Health.NOT_CONFIGURED: "#8a8f98",
}


def ago_text(seconds: float) -> str:
    """How long ago, for the snapshot's age: ``"just now"``, ``"42 s ago"``, ``"5 min ago"`` …"""
    if seconds < 90:
        return "just now" if seconds < 10 else f"{int(seconds)} s ago"
    minutes = seconds / 60
    if minutes < 90:
        return f"{int(minutes)} min ago"
    hours = minutes / 60
    if hours < 48:
        return f"{hours:.0f} h ago"
    return f"{hours / 24:.0f} d ago"


class HealthLight(QWidget):
    """One system's light: ok / degraded / down / not configured, the last error as tooltip."""

    def __init__(self, system: System) -> None:
        super().__init__()
        self.system = system
        self.icon = QLabel()
        self.text = plain_label(SYSTEM_TITLES[system])
        lay = QHBoxLayout(self)
        lay.setContentsMargins(6, 0, 6, 0)
        lay.setSpacing(4)
        lay.addWidget(self.icon)
        lay.addWidget(self.text)
        self.probe: HealthResult = HealthResult(Health.NOT_CONFIGURED, "not checked yet")
        self.refresh_error: str | None = None
        self._down_from_refresh = False
        self._render()

    @property
    def state(self) -> Health:
        if self.refresh_error and self.probe.state is Health.OK:
            return Health.DEGRADED
        return self.probe.state

    def set_result(self, result: HealthResult) -> None:
        self.probe = result
        self._down_from_refresh = False
        self._render()

    def set_refresh_outcome(self, ok: bool, error: str) -> None:
        self.refresh_error = None if ok else (error or "refresh failed")
        if ok and self._down_from_refresh:
            self.probe = HealthResult(Health.OK, "answering (last refresh succeeded)")
            self._down_from_refresh = False
        if not ok and ("unavailable" in error or "timed out" in error or "connection failed" in error
                       or "circuit" in error or "credentials" in error or "HTTP 401" in error):
            self.probe = HealthResult(Health.DOWN, error)
            self._down_from_refresh = True
        self._render()

    def _render(self) -> None:
        self.icon.setPixmap(dot_icon(HEALTH_COLORS[self.state]).pixmap(QSize(12, 12)))
        tip = f"{SYSTEM_TITLES[self.system]}: {self.state.value}\n{self.probe.detail}"
        if self.refresh_error:
            tip += f"\nLast refresh failed: {self.refresh_error}"
        self.setToolTip(tip)


class SystemsPage(QWidget):
    COLUMNS = ("System", "Protocol", "Address", "Health", "Detail")

    def __init__(self) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        heading = plain_label("Connections")
        heading.setStyleSheet("font-size: 16pt; font-weight: 600;")
        self.source = set_muted(plain_label(""))
        self.table = QTableWidget(len(System), len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        for row, system in enumerate(System):
            self._set(row, 0, SYSTEM_TITLES[system])
            self._set(row, 3, Health.NOT_CONFIGURED.value)
        lay.addWidget(heading)
        lay.addWidget(self.source)
        lay.addWidget(self.table, 1)

    def _set(self, row: int, col: int, text: str, icon: QIcon | None = None) -> None:
        item = QTableWidgetItem(text)  # item text is always plain
        if icon is not None:
            item.setIcon(icon)
        self.table.setItem(row, col, item)

    def set_profile(self, profile: Profile) -> None:
        for row, system in enumerate(System):
            conn = profile.connections.get(system)
            self._set(row, 1, conn.kind if conn else "—")
            self._set(row, 2, conn.url if conn else "not configured")

    def set_health(self, system: System, state: Health, detail: str) -> None:
        row = list(System).index(system)
        self._set(row, 3, state.value, dot_icon(HEALTH_COLORS[state]))
        self._set(row, 4, detail)


class RefreshStatus(QWidget):
    """Status-bar block: a progress bar, a per-system progress line and a Cancel button."""

    cancel_clicked = Signal()

    def __init__(self) -> None:
        super().__init__()
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)  # busy: totals are rarely known up front
        self.bar.setFixedWidth(110)
        self.bar.setMaximumHeight(14)
        self.bar.setTextVisible(False)
        self.label = plain_label("")
        self.cancel = QPushButton("Cancel")
        self.cancel.setToolTip("Cancel the refresh (Esc); each system keeps its last complete snapshot")
        self.cancel.clicked.connect(self.cancel_clicked)
        lay.addWidget(self.bar)
        lay.addWidget(self.label)
        lay.addWidget(self.cancel)
        self.parts: dict[str, str] = {}
        self.setVisible(False)

    def start(self, mode: str) -> None:
        self.parts = {}
        self.label.setText(f"{mode.capitalize()} refresh…")
        self.setVisible(True)

    def update_progress(self, system: str, phase: str, done: int, total: object) -> None:
        count = f"{done:,}" + (f"/{total:,}" if isinstance(total, int) and total else "")
        self.parts[system] = "done" if phase == "done" else f"{phase} {count}"
        self.label.setText(" · ".join(f"{s}: {t}" for s, t in self.parts.items()))

    def stop(self) -> None:
        self.setVisible(False)


class MainWindow(QMainWindow):
    closed = Signal()
    refresh_requested = Signal(str)  # "auto" | "full"
    cancel_requested = Signal()

    PAGES = ("Customers", "Exceptions", "Pending actions", "Audit log", "Systems")

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("SyncDesk")
        self.resize(1400, 860)
        self.state: ConsoleState | None = None

        # pages
        self.customers_page = CustomersPage()
        self.customer_page = CustomerPage()
        self.customers_stack = QStackedWidget()
        self.customers_stack.addWidget(self.customers_page)
        self.customers_stack.addWidget(self.customer_page)
        self.exceptions_page = ExceptionsPage()
        self.pending_page: QWidget = EmptyState("Pending actions", "Actions appear here once the action "
                                                                    "service is connected.")
        self.audit_page: QWidget = EmptyState("Audit log", "The audit log appears here once the action "
                                                            "service is connected.")
        self.systems_page = SystemsPage()
        self.launcher: FixLauncher | None = None
        self.customers_page.open_customer.connect(self.open_customer)
        self.exceptions_page.open_customer.connect(self.open_customer)
        self.customer_page.back.connect(self.show_customer_list)

        self.nav = QListWidget()
        self.nav.setFixedWidth(170)
        self.nav.setIconSize(QSize(18, 18))
        self.stack = QStackedWidget()
        style = self.style()
        icons = [QStyle.StandardPixmap.SP_FileDialogDetailedView, QStyle.StandardPixmap.SP_MessageBoxWarning,
                 QStyle.StandardPixmap.SP_BrowserReload, QStyle.StandardPixmap.SP_FileDialogContentsView,
                 QStyle.StandardPixmap.SP_DriveNetIcon]
        for title, page, icon in zip(self.PAGES, [self.customers_stack, self.exceptions_page, self.pending_page,
                                                  self.audit_page, self.systems_page], icons, strict=True):
            QListWidgetItem(style.standardIcon(icon), title, self.nav)
            self.stack.addWidget(page)
        self.nav.currentRowChanged.connect(self.stack.setCurrentIndex)
        central = QWidget()
        body = QHBoxLayout(central)
        body.setContentsMargins(4, 4, 4, 0)
        body.addWidget(self.nav)
        body.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        self.nav.setCurrentRow(0)

        # status bar
        self.source_label = plain_label("")
        self.age_label = set_muted(plain_label(""))
        self.refresh_status = RefreshStatus()
        self.refresh_status.cancel_clicked.connect(self.cancel_requested)
        self.lights = {s: HealthLight(s) for s in System}
        bar = self.statusBar()
        bar.addWidget(self.source_label)
        bar.addWidget(self.age_label, 1)
        bar.addPermanentWidget(self.refresh_status)
        for light in self.lights.values():
            bar.addPermanentWidget(light)
        self._age_timer = QTimer(self)
        self._age_timer.setInterval(15_000)
        self._age_timer.timeout.connect(self._update_age)
        self._age_timer.start()

        self._build_actions()
        self.customers_page.set_loading(True)
        self.exceptions_page.set_loading(True)

    # -- actions and shortcuts ---------------------------------------------------------------
    def _build_actions(self) -> None:
        toolbar = QToolBar("Main")
        self.toolbar = toolbar
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.addToolBar(toolbar)
        style = self.style()

        def action(text: str, shortcut: str | QKeySequence.StandardKey | None, tip: str,
                   icon: QStyle.StandardPixmap | None = None, in_toolbar: bool = True) -> QAction:
            act = QAction(text, self)
            if icon is not None:
                act.setIcon(style.standardIcon(icon))
            if shortcut is not None:
                act.setShortcut(QKeySequence(shortcut))
            act.setToolTip(f"{tip} ({act.shortcut().toString()})" if shortcut else tip)
            if in_toolbar:
                toolbar.addAction(act)
            self.addAction(act)
            return act

        self.refresh_action = action("Refresh", "F5", "Fetch what changed in the three systems",
                                     QStyle.StandardPixmap.SP_BrowserReload)
        self.refresh_action.triggered.connect(lambda: self.refresh_requested.emit("auto"))
        self.full_refresh_action = action("Full refresh", "Shift+F5", "Fetch everything again",
                                          QStyle.StandardPixmap.SP_DialogResetButton)
        self.full_refresh_action.triggered.connect(lambda: self.refresh_requested.emit("full"))
        self.cancel_action = action("Cancel", "Esc", "Cancel the running refresh",
                                    QStyle.StandardPixmap.SP_BrowserStop)
        self.cancel_action.triggered.connect(self.cancel_requested)
        self.cancel_action.setEnabled(False)
        toolbar.addSeparator()
        search = action("Search customers", QKeySequence.StandardKey.Find, "Search customers",
                        QStyle.StandardPixmap.SP_FileDialogContentsView)
        search.triggered.connect(self.focus_search)
        nxt = action("Next exception", "F8", "Select the next exception", QStyle.StandardPixmap.SP_ArrowDown)
        nxt.triggered.connect(self.next_exception)
        prev = action("Previous exception", "Shift+F8", "Select the previous exception", in_toolbar=False)
        prev.triggered.connect(self.previous_exception)
        for i, title in enumerate(self.PAGES):
            go = action(f"Go to {title}", f"Ctrl+{i + 1}", f"Show {title}", in_toolbar=False)
            go.triggered.connect(lambda _=False, row=i: self.nav.setCurrentRow(row))

    # -- fixing (actions, [F5]) -----------------------------------------------------------------
    def attach_actions(self, actions: ActionAdapter) -> None:
        """Connect the action service: operator switch, fix buttons, bulk, pending, audit."""
        self.action_adapter = actions
        self.launcher = FixLauncher(actions, self, ownership=self.state.ownership if self.state is not None else None)
        self.operator_widget = OperatorWidget(actions.operator)
        self.operator_widget.setToolTip("Who acts, and in which role; recorded with every audit entry")
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.toolbar.addWidget(spacer)
        self.bulk_button = QToolButton()
        self.bulk_button.setText("Bulk fix")
        self.bulk_button.setToolTip("Apply one fix to every exception the queue currently shows (its filters)")
        self.bulk_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.bulk_button)
        for kind in (ActionKind.RETRY, ActionKind.PUSH, ActionKind.CREATE, ActionKind.REVOKE, ActionKind.CANCEL,
                     ActionKind.FLAG, ActionKind.ACCEPT):
            act = menu.addAction(f"{kind.value.capitalize()} every shown exception…")
            act.triggered.connect(lambda _=False, k=kind: self.bulk_fix(k))
        self.bulk_button.setMenu(menu)
        self.toolbar.addWidget(self.bulk_button)
        self.toolbar.addWidget(self.operator_widget)
        self.operator_widget.operator_changed.connect(actions.set_operator)
        actions.operator_changed.connect(self.operator_widget.set_operator)
        actions.operator_changed.connect(lambda _op: self._apply_fix_policy())
        actions.error.connect(lambda text: self.statusBar().showMessage(text, 15_000))
        self.exceptions_page.fix_requested.connect(self.request_fix)
        self.customer_page.fix_requested.connect(self.request_fix)
        self._apply_fix_policy()
        pending = PendingActionsPage()
        pending.bind(actions)
        audit = AuditPage()
        audit.bind(actions)
        for old, new in ((self.pending_page, pending), (self.audit_page, audit)):
            index = self.stack.indexOf(old)
            self.stack.insertWidget(index, new)
            self.stack.removeWidget(old)
            old.deleteLater()
        self.pending_page, self.audit_page = pending, audit
        self.stack.setCurrentIndex(self.nav.currentRow())

    def _apply_fix_policy(self) -> None:
        policy = fix_policy(self.action_adapter)
        self.exceptions_page.detail.set_fix_policy(policy)
        self.customer_page.set_fix_policy(policy)

    def _exception(self, exc_id: str) -> SyncException | None:
        if self.state is None:
            return None
        return next((e for e in self.state.exceptions if e.id == exc_id), None)

    def _still_opening(self) -> bool:
        if self.state is not None and not self.state.complete:
            self.statusBar().showMessage("The local snapshot is still being read: fixes are available in a "
                                         "moment.", 8_000)
            return True
        return False

    def request_fix(self, exc_id: str, kind: str) -> None:
        exc = self._exception(exc_id)
        if exc is None or self._still_opening():
            return
        if self.launcher is not None:
            self.launcher.open_fix(exc, kind)

    def bulk_fix(self, kind: ActionKind) -> None:
        if self.launcher is None or self.state is None or self._still_opening():
            return
        shown = set(self.exceptions_page.model.visible_ids())
        self.launcher.open_bulk([e for e in self.state.exceptions if e.id in shown], kind)

    def focus_search(self) -> None:
        self.nav.setCurrentRow(0)
        self.show_customer_list()
        self.customers_page.focus_search()

    def next_exception(self) -> None:
        self.nav.setCurrentRow(1)
        self.exceptions_page.next_exception()

    def previous_exception(self) -> None:
        self.nav.setCurrentRow(1)
        self.exceptions_page.previous_exception()

    # -- navigation ---------------------------------------------------------------------------
    def open_customer(self, customer_id: str) -> None:
        if self.state is None:
            return
        row = next((r for r in self.state.rows if r.customer_id == customer_id), None)
        timeline = self.state.timeline(customer_id)
        if timeline is None:  # still opening: the customer is shown when the history is in
            self.customer_page.show_loading(customer_id)
        else:
            self.customer_page.show_customer(timeline, self.state.exceptions_of(customer_id), row)
        self.nav.setCurrentRow(0)
        self.customers_stack.setCurrentWidget(self.customer_page)

    def show_customer_list(self) -> None:
        self.customers_stack.setCurrentWidget(self.customers_page)
        self.customers_page.table.setFocus()

    # -- state ----------------------------------------------------------------------------------
    def set_state(self, state: ConsoleState) -> None:
        """Show a new snapshot in place: selections, filters and scroll positions are kept."""
        self.state = state
        # the owner shown is the engine's configured one (the ownership the action service enforces)
        self.exceptions_page.set_ownership(state.ownership)
        if self.launcher is not None:
            self.launcher.set_ownership(state.ownership)
        self.customers_page.set_loading(False)
        self.exceptions_page.set_loading(False)
        self.customers_page.set_rows(state.rows, state.row_filter)  # prepared with the rows (adapters)
        self.exceptions_page.set_exceptions(state.exceptions, state.now)
        shown = self.customer_page.customer_id()
        if shown is not None and self.customers_stack.currentWidget() is self.customer_page:
            self.open_customer(shown)
        for system, error in state.errors.items():
            self.lights[system].set_refresh_outcome(False, error)
        self._update_age()

    def _update_age(self) -> None:
        if self.state is None:
            self.age_label.setText("No snapshot yet")
            return
        now = datetime.now(UTC)
        parts = []
        for system, at in self.state.ages.items():
            parts.append(f"{SYSTEM_TITLES[system]} {ago_text((now - at).total_seconds()) if at else 'never'}")
        self.age_label.setText("Snapshot: " + ", ".join(parts))

    def set_source(self, text: str) -> None:
        self.source_label.setText(text)
        self.systems_page.source.setText(text)

    def set_profile(self, profile: Profile) -> None:
        self.systems_page.set_profile(profile)

    # -- refresh and health ---------------------------------------------------------------------
    def on_refresh_started(self, mode: str) -> None:
        self.refresh_status.start(mode)
        self.cancel_action.setEnabled(True)
        self.refresh_action.setEnabled(False)
        self.full_refresh_action.setEnabled(False)

    def on_refresh_progress(self, system: str, phase: str, done: int, total: object) -> None:
        self.refresh_status.update_progress(system, phase, done, total)

    def on_system_refreshed(self, system: str, ok: bool, error: str) -> None:
        light = self.lights[System(system)]
        light.set_refresh_outcome(ok, error)
        self.systems_page.set_health(light.system, light.state, error or light.probe.detail)

    def on_refresh_ended(self, *_: object) -> None:
        self.refresh_status.stop()
        self.cancel_action.setEnabled(False)
        self.refresh_action.setEnabled(True)
        self.full_refresh_action.setEnabled(True)
        self._update_age()

    def attach_health(self, adapter: HealthAdapter) -> None:
        adapter.checked.connect(self.on_health)

    def on_health(self, system_value: str, result: HealthResult) -> None:
        light = self.lights[System(system_value)]
        light.set_result(result)
        latency = f" in {result.latency_ms:.0f} ms" if result.latency_ms is not None else ""
        self.systems_page.set_health(light.system, light.state, result.detail + latency)

    def show_error(self, text: str) -> None:
        self.set_source(f"Problem: {text}")
        self.customers_page.set_loading(False)
        self.exceptions_page.set_loading(False)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.closed.emit()
        super().closeEvent(event)
