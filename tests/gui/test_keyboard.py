"""The console by keyboard alone: Tab leaves every table, each page has a sensible Tab order,
the fix buttons are reached by Tab, the fix dialog's Confirm is reached by Tab once the preview
is in and Enter confirms (in the reason field too), and every command shows its shortcut.

Every step of the walks is a key event sent to the widget that has the keyboard focus
(``QApplication.focusWidget()``), as a keyboard would; the flows run on a qasync loop, as in
the console, and every wait is on a condition with a generous deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication, QPushButton, QWidget
from pytestqt.qtbot import QtBot

from services.actions.model import ActionStatus
from services.core.domain import System
from services.core.overview import RowFilter
from services.core.timeline import TimelineIndex
from tests.gui.fake_actions import NOW, FakeActionService, amount_mismatch, missing_in_erp, outbox_item, unmapped
from tests.gui.live_loop import run_qasync
from tests.worlds import World
from views.action_adapter import ActionAdapter
from views.actions.fix_dialog import FixDialog
from views.actions.pending import PendingActionsPage
from views.adapters import ConsoleState
from views.audit_page import AuditPage
from views.main_window import MainWindow

pytestmark = pytest.mark.gui

#: a generous bound on one wait (a fake preview takes milliseconds; the bound turns a hang into a
#: failure that says what it waited for)
DEADLINE = 20.0


async def until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"waited {DEADLINE:.0f} s for {what}")
        await asyncio.sleep(0.01)


def focused() -> QWidget:
    widget = QApplication.focusWidget()
    assert widget is not None, "nothing has the keyboard focus"
    return widget


def press(qtbot: QtBot, key: Qt.Key,
          modifier: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> QWidget | None:
    """One key press on whatever has the focus; returns what has it afterwards."""
    qtbot.keyClick(focused(), key, modifier)
    return QApplication.focusWidget()


def type_text(qtbot: QtBot, text: str) -> None:
    qtbot.keyClicks(focused(), text)


def console_state(service: FakeActionService, names: dict[str, str] | None = None) -> ConsoleState:
    """What the window shows for the service's exceptions: their customers (named "Customer
    cus_1" unless ``names`` says otherwise), with timelines, all three systems read."""
    world = World()
    for exc in service.exceptions.values():
        if exc.customer_id and exc.customer_id not in world.b.customers:
            world.customer(exc.customer_id, (names or {}).get(exc.customer_id, f"Customer {exc.customer_id}"))
    rows = world.rows()
    return ConsoleState(rows, list(service.exceptions.values()), NOW, TimelineIndex(world.snapshot()),
                        {s: NOW for s in System}, row_filter=RowFilter(rows), refreshed={s: "" for s in System})


def make_window(qtbot: QtBot, service: FakeActionService) -> tuple[MainWindow, ActionAdapter]:
    window = MainWindow()
    qtbot.addWidget(window)
    adapter = ActionAdapter(service)  # type: ignore[arg-type]
    window.attach_actions(adapter)
    window.set_state(console_state(service))
    window.resize(1280, 800)
    window.show()
    return window, adapter


# -- Tab never gets stuck in a table ------------------------------------------------------------
async def test_tab_leaves_every_table(qtbot: QtBot) -> None:
    service = FakeActionService([amount_mismatch(), missing_in_erp(10)])
    service.outbox = [outbox_item(1, ActionStatus.QUEUED)]
    window, adapter = make_window(qtbot, service)
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    assert isinstance(window.pending_page, PendingActionsPage) and isinstance(window.audit_page, AuditPage)
    window.pending_page.set_items(service.outbox)
    window.audit_page.set_entries([])
    tables = {window.PAGES.index(title): table for title, table in (
        ("Customers", window.customers_page.table), ("Exceptions", window.exceptions_page.table),
        ("Pending actions", window.pending_page.table))}
    for row, table in tables.items():
        window.go_to_page(row)  # Ctrl+2…4 put the keyboard in the page's table
        assert focused() is table
        after = press(qtbot, Qt.Key.Key_Tab)
        assert after is not table, f"Tab stayed in {table.objectName() or row}"
        before = press(qtbot, Qt.Key.Key_Backtab)
        assert before is table
    await adapter.aclose()


