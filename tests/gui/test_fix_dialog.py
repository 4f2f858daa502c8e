"""GUI tests for the fix dialog's widgets: checks, preview, value editors, reason, plain text.

The action service is faked at its public API (``tests.gui.fake_actions.FakeActionService``); widgets are
rendered to PNG (``tmp_path``, or ``$SYNCDESK_SHOTS`` when set, to look at them).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot

from services.actions.model import ActionKind, ActionRequest, ActionResult, ActionStatus, Check, Operator, Role
from services.core.redaction import MASK, register_secret
from tests.gui.fake_actions import (
    ALICE,
    HOSTILE,
    NOW,
    OWNERSHIP,
    SECRET,
    FakeActionService,
    amount_mismatch,
    master_drift,
    missing_in_erp,
    shot,
    tier_mismatch,
    unmapped,
    visible_texts,
)
from views.actions.fix_dialog import FixDialog

pytestmark = pytest.mark.gui



# -- the fix dialog (widgets) -------------------------------------------------------------------
async def test_fix_dialog_shows_checks_preview_and_value_editors(qtbot: QtBot, service: FakeActionService,
                                                                 tmp_path: Path) -> None:
    exc = amount_mismatch()
    dialog = FixDialog(exc, ActionKind.CORRECT, ALICE, ownership=OWNERSHIP, today=NOW)
    qtbot.addWidget(dialog)
    requested: list[Any] = []
    dialog.request_changed.connect(requested.append)
    # the editor holds the owner's (billing's) currency; the lines come from billing
    assert list(dialog.value_edits) == ["currency"]
    assert dialog.value_edits["currency"].text() == "EUR"
    # a correction's preflight checks the reason: no preview until one is given
    assert not dialog.request_complete()
    assert "Give a reason" in dialog.banner.text()
    assert not dialog.confirm_button.isEnabled()
    shot(dialog, tmp_path, "fix-dialog-correct-empty")
    dialog.reason_edit.setText("billing total is right")
    assert not requested  # typing waits for a pause…
    dialog.flush_edits()  # …which the timer ends
    assert requested[-1] == ActionRequest(ActionKind.CORRECT, exc.id, "billing total is right", {"currency": "EUR"})
    assert not dialog.confirm_button.isEnabled()  # no plan yet
    dialog.set_plan(await service.plan(requested[-1]))
    assert dialog.checks.rowCount() == 3
    assert dialog.checks.item(0, 0).text() == "mapping"
    assert dialog.checks.item(0, 0).data(Qt.ItemDataRole.UserRole) is True  # passed (a drawn mark shows it)
    assert dialog.calls.rowCount() == 2
    assert dialog.calls.item(0, 1).text() == "POST"
    assert dialog.calls.item(0, 2).text() == "/tryton/rpc/"
    assert dialog.body.isReadOnly()
    body = dialog.body.toPlainText()
    assert '"method": "model.account.invoice.write"' in body and "expected after" in body
    assert "Preflight passed" in dialog.banner.text()
    assert dialog.banner.tone == "ok"
    assert dialog.confirm_button.isEnabled()
    # editing the value makes the preview stale until it is planned again
    dialog.value_edits["currency"].setText("")
    dialog.value_edits["currency"].textEdited.emit("")
    assert not dialog.confirm_button.isEnabled()
    dialog.value_edits["currency"].setText("usd")
    dialog.value_edits["currency"].textEdited.emit("usd")
    dialog.flush_edits()
    assert requested[-1].value == {"currency": "usd"}
    assert not dialog.confirm_button.isEnabled()
    dialog.set_plan(await service.plan(requested[-1]))
    assert dialog.confirm_button.isEnabled()
    # clearing the reason blocks again
    dialog.reason_edit.setText("")
    assert not dialog.confirm_button.isEnabled()
    assert "Give a reason" in dialog.missing()
    dialog.reason_edit.setText("billing total is right")
    dialog.flush_edits()
    dialog.set_plan(await service.plan(requested[-1]))
    shot(dialog, tmp_path, "fix-dialog-correct")


def test_correct_master_data_writes_a_copy_prefilled_from_the_erp(qtbot: QtBot, tmp_path: Path) -> None:
    dialog = FixDialog(master_drift(), ActionKind.CORRECT, ALICE, ownership=OWNERSHIP, today=NOW)
    qtbot.addWidget(dialog)
    assert dialog.target_combo is not None
    assert [dialog.target_combo.itemData(i) for i in range(dialog.target_combo.count())] == ["billing", "support"]
    assert {k: e.text() for k, e in dialog.value_edits.items()} == {
        "name": "Acme GmbH", "tax_id": "DE123", "country": "DE"}
    dialog.reason_edit.setText("legal name changed")
    assert dialog.request().value == {"target": "billing", "name": "Acme GmbH", "tax_id": "DE123", "country": "DE"}
    requested: list[Any] = []
    dialog.request_changed.connect(requested.append)
    dialog.target_combo.setCurrentIndex(1)  # the support organization holds only the name
    assert requested[-1].value == {"target": "support", "name": "Acme GmbH"}
    assert not dialog.value_edits["tax_id"].isEnabled()
    shot(dialog, tmp_path, "fix-dialog-correct-master")


def test_retry_may_choose_the_invoice_date(qtbot: QtBot) -> None:
    dialog = FixDialog(missing_in_erp(10), ActionKind.RETRY, ALICE, ownership=OWNERSHIP, today=NOW)
    qtbot.addWidget(dialog)
    assert dialog.value_box.isVisibleTo(dialog)
    assert dialog.value() is None
    requested: list[Any] = []
    dialog.request_changed.connect(requested.append)
    assert dialog.date_check is not None and dialog.date_edit is not None
    dialog.date_check.setChecked(True)
    assert requested[-1].value == {"invoice_date": "2025-03-01"}


async def test_fix_dialog_failed_preflight_is_explained_and_blocks(qtbot: QtBot, service: FakeActionService,
                                                                   tmp_path: Path) -> None:
    exc = amount_mismatch()
    service.fail_checks[exc.id] = Check("currency", False, "ERP invoice is in USD, billing in EUR")
    dialog = FixDialog(exc, ActionKind.CORRECT, ALICE, ownership=OWNERSHIP, today=NOW)
    qtbot.addWidget(dialog)
    dialog.reason_edit.setText("fix it")
    dialog.set_plan(await service.plan(dialog.request()))
    assert dialog.banner.tone == "bad"
    assert dialog.banner.text().count("ERP invoice is in USD") == 1  # named and explained once
    assert "Preflight failed" in dialog.banner.text()
    assert "currency: ERP invoice is in USD, billing in EUR" in dialog.banner.text()
    bad = dialog.checks.item(1, 0)
    assert bad.text() == "currency" and bad.data(Qt.ItemDataRole.UserRole) is False
    assert bad.foreground().color().name() == "#d0453b"
    assert dialog.checks.item(1, 1).text() == "ERP invoice is in USD, billing in EUR"
    assert not dialog.confirm_button.isEnabled()
    assert dialog.missing() == "the preflight failed"
    shot(dialog, tmp_path, "fix-dialog-preflight-failed")


async def test_link_needs_a_candidate_and_names_it(qtbot: QtBot, service: FakeActionService,
                                                   tmp_path: Path) -> None:
    exc = unmapped()
    dialog = FixDialog(exc, ActionKind.LINK, ALICE, ownership=OWNERSHIP, today=NOW)
    qtbot.addWidget(dialog)
    assert dialog.candidate_list is not None
    assert dialog.candidate_list.topLevelItemCount() == 2
    assert dialog.candidate_list.topLevelItem(0).text(0) == "Acme GmbH (erp:party.party:7)"
    assert not dialog.request_complete()
    assert "Pick a candidate" in dialog.banner.text()
    assert not dialog.confirm_button.isEnabled()
    requested: list[Any] = []
    dialog.request_changed.connect(requested.append)
    dialog.candidate_list.setCurrentItem(dialog.candidate_list.topLevelItem(1))
    assert requested[-1].value == {"candidate": "erp:party.party:9"}
    assert requested[-1].kind == ActionKind.LINK
    dialog.set_plan(await service.plan(requested[-1]))
    assert dialog.confirm_button.isEnabled()  # the reason is optional for LINK
    assert dialog.request().value == {"candidate": "erp:party.party:9"}
    shot(dialog, tmp_path, "fix-dialog-link")


async def test_accept_has_expiry_thirty_days_ahead_and_requires_reason(qtbot: QtBot, service: FakeActionService,
                                                                      tmp_path: Path) -> None:
    dialog = FixDialog(amount_mismatch(), ActionKind.ACCEPT, ALICE, ownership=OWNERSHIP, today=NOW)
    qtbot.addWidget(dialog)
    assert dialog.expiry_edit is not None
    assert dialog.expiry_edit.date().toPython() == (NOW + timedelta(days=30)).date()
    assert dialog.value() == {"expires_at": "2025-03-31T00:00:00+00:00"}
    assert dialog.expiry_edit.minimumDate().toPython() == (NOW + timedelta(days=1)).date()
    assert not dialog.request_complete() and not dialog.confirm_button.isEnabled()
    dialog.reason_edit.setText("credit note agreed with the customer")
    dialog.set_plan(await service.plan(dialog.request()))
    assert dialog.confirm_button.isEnabled()
    requested: list[Any] = []
    dialog.request_changed.connect(requested.append)
    dialog.expiry_edit.setDate(dialog.expiry_edit.date().addDays(10))
    assert requested[-1].value == {"expires_at": "2025-04-10T00:00:00+00:00"}
    assert requested[-1].reason == "credit note agreed with the customer"
    assert not dialog.confirm_button.isEnabled()  # stale until re-planned
    shot(dialog, tmp_path, "fix-dialog-accept")


async def test_credit_repost_is_titled_explained_and_requires_a_reason(qtbot: QtBot,
                                                                      service: FakeActionService) -> None:
    dialog = FixDialog(amount_mismatch(), ActionKind.CREDIT_REPOST, ALICE, ownership=OWNERSHIP, today=NOW)
    qtbot.addWidget(dialog)
    assert dialog.title.text() == "Credit + repost — invoice.amount_mismatch"
    assert "credit note" in dialog.hint.text() and "Finance only" in dialog.hint.text()
    assert not dialog.value_box.isVisibleTo(dialog) and dialog.value() is None
    assert not dialog.request_complete() and not dialog.confirm_button.isEnabled()
    dialog.reason_edit.setText("posted with the wrong seat count")
    assert dialog.request_complete()


async def test_reason_is_optional_for_retry(qtbot: QtBot, service: FakeActionService) -> None:
    """A retry (finance) and a push (support: the tier exception is theirs) confirm without a reason."""
    for exc, kind, operator in ((missing_in_erp(10), ActionKind.RETRY, ALICE),
                                (tier_mismatch(30), ActionKind.PUSH, Operator("sam", Role.SUPPORT))):
        service.set_operator(operator)
        dialog = FixDialog(exc, kind, operator, ownership=OWNERSHIP, today=NOW)
        qtbot.addWidget(dialog)
        assert kind is ActionKind.RETRY or not dialog.value_box.isVisibleTo(dialog)  # a retry may pick a date
        assert dialog.reason() == "" and dialog.request_complete()
        dialog.set_plan(await service.plan(dialog.request()))
        assert dialog.confirm_button.isEnabled(), dialog.missing()
        assert dialog.request().value is None and dialog.request().reason == ""


async def test_hostile_text_is_shown_verbatim_and_secrets_never(qtbot: QtBot, service: FakeActionService,
                                                                tmp_path: Path) -> None:
    register_secret(SECRET)
    exc = amount_mismatch(summary=HOSTILE)
    service.exceptions[exc.id] = exc
    service.body_extra = {"note": f"key {SECRET}", "api_key": "********"}
    service.path_suffix = HOSTILE
    dialog = FixDialog(exc, ActionKind.CORRECT, Operator(HOSTILE, Role.FINANCE), ownership=OWNERSHIP, today=NOW)
    qtbot.addWidget(dialog)
    dialog.reason_edit.setText(HOSTILE)
    dialog.set_plan(await service.plan(dialog.request()))
    assert dialog.summary_label.text() == HOSTILE
    assert dialog.summary_label.textFormat() == Qt.TextFormat.PlainText
    assert all(lab.textFormat() == Qt.TextFormat.PlainText for lab in dialog.findChildren(QLabel)
               if lab.text() and lab.pixmap().isNull() is not False and lab.text() != "")
    assert HOSTILE in dialog.operator_label.text()
    assert dialog.calls.item(0, 2).text() == "/tryton/rpc/" + HOSTILE
    assert SECRET not in dialog.body.toPlainText()
    assert MASK in dialog.body.toPlainText()
    dialog.show_result(ActionResult("act_9", ActionKind.CORRECT, exc.id, ActionStatus.FAILED,
                                    f"ERP said {HOSTILE} with {SECRET}"))
    assert HOSTILE in dialog.result_banner.text()
    assert SECRET not in dialog.result_banner.text()
    for text in visible_texts(dialog):
        assert SECRET not in text
    shot(dialog, tmp_path, "fix-dialog-hostile-failed")
