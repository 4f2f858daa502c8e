"""Issue G1, item 6: each ERP invoice's timeline events are its real state changes at their real
times — created, posted, paid, cancelled, as far as the record's own history tells them (a time
it does not keep is said, never invented: no "posted" at midnight of the invoice date) — and an
``invoice.missing_in_erp`` whose only ERP copy was cancelled shows that copy (its number, state
and cancellation time) on its ERP side instead of "not present".

Hand-built snapshots (tests/worlds.py), the Tryton payload mapping on hand-made records, and the
generated demo company served by its demo servers and refreshed by a real Engine."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from services.core.domain import CreditNote, EventKind, Invoice, InvoiceStatus, Money, Refund, SyncException
from services.core.history import record_changes
from services.core.reconcile import ReconcileConfig, reconcile
from services.core.sysdata import SystemData
from services.core.timeline import Timeline, TimelineEntry, TimelineIndex
from services.io.connectors.tryton_payloads import TInvoice, map_invoice
from tests.worlds import MIN, NOW, B, E, World, ref

FINALIZED = datetime(2026, 5, 20, 9, 30, tzinfo=UTC)
MIDNIGHT = datetime(2026, 5, 20, tzinfo=UTC)  # of the invoice date


def group(tl: Timeline, key: str) -> list[TimelineEntry]:
    return [e for e in tl.oldest_first() if e.group == key]


def of_kind(entries: list[TimelineEntry], kind: EventKind) -> list[TimelineEntry]:
    return [e for e in entries if e.event.kind is kind]


def cancelled_only_world(*copies: tuple[str, str | None, datetime]) -> World:
    """cus_1's open billing invoice in_1 (finalized at ``FINALIZED``) whose only ERP copies are
    cancelled: ``(id, number, cancelled at)`` each, created five minutes after the finalization,
    invoice date = the finalization's day."""
    w = World().customer()
    w.invoice("cus_1", "in_1", finalized=FINALIZED, erp_after=None)
    for ident, number, cancelled in copies:
        w.e.invoices[ident] = Invoice(ref(E, "account.invoice", ident), "cus_1", InvoiceStatus.CANCELLED,
                                      w.b.invoices["in_1"].total, number=number, billing_invoice_id="in_1",
                                      created=FINALIZED + 5 * MIN, voided_at=cancelled,
                                      invoice_date=FINALIZED.date())
    return w


def missing_exception(w: World) -> SyncException:
    [exc] = [x for x in reconcile(w.snapshot(), ReconcileConfig(), NOW).exceptions
             if x.rule == "invoice.missing_in_erp"]
    return exc


# -- the timeline over hand-built snapshots ----------------------------------------------------
def test_a_cancelled_erp_invoice_is_cancelled_at_its_write_time_never_posted_at_midnight() -> None:
    cancelled_at = FINALIZED + timedelta(hours=3, minutes=7)
    w = cancelled_only_world(("ecx", None, cancelled_at))
    exc = missing_exception(w)
    tl = w.timeline(exceptions=[exc])
    entries = group(tl, "invoice:in_1")
    erp = [e for e in entries if e.event.ref.system is E]  # the copy's own entries
    assert [e.event.kind for e in erp] == [EventKind.ERP_INVOICE_CREATED, EventKind.ERP_INVOICE_CANCELLED]
    [cancelled] = of_kind(erp, EventKind.ERP_INVOICE_CANCELLED)
    assert cancelled.event.at == cancelled_at and cancelled.event.ref == ref(E, "account.invoice", "ecx")
    assert cancelled.event.summary == "ERP invoice ecx cancelled"
    assert not of_kind(tl.oldest_first(), EventKind.ERP_INVOICE_POSTED)
    assert all(e.event.at != MIDNIGHT for e in tl.oldest_first())
    # a never-numbered cancelled draft was never posted: nothing says it was
    assert not any("posted" in e.note for e in erp)
    # the ERP invoice it should have is still expected (missing), and the exception sits on the copy's entries
    [expected] = [m for m in tl.missing if m.group == "invoice:in_1"]
    assert expected.status == "missing" and expected.event.kind is EventKind.ERP_INVOICE_CREATED
    assert exc.id in cancelled.event.exception_ids


