"""Credit note postings against a real trytond 8.2 (G1 item 5; the judge of the demo ERP): the
connector posts a billing credit note as Tryton's credit makes one — an ``out`` invoice copying
the credited invoice's party, currency, journal, accounts and payment term, each line crediting
(``origin``) the line billing credited, the quantity negated, the ERP tax of its billing rate —
compares the draft's untaxed amount, tax and total with billing's (negated) to the cent before
posting, numbers it in the one invoice sequence as a credit note, and finds it by reference when
called again: a partial US sales tax credit note in USD, a full VAT one in GBP, a reverse charge
one in EUR. A wrong tax deletes the draft and posts nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.core.domain import InvoiceStatus
from services.core.errors import RemoteValidationError
from services.demo.dataset import DemoDataset
from services.demo.store import BCreditNote
from services.demo.tryton_sandbox import TrytonSandbox
from services.io.connectors.tryton import TrytonConnector
from services.io.connectors.tryton_credits import CreditLine
from tests.erp.test_real_taxed_postings import tax_ids
from tests.erp.test_real_tryton import TODAY, connector

pytestmark = [pytest.mark.erp, pytest.mark.slow, pytest.mark.timeout(600)]
CENT = Decimal("0.01")


def pick(ds: DemoDataset, kind: str) -> BCreditNote:
    billing = ds.billing
    for cn in sorted(billing.credit_notes.values(), key=lambda c: c.id):
        inv = billing.invoices[cn.invoice]
        rates = [billing.tax_rates[ln.tax_rate] for ln in cn.lines if ln.tax_rate is not None]
        if cn.status != "issued" or len(rates) != 1 or len(cn.lines) != 1:
            continue
        [rate] = rates
        full = cn.total == inv.total
        fits = {
            "partial_usd_sales_tax": not full and cn.currency == "usd" and cn.tax > 0 and rate.tax_type == "sales_tax",
            "full_gbp_vat": full and cn.currency == "gbp" and cn.tax > 0 and rate.tax_type == "vat",
            "eur_reverse_charge": cn.currency == "eur" and cn.tax == 0 and rate.tax_type == "vat"
            and Decimal(rate.percentage) == 0,
        }[kind]
        if fits:
            return cn
    raise AssertionError(f"no {kind} billing credit note in the demo")


def credit_posting(ds: DemoDataset, cn: BCreditNote, mapping: dict[str, int]
                   ) -> tuple[list[CreditLine], list[list[int]], tuple[Decimal, Decimal, Decimal]]:
    """As the fix posts it: each line crediting the invoice line billing credited (its position
    and description), net of its discount (quantity × unit when exact, else 1 × the net), its
    rate's ERP tax; billing's (untaxed, tax, total), negated."""
    inv = ds.billing.invoices[cn.invoice]
    position = {ln.id: i for i, ln in enumerate(inv.lines)}
    lines: list[CreditLine] = []
    taxes: list[list[int]] = []
    for ln in cn.lines:
        at = position[ln.invoice_line_item]
        net = Decimal(ln.amount - ln.discount_amount) * CENT
        unit = (net / ln.quantity).quantize(CENT) if ln.quantity else None
        qty, unit = (Decimal(ln.quantity), unit) if unit is not None and unit * ln.quantity == net \
            else (Decimal(1), net)
        lines.append((at, inv.lines[at].description, qty, unit, ln.description))
        taxes.append([mapping[ln.tax_rate]] if ln.tax_rate is not None else [])
    untaxed = Decimal(cn.subtotal - cn.discount) * CENT
    return lines, taxes, (-untaxed, -Decimal(cn.tax) * CENT, -Decimal(cn.total) * CENT)


async def credited_invoices(c: TrytonConnector, note_id: int) -> set[int]:
    [row] = await c.call("account.invoice", "read", [note_id], ["lines"], safe=True)
    lines = await c.call("account.invoice.line", "read", row["lines"], ["origin", "quantity"], safe=True)
    out = set()
    for line in lines:
        model, _, lid = str(line["origin"]).partition(",")
        assert model == "account.invoice.line" and float(line["quantity"]) < 0, line
        [origin] = await c.call("account.invoice.line", "read", [int(lid)], ["invoice"], safe=True)
        out.add(origin["invoice"])
    return out


@pytest.mark.parametrize("kind", ["partial_usd_sales_tax", "full_gbp_vat", "eur_reverse_charge"])
async def test_a_billing_credit_note_is_posted_against_its_invoice_equal_to_billing_to_the_cent(
        real_tryton: TrytonSandbox, erp_dataset: DemoDataset, kind: str) -> None:
    c = connector(real_tryton)
    cn = pick(erp_dataset, kind)
    found = await c.find_invoice(cn.invoice)
    assert found is not None and found[1] in ("posted", "paid"), (cn.invoice, found)
    invoice_id = found[0]
    lines, taxes, expected = credit_posting(erp_dataset, cn, await tax_ids(c, erp_dataset))
    note_id = await c.ensure_credit_note_posted(cn.id, invoice_id, cn.currency.upper(), TODAY, lines,
                                                line_taxes=taxes, expected=expected)
    inv, note = await c.get_credit_note(note_id)
    assert inv.status is InvoiceStatus.POSTED and inv.total.currency == cn.currency.upper()
    assert inv.net is not None and inv.tax is not None
    assert (inv.net.amount, inv.tax.amount, inv.total.amount) == expected
    # a credit note of that invoice (Tryton's own test: numbered in the credit note sequence type)
    [row] = await c.call("account.invoice", "read", [note_id], ["sequence_type_cache", "number", "reference"],
                         safe=True)
    assert row["sequence_type_cache"] == "credit_note" and row["number"] and row["reference"] == cn.id
    assert note.invoice_id == str(invoice_id) and note.total.amount == Decimal(cn.total) * CENT
    assert await credited_invoices(c, note_id) == {invoice_id}
    # the credited invoice is left as it was
    assert (await c.find_invoice(cn.invoice)) == found
    # repeated (a lost answer, a replay): the same credit note, nothing added
    assert await c.ensure_credit_note_posted(cn.id, invoice_id, cn.currency.upper(), TODAY, lines,
                                             line_taxes=taxes, expected=expected) == note_id
    assert await c._ids("account.invoice", [["reference", "=", cn.id]]) == [note_id]
    await c.aclose()


async def test_a_credit_note_whose_totals_are_not_billings_is_deleted_and_nothing_posted(
        real_tryton: TrytonSandbox, erp_dataset: DemoDataset) -> None:
    """A wrong mapping (the reverse charge's 0 % tax for a 20 % VAT rate) is caught before posting."""
    c = connector(real_tryton)
    cn = pick(erp_dataset, "full_gbp_vat")
    mapping = await tax_ids(c, erp_dataset)
    zero = next(mapping[r] for r, rate in erp_dataset.billing.tax_rates.items()
                if rate.tax_type == "vat" and Decimal(rate.percentage) == 0)
    found = await c.find_invoice(cn.invoice)
    assert found is not None
    lines, _taxes, expected = credit_posting(erp_dataset, cn, mapping)
    with pytest.raises(RemoteValidationError, match="nothing posted"):
        await c.ensure_credit_note_posted("cn_REALCREDIT_WRONG", found[0], cn.currency.upper(), TODAY, lines,
                                          line_taxes=[[zero] for _ in lines], expected=expected)
    assert await c._ids("account.invoice", [["reference", "=", "cn_REALCREDIT_WRONG"]]) == []
    await c.aclose()
