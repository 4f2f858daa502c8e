"""The console shows each amount with its currency's own exponent (G1 item 4, "Display"): on the
Customer page, an exception card's summary and side-by-side values and the timeline's entries
read "12.345 KWD" against "12.340 KWD" (never "12.34 KWD" twice) and "1,500 JPY" (never ".00");
the side-by-side values too, grouped and with their code."""

from __future__ import annotations

from decimal import Decimal

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from services.core.domain import Money
from services.core.reconcile import reconcile
from tests.worlds import NOW, World
from views.customer_view import CustomerPage

pytestmark = pytest.mark.gui


def currency_world() -> World:
    """cus_0 billed 12.345 KWD, 12.340 KWD in the ERP; cus_1 billed 1,500 JPY, 1,499 JPY in the ERP."""
    w = World(2)
    w.b.invoices["in_cus_0"].total = Money(Decimal("12.345"), "KWD")
    w.e.invoices["ein_cus_0"].total = Money(Decimal("12.340"), "KWD")
    w.b.invoices["in_cus_1"].total = Money(Decimal("1500"), "JPY")
    w.e.invoices["ein_cus_1"].total = Money(Decimal("1499"), "JPY")
    w.exceptions = reconcile(w.snapshot(), now=NOW).exceptions
    return w


def page_texts(qtbot: QtBot, w: World, cid: str) -> tuple[CustomerPage, list[str]]:
    """The Customer page of ``cid`` and every text its timeline shows (all columns)."""
    cp = CustomerPage()
    qtbot.addWidget(cp)
    cp.resize(1280, 860)
    cp.show()
    qtbot.waitExposed(cp)
    row = next(r for r in w.rows() if r.customer_id == cid)
    cp.show_customer(w.timeline(cid), w.exceptions, row)
    model = cp.timeline_model
    texts = [str(model.index(r, c).data(Qt.ItemDataRole.DisplayRole) or "")
             for r in range(model.rowCount()) for c in range(model.columnCount())]
    return cp, texts


def total_cells(cp: CustomerPage) -> tuple[str, str]:
    (card,) = cp.cards
    table = card.table
    labels = [header.text() if (header := table.verticalHeaderItem(r)) else "" for r in range(table.rowCount())]
    row = labels.index("total")
    billing, erp = table.item(row, 0), table.item(row, 1)
    assert billing is not None and erp is not None
    return billing.text(), erp.text()


def test_a_kwd_mismatch_reads_as_two_amounts_on_the_customer_page(qtbot: QtBot) -> None:
    cp, texts = page_texts(qtbot, currency_world(), "cus_0")
    (card,) = cp.cards
    assert card.exception.rule == "invoice.amount_mismatch"
    summary = card.summary_label.text()
    assert "12.345 KWD" in summary and "12.340 KWD" in summary and "12.34 KWD" not in summary, summary
    assert total_cells(cp) == ("12.345 KWD", "12.340 KWD")  # grouped, with the code, never rounded
    assert any(t.endswith("finalized: 12.345 KWD") for t in texts), texts
    assert any(t.endswith(": 12.340 KWD") and "ERP invoice" in t for t in texts), texts


def test_jpy_amounts_show_no_decimals_on_the_customer_page(qtbot: QtBot) -> None:
    cp, texts = page_texts(qtbot, currency_world(), "cus_1")
    summary = cp.cards[0].summary_label.text()
    assert "billing 1,500 JPY" in summary and "ERP 1,499 JPY" in summary, summary
    assert total_cells(cp) == ("1,500 JPY", "1,499 JPY")
    assert any(t.endswith("finalized: 1,500 JPY") for t in texts), texts
    assert not any(".00 JPY" in t for t in texts)