def test_a_numbered_cancelled_copy_says_it_was_posted_at_a_time_the_erp_does_not_keep() -> None:
    w = cancelled_only_world(("ecx", "INV-000012", FINALIZED + timedelta(hours=2)))
    erp = [e for e in group(w.timeline(), "invoice:in_1") if e.event.ref.system is E]  # the copy's own entries
    assert [e.event.kind for e in erp] == [EventKind.ERP_INVOICE_CREATED, EventKind.ERP_INVOICE_CANCELLED]
    assert "numbered, so it was posted at a time the ERP does not keep" in erp[0].note
    assert erp[1].event.summary == "ERP invoice INV-000012 cancelled"


def test_cancellation_unknown_in_time_is_said_not_placed() -> None:
    w = cancelled_only_world(("ecx", None, FINALIZED))
    w.e.invoices["ecx"].voided_at = None
    erp = [e for e in group(w.timeline(), "invoice:in_1") if e.event.ref.system is E]  # the copy's own entries
    assert [e.event.kind for e in erp] == [EventKind.ERP_INVOICE_CREATED]
    assert "cancelled at a time the ERP does not keep" in erp[0].note


def test_posted_time_comes_from_the_record_and_a_paid_copy_does_not_invent_its_posting() -> None:
    w = World().customer()
    w.invoice("cus_1", "in_1", finalized=FINALIZED, paid_after=timedelta(hours=1), erp_paid_after=10 * MIN)
    w.invoice("cus_1", "in_2", finalized=FINALIZED + timedelta(days=1))
    paid_copy, posted_copy = w.e.invoices["ein_1"], w.e.invoices["ein_2"]
    paid_copy.posted_at = None  # trytond keeps no posting time once the invoice is paid
    paid_copy.invoice_date = posted_copy.invoice_date = FINALIZED.date()
    posted_copy.posted_at = FINALIZED + timedelta(days=1, minutes=7)
    tl = w.timeline()
    one = [e for e in tl.oldest_first() if e.event.ref == paid_copy.ref]
    assert [e.event.kind for e in one] == [EventKind.ERP_INVOICE_CREATED, EventKind.ERP_INVOICE_PAID]
    assert "posted at a time the ERP does not keep" in one[0].note
    assert one[1].event.at == FINALIZED + timedelta(hours=1, minutes=10)
    two = [e for e in tl.oldest_first() if e.event.ref == posted_copy.ref]
    assert [e.event.kind for e in two] == [EventKind.ERP_INVOICE_CREATED, EventKind.ERP_INVOICE_POSTED]
    assert two[1].event.at == FINALIZED + timedelta(days=1, minutes=7)
    assert two[1].lag == timedelta(minutes=7)  # a real time: its lag from billing's finalization
    assert all(e.event.at != MIDNIGHT for e in tl.oldest_first())


def test_erp_cancellation_is_downstream_of_billings_void() -> None:
    w = World().customer()
    w.invoice("cus_1", "in_1", finalized=FINALIZED, status=InvoiceStatus.VOID, erp_status=InvoiceStatus.CANCELLED)
    w.b.invoices["in_1"].voided_at = FINALIZED + timedelta(hours=1)
    copy = w.e.invoices["ein_1"]
    copy.posted_at, copy.voided_at = None, FINALIZED + timedelta(hours=1, minutes=4)
    entries = group(w.timeline(), "invoice:in_1")
    [cancelled] = of_kind(entries, EventKind.ERP_INVOICE_CANCELLED)
    assert cancelled.lag == timedelta(minutes=4) and "after billing voided it" in cancelled.note
    [voided] = of_kind(entries, EventKind.INVOICE_VOIDED)
    assert voided.event.system is B and voided.event.at < cancelled.event.at


# -- credit notes and refunds ------------------------------------------------------------------
def credited_world() -> World:
    """cus_1's invoice in_1 (1234.00 EUR, paid an hour after its finalization, its ERP copy ein_1
    paid too), credited 50.00 EUR two days later in billing (CN-1) and refunded a minute after;
    the ERP's credit note on ein_1 follows 20 minutes after billing's."""
    w = World().customer()
    w.invoice("cus_1", "in_1", finalized=FINALIZED, paid_after=timedelta(hours=1), erp_paid_after=10 * MIN)
    fifty = Money(Decimal("50.00"), "EUR")
    issued = FINALIZED + timedelta(days=2)
    w.b.credit_notes["cn_1"] = CreditNote(ref(B, "credit_note", "cn_1"), "cus_1", "in_1", "issued", fifty,
                                          number="CN-1", created=issued)
    w.b.refunds["re_1"] = Refund(ref(B, "refund", "re_1"), "cus_1", "in_1", "ch_1", fifty, "succeeded",
                                 created=issued + MIN, credit_note_id="cn_1")
    w.e.credit_notes["ecn"] = CreditNote(ref(E, "account.invoice", "ecn"), "cus_1", "ein_1", "posted", fifty,
                                         number="CN-000001", created=issued + 20 * MIN)
    return w


