"""The invoice fixes of G8.4 and G6.5 against a real trytond 8.2 (the judge of the demo ERP):
a posting the strict sequence refuses leaves a draft, which is then posted (dated for the
sequence) or deleted and posted again; postings of several dates, oldest first, all pass; a
*paid* invoice is credited without refund (Tryton refunds only an unpaid one) and a corrected
copy posted, totalling billing's to the cent; the seeded ``invoice.not_posted_in_erp`` plants
are real drafts and validated invoices."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from services.core.domain import InvoiceStatus
from services.core.errors import RemoteValidationError
from services.demo.dataset import DemoDataset
from services.demo.tryton_sandbox import TrytonSandbox, copy_database
from tests.erp.test_real_tryton import TODAY, DroppingTransport, connector, lines_of

pytestmark = [pytest.mark.erp, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def fresh_tryton(tryton_template: Path, tmp_path: Path) -> Iterator[TrytonSandbox]:
    """A server of its own (the invoice sequence as seeded)."""
    with TrytonSandbox(copy_database(tryton_template, tmp_path)) as sandbox:
        yield sandbox


async def latest_number_date(sandbox: TrytonSandbox) -> object:
    c = connector(sandbox)
    [row] = await c.call("account.invoice", "search_read", [["number", "!=", None], ["type", "=", "out"]],
                         0, 1, [["invoice_date", "DESC"]], ["invoice_date"], safe=True)
    await c.aclose()
    return row["invoice_date"]


async def test_a_refused_posting_leaves_a_draft_that_post_and_repost_close(fresh_tryton: TrytonSandbox,
                                                                           erp_dataset: DemoDataset) -> None:
    c = connector(fresh_tryton)
    latest = await latest_number_date(fresh_tryton)
    too_early = latest - timedelta(days=2)  # type: ignore[operator]
    lines = lines_of(erp_dataset, "starter_monthly_usd")
    party = await c.ensure_party("cus_REALDRAFT", "Draft Left Inc.", None, "US", None)
    drafts = {}
    for ref in ("in_REALDRAFT1", "in_REALDRAFT2"):
        with pytest.raises(RemoteValidationError, match="must set an invoice date after"):
            await c.ensure_invoice_posted(ref, party, "USD", too_early, lines)
        [drafts[ref]] = await c._ids("account.invoice", [["reference", "=", ref]])
        assert (await c.get_invoice(drafts[ref])).status is InvoiceStatus.DRAFT
    # post: dated for the sequence first; a repeat posts nothing again
    assert await c.post_draft_invoice(drafts["in_REALDRAFT1"], "in_REALDRAFT1", TODAY) == drafts["in_REALDRAFT1"]
    posted = await c.get_invoice(drafts["in_REALDRAFT1"])
    assert posted.status is InvoiceStatus.POSTED and posted.invoice_date == TODAY and posted.number
    assert await c.post_draft_invoice(drafts["in_REALDRAFT1"], "in_REALDRAFT1", TODAY) == drafts["in_REALDRAFT1"]
    with pytest.raises(RemoteValidationError, match="carries reference"):
        await c.post_draft_invoice(drafts["in_REALDRAFT2"], "in_OTHER", TODAY)
    # delete and re-post: the draft is gone (Tryton deletes an unnumbered draft), one posted copy;
    # its answers lost and run again: nothing deleted twice, no second copy
    transport = DroppingTransport({"model.account.invoice.delete", "model.account.invoice.post"}, drops=2)
    lossy = connector(fresh_tryton, transport=transport)
    new = await lossy.delete_draft_and_repost(drafts["in_REALDRAFT2"], "in_REALDRAFT2", party, "USD", TODAY, lines)
    assert transport.dropped == ["model.account.invoice.delete", "model.account.invoice.post"]
    assert new != drafts["in_REALDRAFT2"]
    assert await lossy.delete_draft_and_repost(drafts["in_REALDRAFT2"], "in_REALDRAFT2", party, "USD", TODAY,
                                               lines) == new
    assert await c._ids("account.invoice", [["reference", "=", "in_REALDRAFT2"]]) == [new]
    assert (await c.get_invoice(new)).status is InvoiceStatus.POSTED
    # a posted invoice is never deleted
    with pytest.raises(RemoteValidationError, match="only a draft that was never numbered"):
        await c.delete_draft_invoice(new, "in_REALDRAFT2")
    await lossy.aclose()
    await c.aclose()


async def test_postings_oldest_date_first_all_pass(fresh_tryton: TrytonSandbox, erp_dataset: DemoDataset) -> None:
    """The order the bulk fix uses: several dates after the sequence's latest, oldest first."""
    c = connector(fresh_tryton)
    latest = await latest_number_date(fresh_tryton)
    lines = lines_of(erp_dataset, "starter_monthly_usd")
    party = await c.ensure_party("cus_REALORDER", "Order Matters Ltd", None, "US", None)
    dates = sorted(TODAY - timedelta(days=d) for d in (0, 1, 2, 3) if TODAY - timedelta(days=d) >= latest)
    assert len(dates) >= 2, "the anchor is long past: the sequence's latest date is before today"
    ids = [await c.ensure_invoice_posted(f"in_REALORDER{i}", party, "USD", d, lines) for i, d in enumerate(dates)]
    read = [await c.get_invoice(i) for i in ids]
    assert [r.status for r in read] == [InvoiceStatus.POSTED] * len(ids)
    assert [r.number for r in read] == sorted(r.number or "" for r in read)
    await c.aclose()


