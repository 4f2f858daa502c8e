"""Saved filters on the Exceptions page and the Customers search: the current filter set saved under
a name, picked again from the "Saved filters" menu, deleted — all by key events sent where a
keyboard's would go (the focused widget, or the open pop-up menu) — and kept in the console's
settings (``console.ini``: a ``QSettings`` round trip through a temporary file, read back by a new
window)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QInputDialog, QMenu, QWidget
from pytestqt.qtbot import QtBot

from services.core.overview import CustomerRow
from tests.gui.fake_actions import FakeActionService, amount_mismatch, missing_in_erp, tier_mismatch
from tests.gui.test_keyboard import console_state
from views.main_window import MainWindow
from views.settings import ConsoleSettings
from views.widgets.saved_filters import NAME_LIMIT, SavedFiltersButton

pytestmark = pytest.mark.gui


def keyboard() -> QWidget:
    """Where a key press goes: the open pop-up menu, else the focused widget."""
    target = QApplication.activePopupWidget() or QApplication.focusWidget()
    assert target is not None, "nothing has the keyboard"
    return target


def press(qtbot: QtBot, key: Qt.Key) -> None:
    qtbot.keyClick(keyboard(), key)


def open_window(qtbot: QtBot, settings: ConsoleSettings) -> MainWindow:
    fake = FakeActionService([amount_mismatch(), tier_mismatch(30), *[missing_in_erp(n) for n in range(10, 14)]])
    window = MainWindow(settings)
    qtbot.addWidget(window)
    window.set_state(console_state(fake))
    window.resize(1280, 800)
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    return window


def open_menu(qtbot: QtBot, button: SavedFiltersButton) -> QMenu:
    """Tab has brought the keyboard to the button: Space opens its menu, which takes the keyboard."""
    assert QApplication.focusWidget() is button
    press(qtbot, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: QApplication.activePopupWidget() is button.filters_menu)
    return button.filters_menu


def pick(qtbot: QtBot, menu: QMenu, text: str) -> None:
    """Arrow down to the entry ``text`` of the open menu, Enter."""
    for _ in range(len(menu.actions()) + 1):
        if menu.activeAction() is not None and menu.activeAction().text() == text:
            break
        press(qtbot, Qt.Key.Key_Down)
    assert menu.activeAction() is not None and menu.activeAction().text() == text, \
        [a.text() for a in menu.actions()]
    press(qtbot, Qt.Key.Key_Return)


def save_by_keyboard(qtbot: QtBot, window: MainWindow, button: SavedFiltersButton, name: str) -> None:
    pick(qtbot, open_menu(qtbot, button), "Save the current filters…")
    qtbot.waitUntil(lambda: isinstance(button.name_dialog, QInputDialog) and button.name_dialog.isVisible())
    dialog = button.name_dialog
    assert dialog is not None and dialog.windowModality() == Qt.WindowModality.WindowModal
    qtbot.waitUntil(lambda: dialog.isAncestorOf(QApplication.focusWidget()))
    qtbot.keyClick(keyboard(), Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(keyboard(), name)
    press(qtbot, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: button.name_dialog is None or not button.name_dialog.isVisible())
    # the keyboard is back on the button
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window and QApplication.focusWidget() is button)


# -- the settings file ------------------------------------------------------------------------------
def test_saved_filters_round_trip_through_the_settings_file(tmp_path: Path) -> None:
    path = tmp_path / "console.ini"
    first = ConsoleSettings(path)
    first.save_filter("exceptions", "Finance / high ≥ 1 d", {"owner": "finance", "severity": "high", "age": "86400.0",
                                                            "text": ""})
    first.save_filter("exceptions", "Acme", {"text": "cus_1"})
    first.save_filter("customers", "Problems", {"text": "", "only_exceptions": "true"})
    first.sync()
    again = ConsoleSettings(path)
    assert again.saved_filters("exceptions") == {
        "Finance / high ≥ 1 d": {"owner": "finance", "severity": "high", "age": "86400.0", "text": ""},
        "Acme": {"text": "cus_1"}}
    assert again.saved_filters("customers") == {"Problems": {"text": "", "only_exceptions": "true"}}
    assert again.delete_filter("exceptions", "Acme") and not again.delete_filter("exceptions", "Acme")
    assert list(ConsoleSettings(path).saved_filters("exceptions")) == ["Finance / high ≥ 1 d"]
    # a value edited by hand into something else is ignored, not a crash
    again.qsettings.setValue("saved_filters/exceptions", "{not json")
    again.qsettings.setValue("saved_filters/customers", "[1, 2]")
    again.sync()
    assert ConsoleSettings(path).saved_filters("exceptions") == {}
    assert ConsoleSettings(path).saved_filters("customers") == {}


# -- the Exceptions page, by keyboard ----------------------------------------------------------------
def test_exception_filters_are_saved_picked_and_deleted_by_keyboard(qtbot: QtBot, tmp_path: Path) -> None:
    path = tmp_path / "console.ini"
    window = open_window(qtbot, ConsoleSettings(path))
    page = window.exceptions_page
    button = page.saved_button
    qtbot.keyClick(window, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.focusWidget() is page.table
    # an empty menu says so
    button.setFocus()
    menu = open_menu(qtbot, button)
    assert [a.text() for a in menu.actions() if a.text()][:2] == ["No saved filters yet", "Save the current filters…"]
    press(qtbot, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: QApplication.activePopupWidget() is None)

    # the analyst's filters: team finance, high or worse, older than an hour, "in_1"
    page.owner_combo.setCurrentIndex(page.owner_combo.findData("finance"))
    page.severity_combo.setCurrentIndex(page.severity_combo.findData("high"))
    page.age_combo.setCurrentIndex(page.age_combo.findData(3600.0))
    page.search_edit.setText("in_1")
    wanted = page.filter_values()
    shown = page.model.visible_ids()
    assert 0 < len(shown) < page.model.total_count()
    # Shift+Tab from the rule counts reaches the button (the Tab order follows the filter bar)
    page.rule_list.setFocus()
    press(qtbot, Qt.Key.Key_Backtab)
    save_by_keyboard(qtbot, window, button, "Finance, high, stale")
    assert ConsoleSettings(path).saved_filters("exceptions") == {"Finance, high, stale": wanted}

    # cleared, then picked again from the menu: the same filters, the same rows
    page.clear_filters()
    assert page.model.visible_count() == page.model.total_count()
    button.setFocus()
    menu = open_menu(qtbot, button)
    entry = next(a for a in menu.actions() if a.text() == "Finance, high, stale")
    assert not entry.isChecked(), "the current filters are not that set"
    pick(qtbot, menu, "Finance, high, stale")
    assert page.filter_values() == wanted and page.model.visible_ids() == shown
    menu = open_menu(qtbot, button)
    assert next(a for a in menu.actions() if a.text() == "Finance, high, stale").isChecked()
    press(qtbot, Qt.Key.Key_Escape)

    # a new window over the same settings file offers it too
    window.close()
    second = open_window(qtbot, ConsoleSettings(path))
    assert second.exceptions_page.saved_button.names() == ["Finance, high, stale"]
    second.exceptions_page.clear_filters()
    assert second.exceptions_page.saved_button.apply_saved("Finance, high, stale")
    assert second.exceptions_page.filter_values() == wanted

    # Delete ▸ the name (Right opens the submenu, Enter deletes)
    button = second.exceptions_page.saved_button
    button.setFocus()
    menu = open_menu(qtbot, button)
    pick_submenu = next(a for a in menu.actions() if a.text() == "Delete")
    while menu.activeAction() is not pick_submenu:
        press(qtbot, Qt.Key.Key_Down)
    press(qtbot, Qt.Key.Key_Right)
    submenu = pick_submenu.menu()
    assert isinstance(submenu, QMenu)
    qtbot.waitUntil(lambda: QApplication.activePopupWidget() is submenu)
    pick(qtbot, submenu, "Finance, high, stale")
    qtbot.waitUntil(lambda: QApplication.activePopupWidget() is None)
    assert button.names() == [] and ConsoleSettings(path).saved_filters("exceptions") == {}


def test_a_saved_filter_whose_rule_is_gone_falls_back_to_any(qtbot: QtBot, tmp_path: Path) -> None:
    settings = ConsoleSettings(tmp_path / "console.ini")
    settings.save_filter("exceptions", "Old rule", {"rule": "rule.that_no_longer_exists", "owner": "finance",
                                                    "text": "in_1"})
    window = open_window(qtbot, settings)
    page = window.exceptions_page
    assert page.saved_button.apply_saved("Old rule")
    assert page.rule_combo.currentIndex() == 0 and page.owner_combo.currentData() == "finance"
    assert page.search_edit.text() == "in_1"
    # names are one trimmed line, and blank ones are not saved
    assert page.saved_button.save_current("  two\nlines  ") == "two lines"
    assert page.saved_button.save_current("   ") is None
    assert len(page.saved_button.save_current("x" * 500) or "") == NAME_LIMIT


# -- the Customers search --------------------------------------------------------------------------
def test_customer_searches_are_saved_and_picked_again(qtbot: QtBot, tmp_path: Path) -> None:
    path = tmp_path / "console.ini"
    window = open_window(qtbot, ConsoleSettings(path))
    page = window.customers_page
    rows = [CustomerRow(f"cus_{i}", name, open_exceptions=i % 2) for i, name in
            enumerate(["Acme GmbH", "Acme Ltd", "Beta AG", "Acme Inc"])]
    for r in rows:
        r.search = f"{r.customer_id}\x00{r.name}".casefold()
    page.set_rows(rows)
    qtbot.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    page.search_edit.setFocus()
    qtbot.keyClicks(page.search_edit, "acme")
    press(qtbot, Qt.Key.Key_Tab)  # the check box: Space ticks it
    assert QApplication.focusWidget() is page.only_exceptions
    press(qtbot, Qt.Key.Key_Space)
    press(qtbot, Qt.Key.Key_Tab)  # the saved filters
    page.apply_filter()
    shown = [page.model.customer_id(r) for r in range(page.model.rowCount())]
    assert sorted(shown) == ["cus_1", "cus_3"]
    save_by_keyboard(qtbot, window, page.saved_button, "Acme with problems")
    assert ConsoleSettings(path).saved_filters("customers") == {
        "Acme with problems": {"text": "acme", "only_exceptions": "true"}}
    page.search_edit.clear()
    page.only_exceptions.setChecked(False)
    page.apply_filter()
    assert page.model.rowCount() == 4
    page.saved_button.setFocus()
    pick(qtbot, open_menu(qtbot, page.saved_button), "Acme with problems")
    assert page.search_edit.text() == "acme" and page.only_exceptions.isChecked()
    assert sorted(page.model.customer_id(r) for r in range(page.model.rowCount())) == ["cus_1", "cus_3"]
