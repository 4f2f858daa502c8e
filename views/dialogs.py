"""The desktop tool's own dialogs: About (version, licences, data folder), the user guide (Help)
and Settings (refresh interval, appearance, data folder). All non-modal: ``show()`` them; none
runs an event loop of its own."""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QUrl, Signal
from PySide6.QtGui import QAction, QDesktopServices
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from views.settings import REFRESH_CHOICES, Appearance, ConsoleSettings
from views.widgets.screen import fit_to_screen
from views.widgets.text import bold, plain_label, set_muted

DIST = "syncdesk"
#: the README of a checkout (an installed wheel has none: Help shows the built-in guide only)
README = Path(__file__).resolve().parent.parent / "README.md"


def app_version() -> str:
    try:
        return importlib.metadata.version(DIST)
    except importlib.metadata.PackageNotFoundError:
        return "development checkout"


def licences() -> list[tuple[str, str, str]]:
    """(name, version, licence) of SyncDesk and each package it requires, from their metadata."""
    out: list[tuple[str, str, str]] = []
    names = [DIST]
    try:
        for req in importlib.metadata.requires(DIST) or []:
            if "extra ==" in req:
                continue
            name = re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0]
            if name and name not in names:
                names.append(name)
    except importlib.metadata.PackageNotFoundError:
        names += ["PySide6", "qasync", "httpx", "pydantic"]
    for name in names:
        try:
            meta = importlib.metadata.metadata(name).json
        except importlib.metadata.PackageNotFoundError:
            continue

        def field(key: str, meta: dict[str, str | list[str]] = meta) -> str:
            value = meta.get(key)
            return value if isinstance(value, str) else ""

        licence = field("license_expression")
        raw = field("license")
        if not licence and raw and len(raw) < 60 and "\n" not in raw:
            licence = raw
        if not licence:
            classifiers = meta.get("classifier") or []
            licence = ", ".join(c.split("::")[-1].strip() for c in classifiers if c.startswith("License ::"))
        out.append((field("name") or name, field("version"), licence or "see the package"))
    return out


def open_folder(path: Path) -> bool:
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))


def _path_row(path: Path, parent: QWidget) -> QHBoxLayout:
    """A copyable path and an "Open" button."""
    field = QLineEdit(str(path))
    field.setReadOnly(True)
    field.setObjectName("dataFolder")
    field.setToolTip("Where SyncDesk keeps its databases, log and settings (SYNCDESK_HOME)")
    button = QPushButton("Open", parent)
    button.setToolTip("Open the folder in the file manager")
    button.clicked.connect(lambda: open_folder(path))
    row = QHBoxLayout()
    row.addWidget(field, 1)
    row.addWidget(button)
    return row