async def test_a_paid_invoice_is_credited_without_refund_and_reposted(fresh_tryton: TrytonSandbox,
                                                                      erp_dataset: DemoDataset) -> None:
    c = connector(fresh_tryton)
    # an untaxed one: a corrected copy's lines take the taxes the ERP proposes for the party (its
    # customer tax rule), which these tax-free lines do not total
    [original] = await c.call("account.invoice", "search_read",
                              [["state", "=", "paid"], ["type", "=", "out"], ["reference", "like", "in_%"],
                               ["tax_amount", "=", 0]],
                              0, 1, [["id", "DESC"]], ["reference", "party", "total_amount", "currency.code"],
                              safe=True)
    iid, ref, party = original["id"], original["reference"], original["party"]
    currency = original["currency."]["code"]
    binv = erp_dataset.billing.invoices[ref]
    lines = lines_of(erp_dataset, f"starter_monthly_{currency.lower()}")
    billing_total = sum((Decimal(q) * p for _, q, p, _ in lines), Decimal("0")).quantize(Decimal("0.01"))
    assert billing_total != original["total_amount"], "the corrected lines differ from the paid invoice's"
    transport = DroppingTransport({"wizard.account.invoice.credit.execute", "model.account.invoice.create"}, drops=2)
    lossy = connector(fresh_tryton, transport=transport)
    credit, corrected = await lossy.credit_and_repost(iid, ref, party, currency, TODAY, lines)
    assert transport.dropped == ["wizard.account.invoice.credit.execute", "model.account.invoice.create"]
    assert credit is not None
    assert await lossy.credit_and_repost(iid, ref, party, currency, TODAY, lines) == (credit, corrected)
    original_inv, note, copy = [await c.get_invoice(i) for i in (iid, credit, corrected)]
    assert original_inv.status is InvoiceStatus.PAID, "Tryton leaves a paid invoice paid"
    assert note.status is InvoiceStatus.POSTED and note.billing_invoice_id is None and note.number
    assert note.total.amount == -original["total_amount"] and note.invoice_date == TODAY
    assert copy.status is InvoiceStatus.POSTED and copy.billing_invoice_id == ref
    assert copy.total.amount == billing_total
    assert original_inv.total.amount + note.total.amount + copy.total.amount == billing_total
    [row] = await c.call("account.invoice", "read", [iid], ["reference"], safe=True)
    assert row["reference"] == f"credited: {ref} by {note.number}"
    assert await c._ids("account.invoice", [["reference", "=", ref], ["state", "!=", "cancelled"]]) == [corrected]
    assert await c._ids("account.invoice", [["origin_invoices", "=", iid]]) == [credit]
    assert binv.id == ref
    await lossy.aclose()
    await c.aclose()


async def test_the_seeded_not_posted_plants_are_drafts_and_validated(real_tryton: TrytonSandbox,
                                                                     erp_dataset: DemoDataset) -> None:
    c = connector(real_tryton)
    planted = [m.object for m in erp_dataset.manifest if m.rule == "invoice.not_posted_in_erp"]
    assert planted
    states = set()
    for ref in planted:
        rows = await c.call("account.invoice", "search_read", [["reference", "=", ref], ["state", "!=", "cancelled"]],
                            0, None, None, ["state", "number"], safe=True)
        assert len(rows) == 1 and rows[0]["number"] is None, rows
        states.add(rows[0]["state"])
    assert states <= {"draft", "validated"} and "validated" in states
    await c.aclose()
