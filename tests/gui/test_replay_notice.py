"""The notice of queued fixes that replayed by themselves: it stays in the status bar, lists which
fixes replayed and how each went, and a pick in the list opens the fix where it is now — its
exception in the queue when it is still open, else its entries in the audit log; "Open Pending
actions" and "Dismiss" end the list. Reached by the keyboard through Go > Replayed fixes."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMenu
from pytestqt.qtbot import QtBot

from services.actions.model import ActionKind, ActionResult, ActionStatus
from tests.gui.fake_actions import FakeActionService, missing_in_erp, sample_entries, tier_mismatch
from tests.gui.test_keyboard import console_state
from views.action_adapter import ActionAdapter
from views.audit_page import AuditPage
from views.main_window import MainWindow

pytestmark = pytest.mark.gui

STILL_OPEN = missing_in_erp(11)
CLOSED_ID = "invoice.amount_mismatch:in_1"  # the id of sample_entries()' action: no longer in the queue


def results() -> list[ActionResult]:
    return [ActionResult("act_9", ActionKind.RETRY, STILL_OPEN.id, ActionStatus.FAILED, "the ERP said no"),
            ActionResult("act_1", ActionKind.CORRECT, CLOSED_ID, ActionStatus.SUCCEEDED, "done", verified=True)]


async def test_the_notice_lists_the_replayed_fixes_and_opens_each(qtbot: QtBot) -> None:
    fake = FakeActionService([missing_in_erp(10), STILL_OPEN, tier_mismatch(30)])
    window = MainWindow()
    qtbot.addWidget(window)
    adapter = ActionAdapter(fake)  # type: ignore[arg-type]
    try:
        window.attach_actions(adapter)
        window.set_state(console_state(fake))
        window.resize(1280, 800)
        window.show()
        window.activateWindow()
        qtbot.waitUntil(window.isActiveWindow)
        notice = window.replay_notice
        assert not notice.isVisible() and not window.replayed_action.isEnabled()

        window.notify_replayed(results())
        assert notice.isVisible() and notice.text() == "2 queued fixes replayed"
        assert window.statusBar().currentMessage().startswith("2 queued fixes replayed: 1 failed, 1 succeeded")
        assert notice.lines() == [f"Retry · {STILL_OPEN.id} — failed",
                                  f"Correct · {CLOSED_ID} — succeeded, verified"]
        assert "Retry · " + STILL_OPEN.id in notice.toolTip()
        # the notice stays after the status bar's message is gone
        window.statusBar().clearMessage()
        assert notice.isVisible()

        # Go > Replayed fixes (keyboard): the list pops up with the keyboard in it
        assert window.replayed_action.isEnabled()
        window.replayed_action.trigger()
        qtbot.waitUntil(lambda: QApplication.activePopupWidget() is notice.list_menu)
        menu: QMenu = notice.list_menu
        assert [a.text() for a in menu.actions() if a.text()] == [*notice.lines(), "Open Pending actions", "Dismiss"]
        # the first fix is still open (its replay failed): Enter on it opens it in the queue
        qtbot.keyClick(menu, Qt.Key.Key_Down)
        assert menu.activeAction() is menu.actions()[0]
        qtbot.keyClick(menu, Qt.Key.Key_Return)
        assert window.stack.currentWidget() is window.exceptions_page
        assert window.exceptions_page.selected_id() == STILL_OPEN.id

        # even when the queue's filters hide it
        window.exceptions_page.search_edit.setText("in_10")
        assert window.exceptions_page.model.row_of(STILL_OPEN.id) is None
        window.show_replayed_fix(STILL_OPEN.id, "act_9")
        assert window.exceptions_page.selected_id() == STILL_OPEN.id

        # the second closed: its trace in the audit log, its newest entry selected once loaded
        window.show_replayed_fix(CLOSED_ID, "act_1")
        audit = window.audit_page
        assert isinstance(audit, AuditPage) and window.stack.currentWidget() is audit
        assert audit.current_filter().text == CLOSED_ID
        assert audit.current_filter().operator is None and audit.current_filter().outcome is None
        audit.set_entries(sample_entries())  # what the adapter reads for that filter
        selected = audit.selected_entry()
        assert selected is not None and selected.action_id == "act_1"
        assert selected.seq == max(e.seq for e in sample_entries() if e.action_id == "act_1")

        # more replays add to the list; Open Pending actions; Dismiss hides it
        window.notify_replayed([ActionResult("act_10", ActionKind.PUSH, "entitlement.tier_mismatch:cus_30",
                                             ActionStatus.SUCCEEDED, "ok", verified=True)])
        assert notice.text() == "3 queued fixes replayed"
        assert notice.lines()[0] == "Push owner value · entitlement.tier_mismatch:cus_30 — succeeded, verified"
        notice.open_list()
        next(a for a in notice.list_menu.actions() if a.text() == "Open Pending actions").trigger()
        assert window.stack.currentWidget() is window.pending_page
        next(a for a in notice.list_menu.actions() if a.text() == "Dismiss").trigger()
        assert not notice.isVisible() and notice.lines() == []
    finally:
        await adapter.aclose()
