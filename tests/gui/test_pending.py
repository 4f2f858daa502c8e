"""GUI tests for the Pending actions page and the action views' table models (qtmodeltester)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from services.actions.model import ActionStatus
from tests.gui.fake_actions import HOSTILE, FakeActionService, outbox_item, sample_entries, shot, until
from views.action_adapter import ActionAdapter
from views.actions.pending import PendingActionsPage, PendingModel
from views.audit_page import AuditModel

pytestmark = pytest.mark.gui


# -- pending actions -------------------------------------------------------------------------------
async def test_pending_page_filters_retry_and_cancel(qtbot: QtBot, service: FakeActionService,
                                                     adapter: ActionAdapter, tmp_path: Path) -> None:
    service.outbox = [outbox_item(1, ActionStatus.QUEUED), outbox_item(2, ActionStatus.EXECUTING),
                      outbox_item(3, ActionStatus.FAILED, f"ERP said {HOSTILE}"),
                      outbox_item(4, ActionStatus.FAILED, "timeout"), outbox_item(5, ActionStatus.QUEUED)]
    page = PendingActionsPage()
    qtbot.addWidget(page)
    page.bind(adapter)
    page.resize(1300, 360)
    page.show()  # show() asks for a refresh (read in a worker thread)
    await asyncio.wait_for(until(lambda: page.model.rowCount() == 5), 5)
    assert "2 queued · 1 executing · 2 failed" in page.count_label.text()
    shot(page, tmp_path, "pending-actions")
    page.set_status_filter("failed")
    assert page.proxy.rowCount() == 2
    assert "2 of 5 shown" in page.count_label.text()
    page.table.selectAll()
    assert page.retry_button.isEnabled() and page.cancel_button.isEnabled()
    page.retry_button.click()
    await asyncio.wait_for(until(lambda: page.model.rowCount() == 3), 5)  # refreshed after the retries
    assert sorted(service.retried) == ["act_3", "act_4"]
    page.set_status_filter("queued")
    page.table.selectRow(0)
    assert not page.retry_button.isEnabled()  # queued: cancel only
    assert page.cancel_button.isEnabled()
    page.cancel_button.click()
    await asyncio.wait_for(until(lambda: page.model.rowCount() == 2), 5)
    assert len(service.cancelled) == 1
    assert page.proxy.rowCount() == 1
    page.set_status_filter("executing")
    page.table.selectRow(0)
    assert not page.retry_button.isEnabled() and not page.cancel_button.isEnabled()
    page.set_status_filter(None)
    # a hostile error text is data, shown as typed
    page.set_items([outbox_item(3, ActionStatus.FAILED, f"ERP said {HOSTILE}")])
    assert page.model.index(0, 7).data() == f"ERP said {HOSTILE}"
    page.hide()
    assert not page.timer.isActive()


def test_pending_empty_state(qtbot: QtBot) -> None:
    page = PendingActionsPage()
    qtbot.addWidget(page)
    assert page.stack.currentWidget() is page.empty
    page.set_items([outbox_item(1, ActionStatus.QUEUED)])
    assert page.stack.currentWidget() is page.table
    page.set_status_filter("failed")
    assert page.stack.currentWidget() is page.empty
    assert page.empty.title() == "No action with this status"


def test_models_pass_modeltester(qtmodeltester: Any) -> None:
    pending = PendingModel()
    pending.set_items([outbox_item(n, s, "e" if s is ActionStatus.FAILED else None)
                       for n, s in enumerate([ActionStatus.QUEUED, ActionStatus.EXECUTING, ActionStatus.FAILED])])
    qtmodeltester.check(pending)
    audit = AuditModel()
    audit.set_entries(sample_entries())
    qtmodeltester.check(audit)
    audit.set_entries([])
    qtmodeltester.check(audit)
