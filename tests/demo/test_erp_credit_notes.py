"""The demo ERP's credit notes (``services/demo/generator/erp_credits.py``): what the integration
books for billing's credit notes and full refunds — Tryton's credit (lines crediting the ERP
copy's lines through ``origin``, negative quantities, the billed tax kept to the cent, numbered in
the invoice sequence by date) — and the two credit plants left unbooked."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from services.core.currency import from_minor
from services.demo.dataset import generate
from services.demo.store import DemoDataset
from tests.demo.test_dataset import ANCHOR


def _erp_notes(ds: DemoDataset) -> dict[str, list[dict[str, Any]]]:
    """Billing invoice id -> the ERP credit notes crediting one of its ERP copies."""
    t = ds.erp.tables
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in t["account.invoice"].values():
        if rec.get("sequence_type_cache") != "credit_note":
            continue
        origins = {t["account.invoice.line"][lid]["origin"] for lid in rec["lines"]}
        credited = {t["account.invoice.line"][int(o.split(",")[1])]["invoice"] for o in origins}
        assert len(credited) == 1, rec
        out[t["account.invoice"][credited.pop()]["reference"]].append(rec)
    return out


@pytest.mark.parametrize(("customers", "seed"), [(250, 1), (137, 9)])
def test_each_billing_credit_note_and_full_refund_is_booked_as_tryton_credits_unless_planted(
        customers: int, seed: int) -> None:
    ds = generate(customers, seed, anchor=ANCHOR)
    b, t = ds.billing, ds.erp.tables
    notes = _erp_notes(ds)
    planted_notes = {m.object for m in ds.manifest if m.rule == "credit_note.missing_in_erp"}
    planted_refunds = {m.object for m in ds.manifest if m.rule == "invoice.refund_not_reflected"}
    # booked for another amount or tax: the one ERP credit note of the invoice differs from billing's
    planted_amounts = {m.object for m in ds.manifest if m.rule == "credit_note.amount_mismatch"}
    assert planted_notes and planted_refunds and planted_amounts
    booked = 0
    for cn in sorted(b.credit_notes.values(), key=lambda c: c.created):
        got = [n for n in notes.get(cn.invoice, []) if n["total_amount"] == -from_minor(cn.total, cn.currency)]
        if cn.id in planted_notes:
            assert not got
            continue
        if cn.id in planted_amounts:
            [note] = notes[cn.invoice]
            assert (note["total_amount"], note["tax_amount"]) != (-from_minor(cn.total, cn.currency),
                                                                  -from_minor(cn.tax, cn.currency))
            assert note["state"] == "posted" and note["reference"] is None and note["number"]
            continue
        if not got:  # only when there is no posted or paid ERP copy to credit (the invoice rules' case)
            copies = [r for r in t["account.invoice"].values() if r["reference"] == cn.invoice]
            assert all(r["state"] not in ("posted", "paid") for r in copies), cn
            continue
        booked += 1
        note = got[0]
        assert note["tax_amount"] == -from_minor(cn.tax, cn.currency)  # the billed tax, to the minor unit (yen: none)
        assert note["untaxed_amount"] == -from_minor(cn.subtotal - cn.discount, cn.currency)
        assert note["state"] == "posted" and note["reference"] is None and note["number"]
        for lid in note["lines"]:
            line = t["account.invoice.line"][lid]
            assert line["quantity"] < 0 and line["unit_price"] > 0 and line["amount"] < 0
    assert booked >= 10
    for iid in planted_refunds:
        [copy] = [r for r in t["account.invoice"].values() if r["reference"] == iid and r["state"] != "cancelled"]
        assert copy["state"] == "paid" and not notes.get(iid)
    full = 0
    for r in b.refunds.values():
        ch = b.charges[r.charge]
        if r.credit_note is None and r.amount == ch.amount and ch.invoice not in planted_refunds:
            inv = b.invoices[ch.invoice]
            [note] = notes[inv.id]
            assert note["total_amount"] == -from_minor(inv.total, inv.currency)
            full += 1
    assert full >= 2


def test_credit_notes_are_numbered_in_the_invoice_sequence_by_date() -> None:
    ds = generate(250, 2, anchor=ANCHOR)
    numbered = sorted((r for r in ds.erp.tables["account.invoice"].values() if r["number"]),
                      key=lambda r: r["number"])
    assert [r["number"] for r in numbered] == [f"INV-{n:06d}" for n in range(1, len(numbered) + 1)]
    dates = [r["invoice_date"] for r in numbered]
    assert dates == sorted(dates)  # trytond's strict sequence refuses a number dated before the last
    assert sum(r.get("sequence_type_cache") == "credit_note" for r in numbered) >= 10
