"""GUI tests for who may act: auditors see every fix disabled, fix buttons follow the
service's verdicts, and a switch of operator reaches the service (the toolbar's role switch, which
offers only the login's roles: tests/gui/test_identity.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QPushButton
from pytestqt.qtbot import QtBot

from services.actions.model import ActionKind, ActionStatus, Operator, Role
from services.actions.roles import auditor_refusal, role_check
from tests.gui.fake_actions import (
    ALICE,
    NOW,
    OWNERSHIP,
    FakeActionService,
    amount_mismatch,
    missing_in_erp,
    outbox_item,
)
from views.action_adapter import ActionAdapter
from views.actions.bulk_dialog import BulkDialog
from views.actions.fix_dialog import FixDialog
from views.actions.pending import PendingActionsPage
from views.actions.permissions import apply_fix_permissions, fix_policy

pytestmark = pytest.mark.gui


# -- auditors never act ---------------------------------------------------------------------------
async def test_auditor_sees_every_fix_disabled(qtbot: QtBot, service: FakeActionService,
                                               adapter: ActionAdapter) -> None:
    auditor = Operator("carol", Role.AUDITOR)
    adapter.set_operator(auditor)
    exc = amount_mismatch()
    buttons = []
    for action in exc.fix_actions:
        b = QPushButton(action)
        b.setProperty("action", action)
        qtbot.addWidget(b)
        buttons.append(b)
    apply_fix_permissions(buttons, adapter.allowed_actions(exc), adapter.operator)
    assert all(not b.isEnabled() for b in buttons)
    # the tooltip is the service's refusal (services.actions.service.role_check), not words of the view's
    refusal = role_check(exc, auditor).detail
    assert refusal == "carol is an auditor: auditors read, verify and export; they never act"
    assert all(b.toolTip() == refusal for b in buttons)
    # finance may correct a finance exception; support may not
    adapter.set_operator(ALICE)
    apply_fix_permissions(buttons, adapter.allowed_actions(exc), adapter.operator)
    assert all(b.isEnabled() for b in buttons)
    sam = Operator("sam", Role.SUPPORT)
    adapter.set_operator(sam)
    apply_fix_permissions(buttons, adapter.allowed_actions(exc), adapter.operator)
    assert not any(b.isEnabled() for b in buttons)
    assert buttons[0].toolTip() == role_check(exc, sam).detail
    assert buttons[0].toolTip() == "invoice.amount_mismatch is owned by finance; the support role cannot act on it"
    # the dialog itself refuses too, with the verdict the launcher passes it, and the plan's failed check
    adapter.set_operator(auditor)
    _, ok, why = next(v for v in adapter.allowed_actions(exc) if v[0] is ActionKind.CORRECT)
    dialog = FixDialog(exc, ActionKind.CORRECT, auditor, allowed=ok, why_not=why, ownership=OWNERSHIP, today=NOW)
    qtbot.addWidget(dialog)
    dialog.reason_edit.setText("x")
    plan = await service.plan(dialog.request())
    assert not plan.ok and plan.explanation == refusal
    dialog.set_plan(plan)
    assert not dialog.confirm_button.isEnabled()
    assert dialog.banner.text() == f"You cannot do this: {refusal}"
    assert dialog.confirm_button.toolTip() == refusal
    failed = [row for row in range(dialog.checks.rowCount()) if dialog.checks.item(row, 0).text() == "role"
              and dialog.checks.item(row, 0).data(Qt.ItemDataRole.UserRole) is False]
    assert len(failed) == 1 and dialog.checks.item(failed[0], 1).text() == refusal
    bulk = BulkDialog(ActionKind.RETRY, [missing_in_erp(10)], operator=auditor, today=NOW)
    qtbot.addWidget(bulk)
    assert not bulk.start_button.isEnabled()
    # bulk, retry and cancel are refused by the service for an auditor (PermissionDenied): its words
    assert bulk.banner.text() == f"You cannot do this: {auditor_refusal(auditor)}" == f"You cannot do this: {refusal}"
    assert bulk.start_button.toolTip() == refusal
    page = PendingActionsPage()
    qtbot.addWidget(page)
    page.set_operator(auditor)
    page.set_items([outbox_item(1, ActionStatus.FAILED, "boom")])
    page.table.selectRow(0)
    assert not page.retry_button.isEnabled() and page.retry_button.toolTip() == refusal
    assert not page.cancel_button.isEnabled() and page.cancel_button.toolTip() == refusal


def test_exception_views_enable_fixes_by_policy_and_emit(qtbot: QtBot, adapter: ActionAdapter) -> None:
    from views.exception_card import ExceptionCard
    from views.exceptions.detail import ExceptionDetail

    exc = amount_mismatch()
    detail = ExceptionDetail()
    qtbot.addWidget(detail)
    detail.show_exception(exc, NOW)
    assert all(not b.isEnabled() for b in detail.fix_buttons)  # no policy yet: disabled, as before
    detail.set_fix_policy(fix_policy(adapter))
    assert [b.property("action") for b in detail.fix_buttons] == ["correct", "accept"]
    assert all(b.isEnabled() for b in detail.fix_buttons)
    seen: list[tuple[str, str]] = []
    detail.fix_requested.connect(lambda i, a: seen.append((i, a)))
    detail.fix_buttons[0].click()
    assert seen == [(exc.id, "correct")]
    adapter.set_operator(Operator("carol", Role.AUDITOR))
    detail.set_fix_policy(fix_policy(adapter))  # the lead calls it again on operator_changed
    refusal = role_check(exc, adapter.operator).detail  # the service's words
    assert all(not b.isEnabled() and b.toolTip() == refusal for b in detail.fix_buttons)
    adapter.set_operator(ALICE)
    card = ExceptionCard(exc, policy=fix_policy(adapter))
    qtbot.addWidget(card)
    card.fix_requested.connect(lambda i, a: seen.append((i, a)))
    card.fix_buttons[1].click()
    assert seen[-1] == (exc.id, "accept")


# -- operator (the toolbar's role switch: tests/gui/test_identity.py) -------------------------------------
async def test_operator_switch_reaches_the_service(adapter: ActionAdapter, service: FakeActionService) -> None:
    seen: list[Any] = []
    adapter.operator_changed.connect(seen.append)
    adapter.set_operator(Operator("bob", Role.SUPPORT))
    adapter.set_operator(Operator("bob", Role.SUPPORT))  # unchanged: no signal
    assert service.operator == Operator("bob", Role.SUPPORT)
    assert seen == [Operator("bob", Role.SUPPORT)]