def test_credit_notes_and_refunds_are_on_the_timeline_with_their_lags() -> None:
    w = credited_world()
    tl = w.timeline()
    credit = group(tl, "credit:in_1")
    assert [e.event.kind for e in credit] == [EventKind.CREDIT_NOTE_ISSUED, EventKind.ERP_CREDIT_NOTE_CREATED]
    issued, erp = credit
    assert issued.event.summary == "Credit note CN-1 issued on ACME-1: 50.00 EUR"
    assert issued.lag == timedelta(days=2) and issued.status == "ok"
    assert erp.event.summary == "ERP credit note CN-000001 created on ERP/1: 50.00 EUR"
    assert erp.lag == 20 * MIN and erp.status == "late"  # past the 15 min invoice grace
    assert "after billing issued its credit note" in erp.note
    [refund] = of_kind(group(tl, "payment:in_1"), EventKind.REFUND_CREATED)
    assert refund.event.summary == "Refund re_1 of 50.00 EUR on ACME-1 (succeeded)"
    assert refund.lag == timedelta(days=2, minutes=1) - timedelta(hours=1)  # after the payment
    assert "with credit note cn_1" in refund.note


def test_an_erp_credit_note_billing_never_issued_says_so() -> None:
    w = credited_world()
    w.b.credit_notes["cn_1"].voided_at = FINALIZED + timedelta(days=2, minutes=5)
    w.b.credit_notes["cn_1"].status = "void"
    credit = group(w.timeline(), "credit:in_1")
    assert [e.event.kind for e in credit] == [EventKind.CREDIT_NOTE_ISSUED, EventKind.CREDIT_NOTE_VOIDED,
                                              EventKind.ERP_CREDIT_NOTE_CREATED]
    erp = credit[-1]
    assert erp.lag is None and "no billing credit note of 50.00 EUR on in_1" in erp.note


# -- the exception's side-by-side ---------------------------------------------------------------
def test_missing_in_erp_side_shows_the_cancelled_copy() -> None:
    w = cancelled_only_world(("ecx", "INV-000012", FINALIZED + timedelta(hours=2)))
    exc = missing_exception(w)
    billing, erp = exc.sides
    assert billing.system is B and erp.system is E
    assert erp.ref == ref(E, "account.invoice", "ecx")
    assert erp.values["state"] == "cancelled" and erp.values["number"] == "INV-000012"
    assert erp.values["live invoice"] == "none"
    assert erp.values["cancelled at"] == "2026-05-20 11:30 UTC"
    assert erp.values["total"] == "1234.00" and erp.values["currency"] == "EUR"
    assert "only a cancelled copy, INV-000012" in exc.summary


def test_missing_in_erp_with_several_cancelled_copies_names_them_all() -> None:
    w = cancelled_only_world(("ea", "INV-000001", FINALIZED + timedelta(hours=1)),
                             ("eb", None, FINALIZED + timedelta(hours=5)))
    exc = missing_exception(w)
    erp = exc.sides[1]
    assert erp.ref == ref(E, "account.invoice", "eb")  # the latest cancelled
    assert erp.values["cancelled copies"] == ["INV-000001", "ERP invoice eb"]
    assert "2 cancelled copies, INV-000001, ERP invoice eb" in exc.summary


def test_missing_in_erp_without_any_copy_still_says_none() -> None:
    w = World().customer().invoice("cus_1", "in_1", finalized=FINALIZED, erp_after=None)
    exc = missing_exception(w)
    assert exc.sides[1].ref is None and exc.sides[1].values == {"invoice": None}


