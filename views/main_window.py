"""The main window: navigation, pages, and a status bar with one health light per system.

F1 ships the frame and the Systems page (connections and their live health); the
Customers, Exceptions and Audit log pages are filled by later work.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QColor, QIcon, QKeySequence, QPainter, QPixmap
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from services.config import Profile
from services.domain import System
from services.health import Health, HealthResult

HEALTH_COLORS: dict[Health, str] = {
    Health.OK: "#2e9d5b",
    Health.DEGRADED: "#d99a1c",
    Health.DOWN: "#d0453b",
    Health.NOT_CONFIGURED: "#8a8f98",
}
SYSTEM_TITLES = {System.BILLING: "Billing", System.ERP: "ERP", System.SUPPORT: "Support"}


def dot_icon(color: str, size: int = 12) -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setBrush(QColor(color))
    p.setPen(Qt.PenStyle.NoPen)
    p.drawEllipse(1, 1, size - 2, size - 2)
    p.end()
    return QIcon(pix)


def plain_label(text: str = "") -> QLabel:
    """A label that never interprets text as rich text (external data is shown as typed)."""
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


class HealthLight(QWidget):
    def __init__(self, system: System) -> None:
        super().__init__()
        self.system = system
        self.icon = QLabel()
        self.text = plain_label(SYSTEM_TITLES[system])
        from PySide6.QtWidgets import QHBoxLayout

        lay = QHBoxLayout(self)
        lay.setContentsMargins(6, 0, 6, 0)
        lay.setSpacing(4)
        lay.addWidget(self.icon)
        lay.addWidget(self.text)
        self.set_result(HealthResult(Health.NOT_CONFIGURED, "not checked yet"))

    def set_result(self, result: HealthResult) -> None:
        self.state = result.state
        self.icon.setPixmap(dot_icon(HEALTH_COLORS[result.state]).pixmap(QSize(12, 12)))
        self.setToolTip(f"{SYSTEM_TITLES[self.system]}: {result.state.value}\n{result.detail}")


class PlaceholderPage(QWidget):
    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        heading = plain_label(title)
        heading.setStyleSheet("font-size: 16pt; font-weight: 600;")
        body = plain_label(text)
        body.setWordWrap(True)
        body.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        lay.addWidget(heading)
        lay.addWidget(body, 1)


class SystemsPage(QWidget):
    COLUMNS = ("System", "Protocol", "Address", "Health", "Detail")

    def __init__(self) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        self.heading = plain_label("Connections")
        self.heading.setStyleSheet("font-size: 16pt; font-weight: 600;")
        self.source = plain_label("")
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
        lay.addWidget(self.heading)
        lay.addWidget(self.source)
        lay.addWidget(self.table, 1)

    def _set(self, row: int, col: int, text: str, icon: QIcon | None = None) -> None:
        item = QTableWidgetItem(text)  # QTableWidgetItem text is always plain
        if icon is not None:
            item.setIcon(icon)
        self.table.setItem(row, col, item)

    def set_profile(self, profile: Profile) -> None:
        for row, system in enumerate(System):
            conn = profile.connections.get(system)
            self._set(row, 1, conn.kind if conn else "—")
            self._set(row, 2, conn.url if conn else "not configured")

    def set_health(self, system: System, result: HealthResult) -> None:
        row = list(System).index(system)
        self._set(row, 3, result.state.value, dot_icon(HEALTH_COLORS[result.state]))
        latency = f" in {result.latency_ms:.0f} ms" if result.latency_ms is not None else ""
        self._set(row, 4, result.detail + latency)


class MainWindow(QMainWindow):
    closed = Signal()

    PAGES = ("Customers", "Exceptions", "Audit log", "Systems")

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("SyncDesk")
        self.resize(1200, 760)
        self.nav = QListWidget()
        self.nav.setFixedWidth(170)
        self.nav.setIconSize(QSize(18, 18))
        self.stack = QStackedWidget()
        self.systems_page = SystemsPage()
        pages: list[QWidget] = [
            PlaceholderPage("Customers", "The customer list and lifecycle timelines arrive with the console "
                                         "work ([F4]). The connections below are live."),
            PlaceholderPage("Exceptions", "The exception queue arrives with the reconciliation engine "
                                          "([F2]) and the console ([F4])."),
            PlaceholderPage("Audit log", "The tamper-evident audit log arrives with actions ([F5])."),
            self.systems_page,
        ]
        for title, page in zip(self.PAGES, pages, strict=True):
            QListWidgetItem(title, self.nav)
            self.stack.addWidget(page)
        self.nav.currentRowChanged.connect(self.stack.setCurrentIndex)
        splitter = QSplitter()
        splitter.addWidget(self.nav)
        splitter.addWidget(self.stack)
        splitter.setStretchFactor(1, 1)
        splitter.setChildrenCollapsible(False)
        self.setCentralWidget(splitter)
        self.nav.setCurrentRow(self.PAGES.index("Systems"))

        self.source_label = plain_label("")
        self.lights = {s: HealthLight(s) for s in System}
        self.statusBar().addWidget(self.source_label, 1)
        for light in self.lights.values():
            self.statusBar().addPermanentWidget(light)
        for i, title in enumerate(self.PAGES):
            action = QAction(title, self)
            action.setShortcut(QKeySequence(f"Ctrl+{i + 1}"))
            action.triggered.connect(lambda _=False, row=i: self.nav.setCurrentRow(row))
            self.addAction(action)

    def set_source(self, text: str) -> None:
        self.source_label.setText(text)
        self.systems_page.source.setText(text)

    def set_profile(self, profile: Profile) -> None:
        self.systems_page.set_profile(profile)

    def attach_health(self, adapter: object) -> None:
        adapter.checked.connect(self.on_health)  # type: ignore[attr-defined]

    def on_health(self, system_value: str, result: HealthResult) -> None:
        system = System(system_value)
        self.lights[system].set_result(result)
        self.systems_page.set_health(system, result)

    def show_error(self, text: str) -> None:
        self.set_source(f"Configuration problem: {text}")

    def closeEvent(self, event: QCloseEvent) -> None:
        self.closed.emit()
        super().closeEvent(event)
