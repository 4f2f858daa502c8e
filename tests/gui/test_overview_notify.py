"""A click on the desktop notification (the tray message a refresh raises) brings the Overview:
through the slot the tray's ``messageClicked`` is connected to, whichever page was showing."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QSystemTrayIcon
from pytestqt.qtbot import QtBot

from views.main_window import MainWindow

pytestmark = pytest.mark.gui


@pytest.fixture
def window(qtbot: QtBot) -> MainWindow:
    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1024, 640)
    w.show()
    qtbot.waitExposed(w)
    return w


def test_the_notifications_click_slot_shows_the_overview(window: MainWindow) -> None:
    window.go_to_page(window.PAGES.index("Exceptions"))
    assert window.stack.currentWidget() is not window.overview_page
    window.notifier.message_clicked()
    assert window.stack.currentWidget() is window.overview_page
    assert window.nav.currentRow() == window.PAGES.index("Overview")


def test_a_click_on_the_tray_message_reaches_that_slot_and_shows_the_overview(window: MainWindow) -> None:
    """The tray is the real QSystemTrayIcon (offscreen has no tray area, so it is attached by
    hand, as the notifier does itself where the desktop has one); its own signal is emitted."""
    tray = QSystemTrayIcon(QIcon(), window.notifier)
    window.notifier.use_tray(tray)
    assert window.notifier.tray is tray
    for page in ("Customers", "Audit log"):
        window.go_to_page(window.PAGES.index(page))
        assert window.stack.currentWidget() is not window.overview_page
        tray.messageClicked.emit()
        assert window.stack.currentWidget() is window.overview_page, page
