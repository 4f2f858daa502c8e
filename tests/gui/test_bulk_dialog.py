"""GUI tests for bulk runs: progress, cancel and the summary, through the launcher too."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from services.actions.model import ActionKind, Operator, Role
from tests.gui.fake_actions import HOSTILE, NOW, FakeActionService, missing_in_erp, settle, shot, tier_mismatch
from views.action_adapter import ActionAdapter
from views.actions.bulk_dialog import BulkDialog
from views.actions.launcher import FixLauncher
from views.actions.permissions import bulk_eligible

pytestmark = pytest.mark.gui


# -- bulk -----------------------------------------------------------------------------------------------
async def test_bulk_progress_cancel_and_summary(qtbot: QtBot, service: FakeActionService,
                                                adapter: ActionAdapter, tmp_path: Path) -> None:
    selection = [missing_in_erp(n) for n in range(10, 16)] + [tier_mismatch(30)]
    eligible, skipped = bulk_eligible(adapter, selection, ActionKind.RETRY)
    assert len(eligible) == 6 and len(skipped) == 1
    dialog = BulkDialog(ActionKind.RETRY, eligible, skipped, operator=adapter.operator, today=NOW)
    qtbot.addWidget(dialog)
    dialog.bind(adapter)
    dialog.show()
    assert dialog.skipped_label.text() == "Left out: 1 of the 7 selected — 1 × retry is not a fix for its rule."
    assert dialog.start_button.isEnabled()  # the reason is optional for RETRY
    shot(dialog, tmp_path, "bulk-setup")
    service.bulk_gate = asyncio.Event()
    dialog.start_button.click()
    await settle()
    assert dialog.state == "running"
    for _ in range(3):
        service.bulk_gate.set()
        await settle()
    assert dialog.progress.value() == 3
    assert dialog.progress.maximum() == 6
    assert "3 of 6 done — 2 succeeded · 1 failed · 0 queued" in dialog.counts_label.text()
    assert dialog.current_label.text() == "now: invoice.missing_in_erp:in_13"
    shot(dialog, tmp_path, "bulk-running")
    dialog.cancel_button.click()  # cancels the task; the action under way is the fake's gate
    assert dialog.state == "cancelling" and not dialog.cancel_button.isEnabled()
    dialog.reject()
    assert dialog.isVisible()  # stays until the summary
    await settle()
    assert dialog.state == "done"
    assert dialog.outcome is not None and dialog.outcome.cancelled
    assert "Cancelled after 3 of 6" in dialog.summary_label.text()
    assert "3 not started" in dialog.summary_label.text()
    assert dialog.failures.rowCount() == 1
    assert dialog.failures.item(0, 0).text() == "invoice.missing_in_erp:in_11"
    assert dialog.failures.item(0, 2).text() == f"ERP said: {HOSTILE}"
    assert service.bulk_started == 4  # the fourth was waiting at its gate: it never started writing
    assert dialog.cancel_button.text() == "Close"
    shot(dialog, tmp_path, "bulk-summary")
    dialog.cancel_button.click()
    assert not dialog.isVisible()


async def test_bulk_runs_to_the_end_and_accept_needs_reason(qtbot: QtBot, service: FakeActionService,
                                                            adapter: ActionAdapter) -> None:
    selection = [tier_mismatch(n) for n in range(30, 34)]
    service.exceptions.update({e.id: e for e in selection})
    adapter.set_operator(Operator("sam", Role.SUPPORT))
    parent = QWidget()
    qtbot.addWidget(parent)
    launcher = FixLauncher(adapter, parent, today=lambda: NOW)
    assert launcher.open_bulk(selection, ActionKind.CORRECT) is None  # needs a value per item
    dialog = launcher.open_bulk(selection, "accept")
    assert dialog is not None and len(dialog.eligible) == 4
    assert dialog.expiry_edit is not None
    assert not dialog.start_button.isEnabled()
    dialog.reason_edit.setText("contract allows it")
    assert dialog.start_button.isEnabled()
    reqs = dialog.requests()
    assert {r.value["expires_at"] for r in reqs} == {"2025-03-31T00:00:00+00:00"}
    assert {r.reason for r in reqs} == {"contract allows it"}
    done: list[Any] = []
    adapter.bulk_done.connect(done.append)
    dialog.start_button.click()
    assert launcher.open_bulk(selection, "accept") is dialog  # one bulk at a time
    await settle(20)
    assert done and not done[0].cancelled
    assert "Finished: 4 of 4. 3 succeeded, 1 failed." in dialog.summary_label.text()
    dialog.cancel_button.click()
    assert launcher.bulk_dialog is None
