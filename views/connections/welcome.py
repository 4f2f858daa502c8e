"""The first-run welcome: with no connection profile yet, SyncDesk offers the built-in demo or
connecting the user's own systems. Non-modal; the choice comes back as ``chosen``."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QCommandLinkButton, QDialog, QVBoxLayout, QWidget

from views.widgets.text import bold, plain_label, set_muted, wrapping_label

DEMO = "demo"
CONNECT = "connect"


class WelcomeDialog(QDialog):
    """Two choices: "Explore the built-in demo" and "Connect your systems"."""

    chosen = Signal(str)  # DEMO | CONNECT | "" (closed without a choice)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Welcome to SyncDesk")
        self.setObjectName("welcomeDialog")
        self._answered = False
        lay = QVBoxLayout(self)
        lay.setSpacing(10)
        lay.addWidget(bold(plain_label("Welcome to SyncDesk"), 1.4))
        lay.addWidget(wrapping_label(
            "SyncDesk keeps billing (Stripe), the ERP (Tryton) and support (Zendesk) in agreement. No connection "
            "profile is set up on this computer yet."))
        self.demo_button = QCommandLinkButton(
            "Explore the built-in demo",
            "A made-up company served on this computer, with planted mismatches to find and fix. Nothing real is "
            "touched; the window says DEMO.")
        self.demo_button.setObjectName("exploreDemo")
        self.connect_button = QCommandLinkButton(
            "Connect your systems",
            "Add a profile with your Stripe, Tryton and Zendesk addresses and credentials (kept in the OS "
            "keyring), test what SyncDesk may read and write, then open it.")
        self.connect_button.setObjectName("connectSystems")
        for button in (self.demo_button, self.connect_button):
            button.setIconSize(QSize(24, 24))
            lay.addWidget(button)
        lay.addWidget(set_muted(wrapping_label(
            "Your choice is remembered for the next start. File > Connections… changes profiles at any time.")))
        self.demo_button.clicked.connect(lambda: self._answer(DEMO))
        self.connect_button.clicked.connect(lambda: self._answer(CONNECT))
        self.setMinimumWidth(520)
        self.setWindowModality(Qt.WindowModality.NonModal)

    def _answer(self, choice: str) -> None:
        if self._answered:
            return
        self._answered = True
        self.chosen.emit(choice)
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        if not self._answered:
            self._answered = True
            self.chosen.emit("")
        super().closeEvent(event)