async def test_exceptions_page_tab_order_reaches_the_fix_buttons(qtbot: QtBot) -> None:
    service = FakeActionService([missing_in_erp(10)])
    window, adapter = make_window(qtbot, service)
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    page = window.exceptions_page
    qtbot.keyClick(window, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)
    assert window.stack.currentWidget() is page and focused() is page.table
    # reached by the keyboard with nothing selected, the queue selects its first row
    assert page.selected_id() == "invoice.missing_in_erp:in_10"
    # from the queue: the customer link, then the fix buttons
    assert press(qtbot, Qt.Key.Key_Tab) is page.detail.customer_button
    retry = press(qtbot, Qt.Key.Key_Tab)
    assert retry is page.detail.fix_buttons[0] and retry.property("action") == "retry"
    # and backwards from the first filter: the navigation list
    page.rule_combo.setFocus()
    assert press(qtbot, Qt.Key.Key_Backtab) is window.nav
    # the filters come in their visual order
    seen = [press(qtbot, Qt.Key.Key_Tab) for _ in range(6)]
    assert seen == [page.rule_combo, page.owner_combo, page.severity_combo, page.system_combo, page.age_combo,
                    page.search_edit]
    await adapter.aclose()


async def test_every_command_is_in_a_menu_with_its_shortcut(qtbot: QtBot) -> None:
    service = FakeActionService([amount_mismatch()])
    window, adapter = make_window(qtbot, service)
    assert list(window.menus) == ["File", "Edit", "View", "Go", "Actions", "Help"]
    in_menus = {a.text().split("\t")[0].replace("&", ""): a for m in window.menus.values() for a in m.actions()}
    shortcuts = {name: a.shortcut().toString() for name, a in in_menus.items() if not a.shortcut().isEmpty()}
    assert shortcuts["Refresh"] == "F5" and shortcuts["Full refresh"] == "Shift+F5"
    assert shortcuts["Cancel the refresh"] == "Esc"
    assert shortcuts["Next exception"] == "F8" and shortcuts["Previous exception"] == "Shift+F8"
    for i, title in enumerate(window.PAGES, start=1):
        assert shortcuts[f"{i} {title}"] == f"Ctrl+{i}"
    # the back shortcut belongs to the customer page; its menu entry shows it all the same
    assert "Back to the customer list" in in_menus and in_menus["Back to the customer list"].text().endswith("Alt+Left")
    # tooltips say the shortcut too, and so do the navigation entries
    assert window.refresh_action.toolTip().endswith("(F5)")
    assert window.next_action.toolTip().endswith("(F8)")
    assert window.nav.item(3).toolTip() == "Pending actions (Ctrl+4)"
    assert {a.text() for a in window.bulk_menu.actions()} >= {"Retry every shown exception…"}
    every_toolbar_action = [a for a in window.toolbar.actions() if a.text() and not a.isSeparator()
                            and window.toolbar.widgetForAction(a) is not None and a.shortcut() != QKeySequence()]
    assert all(a in in_menus.values() for a in every_toolbar_action)
    await adapter.aclose()