class AboutDialog(QDialog):
    """Version, licences of SyncDesk and what it uses, the data folder."""

    def __init__(self, data_folder: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About SyncDesk")
        self.setObjectName("aboutDialog")
        self.version = app_version()
        title = bold(plain_label(f"SyncDesk {self.version}"), 1.4)
        text = plain_label("An operator console that keeps billing (Stripe), the ERP (Tryton) and support "
                           "(Zendesk) in agreement, with every action in a tamper-evident audit log.")
        text.setWordWrap(True)
        self.table = QTableWidget(0, 3)
        self.table.setObjectName("licences")
        self.table.setHorizontalHeaderLabels(["Package", "Version", "Licence"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setTabKeyNavigation(False)
        rows = licences()
        self.table.setRowCount(len(rows))
        for r, cells in enumerate(rows):
            for c, value in enumerate(cells):
                self.table.setItem(r, c, QTableWidgetItem(value))
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.resizeColumnsToContents()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(title)
        lay.addWidget(text)
        lay.addWidget(plain_label("Data folder"))
        lay.addLayout(_path_row(data_folder, self))
        lay.addWidget(plain_label("Licences"))
        lay.addWidget(self.table, 1)
        lay.addWidget(buttons)
        fit_to_screen(self, QSize(640, 520))


USER_GUIDE = """\
SyncDesk — user guide

SyncDesk reads billing (Stripe), the ERP (Tryton) and support (Zendesk), compares them with a
catalogue of rules, and lists every disagreement as an exception with an owner team. Fixes are
previewed (the exact calls), confirmed, written, re-read to verify, and recorded in the audit log.

Pages
  Overview (Ctrl+1)         the headline figures against the previous period (SLA breaches
                            marked) and their charts; a tile or an ageing bar opens its records.
  Customers (Ctrl+2)        every billing customer with its ERP party and support organization;
                            Enter opens one: its lifecycle timeline and open exceptions.
  Exceptions (Ctrl+3)       the queue: filter by rule, team, severity, system, age or text;
                            F8 / Shift+F8 select the next / previous exception.
  Pending actions (Ctrl+4)  queued, executing and failed fixes (queued ones replay by themselves
                            when their system is back).
  Audit log (Ctrl+5)        who did what, where, when, why and with what result; Verify checks
                            the hash chain; Export writes CSV or JSON.
  Systems (Ctrl+6)          each connection's address, health and last error.

What a page says
  Every page says whether it is loading, could not be loaded (which system, why, with Retry and a
  way to the Systems page), has nothing to list, or lists its data. "Everything agrees" is said only
  when billing, the ERP and support were all read in the latest refresh; a rule that could not be
  checked because a system is missing is named as skipped above the queue.

Fixing an exception
  Select it, then Tab to its fix buttons (or click one). The fix dialog runs the preflight checks
  and shows the exact calls; give a reason and press Enter (or Confirm). Nothing is written before
  you confirm. Esc closes the dialog.

Right-click any table to copy a cell, a row or an id, open the customer, or filter by the value.
Layout, column widths, sort and filters are remembered between sessions (File > Settings).
"""


class HelpDialog(QDialog):
    """The user guide (built in) and every command's shortcut; "Open the README" in a checkout."""

    def __init__(self, actions: Sequence[QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("SyncDesk user guide")
        self.setObjectName("helpDialog")
        self.text = QPlainTextEdit()
        self.text.setObjectName("guide")
        self.text.setReadOnly(True)
        self.text.setTabChangesFocus(True)
        lines = [USER_GUIDE, "Keyboard shortcuts"]
        for action in actions:
            keys = action.shortcut().toString(action.shortcut().SequenceFormat.NativeText) if not \
                action.shortcut().isEmpty() else ""
            label = action.text().replace("&&", "\0").replace("&", "").replace("\0", "&").split("\t")[0]
            hint = action.text().split("\t")[1] if "\t" in action.text() else ""
            if keys or hint:
                lines.append(f"  {keys or hint:<16} {label.rstrip('…')}")
        self.text.setPlainText("\n".join(lines))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        self.readme_button = buttons.addButton("Open the README", QDialogButtonBox.ButtonRole.ActionRole)
        self.readme_button.setVisible(README.exists())
        self.readme_button.clicked.connect(lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(README))))
        lay = QVBoxLayout(self)
        lay.addWidget(self.text, 1)
        lay.addWidget(buttons)
        fit_to_screen(self, QSize(760, 640))


class SettingsDialog(QDialog):
    """Refresh interval and appearance (applied on OK), and where the data is kept."""

    applied = Signal()

    def __init__(self, settings: ConsoleSettings, data_folder: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.setWindowTitle("SyncDesk settings")
        self.setObjectName("settingsDialog")
        self.refresh_combo = QComboBox()
        self.refresh_combo.setObjectName("refreshInterval")
        for minutes in REFRESH_CHOICES:
            self.refresh_combo.addItem("Only when asked (F5)" if minutes == 0 else f"Every {minutes} min", minutes)
        self.refresh_combo.setCurrentIndex(max(0, self.refresh_combo.findData(settings.refresh_minutes)))
        self.appearance_buttons: dict[Appearance, QRadioButton] = {}
        group = QButtonGroup(self)
        appearance_row = QHBoxLayout()
        for appearance, text in ((Appearance.SYSTEM, "Like the system"), (Appearance.LIGHT, "Light"),
                                 (Appearance.DARK, "Dark")):
            button = QRadioButton(text)
            button.setObjectName(f"appearance_{appearance.value}")
            group.addButton(button)
            self.appearance_buttons[appearance] = button
            appearance_row.addWidget(button)
        appearance_row.addStretch(1)
        self.appearance_buttons[settings.appearance].setChecked(True)
        form = QFormLayout()
        form.addRow(plain_label("Refresh automatically"), self.refresh_combo)
        form.addRow(plain_label("Appearance"), appearance_row)
        form.addRow(plain_label("Data folder"), _path_row(data_folder, self))
        settings_file = set_muted(plain_label(f"Settings file: {settings.path}"))
        settings_file.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        settings_file.setWordWrap(True)
        form.addRow(settings_file)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._ok)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addStretch(1)
        lay.addWidget(buttons)
        fit_to_screen(self, QSize(620, 300))

    def chosen_appearance(self) -> Appearance:
        return next((a for a, b in self.appearance_buttons.items() if b.isChecked()), Appearance.SYSTEM)

    def _ok(self) -> None:
        self.settings.refresh_minutes = int(self.refresh_combo.currentData())
        self.settings.appearance = self.chosen_appearance()
        self.settings.sync()
        self.applied.emit()
        self.accept()
