"""GUI tests for the fix flow: ``run_fix`` driving a shown dialog (awaited without nested loops)
and the launcher that opens one dialog per exception.

Flows that await run on pytest-asyncio's plain loop and are driven by clicking real widgets — no
``exec()``, no ``qtbot.waitSignal`` inside the running loop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from services.actions.model import ActionKind, ActionStatus, Check, Operator, Role
from services.actions.roles import role_check
from services.core.redaction import register_secret
from tests.gui.fake_actions import (
    ALICE,
    NOW,
    OWNERSHIP,
    SECRET,
    FakeActionService,
    amount_mismatch,
    missing_in_erp,
    settle,
    shot,
)
from views.action_adapter import ActionAdapter
from views.actions.fix_dialog import FixDialog
from views.actions.fix_flow import run_fix
from views.actions.launcher import FixLauncher

pytestmark = pytest.mark.gui


# -- the fix flow (awaited without nested loops) -------------------------------------------------
async def test_run_fix_confirms_executes_and_shows_verified_result(qtbot: QtBot, service: FakeActionService,
                                                                   adapter: ActionAdapter, tmp_path: Path) -> None:
    exc = amount_mismatch()
    dialog = FixDialog(exc, ActionKind.CORRECT, adapter.operator, ownership=OWNERSHIP, today=NOW)
    qtbot.addWidget(dialog)
    dialog.show()
    results: list[Any] = []
    adapter.result.connect(results.append)
    flow = asyncio.ensure_future(run_fix(adapter, dialog))
    await settle()
    assert dialog.plan is None and service.planned == []  # a correction needs a reason first
    assert not dialog.confirm_button.isEnabled()
    dialog.reason_edit.setText("billing is the owner")
    dialog.flush_edits()
    await settle()
    assert dialog.plan is not None and dialog.state == "ready"
    assert dialog.confirm_button.isEnabled()
    service.execute_gate = asyncio.Event()
    qtbot.mouseClick(dialog.confirm_button, Qt.MouseButton.LeftButton)
    await settle()
    # busy while writing: no confirm, no cancel, closing is refused
    assert dialog.state == "busy"
    assert not dialog.cancel_button.isEnabled()
    assert dialog.busy_bar.isVisible()
    shot(dialog, tmp_path, "fix-dialog-busy")
    dialog.reject()
    assert dialog.isVisible()
    service.execute_gate.set()
    result = await asyncio.wait_for(flow, 2)
    assert result is not None and result.status == ActionStatus.SUCCEEDED
    assert len(service.executed) == 1
    assert service.executed[0].request.reason == "billing is the owner"
    assert service.executed[0].request.value == {"currency": "EUR"}
    assert results == [result]
    assert dialog.result_banner.isVisible()
    assert "verified" in dialog.result_banner.text()
    assert dialog.result_banner.tone == "ok"
    assert not dialog.confirm_button.isVisible()
    assert dialog.cancel_button.text() == "Close" and dialog.cancel_button.isEnabled()
    assert not dialog.busy_bar.isVisible()
    shot(dialog, tmp_path, "fix-dialog-done")
    dialog.cancel_button.click()
    assert not dialog.isVisible()


@pytest.mark.parametrize(("status", "verified", "tone", "words"), [
    (ActionStatus.QUEUED, False, "info", "Queued"),
    (ActionStatus.FAILED, False, "bad", "Failed"),
    (ActionStatus.SUCCEEDED, False, "warn", "not verified"),
])
async def test_run_fix_shows_queued_failed_unverified(qtbot: QtBot, service: FakeActionService,
                                                      adapter: ActionAdapter, status: Any, verified: bool,
                                                      tone: str, words: str) -> None:
    service.status, service.verified, service.message = status, verified, "ERP unreachable: connect timeout"
    dialog = FixDialog(missing_in_erp(10), ActionKind.RETRY, adapter.operator, ownership=OWNERSHIP, today=NOW)
    qtbot.addWidget(dialog)
    dialog.show()
    flow = asyncio.ensure_future(run_fix(adapter, dialog))
    await settle()
    dialog.confirm_button.click()
    result = await asyncio.wait_for(flow, 2)
    assert result is not None and result.status == status
    assert dialog.result_banner.tone == tone
    assert words in dialog.result_banner.text()
    assert "ERP unreachable: connect timeout" in dialog.result_banner.text()


async def test_run_fix_changed_preview_needs_a_second_confirm(qtbot: QtBot, service: FakeActionService,
                                                              adapter: ActionAdapter) -> None:
    dialog = FixDialog(missing_in_erp(11), ActionKind.RETRY, adapter.operator, ownership=OWNERSHIP, today=NOW)
    qtbot.addWidget(dialog)
    dialog.show()
    flow = asyncio.ensure_future(run_fix(adapter, dialog))
    await settle()
    service.path_suffix = "changed"  # the data moved between preview and confirm
    dialog.confirm_button.click()
    await settle()
    assert service.executed == []
    assert "preview changed" in dialog.banner.text()
    assert dialog.state == "ready" and dialog.confirm_button.isEnabled()
    assert dialog.calls.item(0, 2).text() == "/tryton/rpc/changed"
    dialog.confirm_button.click()
    result = await asyncio.wait_for(flow, 2)
    assert result is not None and len(service.executed) == 1


async def test_run_fix_preflight_failing_on_confirm_writes_nothing(qtbot: QtBot, service: FakeActionService,
                                                                   adapter: ActionAdapter) -> None:
    exc = missing_in_erp(12)
    dialog = FixDialog(exc, ActionKind.RETRY, adapter.operator, ownership=OWNERSHIP, today=NOW)
    qtbot.addWidget(dialog)
    dialog.show()
    flow = asyncio.ensure_future(run_fix(adapter, dialog))
    await settle()
    service.fail_checks[exc.id] = Check("reachable", False, "ERP circuit breaker is open")
    dialog.confirm_button.click()
    await settle()
    assert service.executed == []
    assert dialog.banner.tone == "bad" and "ERP circuit breaker is open" in dialog.banner.text()
    assert not dialog.confirm_button.isEnabled()
    assert dialog.cancel_button.isEnabled()
    dialog.cancel_button.click()
    assert await asyncio.wait_for(flow, 2) is None


async def test_run_fix_closed_without_confirm_returns_none(qtbot: QtBot, service: FakeActionService,
                                                           adapter: ActionAdapter) -> None:
    dialog = FixDialog(missing_in_erp(15), ActionKind.RETRY, adapter.operator, ownership=OWNERSHIP, today=NOW)
    qtbot.addWidget(dialog)
    dialog.show()
    service.plan_gate = asyncio.Event()  # close while the preview is being planned
    flow = asyncio.ensure_future(run_fix(adapter, dialog))
    await settle()
    assert dialog.state == "planning"
    dialog.close()
    assert await asyncio.wait_for(flow, 2) is None
    assert service.executed == []
    assert not adapter.tasks.running(f"fix-preview:{dialog.exception.id}:{id(dialog)}")


async def test_run_fix_plan_error_is_shown_and_recoverable(qtbot: QtBot, service: FakeActionService,
                                                           adapter: ActionAdapter) -> None:
    async def broken(req: Any) -> Any:
        raise RuntimeError(f"ERP said 500 with token {SECRET}")

    register_secret(SECRET)
    real_plan = service.plan
    service.plan = broken  # type: ignore[method-assign]
    dialog = FixDialog(missing_in_erp(13), ActionKind.RETRY, adapter.operator, ownership=OWNERSHIP, today=NOW)
    qtbot.addWidget(dialog)
    dialog.show()
    flow = asyncio.ensure_future(run_fix(adapter, dialog))
    await settle()
    assert dialog.banner.tone == "bad" and "ERP said 500" in dialog.banner.text()
    assert SECRET not in dialog.banner.text()
    assert not dialog.confirm_button.isEnabled()
    service.plan = real_plan  # type: ignore[method-assign]
    dialog.flush_edits()
    await settle()
    assert dialog.confirm_button.isEnabled()
    dialog.confirm_button.click()
    assert (await asyncio.wait_for(flow, 2)) is not None


async def test_launcher_opens_one_dialog_per_exception(qtbot: QtBot, service: FakeActionService,
                                                       adapter: ActionAdapter) -> None:
    parent = QWidget()
    qtbot.addWidget(parent)
    launcher = FixLauncher(adapter, parent, today=lambda: NOW)
    exc = amount_mismatch()
    first = launcher.open_fix(exc, "correct")
    assert first is not None and first.isVisible()
    assert launcher.open_fix(exc, "correct") is first
    errors: list[str] = []
    adapter.error.connect(errors.append)
    assert launcher.open_fix(exc, "accept") is first  # same exception: the open one is raised
    assert launcher.open_fix(missing_in_erp(14), "record") is None  # a fix the service lacks
    assert errors and "not available" in errors[-1]
    first.reason_edit.setText("because")
    first.flush_edits()
    await settle()
    assert first.plan is not None and first.confirm_button.isEnabled()
    # switching the operator while it is open: shown, and the fix is no longer allowed
    carol = Operator("carol", Role.AUDITOR)
    adapter.set_operator(carol)
    assert "carol · auditor" in first.operator_label.text()
    # the service's refusal, in its words (the fake takes it from services.actions.service)
    assert not first.confirm_button.isEnabled()
    assert first.banner.text() == f"You cannot do this: {role_check(exc, carol).detail}"
    assert "carol is an auditor" in first.banner.text()
    adapter.set_operator(ALICE)
    await settle()
    assert first.plan is not None and first.plan.operator == ALICE and first.confirm_button.isEnabled()
    first.close()
    await settle()
    assert exc.id not in launcher.dialogs


async def test_run_fix_offers_to_acknowledge_an_erp_warning(qtbot: QtBot, service: FakeActionService,
                                                            adapter: ActionAdapter, tmp_path: Path) -> None:
    service.warning = "account_invoice.due_date_in_past"
    dialog = FixDialog(missing_in_erp(10), ActionKind.RETRY, adapter.operator, ownership=OWNERSHIP, today=NOW)
    qtbot.addWidget(dialog)
    dialog.show()
    flow = asyncio.ensure_future(run_fix(adapter, dialog))
    await settle()
    dialog.confirm_button.click()
    await settle()
    assert not flow.done()  # the flow waits: acknowledge or close
    assert dialog.awaiting_acknowledgement
    assert dialog.acknowledge_button.isVisible()
    assert "due_date_in_past" in dialog.acknowledge_button.toolTip()
    assert dialog.banner.tone == "warn" and "Nothing was posted" in dialog.banner.text()
    shot(dialog, tmp_path, "fix-dialog-warning")
    dialog.acknowledge_button.click()
    await settle()
    assert service.planned[-1].value == {"acknowledge_warning": "account_invoice.due_date_in_past"}
    assert "acknowledges the ERP warning" in dialog.notes_label.text()
    assert dialog.confirm_button.isVisible() and dialog.confirm_button.isEnabled()
    dialog.confirm_button.click()
    result = await asyncio.wait_for(flow, 2)
    assert result is not None and result.status == ActionStatus.SUCCEEDED
    assert service.executed[-1].request.value == {"acknowledge_warning": "account_invoice.due_date_in_past"}
