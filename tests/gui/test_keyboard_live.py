"""The finance analyst's job by keyboard alone, against the real services: the console composed
as ``app.console.compose`` composes it over the demo servers on loopback (the harness of
``tests/gui/test_jobs_live.py``), every step a key event sent to the widget that has the
keyboard focus. Nothing is faked: the preview is the real service's, the write reaches the demo
ERP, the audit log holds intent and outcome."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QPushButton, QWidget
from pytestqt.qtbot import QtBot

from services.actions.model import ActionStatus
from tests.gui.live_loop import grab_png, run_qasync
from tests.gui.test_jobs_live import Live, console, entries_of, erp_copies, until
from views.actions.fix_dialog import FixDialog

pytestmark = pytest.mark.gui

REASON = "month-end close, by keyboard"


def focused() -> QWidget:
    widget = QApplication.focusWidget()
    assert widget is not None, "nothing has the keyboard focus"
    return widget


def press(qtbot: QtBot, key: Qt.Key,
          modifier: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> QWidget | None:
    """One key press on whatever has the focus; returns what has it afterwards."""
    qtbot.keyClick(focused(), key, modifier)
    return QApplication.focusWidget()


def test_finance_analyst_retries_a_missing_invoice_by_keyboard_alone(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(live: Live) -> None:
        window, env = live.window, live.env
        exc = live.exceptions("invoice.missing_in_erp")[0]
        assert erp_copies(env, exc.object_id) == []
        window.activateWindow()
        await until(window.isActiveWindow, "the window to be active")
        window.nav.setFocus()
        page = window.exceptions_page
        # Ctrl+3: the queue; Shift+Tab thrice (the rule counts, the saved filters): the search field;
        # type the invoice's id
        assert press(qtbot, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier) is page.table
        assert press(qtbot, Qt.Key.Key_Backtab) is page.rule_list
        assert press(qtbot, Qt.Key.Key_Backtab) is page.saved_button
        assert press(qtbot, Qt.Key.Key_Backtab) is page.search_edit
        qtbot.keyClicks(focused(), exc.object_id)
        assert exc.id in page.model.visible_ids()
        # Tab on to the queue (its first row is selected on arrival), down to the exception
        while focused() is not page.table:
            press(qtbot, Qt.Key.Key_Tab)
        while page.selected_id() != exc.id:
            press(qtbot, Qt.Key.Key_Down)
        # Tab: the customer link, then the fix button; Enter opens the preview
        assert press(qtbot, Qt.Key.Key_Tab) is page.detail.customer_button
        button = press(qtbot, Qt.Key.Key_Tab)
        assert isinstance(button, QPushButton) and button.property("action") == "retry"
        press(qtbot, Qt.Key.Key_Return)
        assert window.launcher is not None
        dialog = window.launcher.dialogs.get(exc.id)
        assert isinstance(dialog, FixDialog)
        await until(lambda: dialog.isActiveWindow() and QApplication.focusWidget() is dialog.reason_edit,
                    "the fix dialog with its reason field focused")
        await until(lambda: dialog.state == "ready" and dialog.confirm_button.isEnabled(), "the real preview")
        assert dialog.plan is not None and dialog.plan.ok
        qtbot.keyClicks(focused(), REASON)
        press(qtbot, Qt.Key.Key_Return)  # Enter in the reason field confirms
        await until(lambda: dialog.state == "done", "the verified result")
        result = dialog.outcome
        assert result is not None and result.status is ActionStatus.SUCCEEDED and result.verified
        grab_png(dialog, tmp_path, "keyboard-finance-done")
        # the ERP holds the invoice once; the audit log has the intent and the outcome, with the reason
        copies = erp_copies(env, exc.object_id)
        assert len(copies) == 1 and copies[0]["state"] == "posted"
        mine = entries_of(await live.audit(), result.action_id)
        assert [(e.phase, e.outcome, e.reason) for e in mine] == [("intent", "pending", REASON),
                                                                   ("outcome", "succeeded", REASON)]
        # Esc closes the dialog; the exception has left the queue
        press(qtbot, Qt.Key.Key_Escape)
        await until(lambda: not dialog.isVisible(), "the dialog to close")
        await until(lambda: page.model.row_of(exc.id) is None, "the exception to leave the queue")

    run_qasync(qloop, console(qtbot, tmp_path, caplog, scenario))
