"""The fix dialog's CORRECT editor for the rules whose draft ERP copy is corrected from billing
(``invoice.tax_mismatch``, ``invoice.currency_mismatch``, ``subscription.proration_mismatch``, as
``invoice.amount_mismatch``; a draft ERP credit note of ``credit_note.amount_mismatch``): one
editor, the currency, prefilled from billing — also when the billing side names its currency only
in its total (a proration or credit note mismatch) — never the differing display values (a tax per
rate, a total), which the correction does not take."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pytestqt.qtbot import QtBot

from services.actions.model import ActionKind
from services.core.domain import Side, SyncException, System
from tests.gui.fake_actions import ALICE, NOW, OWNERSHIP, amount_mismatch
from views.actions.fix_dialog import FixDialog

pytestmark = pytest.mark.gui


def content_mismatch(rule: str, billing: dict[str, object], erp: dict[str, object]) -> SyncException:
    base = amount_mismatch()
    b, e = base.sides
    return replace(base, id=f"{rule}:in_1", rule=rule,
                   sides=[Side(System.BILLING, b.ref, billing), Side(System.ERP, e.ref, erp)])


@pytest.mark.parametrize(("rule", "billing", "erp"), [
    ("invoice.tax_mismatch", {"status": "paid", "number": "INV-1", "currency": "GBP", "total": "120.00 GBP",
                              "tax": "20.00 GBP", "tax at 20 %": "20.00 GBP"},
     {"state": "draft", "number": None, "currency": "GBP", "total": "120.00 GBP", "tax": "18.00 GBP",
      "tax at 20 %": "18.00 GBP"}),
    ("invoice.currency_mismatch", {"status": "paid", "number": "INV-1", "currency": "USD", "total": "100.00"},
     {"state": "draft", "number": None, "currency": "EUR", "total": "100.00"}),
    ("subscription.proration_mismatch", {"status": "paid", "number": "INV-1", "total": "7,690.04 EUR",
                                         "proration lines": ["Remaining time: 1,815.04 EUR"]},
     {"state": "draft", "number": None, "total": "5,875.00 EUR", "proration lines": "none"}),
    ("credit_note.amount_mismatch", {"status": "issued", "number": "CN-1", "invoice": "INV-1",
                                     "total": "30.00 GBP", "net": "25.00 GBP"},
     {"state": "draft", "number": None, "invoice": "E-1", "total": "33.00 GBP", "net": "27.50 GBP"}),
])
def test_the_correct_editor_holds_billing_s_currency_only(qtbot: QtBot, rule: str, billing: dict[str, object],
                                                          erp: dict[str, object]) -> None:
    dialog = FixDialog(content_mismatch(rule, billing, erp), ActionKind.CORRECT, ALICE, ownership=OWNERSHIP,
                       today=NOW)
    qtbot.addWidget(dialog)
    assert list(dialog.value_edits) == ["currency"]
    expected = {"invoice.tax_mismatch": "GBP", "invoice.currency_mismatch": "USD",
                "subscription.proration_mismatch": "EUR", "credit_note.amount_mismatch": "GBP"}[rule]
    assert dialog.value_edits["currency"].text() == expected
    assert dialog.value_box.values_filled()
