"""The customer page tells the same story as the ERP (issue G1, item 6): an ERP invoice that was
cancelled reads "Invoice cancelled" on the timeline at its cancellation time, never "Invoice
posted" at midnight of its invoice date, and the ``invoice.missing_in_erp`` card's side-by-side
shows the cancelled copy (its number and state) instead of "not present". Plain text throughout.

The page is a real CustomerPage fed the timeline and exceptions the services build from a
hand-built snapshot (tests/worlds.py) reconciled by the real rules."""

from __future__ import annotations

from datetime import timedelta

import pytest
from PySide6.QtWidgets import QTableWidgetItem
from pytestqt.qtbot import QtBot

from services.core.reconcile import ReconcileConfig, reconcile
from tests.services.test_timeline_truth import FINALIZED, cancelled_only_world, credited_world
from tests.worlds import NOW
from views.actions.sides_table import SidesTable
from views.customer_view import T_EVENT, T_LAG, T_STATUS, T_SUMMARY, T_WHEN, CustomerPage

pytestmark = pytest.mark.gui

CANCELLED_AT = FINALIZED + timedelta(hours=2, minutes=14)


@pytest.fixture
def page(qtbot: QtBot) -> CustomerPage:
    world = cancelled_only_world(("ecx", "INV-000012", CANCELLED_AT))
    exceptions = reconcile(world.snapshot(), ReconcileConfig(), NOW).exceptions
    timeline = world.timeline(exceptions=exceptions)
    view = CustomerPage()
    qtbot.addWidget(view)
    view.show_customer(timeline, exceptions, None)
    return view


def text(item: QTableWidgetItem | None) -> str:
    assert item is not None
    return item.text()


def rows(page: CustomerPage) -> list[tuple[str, str, str]]:
    model = page.timeline_model
    return [(model.display(e, T_WHEN), model.display(e, T_EVENT), model.display(e, T_SUMMARY))
            for e in model.entries()]


def test_timeline_reads_cancelled_at_its_time_and_never_posted(page: CustomerPage) -> None:
    shown = rows(page)
    assert ("2026-05-20 11:44", "Invoice cancelled", "ERP invoice INV-000012 cancelled") in shown
    assert not [r for r in shown if "posted" in r[1].lower()]
    assert not [r for r in shown if r[0] == "2026-05-20 00:00"]  # nothing at midnight of the invoice date


def test_missing_in_erp_card_shows_the_cancelled_copy(page: CustomerPage) -> None:
    [card] = [c for c in page.cards if c.exception.rule == "invoice.missing_in_erp"]
    table = card.table
    erp_col = next(c for c in range(table.columnCount()) if text(table.horizontalHeaderItem(c)).startswith("ERP"))
    labels = [text(table.verticalHeaderItem(r)) for r in range(table.rowCount())]
    column = {labels[r]: text(table.item(r, erp_col)) for r in range(table.rowCount())}
    assert column["record"] == "ecx (cancelled copy)"
    assert "not present" not in column.values()
    assert column["state"] == "cancelled" and column["number"] == "INV-000012"
    assert column["cancelled at"] == "2026-05-20 11:44 UTC" and column["live invoice"] == "none"
    assert "only a cancelled copy, INV-000012" in card.summary_label.text()


def test_fix_dialog_sides_table_names_the_cancelled_copy(qtbot: QtBot, page: CustomerPage) -> None:
    [card] = [c for c in page.cards if c.exception.rule == "invoice.missing_in_erp"]
    table = SidesTable(card.exception, {})
    qtbot.addWidget(table)
    heads = [text(table.horizontalHeaderItem(c)) for c in range(table.columnCount())]
    assert any(h.startswith("ERP") and h.endswith(": ecx (cancelled copy)") for h in heads), heads


def test_credit_notes_and_refunds_read_plainly_with_their_lags(qtbot: QtBot) -> None:
    world = credited_world()
    view = CustomerPage()
    qtbot.addWidget(view)
    view.show_customer(world.timeline(exceptions=[]), [], None)
    model = view.timeline_model
    shown = {model.display(e, T_SUMMARY): (model.display(e, T_EVENT), model.display(e, T_STATUS),
                                            model.display(e, T_LAG)) for e in model.entries()}
    assert shown["Credit note CN-1 issued on ACME-1: 50.00 EUR"] == ("→ Credit note issued", "ok", "+2 d")
    assert shown["ERP credit note CN-000001 created on ERP/1: 50.00 EUR"] == (
        "→ Credit note created", "late", "+20 min")
    assert shown["Refund re_1 of 50.00 EUR on ACME-1 (succeeded)"][0] == "→ Refund"
