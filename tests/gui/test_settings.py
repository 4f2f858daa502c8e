"""What every desktop tool has: the window remembered between sessions (QSettings round trip),
Settings (refresh interval, appearance, data folder), About (version, licences, data folder),
Help (the user guide with every shortcut), a right-click menu on every table, a toolbar that can
be brought back, and file dialogs that open in the documents folder."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from PySide6.QtCore import QRect, QStandardPaths, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QLineEdit, QTableView
from pytestqt.qtbot import QtBot

from services.actions.model import ActionStatus
from tests.gui.fake_actions import FakeActionService, amount_mismatch, missing_in_erp, outbox_item, tier_mismatch
from tests.gui.test_keyboard import console_state
from views import memory
from views.action_adapter import ActionAdapter
from views.actions.pending import PendingActionsPage
from views.appearance import is_dark
from views.audit_page import AuditPage
from views.exceptions.model import Column
from views.main_window import MainWindow
from views.settings import Appearance, ConsoleSettings

pytestmark = pytest.mark.gui


def service() -> FakeActionService:
    fake = FakeActionService([amount_mismatch(), tier_mismatch(30), *[missing_in_erp(n) for n in range(10, 14)]])
    fake.outbox = [outbox_item(1, ActionStatus.QUEUED), outbox_item(2, ActionStatus.FAILED, "timeout")]
    return fake


def open_window(qtbot: QtBot, settings: ConsoleSettings | None, fake: FakeActionService,
                data_folder: Path | None = None) -> tuple[MainWindow, ActionAdapter]:
    window = MainWindow(settings, data_folder)
    qtbot.addWidget(window)
    adapter = ActionAdapter(fake)  # type: ignore[arg-type]
    window.attach_actions(adapter)
    window.set_state(console_state(fake))
    window.show()
    return window, adapter


async def test_the_window_is_remembered_between_sessions(qtbot: QtBot, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # the offscreen test screen is 800×600: restored as on a 1920×1080 one (a window saved on a
    # larger screen is shrunk to the one it opens on: tests/gui/test_screens.py)
    monkeypatch.setattr(memory, "available", lambda _widget: QRect(0, 0, 1920, 1080))
    ini = tmp_path / "console.ini"
    fake = service()
    first, adapter = open_window(qtbot, ConsoleSettings(ini), fake)
    first.resize(1111, 701)
    page = first.exceptions_page
    first.go_to_page(first.PAGES.index("Exceptions"))
    page.splitter.setSizes([300, 800])
    page.table.setColumnWidth(Column.RULE, 233)
    page.table.setColumnHidden(Column.FIRST_SEEN, False)  # shown through the column chooser
    page.table.sortByColumn(Column.RULE, Qt.SortOrder.AscendingOrder)
    page.owner_combo.setCurrentIndex(page.owner_combo.findData("finance"))
    page.search_edit.setText("in_1")
    first.customers_page.only_exceptions.setChecked(True)
    assert isinstance(first.audit_page, AuditPage) and isinstance(first.pending_page, PendingActionsPage)
    first.audit_page.operator_edit.setText("alice")
    first.audit_page.emit_filter()  # now, not after the typing pause (the loop is running now)
    first.pending_page.set_status_filter("failed")
    first.toolbar.hide()
    splitter_sizes = page.splitter.sizes()
    first.close()
    await adapter.aclose()
    assert ini.exists()

    second, adapter2 = open_window(qtbot, ConsoleSettings(ini), fake)
    assert isinstance(second.audit_page, AuditPage)
    second.audit_page.emit_filter()  # the restored filter asks for its entries now (the loop is running now)
    try:
        again = second.exceptions_page
        # the geometry as saved (the test screen is 800×600: Qt keeps at least the layout's minimum width)
        assert second.height() == 701  # (the width: at least the layout's minimum on the 800-wide test screen)
        assert second.nav.currentRow() == second.PAGES.index("Exceptions")
        assert again.splitter.sizes()[0] == splitter_sizes[0] == 300  # the rule counts (the rest follows)
        assert again.table.columnWidth(Column.RULE) == 233
        assert not again.table.isColumnHidden(Column.FIRST_SEEN)
        assert again.model.sort_column() == (Column.RULE, Qt.SortOrder.AscendingOrder)
        assert again.owner_combo.currentData() == "finance"
        assert again.search_edit.text() == "in_1"
        assert second.customers_page.only_exceptions.isChecked()
        assert isinstance(second.audit_page, AuditPage) and isinstance(second.pending_page, PendingActionsPage)
        assert second.audit_page.operator_edit.text() == "alice"
        assert second.pending_page.status_combo.currentData() == "failed"
        assert not second.toolbar.isVisibleTo(second)
        # View > Toolbar brings it back
        second.toolbar_action.trigger()
        assert second.toolbar.isVisibleTo(second)
    finally:
        await adapter2.aclose()


async def test_without_settings_nothing_is_written(qtbot: QtBot, tmp_path: Path) -> None:
    window, adapter = open_window(qtbot, None, service())
    window.close()
    await adapter.aclose()
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240 (a temporary folder, read once)


async def test_settings_dialog_sets_the_refresh_interval_and_the_appearance(qtbot: QtBot, tmp_path: Path) -> None:
    settings = ConsoleSettings(tmp_path / "console.ini")
    window, adapter = open_window(qtbot, settings, service(), data_folder=tmp_path)
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    try:
        assert window._auto_refresh.interval() == 15 * 60_000 and window._auto_refresh.isActive()  # the default
        dialog = window.show_settings()
        assert dialog.findChild(QLineEdit, "dataFolder").text() == str(tmp_path)
        dialog.refresh_combo.setCurrentIndex(dialog.refresh_combo.findData(5))
        dialog.appearance_buttons[Appearance.DARK].setChecked(True)
        dialog._ok()
        assert settings.refresh_minutes == 5 and settings.appearance is Appearance.DARK
        assert ConsoleSettings(tmp_path / "console.ini").appearance is Appearance.DARK  # written to the file
        assert window._auto_refresh.interval() == 5 * 60_000
        assert is_dark(app.palette())
        assert window.appearance_actions[Appearance.DARK].isChecked()
        # the drawn arrow follows the palette: light on dark
        image = window.next_action.icon().pixmap(16, 16).toImage()
        assert image.pixelColor(8, 8).lightness() > 150
        # only when asked: no timer
        dialog = window.show_settings()
        dialog.refresh_combo.setCurrentIndex(dialog.refresh_combo.findData(0))
        dialog._ok()
        assert not window._auto_refresh.isActive()
    finally:
        window.set_appearance(Appearance.SYSTEM)
        await adapter.aclose()
    assert not is_dark(app.palette())


async def test_about_and_help(qtbot: QtBot, tmp_path: Path) -> None:
    window, adapter = open_window(qtbot, None, service(), data_folder=tmp_path)
    try:
        about = window.show_about()
        assert about.version == importlib.metadata.version("syncdesk")
        packages = {about.table.item(r, 0).text(): about.table.item(r, 2).text() for r in range(about.table.rowCount())}
        assert "syncdesk" in packages and "PySide6" in packages and packages["PySide6"]
        assert about.findChild(QLineEdit, "dataFolder").text() == str(tmp_path)
        guide = window.show_help().text.toPlainText()
        assert "Everything agrees" in guide or "everything agrees" in guide
        for line in ("F5", "Shift+F5", "F8", "Shift+F8", "Ctrl+1", "Ctrl+5", "Alt+Left", "Esc"):
            assert line in guide, line
        # F1 opens it too
        assert window.help_action.shortcut().toString() in ("F1",)
    finally:
        await adapter.aclose()


async def test_every_table_has_a_right_click_menu(qtbot: QtBot) -> None:
    fake = service()
    window, adapter = open_window(qtbot, None, fake)
    try:
        tables = [t for t in window.findChildren(QTableView)]
        assert len(tables) >= 6
        assert all(t.property("tableMenu") for t in tables), [t.objectName() for t in tables
                                                              if not t.property("tableMenu")]
        page = window.exceptions_page
        window.go_to_page(window.PAGES.index("Exceptions"))
        row = page.model.row_of("invoice.missing_in_erp:in_12")
        assert row is not None
        menu = page.table.table_menu.build(page.model.index(row, Column.RULE))  # type: ignore[attr-defined]
        actions = {a.text(): a for a in menu.actions() if a.text()}
        assert set(actions) == {"Copy cell", "Copy row", "Copy exception id", "Open the customer",
                                "Filter by “invoice.missing_in_erp”", "Export this view as CSV…",
                                "Export this view as Excel workbook…"}
        actions["Copy exception id"].trigger()
        assert QGuiApplication.clipboard().text() == "invoice.missing_in_erp:in_12"
        actions["Copy row"].trigger()
        assert "invoice.missing_in_erp" in QGuiApplication.clipboard().text().split("\t")
        actions["Filter by “invoice.missing_in_erp”"].trigger()
        assert page.rule_combo.currentData() == "invoice.missing_in_erp"
        actions["Open the customer"].trigger()
        assert window.customers_stack.currentWidget() is window.customer_page
        assert window.customer_page.customer_id() == "cus_12"
        # the header's menu chooses the columns
        from views.widgets.table_menu import column_menu

        columns = {a.text(): a for a in column_menu(page.table).actions()}
        assert not columns["First seen (UTC)"].isChecked()
        columns["First seen (UTC)"].trigger()
        assert not page.table.isColumnHidden(Column.FIRST_SEEN)
    finally:
        await adapter.aclose()


def test_the_export_dialog_opens_in_the_documents_folder(qtbot: QtBot, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the working folder is never where the dialog opens
    page = AuditPage()
    qtbot.addWidget(page)
    dialog = page.choose_export_file()
    try:
        documents = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
        expected = documents if documents and Path(documents).is_dir() else str(Path.home())
        assert Path(dialog.directory().absolutePath()) == Path(expected)
        assert Path(dialog.directory().absolutePath()) != tmp_path
    finally:
        dialog.close()
