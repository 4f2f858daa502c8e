"""Issue G1, item 6: prorations and taxes on the customer's lifecycle timeline
(services/core/timeline_money.py).

A mid-cycle plan change is an entry at the change's own time (the proration lines' period start,
never midnight of a date), naming the charge for the remaining time and the credit for unused
time with their periods; the invoice that bills it is downstream of it with its lag. Each
invoice's and credit note's tax per rate is named on the entry that states its total, in the
currency's own exponent, so a tax mismatch reads as two entries of the same total with
different tax. Hand-built snapshots (tests/worlds.py) and the generated demo company served by
its demo servers and refreshed by a real Engine."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from services.core.domain import (
    CreditNote,
    EventKind,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Money,
    Severity,
    Side,
    System,
    TaxAmount,
)
from services.core.timeline import Timeline, TimelineEntry, TimelineIndex
from services.core.timeline_money import tax_text
from services.demo.environment import DemoEnvironment, DemoOptions
from services.engine import RefreshMode
from tests.services.test_engine import ANCHOR as ENGINE_ANCHOR
from tests.services.test_engine import NO_LIMITS, make_engine
from tests.worlds import MIN, B, E, World, ref

#: the plan change: a time of day, not a date (11 days before the invoice that bills it)
CHANGED = datetime(2026, 5, 9, 14, 37, 21, tzinfo=UTC)
PERIOD_END = datetime(2026, 5, 20, 9, 30, tzinfo=UTC)
FINALIZED = PERIOD_END + timedelta(minutes=58)


def eur(text: str) -> Money:
    return Money(Decimal(text), "EUR")


def line(description: str, amount: str, *, start: datetime | None, end: datetime | None,
         proration: bool) -> InvoiceLine:
    return InvoiceLine(description, "pro_monthly", Decimal(1), eur(amount), period_start=start, period_end=end,
                       proration=proration)


def vat(amount: str, pct: str = "19", *, reverse: bool = False, currency: str = "EUR") -> TaxAmount:
    return TaxAmount("txr_1", Decimal(pct), reverse, Money(Decimal(amount), currency))


def prorated_world(*, periods: bool = True) -> World:
    """cus_1's invoice in_1 (finalized at ``FINALIZED``) billing a mid-cycle upgrade made at
    ``CHANGED``: 120.00 EUR for the remaining time on the new plan, a 45.50 EUR credit for the
    unused time on the old one, and the next period; its ERP copy five minutes later."""
    w = World().customer()
    w.invoice("cus_1", "in_1", finalized=FINALIZED, total="274.50")
    start, end = (CHANGED, PERIOD_END) if periods else (None, None)
    w.b.invoices["in_1"].subscription_id = "sub_cus_1"
    w.b.invoices["in_1"].lines = [
        line("Unused time on 3 × Standard after 09 May 2026", "-45.50", start=start, end=end, proration=True),
        line("Remaining time on 3 × Pro after 09 May 2026", "120.00", start=start, end=end, proration=True),
        line("3 × Pro (at €66.67 / month)", "200.00", start=PERIOD_END, end=PERIOD_END + timedelta(days=31),
             proration=False)]
    return w


def of_kind(tl: Timeline, kind: EventKind) -> list[TimelineEntry]:
    return [e for e in tl.oldest_first() if e.event.kind is kind]


# -- proration ----------------------------------------------------------------------------------
def test_a_mid_cycle_change_is_on_the_timeline_at_its_own_time_with_the_invoice_downstream() -> None:
    tl = prorated_world().timeline()
    [change] = of_kind(tl, EventKind.INVOICE_PRORATION)
    assert change.at == CHANGED and (change.at.hour, change.at.minute, change.at.second) == (14, 37, 21)
    assert change.event.system is System.BILLING and change.group == "invoice:in_1"
    assert change.event.summary == (
        "Mid-cycle change prorated on ACME-1: charge 120.00 EUR for the remaining time "
        "(2026-05-09 14:37 – 2026-05-20 09:30); credit 45.50 EUR for unused time (2026-05-09 14:37 – 2026-05-20 09:30)")
    assert "Unused time on 3 × Standard after 09 May 2026" in change.note
    assert change.lag is None  # the change is the upstream
    [fin] = of_kind(tl, EventKind.INVOICE_FINALIZED)
    assert fin.lag == FINALIZED - CHANGED  # invoiced 11 days after the change
    assert "after the mid-cycle change" in fin.note
    # the change comes before the invoice that bills it, and before the ERP's copy of that invoice
    kinds = [e.event.kind for e in tl.oldest_first() if e.group == "invoice:in_1"]
    assert kinds[:2] == [EventKind.INVOICE_PRORATION, EventKind.INVOICE_FINALIZED]


def test_an_invoice_without_proration_lines_has_no_change_and_no_lag() -> None:
    w = prorated_world()
    for ln in w.b.invoices["in_1"].lines:
        ln.proration = False
    tl = w.timeline()
    assert of_kind(tl, EventKind.INVOICE_PRORATION) == []
    [fin] = of_kind(tl, EventKind.INVOICE_FINALIZED)
    assert fin.lag is None


def test_a_proration_without_a_reported_period_is_said_never_placed_at_an_invented_time() -> None:
    tl = prorated_world(periods=False).timeline()
    assert of_kind(tl, EventKind.INVOICE_PRORATION) == []
    [fin] = of_kind(tl, EventKind.INVOICE_FINALIZED)
    assert fin.lag is None and "2 proration line(s) whose period billing did not report" in fin.note
    assert all(e.at.time() != datetime.min.time() for e in tl.oldest_first())


def test_a_proration_mismatch_marks_the_change_and_the_invoice() -> None:
    w = prorated_world()
    w.exception("subscription.proration_mismatch", "cus_1", "in_1",
                [Side(B, ref(B, "invoice", "in_1"), {"total": "274.50"}),
                 Side(E, ref(E, "account.invoice", "ein_1"), {"total": "200.00"})], severity=Severity.CRITICAL)
    tl = w.timeline()
    xid = "subscription.proration_mismatch:in_1"
    [change] = of_kind(tl, EventKind.INVOICE_PRORATION)
    [fin] = of_kind(tl, EventKind.INVOICE_FINALIZED)
    [copy] = of_kind(tl, EventKind.ERP_INVOICE_CREATED)
    assert xid in change.event.exception_ids and xid in fin.event.exception_ids and xid in copy.event.exception_ids
    # not on the subscription's entries (its object is the invoice)
    assert all(xid not in e.event.exception_ids for e in tl.oldest_first() if e.group == "subscription:sub_cus_1")


# -- tax ----------------------------------------------------------------------------------------
def test_tax_text_names_each_rate_in_the_currencys_exponent() -> None:
    assert tax_text(None) == "" and tax_text(()) == ""
    assert tax_text([vat("0.00", "4.75")]) == ""  # a trial's 0.00 invoice: nothing to say
    assert tax_text([vat("19.00"), vat("1.00", "7")]) == ", of which tax 19 %: 19.00 EUR; 7 %: 1.00 EUR"
    assert tax_text([vat("10.00"), vat("9.00")]) == ", of which tax 19 %: 19.00 EUR"  # one rate, added up
    assert tax_text([vat("0.00", "0", reverse=True)]) == ", of which tax 0 % reverse charge: 0.00 EUR"
    assert tax_text([vat("16800", "10", currency="JPY")]) == ", of which tax 10 %: 16,800 JPY"
    assert tax_text([vat("1.235", "5", currency="KWD")]) == ", of which tax 5 %: 1.235 KWD"


def test_an_invoice_and_its_erp_copy_name_their_tax_per_rate_so_a_tax_mismatch_reads() -> None:
    w = World().customer()
    w.invoice("cus_1", "in_1", finalized=FINALIZED, total="184800")
    for inv, tax in ((w.b.invoices["in_1"], "16800"), (w.e.invoices["ein_1"], "15120")):
        inv.total = Money(Decimal("184800"), "JPY")
        inv.taxes = (vat(tax, "10", currency="JPY"),)
    tl = w.timeline()
    [fin] = of_kind(tl, EventKind.INVOICE_FINALIZED)
    [copy] = of_kind(tl, EventKind.ERP_INVOICE_CREATED)
    assert fin.event.summary == "Invoice ACME-1 finalized: 184,800 JPY, of which tax 10 %: 16,800 JPY"
    assert copy.event.summary == "ERP invoice ERP/1 created for ACME-1: 184,800 JPY, of which tax 10 %: 15,120 JPY"
    assert copy.lag == 5 * MIN  # its lag is unchanged by the tax


def test_credit_notes_name_their_tax_per_rate() -> None:
    w = World().customer()
    w.invoice("cus_1", "in_1", finalized=FINALIZED, paid_after=timedelta(hours=1), erp_paid_after=10 * MIN)
    issued = FINALIZED + timedelta(days=2)
    w.b.credit_notes["cn_1"] = CreditNote(ref(B, "credit_note", "cn_1"), "cus_1", "in_1", "issued", eur("59.50"),
                                          taxes=(vat("9.50"),), number="CN-1", created=issued)
    w.e.credit_notes["ecn"] = CreditNote(ref(E, "account.invoice", "ecn"), "cus_1", "ein_1", "posted", eur("59.50"),
                                         taxes=(vat("9.50"),), number="CN-000001", created=issued + 3 * MIN)
    tl = w.timeline()
    [note] = of_kind(tl, EventKind.CREDIT_NOTE_ISSUED)
    [booked] = of_kind(tl, EventKind.ERP_CREDIT_NOTE_CREATED)
    assert note.event.summary == "Credit note CN-1 issued on ACME-1: 59.50 EUR, of which tax 19 %: 9.50 EUR"
    assert booked.event.summary == "ERP credit note CN-000001 created on ERP/1: 59.50 EUR, of which tax 19 %: 9.50 EUR"
    assert booked.lag == 3 * MIN


def test_an_erp_credit_note_read_as_an_invoice_too_is_on_the_timeline_once_as_a_credit_note() -> None:
    """The Tryton connector reads a credit note as an ``out`` invoice (its invoices) and as a credit
    note: the timeline shows it once, as the credit note (created, then posted at its own time, in
    the credited invoice's credit group), never as an ERP invoice of its own."""
    w = World().customer()
    w.invoice("cus_1", "in_1", finalized=FINALIZED, paid_after=timedelta(hours=1), erp_paid_after=10 * MIN)
    issued = FINALIZED + timedelta(days=2)
    w.b.credit_notes["cn_1"] = CreditNote(ref(B, "credit_note", "cn_1"), "cus_1", "in_1", "issued", eur("59.50"),
                                          number="CN-1", created=issued)
    erp_ref = ref(E, "account.invoice", "ecn")
    w.e.credit_notes["ecn"] = CreditNote(erp_ref, "cus_1", "ein_1", "posted", eur("59.50"), number="INV-000009",
                                         created=issued + 3 * MIN)
    w.e.invoices["ecn"] = Invoice(erp_ref, "cus_1", InvoiceStatus.POSTED, eur("-59.50"), number="INV-000009",
                                  created=issued + 3 * MIN, posted_at=issued + 4 * MIN)
    tl = w.timeline()
    about = [e for e in tl.oldest_first() if e.event.ref == erp_ref]
    assert [e.event.kind for e in about] == [EventKind.ERP_CREDIT_NOTE_CREATED, EventKind.ERP_INVOICE_POSTED]
    made, posted = about
    assert made.group == posted.group == "credit:in_1" and made.lag == 3 * MIN
    assert posted.event.summary == "ERP credit note INV-000009 posted" and posted.at == issued + 4 * MIN
    assert not any(e.event.summary.startswith("ERP invoice INV-000009") for e in tl.oldest_first())


def test_a_credit_note_amount_mismatch_marks_billings_credit_note_and_the_erps() -> None:
    w = World().customer()
    w.invoice("cus_1", "in_1", finalized=FINALIZED, paid_after=timedelta(hours=1), erp_paid_after=10 * MIN)
    issued = FINALIZED + timedelta(days=2)
    w.b.credit_notes["cn_1"] = CreditNote(ref(B, "credit_note", "cn_1"), "cus_1", "in_1", "issued", eur("50.00"),
                                          number="CN-1", created=issued)
    erp_ref = ref(E, "account.invoice", "ecn")
    w.e.credit_notes["ecn"] = CreditNote(erp_ref, "cus_1", "ein_1", "posted", eur("55.00"), number="INV-000009",
                                         created=issued + 3 * MIN)
    w.exception("credit_note.amount_mismatch", "cus_1", "cn_1",
                [Side(B, ref(B, "credit_note", "cn_1"), {"total": "50.00 EUR"}),
                 Side(E, erp_ref, {"total": "55.00 EUR"})])
    tl = w.timeline()
    xid = "credit_note.amount_mismatch:cn_1"
    marked = [e.event.kind for e in tl.oldest_first() if xid in e.event.exception_ids]
    assert marked == [EventKind.CREDIT_NOTE_ISSUED, EventKind.ERP_CREDIT_NOTE_CREATED]


# -- the demo company, refreshed by a real Engine -----------------------------------------------
async def test_the_demo_worlds_prorations_and_taxes_are_on_its_timelines(tmp_path: Path) -> None:
    opts = DemoOptions(customers=300, seed=1, anchor=ENGINE_ANCHOR, faults=dict(NO_LIMITS))
    env = await asyncio.to_thread(lambda: DemoEnvironment(opts).start())
    try:
        engine = await make_engine(env, tmp_path)
        report = await engine.refresh(RefreshMode.FULL)
        assert report.ok, [o.error_text for o in report.failed]
        result, _ = await engine.reconcile(now=env.now())
        snapshot = engine.snapshot()
        index = TimelineIndex(snapshot, exceptions=result.exceptions)
        billing = snapshot.get(System.BILLING)
        # every billing invoice with dated proration lines: its change at the lines' period start
        prorated = [inv for inv in billing.invoices.values()
                    if any(ln.proration and ln.period_start for ln in inv.lines) and inv.customer_id]
        assert len(prorated) >= 3
        for inv in prorated:
            assert inv.customer_id is not None
            tl = index.build(inv.customer_id, now=env.now())
            changes = [e for e in tl.oldest_first() if e.event.kind is EventKind.INVOICE_PRORATION
                       and e.group == f"invoice:{inv.ref.id}"]
            assert [c.at for c in changes] == [min(ln.period_start for ln in inv.lines
                                                   if ln.proration and ln.period_start)]
            assert changes[0].at.time() != datetime.min.time()  # a real time, not midnight of a date
        # each planted proration mismatch marks its change
        for x in result.exceptions:
            if x.rule == "subscription.proration_mismatch":
                assert x.customer_id is not None
                tl = index.build(x.customer_id, now=env.now())
                [change] = [e for e in tl.oldest_first() if e.event.kind is EventKind.INVOICE_PRORATION
                            and e.group == f"invoice:{x.object_id}"]
                assert x.id in change.event.exception_ids
        # a tax mismatch in yen reads as two amounts without decimals on the customer's timeline
        jpy = [x for x in result.exceptions if x.rule == "invoice.tax_mismatch"
               and billing.invoices[x.object_id].currency == "JPY"]
        assert jpy, "the demo plants a tax mismatch in JPY"
        x = jpy[0]
        assert x.customer_id is not None
        tl = index.build(x.customer_id, now=env.now())
        texts = [e.event.summary for e in tl.oldest_first() if x.id in e.event.exception_ids]
        billed = [t for t in texts if t.startswith("Invoice ") and " finalized: " in t]
        booked = [t for t in texts if t.startswith("ERP invoice ")]
        assert billed and booked, texts
        assert "of which tax 10 %: " in billed[0] and "of which tax 10 %: " in booked[0]
        assert billed[0].split("of which tax")[1] != booked[0].split("of which tax")[1]
        assert not any(".00 JPY" in t for t in texts), texts
        await engine.aclose()
        engine.storage.close()
    finally:
        await asyncio.to_thread(env.stop)
