"""One system's part of the Connections dialog: whether the profile connects it, its kind
(fixed: billing is Stripe, the ERP Tryton, support Zendesk), its address, the settings and the
credential that kind needs (Zendesk: an API token with the agent's e-mail, or an OAuth token —
a choice that hides the e-mail when it is not needed). The credential field is a password field
that is never filled with the stored secret: it says where the secret is kept ("stored in the
keyring") and an empty field keeps it. Each field shows its own validation error below it, in plain words.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from services.core.domain import System
from services.io.config import KINDS, SECRET_KEYS
from views.connections.model import (
    CREDENTIAL_CHOICES,
    IN_KEYRING,
    KIND_TITLES,
    SECRET_LABELS,
    SETTING_LABELS,
    URL_HINTS,
    URL_LABELS,
    StoredSystem,
    SystemForm,
    secret_label,
)
from views.widgets.text import SYSTEM_TITLES, plain_label

ERROR_STYLE = "color: #d0453b;"
#: the labels' column width, the same in the three boxes so their fields line up
LABEL_WIDTH = 150


def _label(text: str) -> QLabel:
    label = plain_label(text)
    label.setMinimumWidth(LABEL_WIDTH)
    return label


def error_label() -> QLabel:
    label = plain_label("")
    label.setStyleSheet(ERROR_STYLE)
    label.setWordWrap(True)
    label.setVisible(False)
    return label


class SystemBox(QGroupBox):
    """The fields of one system."""

    test_clicked = Signal(object)  # System

    def __init__(self, system: System) -> None:
        kind = KINDS[system]
        super().__init__(f"{SYSTEM_TITLES[system]} — {KIND_TITLES[kind]}")
        self.system = system
        self.setObjectName(f"system_{system.value}")
        self.setCheckable(True)
        self.setToolTip(f"Untick to leave {SYSTEM_TITLES[system]} out of this profile (its checks are skipped)")
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        self.kind_label = plain_label(f"{KIND_TITLES[kind]} ({kind})")
        form.addRow(_label("Kind"), self.kind_label)
        self._form = form
        self.errors: dict[str, QLabel] = {}
        self.rows: dict[str, QWidget] = {}
        self.labels: dict[str, QLabel] = {}
        #: the stored system shown (what the secret field's placeholder says depends on it)
        self.stored: StoredSystem | None = None
        self.url = QLineEdit()
        self.url.setObjectName(f"{system.value}_url")
        self.url.setPlaceholderText(URL_HINTS[system])
        self._row(form, URL_LABELS[system], self.url, "url")
        self.credential: QComboBox | None = None
        choices = CREDENTIAL_CHOICES.get(system, {})
        if choices:
            self.credential = QComboBox()
            self.credential.setObjectName(f"{system.value}_credential")
            for key, text in choices.items():
                self.credential.addItem(text, key)
            self.credential.setToolTip("How SyncDesk signs in: an API token goes with the agent's e-mail; "
                                       "an OAuth access token names its user by itself")
            form.addRow(_label("Sign in with"), self.credential)
        self.settings: dict[str, QLineEdit] = {}
        for key, label in SETTING_LABELS[system].items():
            edit = QLineEdit()
            edit.setObjectName(f"{system.value}_{key}")
            self.settings[key] = edit
            self._row(form, label, edit, key)
        self.secret = QLineEdit()
        self.secret.setObjectName(f"{system.value}_secret")
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self._row(form, SECRET_LABELS[system], self.secret, "secret")
        if self.credential is not None:
            self.credential.currentIndexChanged.connect(lambda _i: self._credential_changed())
        self.show_secret = QCheckBox("Show what I type")
        self.show_secret.toggled.connect(lambda on: self.secret.setEchoMode(
            QLineEdit.EchoMode.Normal if on else QLineEdit.EchoMode.Password))
        form.addRow(_label(""), self.show_secret)
        self.test_button = QPushButton(f"Test {SYSTEM_TITLES[system]}")
        self.test_button.setObjectName(f"test_{system.value}")
        self.test_button.setToolTip(f"Test {SYSTEM_TITLES[system]} only: reachable, logged in, every permission")
        self.test_button.clicked.connect(lambda: self.test_clicked.emit(self.system))
        form.addRow(_label(""), self.test_button)
        inner = QWidget()
        inner.setLayout(form)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 4, 6, 4)
        lay.addWidget(inner)
        self.set_stored(None)

    def _row(self, form: QFormLayout, label: str, edit: QLineEdit, key: str) -> None:
        box = QWidget()
        col = QVBoxLayout(box)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(1)
        col.addWidget(edit)
        err = error_label()
        err.setObjectName(f"{self.system.value}_{key}_error")
        self.errors[key] = err
        col.addWidget(err)
        self.rows[key] = box
        self.labels[key] = _label(label)
        form.addRow(self.labels[key], box)

    def set_stored(self, stored: StoredSystem | None, form: SystemForm | None = None) -> None:
        """Fill the fields from ``form``; the secret field stays empty and says where the stored
        one is kept (``stored``)."""
        form = form or SystemForm(self.system, stored is not None,
                                  credential=stored.credential if stored is not None else "")
        self.stored = stored
        self.setChecked(form.enabled)
        if self.credential is not None:
            self.credential.blockSignals(True)
            self.credential.setCurrentIndex(max(0, self.credential.findData(form.secret_key)))
            self.credential.blockSignals(False)
        self.url.setText(form.url)
        for key, edit in self.settings.items():
            edit.setText(form.settings.get(key, ""))
        for edit in (self.url, *self.settings.values()):
            edit.setCursorPosition(0)  # the start of a long address shows, not its end
        self.secret.clear()
        self.show_secret.setChecked(False)
        self._credential_changed()

    def _credential_changed(self) -> None:
        """Show the fields the chosen credential needs, name the credential field after it, and
        say whether that credential is stored (another one chosen must be typed)."""
        form = self.form()
        for key, row in self.rows.items():
            self._form.setRowVisible(row, form.needs(key))
        self.labels["secret"].setText(secret_label(form))
        stored = self.stored
        source = stored.secret_source if stored is not None else "missing"
        if stored is not None and (stored.credential or SECRET_KEYS[form.kind][0]) != form.secret_key:
            source = "missing"  # the stored credential is the other kind: a new one is needed
        if source == "missing":
            self.secret.setPlaceholderText("required")
        elif source == IN_KEYRING:
            self.secret.setPlaceholderText(IN_KEYRING)
        else:
            self.secret.setPlaceholderText(source)
        self.secret.setToolTip("Leave it empty to keep the stored one; a secret typed here is kept in the OS "
                               "keyring, never in config.toml" if source != "missing" else
                               "Kept in the OS keyring, never in config.toml")
        self.set_errors({})

    def form(self) -> SystemForm:
        credential = str(self.credential.currentData()) if self.credential is not None else ""
        return SystemForm(self.system, self.isChecked(), self.url.text(),
                          {k: e.text() for k, e in self.settings.items()}, self.secret.text(), credential)

    def set_errors(self, errors: dict[str, str]) -> None:
        """``errors``: field key (``url``, ``database``, ``secret``…) -> plain sentence."""
        for key, label in self.errors.items():
            text = errors.get(key, "")
            label.setText(text)
            label.setVisible(bool(text))