# -- the Tryton mapping: the state's time from the record's own history ------------------------
def tryton_invoice(state: str, created: datetime, written: datetime | None, **extra: Any) -> Invoice:
    rec = {"id": 7, "create_date": created, "write_date": written, "type": "out", "number": "INV-000007",
           "reference": "in_1", "party": 3, "party.": {"id": 3, "code": "cus_1"}, "state": state,
           "currency": 1, "currency.": {"id": 1, "code": "EUR"}, "total_amount": Decimal("90.00"),
           "invoice_date": date(2026, 5, 1), **extra}
    return map_invoice(TInvoice.model_validate(rec))


def test_tryton_mapping_derives_state_times_from_history_never_from_the_invoice_date() -> None:
    made, wrote = datetime(2026, 5, 3, 8, 15), datetime(2026, 5, 3, 9, 40)  # naive UTC, as trytond sends
    aware_made, aware_wrote = made.replace(tzinfo=UTC), wrote.replace(tzinfo=UTC)
    posted = tryton_invoice("posted", made, wrote)
    assert (posted.created, posted.posted_at, posted.paid_at, posted.voided_at) == (
        aware_made, aware_wrote, None, None)
    created_posted = tryton_invoice("posted", made, None)  # never written since it was created posted
    assert created_posted.posted_at == aware_made
    paid = tryton_invoice("paid", made, wrote)
    assert (paid.posted_at, paid.paid_at, paid.voided_at) == (None, aware_wrote, None)
    cancelled = tryton_invoice("cancelled", made, wrote)
    assert (cancelled.posted_at, cancelled.paid_at, cancelled.voided_at) == (None, None, aware_wrote)
    draft = tryton_invoice("draft", made, wrote, number=None)
    assert (draft.posted_at, draft.paid_at, draft.voided_at) == (None, None, None)
    for inv in (posted, paid, cancelled, draft):
        assert datetime(2026, 5, 1, tzinfo=UTC) not in (inv.posted_at, inv.paid_at, inv.voided_at)


# -- what SyncDesk saw: a posting time the ERP's record forgets once paid -----------------------
def test_a_posting_time_seen_before_is_kept_when_the_invoice_is_paid() -> None:
    """The engine records every refresh (full, incremental) and every action's read-back through
    ``record_changes(before, ..., into, ...)``: a paid version of an invoice it saw posted keeps
    that posting time, so the timeline shows "posted" at it instead of "unknown"."""
    w = World().customer()
    w.invoice("cus_1", "in_1", finalized=FINALIZED, paid_after=timedelta(hours=1), erp_paid_after=10 * MIN)
    seen_posted = FINALIZED + 6 * MIN
    paid_copy = w.e.invoices["ein_1"]
    before = SystemData(E)
    before.invoices["ein_1"] = Invoice(paid_copy.ref, "cus_1", InvoiceStatus.POSTED, paid_copy.total,
                                       number=paid_copy.number, billing_invoice_id="in_1",
                                       created=paid_copy.created, posted_at=seen_posted)
    paid_copy.posted_at = None  # as the connector maps the paid version: its posting time is gone
    draft_copy = Invoice(ref(E, "account.invoice", "edraft"), "cus_1", InvoiceStatus.DRAFT, paid_copy.total)
    before.invoices["edraft"] = Invoice(draft_copy.ref, "cus_1", InvoiceStatus.POSTED, paid_copy.total,
                                        posted_at=seen_posted)
    into = SystemData(E, invoices={"ein_1": paid_copy, "edraft": draft_copy})
    record_changes(before, {}, into, NOW)
    assert paid_copy.posted_at == seen_posted
    assert draft_copy.posted_at is None  # only a state after posting inherits it
    one = [e for e in w.timeline().oldest_first() if e.event.ref == paid_copy.ref]
    assert [e.event.kind for e in one] == [EventKind.ERP_INVOICE_CREATED, EventKind.ERP_INVOICE_POSTED,
                                           EventKind.ERP_INVOICE_PAID]
    assert one[1].event.at == seen_posted
    assert not any("does not keep" in e.note for e in one)


