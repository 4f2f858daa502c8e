"""The Systems page (each connection's protocol, address, health and last error), the status
bar's health light per system, and its refresh-progress block."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from PySide6.QtCore import QSize, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from services.core.domain import System
from services.io.config import Profile
from services.io.health import Health, HealthResult
from views.coverage import PageState
from views.widgets.icons import dot_icon
from views.widgets.state import StatePanel
from views.widgets.table_menu import install_table_menu
from views.widgets.text import SYSTEM_TITLES, plain_label, plain_tooltip, set_muted

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


def snapshot_age_text(ages: Mapping[System, datetime | None] | None, now: datetime) -> str:
    """The status bar's snapshot age: each system's last read, or that there is no snapshot yet."""
    if ages is None:
        return "No snapshot yet"
    return "Snapshot: " + ", ".join(
        f"{SYSTEM_TITLES[system]} {ago_text((now - at).total_seconds()) if at else 'never'}"
        for system, at in ages.items())


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
    """The connections: each system's protocol, address, health and last error. Loading until
    the profile is read; not loaded (why) when it could not be."""

    COLUMNS = ("System", "Protocol", "Address", "Health", "Detail")
    #: "Connections…": the profiles, their credentials and Test connection (views/connections/)
    connections_requested = Signal()

    def __init__(self) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        heading = plain_label("Connections")
        heading.setStyleSheet("font-size: 16pt; font-weight: 600;")
        self.connections_button = QPushButton("Connections…")
        self.connections_button.setObjectName("connectionsButton")
        self.connections_button.setToolTip("Add, edit or test connection profiles (File > Connections…)")
        self.connections_button.clicked.connect(self.connections_requested)
        top = QHBoxLayout()
        top.addWidget(heading)
        top.addStretch(1)
        top.addWidget(self.connections_button)
        self.source = set_muted(plain_label(""))
        self.source.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.table = QTableWidget(len(System), len(self.COLUMNS))
        self.table.setObjectName("systemsTable")
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setTabKeyNavigation(False)
        install_table_menu(self.table)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        for row, system in enumerate(System):
            self._set(row, 0, SYSTEM_TITLES[system])
            self._set(row, 3, "checking…")
        self.empty = StatePanel("Reading the connection profile…", systems_link=False)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.table)
        self.stack.addWidget(self.empty)
        self.stack.setCurrentWidget(self.empty)
        lay.addLayout(top)
        lay.addWidget(self.source)
        lay.addWidget(self.stack, 1)

    @property
    def page_state(self) -> PageState:
        return PageState.LOADED if self.stack.currentWidget() is self.table else self.empty.state

    def _set(self, row: int, col: int, text: str, icon: QIcon | None = None) -> None:
        item = QTableWidgetItem(text)  # item text is always plain
        item.setToolTip(plain_tooltip(text))
        if icon is not None:
            item.setIcon(icon)
        self.table.setItem(row, col, item)

    def set_profile(self, profile: Profile) -> None:
        for row, system in enumerate(System):
            conn = profile.connections.get(system)
            self._set(row, 1, conn.kind if conn else "—")
            self._set(row, 2, conn.url if conn else "not configured")
            if conn is None:
                self._set(row, 3, Health.NOT_CONFIGURED.value, dot_icon(HEALTH_COLORS[Health.NOT_CONFIGURED]))
                self._set(row, 4, "No connection for this system in the profile: its rules are skipped")
        self.stack.setCurrentWidget(self.table)

    def set_health(self, system: System, state: Health, detail: str) -> None:
        row = list(System).index(system)
        self._set(row, 3, state.value, dot_icon(HEALTH_COLORS[state]))
        self._set(row, 4, detail)

    def show_not_loaded(self, title: str, text: str) -> None:
        self.empty.show_state(PageState.NOT_LOADED, title, text)
        self.stack.setCurrentWidget(self.empty)


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
