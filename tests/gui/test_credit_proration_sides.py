"""The side-by-side of ``credit_note.amount_mismatch`` and ``subscription.proration_mismatch``, as
reconciliation builds them: the exception detail pane and the customer page's exception card
show both systems' values, each amount in its currency's format, and mark the ones that differ."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from PySide6.QtWidgets import QTableWidget
from pytestqt.qtbot import QtBot

from services.core.domain import CreditNote, InvoiceLine, Money, SyncException, TaxAmount
from services.core.reconcile import ReconcileConfig, reconcile
from tests.worlds import NOW, B, E, World, ref
from views.exception_card import SideBySideTable
from views.exceptions.page import ExceptionsPage

pytestmark = pytest.mark.gui


def vat(amount: str, rate_id: str = "txr_de") -> TaxAmount:
    return TaxAmount(rate_id, Decimal(20), False, Money(Decimal(amount), "EUR"), "VAT 20 %")


def exceptions() -> list[SyncException]:
    w = World(2)
    # cus_0: a credit note booked with part of its tax as revenue (the same total)
    w.b.credit_notes["cn_0"] = CreditNote(ref(B, "credit_note", "cn_0"), "cus_0", "in_cus_0", "issued",
                                          Money(Decimal("1200.00"), "EUR"), net=Money(Decimal("1000.00"), "EUR"),
                                          tax=Money(Decimal("200.00"), "EUR"), taxes=(vat("200.00"),),
                                          number="ACME-CN-1", created=NOW - timedelta(hours=3))
    w.e.credit_notes["n0"] = CreditNote(ref(E, "account.invoice", "n0"), "cus_0", "ein_cus_0", "posted",
                                        Money(Decimal("1200.00"), "EUR"), net=Money(Decimal("1020.00"), "EUR"),
                                        tax=Money(Decimal("180.00"), "EUR"), taxes=(vat("180.00", "7"),),
                                        number="INV-000042", created=NOW - timedelta(hours=2))
    # cus_1: a proration invoice booked as a full period
    b, e = w.b.invoices["in_cus_1"], w.e.invoices["ein_cus_1"]
    b.lines = [InvoiceLine("Unused time on 3 × Standard", "std_monthly", Decimal(3), Money(Decimal("-20.00"), "EUR"),
                           proration=True),
               InvoiceLine("Remaining time on 3 × Pro", "pro_monthly", Decimal(3), Money(Decimal("50.00"), "EUR"),
                           proration=True),
               InvoiceLine("3 × Pro", "pro_monthly", Decimal(3), Money(Decimal("1060.00"), "EUR"))]
    b.total = b.net = Money(Decimal("1090.00"), "EUR")
    e.total = e.net = Money(Decimal("1060.00"), "EUR")
    return reconcile(w.snapshot(), ReconcileConfig(), NOW).exceptions


def cells(table: QTableWidget) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in range(table.rowCount()):
        head = table.verticalHeaderItem(r)
        if head is None:
            continue
        out[head.text()] = [table.item(r, c).text() if table.item(r, c) else "" for c in range(table.columnCount())]
    return out


def test_the_detail_pane_shows_both_sides_amounts_in_their_currency(qtbot: QtBot) -> None:
    excs = exceptions()
    assert sorted(x.rule for x in excs) == ["credit_note.amount_mismatch", "subscription.proration_mismatch"]
    page = ExceptionsPage()
    qtbot.addWidget(page)
    page.set_exceptions(excs, NOW)
    assert page.select_exception("credit_note.amount_mismatch:cn_0")
    rows = cells(page.detail.sides_table)
    assert rows["≠ tax at 20 %"] == ["200.00 EUR", "180.00 EUR"]
    assert rows["≠ net"] == ["1,000.00 EUR", "1,020.00 EUR"]
    assert rows["total"] == ["1,200.00 EUR", "1,200.00 EUR"]  # the same total: not marked
    assert page.select_exception("subscription.proration_mismatch:in_cus_1")
    rows = cells(page.detail.sides_table)
    assert rows["≠ total"] == ["1,090.00 EUR", "1,060.00 EUR"]
    assert "Unused time on 3 × Standard: -20.00 EUR" in rows["≠ proration lines"][0]
    assert rows["≠ proration lines"][1].startswith("none")


def test_the_customer_page_card_shows_the_same_sides(qtbot: QtBot) -> None:
    for exc in exceptions():
        table = SideBySideTable(exc)
        qtbot.addWidget(table)
        shown = cells(table)
        total = next(v for k, v in shown.items() if k.endswith("total"))
        assert all(t.endswith(" EUR") for t in total), (exc.rule, total)
        assert len(total) == 2  # billing and the ERP, side by side


def test_each_systems_own_numbers_are_never_marked_as_differing_on_the_card(qtbot: QtBot) -> None:
    exc = next(x for x in exceptions() if x.rule == "credit_note.amount_mismatch")
    table = SideBySideTable(exc)
    qtbot.addWidget(table)
    rows = {table.verticalHeaderItem(r).text(): r for r in range(table.rowCount()) if table.verticalHeaderItem(r)}

    def marked(key: str) -> bool:
        return any(table.item(rows[key], c) is not None and table.item(rows[key], c).font().bold()
                   for c in range(table.columnCount()))

    # billing ACME-CN-1 against ERP INV-000042, each crediting its own number of the invoice: not a mismatch
    assert not marked("number") and not marked("invoice")
    assert marked("net") and not marked("total")
