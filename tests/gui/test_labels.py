"""One name per fix everywhere (views/actions/wording.py), never the service's internal name;
customer names beside ids in the queues; an entitlement's billing side names the customer; after
a successful fix the dialog shows the new values; a bulk fix lists what it will touch, and from a
customer's page it touches that customer's exceptions."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from pytestqt.qtbot import QtBot

from services.actions.model import ActionKind, ActionResult, ActionStatus
from tests.gui.fake_actions import (
    NOW,
    OWNERSHIP,
    FakeActionService,
    amount_mismatch,
    missing_in_erp,
    outbox_item,
    settle,
    tier_mismatch,
)
from tests.gui.test_keyboard import console_state, make_window
from views.action_adapter import ActionAdapter
from views.actions.fix_dialog import FixDialog
from views.actions.fix_flow import run_fix
from views.actions.pending import PendingActionsPage, PendingColumn
from views.actions.wording import bulk_text, fix_button_text, kind_title
from views.exceptions.model import Column

pytestmark = pytest.mark.gui


def test_one_name_per_fix_never_the_internal_one() -> None:
    assert kind_title("credit_repost") == kind_title(ActionKind.CREDIT_REPOST) == "Credit + repost"
    assert fix_button_text("credit_repost") == "Credit + repost…"
    assert fix_button_text("push") == "Push owner value…" and fix_button_text("accept") == "Accept difference…"
    assert kind_title("record") == "Record in ERP"
    assert kind_title("some_new_fix") == "Some new fix"  # never "Some_new_fix"
    assert bulk_text(ActionKind.PUSH) == "Push owner value every shown exception…"


async def test_the_same_fix_is_called_the_same_on_every_page(qtbot: QtBot) -> None:
    drift = replace(amount_mismatch(3), fix_actions=("credit_repost", "accept"))
    service = FakeActionService([drift, tier_mismatch(30)])
    window, adapter = make_window(qtbot, service)
    try:
        page = window.exceptions_page
        assert page.select_exception(drift.id)
        in_detail = [b.text() for b in page.detail.fix_buttons]
        window.open_customer("cus_3")
        qtbot.waitUntil(lambda: bool(window.customer_page.cards))
        in_card = [b.text() for card in window.customer_page.cards for b in card.fix_buttons]
        assert in_detail == in_card == ["Credit + repost…", "Accept difference…"]
        assert all("_" not in text for text in in_detail)
        assert window.launcher is not None
        dialog = window.launcher.open_fix(drift, "credit_repost")
        assert dialog is not None and dialog.windowTitle().startswith("Credit + repost — ")
        dialog.close()
        assert "Push owner value every shown exception…" in {a.text() for a in window.bulk_menu.actions()}
    finally:
        await adapter.aclose()


async def test_queues_show_customer_names_beside_ids(qtbot: QtBot) -> None:
    service = FakeActionService([missing_in_erp(10)])
    window, adapter = make_window(qtbot, service)
    try:
        window.set_state(console_state(service, names={"cus_10": "Acme GmbH"}))
        queue = window.exceptions_page.model
        assert queue.index(0, Column.CUSTOMER).data() == "Acme GmbH · cus_10"
        window.exceptions_page.search_edit.setText("acme")  # the name is searchable too
        assert queue.visible_ids() == ["invoice.missing_in_erp:in_10"]
        pending = window.pending_page
        assert isinstance(pending, PendingActionsPage)
        pending.set_items([outbox_item(10, ActionStatus.QUEUED)])
        assert pending.model.index(0, PendingColumn.CUSTOMER).data() == "Acme GmbH · cus_10"
    finally:
        await adapter.aclose()


async def test_an_entitlement_card_names_the_billing_customer(qtbot: QtBot) -> None:
    service = FakeActionService([tier_mismatch(30)])
    window, adapter = make_window(qtbot, service)
    try:
        window.open_customer("cus_30")
        qtbot.waitUntil(lambda: bool(window.customer_page.cards))
        table = window.customer_page.cards[0].table
        assert table.item(0, 0).text() == "customer cus_30"  # billing's tier comes from the customer's plan
        assert table.item(0, 0).text() != "not present"
        assert table.item(0, 1).text() == "30"  # the support organization
    finally:
        await adapter.aclose()


async def test_after_a_successful_fix_the_dialog_shows_the_new_values(qtbot: QtBot) -> None:
    exc = amount_mismatch()
    service = FakeActionService([exc])
    service.after = {"targets": [["erp", "invoice", "1"]],
                     "read_back": {"erp": {"invoice 1": {"state": "draft", "total": "100.00", "currency": "EUR"}}}}
    adapter = ActionAdapter(service)  # type: ignore[arg-type]
    dialog = FixDialog(exc, ActionKind.CORRECT, service.operator, ownership=OWNERSHIP, today=NOW)
    qtbot.addWidget(dialog)
    dialog.show()
    try:
        flow = asyncio.ensure_future(run_fix(adapter, dialog))
        dialog.reason_edit.setText("billing is the owner")
        dialog.flush_edits()
        await settle()
        assert dialog.state == "ready" and dialog.confirm_button.isEnabled()
        columns_before = dialog.sides_table.columnCount()
        dialog.confirm_button.click()
        result = await asyncio.wait_for(flow, 5)
        assert result is not None and result.status is ActionStatus.SUCCEEDED
        table = dialog.sides_table
        assert table.columnCount() == columns_before + 1
        assert table.horizontalHeaderItem(columns_before).text() == "ERP now (re-read)"
        rows = {table.verticalHeaderItem(r).text().removeprefix("≠ "): r for r in range(table.rowCount())}
        assert table.item(rows["total"], columns_before).text() == "100.00 EUR"  # was 90.00 EUR in the ERP
        assert table.item(rows["total"], 1).text() == "90.00 EUR"  # the value before, still beside it
        assert "Read back after the write" in dialog.body.toPlainText()
    finally:
        await adapter.aclose()


async def test_bulk_from_a_customer_page_lists_and_touches_that_customers_exceptions(qtbot: QtBot) -> None:
    mine = [missing_in_erp(10), replace(missing_in_erp(11), customer_id="cus_10")]
    service = FakeActionService([*mine, missing_in_erp(12), missing_in_erp(13)])
    window, adapter = make_window(qtbot, service)
    try:
        # the queue is filtered to another customer: the customer page must not act on that
        window.exceptions_page.search_edit.setText("in_12")
        window.open_customer("cus_10")
        qtbot.waitUntil(lambda: len(window.customer_page.cards) == 2)
        window.bulk_fix(ActionKind.RETRY)
        assert window.launcher is not None and window.launcher.bulk_dialog is not None
        bulk = window.launcher.bulk_dialog
        assert sorted(e.id for e in bulk.eligible) == sorted(e.id for e in mine)
        listed = sorted(bulk.targets.item(r, 2).text() for r in range(bulk.targets.rowCount()))
        assert listed == ["in_10", "in_11"]
        assert bulk.targets_label.text() == "Will act on these 2 exceptions:"
        bulk.close()
    finally:
        await adapter.aclose()


def test_a_replayed_queued_fix_is_announced(qtbot: QtBot) -> None:
    from views.main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    window.notify_replayed([])
    assert window.statusBar().currentMessage() == ""
    window.notify_replayed([ActionResult("act_1", ActionKind.RETRY, "x", ActionStatus.SUCCEEDED, "ok"),
                            ActionResult("act_2", ActionKind.PUSH, "y", ActionStatus.FAILED, "no")])
    assert window.statusBar().currentMessage().startswith("2 queued fixes replayed: 1 failed, 1 succeeded")


def test_every_timeline_event_has_a_name_a_user_reads() -> None:
    from services.core.domain import EventKind
    from views.customer_view import EVENT_TEXT

    unnamed = [k.value for k in EventKind if not EVENT_TEXT.get(k)]
    assert unnamed == []
    assert all("." not in text and "_" not in text for text in EVENT_TEXT.values())