# -- the demo company ------------------------------------------------------------------------
async def test_demo_company_erp_invoices_show_their_real_state_changes(tmp_path: Path) -> None:
    """The generated demo company served by its demo servers, refreshed by a real Engine: every
    cancelled ERP invoice shows as cancelled at the write time the demo ERP holds and never as
    posted; a paid one is paid at its write time; a posted one never written since is posted at
    its creation; nothing ERP sits at midnight of an invoice date unless a real time is there;
    and each planted "only a cancelled copy" missing invoice shows that copy on its ERP side."""
    from services.demo.environment import DemoEnvironment, DemoOptions
    from services.engine import RefreshMode
    from tests.services.test_engine import ANCHOR, NO_LIMITS, make_engine

    env = await asyncio.to_thread(lambda: DemoEnvironment(DemoOptions(
        customers=120, seed=7, anchor=ANCHOR, faults=dict(NO_LIMITS))).start())
    try:
        engine = await make_engine(env, tmp_path)
        try:
            report = await engine.refresh(RefreshMode.FULL)
            assert report.ok, [o.error_text for o in report.failed]
            now = env.now()
            result, _ = await engine.reconcile(now=now)
            snapshot = engine.snapshot()
        finally:
            await engine.aclose()
            engine.storage.close()
    finally:
        await asyncio.to_thread(env.stop)

    index = TimelineIndex(snapshot, exceptions=result.exceptions)
    store = env.dataset.erp.tables["account.invoice"]
    erp = snapshot.get(E).invoices
    seen = {"cancelled": 0, "paid": 0, "posted": 0}
    timelines: dict[str, Timeline] = {}
    for rid, rec in store.items():
        copy = erp.get(str(rid))
        if copy is None or copy.customer_id is None or rec["type"] != "out":
            continue
        tl = timelines.setdefault(copy.customer_id, index.build(copy.customer_id, now=now))
        mine = [e for e in tl.oldest_first() if e.event.ref == copy.ref]
        kinds = [e.event.kind for e in mine]
        written = rec["write_date"].replace(tzinfo=UTC) if rec["write_date"] else None
        made = rec["create_date"].replace(tzinfo=UTC)
        state = rec["state"]
        if state == "cancelled":
            seen["cancelled"] += 1
            assert EventKind.ERP_INVOICE_POSTED not in kinds, (rid, kinds)
            [cancelled] = of_kind(mine, EventKind.ERP_INVOICE_CANCELLED)
            assert cancelled.event.at == (written or made), rid
        elif state == "paid":
            seen["paid"] += 1
            assert EventKind.ERP_INVOICE_POSTED not in kinds, (rid, kinds)
            [paid] = of_kind(mine, EventKind.ERP_INVOICE_PAID)
            assert paid.event.at == (written or made), rid
            assert "posted at a time the ERP does not keep" in mine[0].note
        elif state == "posted":
            seen["posted"] += 1
            [posted] = of_kind(mine, EventKind.ERP_INVOICE_POSTED)
            assert posted.event.at == (written or made), rid
        for entry in mine:
            if rec["invoice_date"] is not None and entry.event.at == datetime.combine(
                    rec["invoice_date"], datetime.min.time(), UTC):
                assert entry.event.at in (made, written), (rid, entry.event)
    assert all(seen.values()), seen  # every state was exercised
    # billing's credit notes and refunds, as the connector read them, are on their customers' timelines
    billing = snapshot.get(B)
    for kind, records in ((EventKind.CREDIT_NOTE_ISSUED, billing.credit_notes.values()),
                          (EventKind.REFUND_CREATED, billing.refunds.values())):
        for rec in records:
            if rec.customer_id is None or rec.created is None:
                continue
            tl = timelines.setdefault(rec.customer_id, index.build(rec.customer_id, now=now))
            assert of_kind([e for e in tl.oldest_first() if e.event.ref == rec.ref], kind), rec.ref
    only_cancelled = [m for m in env.dataset.manifest
                      if m.rule == "invoice.missing_in_erp" and "only a cancelled copy" in m.detail]
    assert only_cancelled, "the demo plants a missing invoice with only a cancelled copy"
    by_id = {x.id: x for x in result.exceptions}
    for m in only_cancelled:
        exc = by_id[f"invoice.missing_in_erp:{m.object}"]
        side = next(s for s in exc.sides if s.system is E)
        assert side.ref is not None, m
        rec = store[int(side.ref.id)]
        assert rec["reference"] == m.object and rec["state"] == "cancelled"
        assert side.values["state"] == "cancelled" and side.values["number"] == rec["number"]
        assert "cancelled" in exc.summary
        assert m.customer is not None
        tl = timelines.get(m.customer) or index.build(m.customer, now=now)
        assert of_kind([e for e in tl.oldest_first() if e.event.ref == side.ref], EventKind.ERP_INVOICE_CANCELLED)