# -- the finance analyst's job, by keyboard alone ------------------------------------------------
def test_finance_analyst_fixes_a_missing_invoice_by_keyboard_alone(qtbot: QtBot,
                                                                   qloop: asyncio.AbstractEventLoop) -> None:
    service = FakeActionService([amount_mismatch(), unmapped(), *[missing_in_erp(n) for n in range(10, 14)]])

    async def walk() -> None:
        window, adapter = make_window(qtbot, service)
        try:
            window.activateWindow()
            await until(window.isActiveWindow, "the window to be active")
            window.nav.setFocus()
            page = window.exceptions_page
            # Ctrl+3: the queue, the keyboard in its table
            assert press(qtbot, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier) is page.table
            # back to the search field (Shift+Tab thrice: the rule counts, the saved filters, the search),
            # type the invoice
            assert press(qtbot, Qt.Key.Key_Backtab) is page.rule_list
            assert press(qtbot, Qt.Key.Key_Backtab) is page.saved_button
            assert press(qtbot, Qt.Key.Key_Backtab) is page.search_edit
            type_text(qtbot, "in_12")
            assert page.model.visible_ids() == ["invoice.missing_in_erp:in_12"]
            # on to the queue (the clear button, the rule counts, the table), select it
            while focused() is not page.table:
                press(qtbot, Qt.Key.Key_Tab)
            assert page.selected_id() == "invoice.missing_in_erp:in_12"
            # Tab to its fix button (after the customer link), Enter opens the fix dialog
            press(qtbot, Qt.Key.Key_Tab)
            button = press(qtbot, Qt.Key.Key_Tab)
            assert isinstance(button, QPushButton) and button.text() == "Retry…"
            press(qtbot, Qt.Key.Key_Return)
            assert window.launcher is not None
            dialog = window.launcher.dialogs.get("invoice.missing_in_erp:in_12")
            assert isinstance(dialog, FixDialog)
            await until(lambda: dialog.isActiveWindow() and focused() is dialog.reason_edit,
                        "the dialog, its reason field focused")
            await until(lambda: dialog.state == "ready" and dialog.confirm_button.isEnabled(), "the preview")
            # Tab reaches Confirm from the preview (the calls table and the body let Tab through)
            dialog.calls.setFocus()
            stops = []
            for _ in range(6):
                stops.append(press(qtbot, Qt.Key.Key_Tab))
                if stops[-1] is dialog.confirm_button:
                    break
            assert stops == [dialog.body, dialog.reason_edit, dialog.cancel_button, dialog.confirm_button]
            # back to the reason: type it, Enter confirms
            press(qtbot, Qt.Key.Key_Backtab)
            assert press(qtbot, Qt.Key.Key_Backtab) is dialog.reason_edit
            type_text(qtbot, "month-end close")
            await until(lambda: dialog.confirm_button.isEnabled(), "Confirm to be enabled")
            press(qtbot, Qt.Key.Key_Return)
            await until(lambda: dialog.state == "done", "the result")
            assert [p.request.reason for p in service.executed] == ["month-end close"]
            assert [p.request.exception_id for p in service.executed] == ["invoice.missing_in_erp:in_12"]
            assert "Done and verified" in dialog.result_banner.text()
            # Esc closes the dialog
            press(qtbot, Qt.Key.Key_Escape)
            await until(lambda: not dialog.isVisible(), "the dialog to close")
        finally:
            await adapter.aclose()
            window.close()

    run_qasync(qloop, walk())


def test_enter_on_a_focused_cancel_cancels_and_never_confirms(qtbot: QtBot, qloop: asyncio.AbstractEventLoop) -> None:
    service = FakeActionService([missing_in_erp(10)])

    async def walk() -> None:
        window, adapter = make_window(qtbot, service)
        try:
            assert window.launcher is not None
            dialog = window.launcher.open_fix(service.exceptions["invoice.missing_in_erp:in_10"], "retry")
            assert isinstance(dialog, FixDialog)
            await until(lambda: dialog.isActiveWindow() and dialog.confirm_button.isEnabled(), "the preview")
            dialog.cancel_button.setFocus()
            press(qtbot, Qt.Key.Key_Return)
            await until(lambda: not dialog.isVisible(), "the dialog to close")
            assert service.executed == []
        finally:
            await adapter.aclose()
            window.close()

    run_qasync(qloop, walk())
