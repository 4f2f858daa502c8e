"""The Connections dialog: the profiles of config.toml (add, edit, duplicate, delete with
confirmation), each system's address and credentials, a read-only switch, Save (written in
place by :mod:`services.io.config_write`: atomic, the user's comments kept, secrets to the OS
keyring) and Test connection — per system or all at once, on the service thread, with a busy
bar and a Cancel, its result a plain checklist (:mod:`views.connections.checklist`).

The dialog is non-modal and never waits in a nested event loop: confirmations and the
duplicate's name are asked with ``open()`` and answered through signals. Validation errors are
shown under the field they concern.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from services.core.domain import System
from services.io.permissions import ConnectionReport
from views.connections.adapter import ConnectionsAdapter
from views.connections.checklist import Checklist
from views.connections.model import ProfileForm, StoredProfile, blank_form, is_demo, validate
from views.connections.system_form import SystemBox, error_label
from views.widgets.screen import fit_to_screen
from views.widgets.text import SYSTEM_TITLES, plain_label, set_muted, wrapping_label

#: the name offered for the first profile (the console opens "default" when the file has several)
FIRST_NAME = "default"
#: the size the dialog opens at, shrunk to the screen
PREFERRED_SIZE = QSize(1180, 720)


class ConnectionsDialog(QDialog):
    """Profiles, their systems and credentials, and Test connection."""

    #: a profile was added or saved (its name): the first run opens it
    profile_saved = Signal(str)

    def __init__(self, adapter: ConnectionsAdapter, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Connections — SyncDesk")
        self.setObjectName("connectionsDialog")
        self.adapter = adapter
        self.stored: dict[str, StoredProfile] = {}
        self.current: StoredProfile | None = None  # None: a new profile
        self._pending_select: str | None = None

        # the profiles
        self.profile_list = QListWidget()
        self.profile_list.setObjectName("profileList")
        self.profile_list.setAccessibleName("Profiles")
        self.profile_list.currentItemChanged.connect(self._on_selected)
        self.add_button = QPushButton("Add")
        self.add_button.setToolTip("A new profile")
        self.add_button.clicked.connect(self.new_profile)
        self.duplicate_button = QPushButton("Duplicate…")
        self.duplicate_button.setToolTip("Copy the selected profile (its credentials too) under another name")
        self.duplicate_button.clicked.connect(self.ask_duplicate)
        self.delete_button = QPushButton("Delete…")
        self.delete_button.setToolTip("Remove the selected profile from config.toml and its secrets from the keyring")
        self.delete_button.clicked.connect(self.ask_delete)
        left = QWidget()
        left_lay = QVBoxLayout(left)
        left_lay.setContentsMargins(0, 0, 0, 0)
        left_lay.addWidget(plain_label("Profiles"))
        left_lay.addWidget(self.profile_list, 1)
        buttons = QHBoxLayout()
        for b in (self.add_button, self.duplicate_button, self.delete_button):
            buttons.addWidget(b)
        left_lay.addLayout(buttons)
        self.path_label = set_muted(wrapping_label(f"Saved in {adapter.path}"))
        left_lay.addWidget(self.path_label)

        # the profile's fields
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("profileName")
        self.name_error = error_label()
        self.name_error.setObjectName("name_error")
        self.read_only = QCheckBox("Read-only (SyncDesk never writes: no fix is offered)")
        self.read_only.setObjectName("readOnly")
        self.systems_error = error_label()
        self.boxes = {s: SystemBox(s) for s in System}
        for box in self.boxes.values():
            box.test_clicked.connect(lambda system: self.test([system]))
        name_box = QWidget()
        name_col = QVBoxLayout(name_box)
        name_col.setContentsMargins(0, 0, 0, 0)
        name_col.setSpacing(1)
        name_col.addWidget(self.name_edit)
        name_col.addWidget(self.name_error)
        head = QFormLayout()
        head.addRow("Name", name_box)
        head.addRow("", self.read_only)
        editor = QWidget()
        editor_lay = QVBoxLayout(editor)
        editor_lay.addLayout(head)
        editor_lay.addWidget(self.systems_error)
        for box in self.boxes.values():
            editor_lay.addWidget(box)
        editor_lay.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        editor.setMinimumWidth(400)
        scroll.setWidget(editor)
        self.save_button = QPushButton("Save")
        self.save_button.setObjectName("saveProfile")
        self.save_button.setDefault(True)
        self.save_button.setToolTip("Write the profile into config.toml (your comments are kept) and the secrets "
                                    "into the OS keyring")
        self.save_button.clicked.connect(self.save)
        self.test_all_button = QPushButton("Test all")
        self.test_all_button.setObjectName("testAll")
        self.test_all_button.setToolTip("Test every system of the profile at once")
        self.test_all_button.clicked.connect(lambda: self.test(None))
        middle = QWidget()
        middle_lay = QVBoxLayout(middle)
        middle_lay.setContentsMargins(0, 0, 0, 0)
        middle_lay.addWidget(scroll, 1)
        row = QHBoxLayout()
        row.addWidget(self.test_all_button)
        row.addStretch(1)
        row.addWidget(self.save_button)
        middle_lay.addLayout(row)

        # the checklist
        self.checklist = Checklist()
        self.checklist.cancel_clicked.connect(self.cancel_test)
        right = QWidget()
        right_lay = QVBoxLayout(right)
        right_lay.setContentsMargins(0, 0, 0, 0)
        right_lay.addWidget(plain_label("Test connection"))
        right_lay.addWidget(self.checklist, 1)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        for i, (w, stretch) in enumerate(((left, 0), (middle, 2), (right, 3))):
            splitter.addWidget(w)
            splitter.setStretchFactor(i, stretch)
        splitter.setSizes([170, 500, 510])
        self.status = plain_label("")
        self.status.setObjectName("connectionsStatus")
        self.status.setWordWrap(True)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(close)
        lay = QVBoxLayout(self)
        lay.addWidget(splitter, 1)
        lay.addLayout(bottom)
        fit_to_screen(self, PREFERRED_SIZE)

        adapter.loaded.connect(self.set_profiles)
        adapter.saved.connect(self._on_saved)
        adapter.failed.connect(self._on_failed)
        adapter.tested.connect(self._on_tested)
        adapter.test_running.connect(self._on_test_running)
        adapter.test_cancelled.connect(self.checklist.show_cancelled)
        self.confirm: QMessageBox | None = None
        self.name_ask: QInputDialog | None = None
        self.new_profile()
        adapter.load()

    # -- the list ---------------------------------------------------------------------------------
    def set_profiles(self, profiles: list[StoredProfile]) -> None:
        news = self.status.text()  # what was just done stays said, whichever profile is shown next
        keep = self._pending_select or (self.current.name if self.current is not None else None)
        self._pending_select = None
        self.stored = {p.name: p for p in profiles}
        self.profile_list.blockSignals(True)
        self.profile_list.clear()
        for p in profiles:
            text = p.name + ("  (read-only)" if p.read_only else "") + \
                ("  DEMO" if is_demo(p.name, {s: v.settings for s, v in p.systems.items()}) else "")
            item = QListWidgetItem(text, self.profile_list)
            item.setData(Qt.ItemDataRole.UserRole, p.name)
        self.profile_list.blockSignals(False)
        if keep in self.stored:
            self.select(keep)
        elif self.current is not None:  # it was deleted
            self.new_profile() if not profiles else self.select(profiles[0].name)
        elif not profiles:
            self.name_edit.setText(self.name_edit.text() or FIRST_NAME)
        self.status.setText(news)
        self._enable()

    def select(self, name: str) -> None:
        for i in range(self.profile_list.count()):
            item = self.profile_list.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == name:
                self.profile_list.setCurrentItem(item)
                self._show(self.stored[name])
                return

    def _on_selected(self, item: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        if item is not None:
            self._show(self.stored[str(item.data(Qt.ItemDataRole.UserRole))])

    def _show(self, stored: StoredProfile | None, form: ProfileForm | None = None) -> None:
        if self.adapter.testing():
            self.adapter.cancel_test()
        # the profile just saved (or the one shown) again: its news stays in the status line
        same = stored is not None and stored.name == self.name_edit.text().strip()
        self.current = stored
        form = form or (stored.form() if stored is not None else blank_form())
        self.name_edit.setText(form.name)
        self.name_edit.setReadOnly(stored is not None)
        self.name_edit.setToolTip("A saved profile keeps its name (Duplicate it to copy it under another)"
                                  if stored is not None else "Letters, digits, '.', '_' or '-'")
        self.read_only.setChecked(form.read_only)
        for system, box in self.boxes.items():
            box.set_stored(stored.systems.get(system) if stored is not None else None, form.systems[system])
        self._set_errors({})
        if not same:
            self.status.setText("")  # the previous profile's news
        self.checklist.show_idle()
        self._enable()

    def new_profile(self) -> None:
        self.profile_list.blockSignals(True)
        self.profile_list.setCurrentRow(-1)
        self.profile_list.clearSelection()
        self.profile_list.blockSignals(False)
        self._show(None, blank_form("" if self.stored else FIRST_NAME))
        self.name_edit.setFocus()

    def _enable(self) -> None:
        selected = self.current is not None
        self.duplicate_button.setEnabled(selected)
        self.delete_button.setEnabled(selected)

    # -- the form ---------------------------------------------------------------------------------
    def form(self) -> ProfileForm:
        return ProfileForm(self.name_edit.text().strip(), self.read_only.isChecked(),
                           {s: box.form() for s, box in self.boxes.items()})

    def _set_errors(self, errors: dict[str, str]) -> None:
        self.name_error.setText(errors.get("name", ""))
        self.name_error.setVisible("name" in errors)
        self.systems_error.setText(errors.get("systems", ""))
        self.systems_error.setVisible("systems" in errors)
        for system, box in self.boxes.items():
            prefix = f"{system.value}."
            box.set_errors({k[len(prefix):]: v for k, v in errors.items() if k.startswith(prefix)})

    def errors(self) -> dict[str, str]:
        return validate(self.form(), new=self.current is None, stored=self.current,
                        taken=frozenset(self.stored))

    def save(self) -> None:
        errors = self.errors()
        self._set_errors(errors)
        if errors:
            self.status.setText("Not saved: " + next(iter(errors.values())))
            return
        self.status.setText("Saving…")
        self.save_button.setEnabled(False)
        self._pending_select = self.form().name
        self.adapter.save(self.form(), self.current)

    def _on_saved(self, name: str, done: str) -> None:
        self.save_button.setEnabled(True)
        if done == "deleted":
            self.status.setText(f"Profile {name} deleted; its secrets were removed from the keyring. The previous "
                                "config.toml is kept as config.toml.bak.")
            return
        self.status.setText(f"Profile {name} {done} in {self.adapter.path.name} (your comments are kept; secrets "
                            "are in the OS keyring). The previous version is kept as config.toml.bak.")
        if done in ("added", "saved"):
            self.profile_saved.emit(name)

    def _on_failed(self, what: str, text: str) -> None:
        self.save_button.setEnabled(True)
        if what == "test":
            self.checklist.show_failed(text)
        elif what == "save":
            self._pending_select = None
            self.status.setText(f"Not saved: {text}")
        else:
            self.status.setText(f"The profiles could not be read: {text}")

    # -- duplicate and delete (asked without a nested loop) ---------------------------------------
    def ask_duplicate(self) -> None:
        if self.current is None:
            return
        source = self.current.name
        ask = QInputDialog(self)
        ask.setWindowTitle("Duplicate profile")
        ask.setLabelText(f"Name of the copy of {source}:")
        n = 2
        while f"{source}-{n}" in self.stored:
            n += 1
        ask.setTextValue(f"{source}-{n}")
        ask.textValueSelected.connect(lambda name: self._duplicate(source, name.strip()))
        self.name_ask = ask
        ask.open()

    def _duplicate(self, source: str, name: str) -> None:
        if name in self.stored:
            self.status.setText(f"Not duplicated: a profile named {name} exists already.")
            return
        self._pending_select = name
        self.adapter.duplicate(source, name)

    def ask_delete(self) -> None:
        if self.current is None:
            return
        name = self.current.name
        box = QMessageBox(QMessageBox.Icon.Warning, "Delete profile",
                          f"Delete profile {name}? It is removed from config.toml (the previous version is kept as "
                          "config.toml.bak) and its secrets from the OS keyring.",
                          QMessageBox.StandardButton.Cancel, self)
        box.setTextFormat(Qt.TextFormat.PlainText)
        delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.buttonClicked.connect(lambda button: self.adapter.delete(name) if button is delete else None)
        self.confirm = box
        box.open()

    # -- Test connection ----------------------------------------------------------------------------
    def test(self, systems: list[System] | None) -> None:
        form = self.form()
        wanted = [s for s in (systems or [f.system for f in form.enabled()])]
        errors = {k: v for k, v in self.errors().items()
                  if k.split(".")[0] in {s.value for s in wanted} or k == "systems"}
        self._set_errors(errors)
        if errors:
            self.checklist.show_idle("Not tested: " + next(iter(errors.values())))
            return
        names = ", ".join(SYSTEM_TITLES[s] for s in wanted)
        self.checklist.show_busy(f"Testing {names}…")
        self._on_test_running(True)  # at once: the task starts on the loop's next turn
        self.adapter.test(form, self.current.name if self.current is not None else None, systems)

    def cancel_test(self) -> None:
        self.adapter.cancel_test()

    def _on_test_running(self, running: bool) -> None:
        self.test_all_button.setEnabled(not running)
        for box in self.boxes.values():
            box.test_button.setEnabled(not running)
        if not running and self.checklist.busy.isVisible():
            self.checklist.busy.setVisible(False)

    def _on_tested(self, report: ConnectionReport) -> None:
        self.checklist.show_report(report)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.adapter.cancel_test()
        super().closeEvent(event)
