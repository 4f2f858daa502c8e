"""The lifecycle timeline on hand-built snapshots: one consistent customer, then one deviation at a time."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.core.domain import (
    Customer,
    EventKind,
    Invoice,
    InvoiceStatus,
    LifecycleEvent,
    Money,
    Severity,
    SubscriptionStatus,
    SupportCase,
    SyncException,
    Team,
    Tier,
)
from services.core.timeline import (
    UNKNOWN_CUSTOMER,
    Timeline,
    TimelineConfig,
    TimelineEntry,
    TimelineIndex,
    human_duration,
)
from tests.worlds import MIN, NOW, T0, B, E, S, World, ref


def group(tl: Timeline, key: str) -> list[TimelineEntry]:
    return [e for e in tl.oldest_first() if e.group == key]


def kinds(entries: list[TimelineEntry]) -> list[EventKind]:
    return [e.event.kind for e in entries]


def exc(rule: str, object_id: str, customer: str | None = "cus_1", closed: bool = False) -> SyncException:
    return SyncException(id=f"{rule}:{object_id}", rule=rule, severity=Severity.HIGH, owner=Team.FINANCE,
                         customer_id=customer, object_id=object_id, summary=rule, sides=[], first_seen=NOW,
                         last_seen=NOW, closed_at=NOW if closed else None)


# -- basics --------------------------------------------------------------------------------
def test_consistent_customer_has_every_system_in_order() -> None:
    w = World().customer().invoice("cus_1", "in_0042", finalized=T0 + timedelta(days=1), paid_after=timedelta(hours=2),
                                   erp_paid_after=10 * MIN)
    tl = w.timeline()
    assert tl.name == "Acme GmbH"
    assert tl.known
    assert tl.identities == {B: [ref(B, "customer", "cus_1")], E: [ref(E, "party.party", "pcus_1")],
                             S: [ref(S, "organization", "ocus_1")]}
    assert tl.missing == []
    assert all(e.status == "ok" for e in tl.entries)
    oldest = tl.oldest_first()
    assert kinds(oldest) == [
        EventKind.CUSTOMER_CREATED, EventKind.SUBSCRIPTION_CREATED, EventKind.PARTY_CREATED,
        EventKind.ORGANIZATION_CREATED, EventKind.ERP_SUBSCRIPTION_CHANGED, EventKind.TIER_CHANGED,
        EventKind.INVOICE_FINALIZED, EventKind.ERP_INVOICE_CREATED, EventKind.ERP_INVOICE_POSTED,
        EventKind.INVOICE_PAID, EventKind.ERP_INVOICE_PAID,
    ]
    assert [e.event.at for e in oldest] == sorted(e.event.at for e in oldest)
    assert tl.newest_first() == list(reversed(oldest))
    fin = next(e for e in oldest if e.event.kind is EventKind.INVOICE_FINALIZED)
    assert fin.event.summary == "Invoice ACME-0042 finalized: 1,234.00 EUR"
    assert fin.event.system is B and fin.event.ref == ref(B, "invoice", "in_0042")
    assert fin.event.correlation_key == fin.group == "invoice:in_0042"
    assert fin.lag is None  # upstream
    sub = next(e for e in oldest if e.event.kind is EventKind.SUBSCRIPTION_CREATED)
    assert sub.event.summary == "Subscription sub_cus_1 created: Pro (pro_monthly) × 3"


def test_newest_first_keeps_upstream_before_downstream_at_equal_times() -> None:
    w = World().customer().invoice("cus_1", "in_1", finalized=T0 + timedelta(days=1), erp_after=timedelta(0))
    newest = w.timeline().newest_first()
    fin = kinds(newest).index(EventKind.INVOICE_FINALIZED)
    assert kinds(newest).index(EventKind.ERP_INVOICE_CREATED) == fin + 1


def test_human_duration() -> None:
    assert human_duration(timedelta(seconds=42)) == "42 s"
    assert human_duration(timedelta(minutes=20)) == "20 min"
    assert human_duration(timedelta(hours=2, minutes=5)) == "2 h 5 min"
    assert human_duration(timedelta(days=3, hours=1)) == "3 d 1 h"
    assert human_duration(-timedelta(minutes=3)) == "3 min"


# -- invoices and payments -----------------------------------------------------------------
def test_invoice_correlation_with_lag() -> None:
    fin = T0 + timedelta(days=2)
    tl = World().customer().invoice("cus_1", "in_1", finalized=fin, erp_after=7 * MIN).timeline()
    entries = group(tl, "invoice:in_1")
    assert kinds(entries) == [EventKind.INVOICE_FINALIZED, EventKind.ERP_INVOICE_CREATED, EventKind.ERP_INVOICE_POSTED]
    created, posted = entries[1], entries[2]
    assert created.lag == 7 * MIN and created.status == "ok"
    assert "7 min after billing finalized it" in created.note
    assert created.event.summary == "ERP invoice ERP/1 created for ACME-1: 1,234.00 EUR"
    assert posted.lag == 8 * MIN
    assert all(e.event.exception_ids == () for e in entries)


def test_invoice_late_missing_and_pending() -> None:
    w = World().customer()
    w.invoice("cus_1", "in_late", finalized=T0 + timedelta(days=1), erp_after=40 * MIN)
    w.invoice("cus_1", "in_gone", finalized=NOW - timedelta(hours=3), erp_after=None)
    w.invoice("cus_1", "in_fresh", finalized=NOW - 5 * MIN, erp_after=None)
    tl = w.timeline()
    late = group(tl, "invoice:in_late")[1]
    assert late.status == "late" and late.lag == 40 * MIN
    assert "grace 15 min" in late.note
    by_group = {e.group: e for e in tl.missing}
    gone = by_group["invoice:in_gone"]
    assert gone.status == "missing"
    assert gone.event.at == NOW - timedelta(hours=3) + timedelta(minutes=15)
    assert gone.event.system is E and gone.event.kind is EventKind.ERP_INVOICE_CREATED
    assert gone.event.ref == ref(B, "invoice", "in_gone")
    assert "3 h" in gone.note
    fresh = by_group["invoice:in_fresh"]
    assert fresh.status == "pending"
    assert fresh.event.at == NOW + 10 * MIN
    assert set(by_group) == {"invoice:in_gone", "invoice:in_fresh"}
    upstream = group(tl, "invoice:in_gone")[0]
    assert "missing" in upstream.note
    # a shorter grace turns the fresh one into missing, a longer one the gone one into pending
    tl2 = w.timeline(config=TimelineConfig(invoice_grace=timedelta(minutes=1)))
    assert {e.group: e.status for e in tl2.missing}["invoice:in_fresh"] == "missing"
    tl3 = w.timeline(config=TimelineConfig(invoice_grace=timedelta(hours=4)))
    assert {e.group: e.status for e in tl3.missing}["invoice:in_gone"] == "pending"
    assert group(tl3, "invoice:in_late")[1].status == "ok"


def test_void_zero_and_cancelled_copies() -> None:
    w = World().customer()
    w.invoice("cus_1", "in_void", finalized=NOW - timedelta(days=1), erp_after=None)
    w.b.invoices["in_void"].status = InvoiceStatus.VOID
    w.b.invoices["in_void"].voided_at = NOW - timedelta(hours=20)
    w.invoice("cus_1", "in_zero", finalized=NOW - timedelta(days=1), erp_after=None, total="0")
    w.invoice("cus_1", "in_cx", finalized=NOW - timedelta(days=1))
    w.e.invoices["ein_cx"].status = InvoiceStatus.CANCELLED
    tl = w.timeline()
    assert [e.group for e in tl.missing] == ["invoice:in_cx"]  # a cancelled copy does not count
    assert "cancelled in the ERP" in group(tl, "invoice:in_cx")[1].note
    assert kinds(group(tl, "invoice:in_void")) == [EventKind.INVOICE_FINALIZED, EventKind.INVOICE_VOIDED]


def test_payment_correlation_late_missing_pending() -> None:
    w = World().customer()
    fin = NOW - timedelta(days=5)
    w.invoice("cus_1", "in_ok", finalized=fin, paid_after=timedelta(days=1), erp_paid_after=20 * MIN)
    w.invoice("cus_1", "in_slow", finalized=fin, paid_after=timedelta(days=1), erp_paid_after=timedelta(hours=3))
    w.invoice("cus_1", "in_unpaid", finalized=fin, paid_after=timedelta(days=1))
    w.invoice("cus_1", "in_recent", finalized=fin, paid_after=NOW - fin - 10 * MIN)
    tl = w.timeline()
    ok = group(tl, "payment:in_ok")
    assert kinds(ok) == [EventKind.INVOICE_PAID, EventKind.ERP_INVOICE_PAID]
    assert ok[1].lag == 20 * MIN and ok[1].status == "ok"
    assert ok[0].event.summary == "Invoice ACME-ok paid: 1,234.00 EUR"
    slow = group(tl, "payment:in_slow")[1]
    assert slow.status == "late" and slow.lag == timedelta(hours=3)
    missing = {e.group: e for e in tl.missing}
    assert missing["payment:in_unpaid"].status == "missing"
    assert missing["payment:in_unpaid"].event.kind is EventKind.ERP_INVOICE_PAID
    assert missing["payment:in_unpaid"].event.at == fin + timedelta(days=1, hours=1)
    assert missing["payment:in_recent"].status == "pending"
    assert set(missing) == {"payment:in_unpaid", "payment:in_recent"}


def test_no_payment_expectation_without_an_erp_copy_and_orphan_copy() -> None:
    w = World().customer()
    w.invoice("cus_1", "in_x", finalized=NOW - timedelta(days=2), erp_after=None, paid_after=timedelta(hours=1))
    w.e.invoices["orph"] = Invoice(ref(E, "account.invoice", "orph"), "cus_1", InvoiceStatus.POSTED,
                                   Money(Decimal("5"), "EUR"), number="ERP/9", billing_invoice_id="in_nowhere",
                                   created=NOW - timedelta(days=1))
    tl = w.timeline()
    assert [e.group for e in tl.missing] == ["invoice:in_x"]  # one root cause, one marker
    orphan = group(tl, "invoice:in_nowhere")
    assert len(orphan) == 1 and orphan[0].lag is None
    assert "which billing does not have" in orphan[0].note


def test_erp_copy_dated_before_billing_is_flagged_not_hidden() -> None:
    w = World().customer()
    w.invoice("cus_1", "in_1", finalized=NOW - timedelta(days=1), erp_after=-10 * MIN)
    entries = group(w.timeline(), "invoice:in_1")
    assert kinds(entries) == [EventKind.ERP_INVOICE_CREATED, EventKind.ERP_INVOICE_POSTED,
                              EventKind.INVOICE_FINALIZED]  # the axis is time, whatever the cause
    created = entries[0]
    assert created.lag == -10 * MIN
    assert created.flagged
    assert "before" in created.note


def test_a_posting_time_the_erp_does_not_keep_is_said_never_placed_at_midnight() -> None:
    w = World().customer()
    w.invoice("cus_1", "in_1", finalized=datetime(2026, 5, 20, 9, 30, tzinfo=UTC))
    copy = w.e.invoices["ein_1"]
    copy.posted_at, copy.invoice_date = None, date(2026, 5, 21)
    entries = group(w.timeline(), "invoice:in_1")
    assert kinds(entries) == [EventKind.INVOICE_FINALIZED, EventKind.ERP_INVOICE_CREATED]
    assert all(e.event.at != datetime(2026, 5, 21, tzinfo=UTC) for e in entries)
    assert "posted at a time the ERP does not keep" in entries[1].note


# -- subscriptions and tiers -----------------------------------------------------------------
def test_subscription_correlation_and_missing_copy() -> None:
    w = World().customer()
    tl = w.timeline()
    sub = group(tl, "subscription:sub_cus_1")
    assert kinds(sub) == [EventKind.SUBSCRIPTION_CREATED, EventKind.ERP_SUBSCRIPTION_CHANGED]
    assert sub[1].lag == 3 * MIN and sub[1].status == "ok"
    del w.e.subscriptions["scus_1"]
    (gone,) = w.timeline().missing
    assert gone.group == "subscription:sub_cus_1" and gone.status == "missing"


def test_subscription_created_to_tier() -> None:
    tl = World().customer().timeline()
    tier = group(tl, "tier:sub_cus_1")
    assert kinds(tier) == [EventKind.TIER_CHANGED]
    assert tier[0].lag == 9 * MIN and tier[0].status == "ok"
    assert "9 min after subscription sub_cus_1 was created" in tier[0].note
    assert tier[0].event.summary == "Support tier is premium"


def test_plan_change_to_tier_change_lag_late_and_missing() -> None:
    w = World().customer()
    change_at = NOW - timedelta(days=2)
    w.b.subscriptions["sub_cus_1"].plan_key = "ent_monthly"
    w.b.events["evt_1"] = LifecycleEvent(change_at, B, EventKind.SUBSCRIPTION_UPDATED, "cus_1",
                                         ref(B, "event", "evt_1"),
                                         "Subscription sub_cus_1 changed plan from Pro to Ent")
    ent = w.s.entitlements["ocus_1"]
    ent.tier, ent.updated = Tier.ENTERPRISE, change_at + 12 * MIN
    tl = w.timeline()
    (change, tier) = group(tl, "tier:sub_cus_1")
    assert change.event.kind is EventKind.SUBSCRIPTION_UPDATED
    assert change.event.summary == "Subscription sub_cus_1 changed plan from Pro to Ent"  # connector text kept
    assert tier.lag == 12 * MIN and tier.status == "ok"
    assert tl.missing == []
    # the organization was last updated three hours later: any edit moves that time, so it only
    # bounds the tier change from above — no "late" verdict, no lag, and a note saying why
    ent.updated = change_at + timedelta(hours=3)
    tier = group(w.timeline(), "tier:sub_cus_1")[1]
    assert tier.status == "ok" and tier.lag is None
    assert "last update" in tier.note
    # a reported tier change (support connector event) three hours later is evidence: late
    w.s.events["tier-changed:ocus_1"] = LifecycleEvent(change_at + timedelta(hours=3), S, EventKind.TIER_CHANGED,
                                                      "cus_1", ref(S, "organization", "ocus_1"),
                                                      "Support tier changed to enterprise")
    tier = next(e for e in group(w.timeline(), "tier:sub_cus_1") if e.event.kind is EventKind.TIER_CHANGED)
    assert tier.status == "late" and tier.lag == timedelta(hours=3)
    del w.s.events["tier-changed:ocus_1"]
    # the tier never moved: missing after the tier grace, pending inside it
    ent.tier, ent.updated = Tier.PREMIUM, T0 + 10 * MIN
    (miss,) = w.timeline().missing
    assert miss.group == "tier:sub_cus_1" and miss.status == "missing"
    assert miss.event.at == change_at + timedelta(hours=1)
    assert miss.event.system is S and miss.event.kind is EventKind.TIER_CHANGED
    assert "support tier is premium, the plan grants enterprise" in miss.note
    (pend,) = w.timeline(now=change_at + 30 * MIN).missing
    assert pend.status == "pending"


def test_plan_change_keeping_the_tier_is_not_missing() -> None:
    w = World().customer()
    w.b.events["evt_1"] = LifecycleEvent(NOW - timedelta(days=1), B, EventKind.SUBSCRIPTION_UPDATED, "cus_1",
                                         ref(B, "subscription", "sub_cus_1"), "Quantity changed from 3 to 5")
    tl = w.timeline()
    assert tl.missing == []
    change = next(e for e in tl.entries if e.event.kind is EventKind.SUBSCRIPTION_UPDATED)
    assert change.group == "tier:sub_cus_1"
    assert "already premium" in change.note


def test_historical_tier_change_matched_by_time_and_connector_duplicates_dropped() -> None:
    w = World().customer()
    up1 = T0 + timedelta(days=5)
    up2 = T0 + timedelta(days=20)
    for n, at in ((1, up1), (2, up2)):
        w.b.events[f"evt_{n}"] = LifecycleEvent(at, B, EventKind.SUBSCRIPTION_UPDATED, "cus_1",
                                                ref(B, "event", f"evt_{n}"), f"Plan change {n}",
                                                correlation_key="subscription:sub_cus_1")
    w.s.events["t1"] = LifecycleEvent(up1 + 30 * MIN, S, EventKind.TIER_CHANGED, "cus_1",
                                      ref(S, "organization", "ocus_1"), "Tier changed from standard to premium")
    ent = w.s.entitlements["ocus_1"]
    ent.updated = up2 + 5 * MIN
    # the connector also reports the current state: same kind, ref and time as the derived one
    w.s.events["t2"] = LifecycleEvent(ent.updated, S, EventKind.TIER_CHANGED, "cus_1",
                                      ref(S, "organization", "ocus_1"), "Tier changed")
    # and a ticket it reports twice
    w.s.cases["7"] = SupportCase(ref(S, "ticket", "7"), "cus_1", "Login broken", "open", "high",
                                 created=NOW - timedelta(hours=5))
    w.s.events["tk"] = LifecycleEvent(NOW - timedelta(hours=5), S, EventKind.TICKET_OPENED, "cus_1",
                                      ref(S, "ticket", "7"), "ticket.opened")
    tl = w.timeline()
    tiers = [e for e in tl.entries if e.event.kind is EventKind.TIER_CHANGED]
    assert len(tiers) == 2
    assert kinds(tl.entries).count(EventKind.TICKET_OPENED) == 1
    g2 = group(tl, "tier:sub_cus_1")
    assert [e.event.summary for e in g2] == [
        "Plan change 1", "Tier changed from standard to premium", "Plan change 2", "Support tier is premium"]
    matched = g2[1]
    assert matched.lag == 30 * MIN and "matched by time" in matched.note
    assert "30 min after subscription sub_cus_1 changed" in matched.note
    assert g2[3].lag == 5 * MIN


def test_cancellation_must_revoke_the_tier() -> None:
    w = World().customer()
    sub = w.b.subscriptions["sub_cus_1"]
    sub.status, sub.canceled_at = SubscriptionStatus.CANCELED, NOW - timedelta(days=1)
    tl = w.timeline()
    (miss,) = tl.missing
    assert miss.group == "tier:sub_cus_1" and miss.status == "missing"
    assert "support tier is premium, the plan grants none" in miss.note
    w.s.entitlements["ocus_1"].tier = None
    w.s.entitlements["ocus_1"].updated = NOW - timedelta(hours=23)
    tl = w.timeline()
    assert tl.missing == []
    revoked = group(tl, "tier:sub_cus_1")[-1]
    assert revoked.event.summary == "Support tier is none" and revoked.lag == timedelta(hours=1)


# -- exceptions ------------------------------------------------------------------------------
def test_exception_markers() -> None:
    w = World().customer()
    w.invoice("cus_1", "in_1", finalized=NOW - timedelta(days=2), paid_after=timedelta(hours=1))
    w.invoice("cus_1", "in_2", finalized=NOW - timedelta(days=2), erp_after=None)
    exceptions = [
        exc("invoice.amount_mismatch", "in_1"),
        exc("invoice.payment_state", "in_1"),
        exc("invoice.missing_in_erp", "in_2"),
        exc("subscription.terms_mismatch", "sub_cus_1"),
        exc("customer.master_drift", "cus_1"),
        exc("entitlement.tier_mismatch", "cus_1"),
        exc("invoice.amount_mismatch", "in_other", customer="cus_2"),  # someone else's
        exc("invoice.duplicate_in_erp", "in_1", closed=True),  # closed: history, not a marker
    ]
    tl = w.timeline(exceptions=exceptions)
    assert tl.exception_ids == sorted(x.id for x in exceptions[:6])

    def ids(key: str) -> set[tuple[str, ...]]:
        return {e.event.exception_ids for e in group(tl, key)}

    assert ids("invoice:in_1") == {("invoice.amount_mismatch:in_1",)}
    assert ids("payment:in_1") == {("invoice.payment_state:in_1",)}
    assert ids("invoice:in_2") == {("invoice.missing_in_erp:in_2",)}  # incl. the synthetic missing entry
    assert any(e.group == "invoice:in_2" for e in tl.missing)
    assert ids("subscription:sub_cus_1") == {("subscription.terms_mismatch:sub_cus_1",)}
    created = next(e for e in tl.entries if e.event.kind is EventKind.CUSTOMER_CREATED)
    assert created.event.exception_ids == ("customer.master_drift:cus_1",)
    tier = next(e for e in tl.entries if e.event.kind is EventKind.TIER_CHANGED)
    assert tier.event.exception_ids == ("entitlement.tier_mismatch:cus_1",)
    # an index built with the exceptions gives the same markers
    index = TimelineIndex(w.snapshot(), exceptions=exceptions)
    assert index.build("cus_1", now=NOW) == tl


def test_unmapped_customer_exception_and_partial_systems() -> None:
    w = World().customer()
    w.invoice("cus_1", "in_1", finalized=NOW - timedelta(days=1), erp_after=None)
    del w.e.customers["pcus_1"]
    del w.e.subscriptions["scus_1"]
    tl = w.timeline(exceptions=[exc("customer.unmapped_erp", "cus_1")])
    assert set(tl.identities) == {B, S}
    assert not any(e.event.system is E for e in tl.entries)
    created = next(e for e in tl.entries if e.event.kind is EventKind.CUSTOMER_CREATED)
    assert created.event.exception_ids == ("customer.unmapped_erp:cus_1",)
    assert all("no ERP party carries cus_1" in e.note for e in tl.missing)
    assert {e.group for e in tl.missing} == {"invoice:in_1", "subscription:sub_cus_1"}


def test_systems_not_loaded_raise_no_expectation() -> None:
    w = World().customer()
    w.invoice("cus_1", "in_1", finalized=NOW - timedelta(days=1), erp_after=None)
    w.s.entitlements["ocus_1"].tier = None
    assert len(w.timeline().missing) == 2  # the invoice and the tier
    tl = w.timeline("cus_1", B)
    assert tl.missing == []
    assert set(tl.identities) == {B}


def test_customer_known_only_to_support() -> None:
    w = World()
    w.s.customers["o9"] = Customer(ref(S, "organization", "o9"), "cus_9", "Support Only Ltd", created=T0)
    w.s.cases["1"] = SupportCase(ref(S, "ticket", "1"), "cus_9", "Help", "solved", created=T0 + timedelta(days=1),
                                 updated=T0 + timedelta(days=2))
    tl = w.timeline("cus_9")
    assert tl.name == "Support Only Ltd"
    assert kinds(tl.oldest_first()) == [EventKind.ORGANIZATION_CREATED, EventKind.TICKET_OPENED,
                                        EventKind.TICKET_SOLVED]
    assert tl.oldest_first()[2].event.summary == "Ticket #1 solved: Help"
    assert tl.missing == []


def test_unknown_customer_is_an_empty_timeline() -> None:
    tl = World().customer().timeline("cus_nobody", exceptions=[exc("customer.unmapped_erp", "cus_1")])
    assert tl.name == UNKNOWN_CUSTOMER
    assert not tl.known
    assert tl.entries == tl.missing == tl.exception_ids == []
    assert tl.identities == {}


def test_hostile_text_passes_through_untouched() -> None:
    name = "<b>Bold</b> & Co 🚀 \u202e"
    subject = "<script>alert(1)</script> 💥"
    w = World().customer(name=name)
    w.s.cases["5"] = SupportCase(ref(S, "ticket", "5"), "cus_1", subject, "open", created=NOW - timedelta(hours=1))
    tl = w.timeline()
    assert tl.name == name
    summaries = [e.event.summary for e in tl.entries]
    assert f"Customer {name} created in billing" in summaries
    assert f"Ticket #5 opened: {subject}" in summaries


def test_index_does_not_rescan_per_customer() -> None:
    w = World()
    for i in range(200):
        w.customer(f"cus_{i}", f"Customer {i}")
        w.invoice(f"cus_{i}", f"in_{i}", finalized=NOW - timedelta(days=1))
    index = TimelineIndex(w.snapshot())
    # emptying the snapshot's tables after indexing proves build() only reads the index
    for data in (w.b, w.e, w.s):
        data.invoices.clear()
        data.subscriptions.clear()
    tl = index.build("cus_7", now=NOW)
    assert kinds(group(tl, "invoice:in_7"))[:2] == [EventKind.INVOICE_FINALIZED, EventKind.ERP_INVOICE_CREATED]


# -- property --------------------------------------------------------------------------------
offsets = st.integers(min_value=-180, max_value=60 * 24 * 40)  # minutes, may precede the source


@st.composite
def worlds(draw: st.DrawFn) -> World:
    w = World().customer(at=NOW - timedelta(minutes=draw(st.integers(0, 60 * 24 * 60))),
                         plan=draw(st.sampled_from(["std_monthly", "pro_monthly", "ent_monthly"])),
                         tier=draw(st.sampled_from([None, *Tier])))
    w.s.entitlements["ocus_1"].updated = NOW - timedelta(minutes=draw(st.integers(-60, 60 * 24 * 60)))
    sub_created = w.b.subscriptions["sub_cus_1"].created
    assert sub_created is not None
    w.e.subscriptions["scus_1"].created = sub_created + timedelta(minutes=draw(offsets))
    for n in range(draw(st.integers(0, 5))):
        fin = NOW - timedelta(minutes=draw(st.integers(-30, 60 * 24 * 30)))
        erp = draw(st.none() | offsets)
        paid = draw(st.none() | st.integers(0, 60 * 24 * 5))
        erp_paid = draw(st.none() | offsets)
        w.invoice("cus_1", f"in_{n}", finalized=fin, erp_after=None if erp is None else timedelta(minutes=erp),
                  paid_after=None if paid is None else timedelta(minutes=paid),
                  erp_paid_after=None if erp_paid is None else timedelta(minutes=erp_paid))
    for n in range(draw(st.integers(0, 3))):
        at = NOW - timedelta(minutes=draw(st.integers(0, 60 * 24 * 60)))
        w.b.events[f"evt_{n}"] = LifecycleEvent(at, B, EventKind.SUBSCRIPTION_UPDATED, "cus_1",
                                                ref(B, "subscription", "sub_cus_1"), f"change {n}")
    if draw(st.booleans()):
        w.b.subscriptions["sub_cus_1"].status = SubscriptionStatus.CANCELED
        w.b.subscriptions["sub_cus_1"].canceled_at = NOW - timedelta(minutes=draw(st.integers(0, 60 * 24 * 10)))
    return w


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_property_sorted_and_lags_non_negative_or_flagged(w: World) -> None:
    tl = w.timeline()
    for view in (tl.entries, tl.missing, tl.oldest_first()):
        ats = [e.event.at for e in view]
        assert ats == sorted(ats)
    newest = [e.event.at for e in tl.newest_first()]
    assert newest == sorted(newest, reverse=True)
    assert len(tl.newest_first()) == len(tl.entries) + len(tl.missing)
    for entry in tl.oldest_first():
        assert entry.group is None or entry.event.correlation_key == entry.group
        if entry.lag is not None:
            assert entry.group is not None
            assert entry.lag >= timedelta(0) or (entry.flagged and "before" in entry.note)
    for entry in tl.missing:
        assert entry.status in ("missing", "pending")
        assert (entry.status == "pending") == (entry.event.at >= NOW)
    for entry in tl.entries:
        assert entry.status in ("ok", "late")


# -- the demo company ------------------------------------------------------------------------
async def test_demo_company_timelines(tmp_path: Path) -> None:
    """The real dataset path: the generated demo company served by its three demo servers, refreshed by
    a real Engine into a temporary Storage, then the real TimelineIndex over the engine's snapshot. Every
    demo customer is known and its timeline sorted; each ERP copy of a billing invoice is correlated
    with it (same group, lag from the billing finalization); each planted missing ERP invoice shows as
    missing; and each open exception is listed on its customer's timeline."""
    from services.demo.environment import DemoEnvironment, DemoOptions
    from services.engine import RefreshMode
    from tests.services.test_engine import ANCHOR, NO_LIMITS, make_engine

    customers = 120
    env = await asyncio.to_thread(lambda: DemoEnvironment(DemoOptions(
        customers=customers, seed=7, anchor=ANCHOR, faults=dict(NO_LIMITS))).start())
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
    demo_customers = sorted(env.dataset.billing.customers)
    assert len(demo_customers) == customers
    erp_copies: dict[str, list[Invoice]] = {}
    for copy in snapshot.get(E).invoices.values():
        if copy.billing_invoice_id:
            erp_copies.setdefault(copy.billing_invoice_id, []).append(copy)
    billing_invoices: dict[str, list[Invoice]] = {}
    for inv in snapshot.get(B).invoices.values():
        billing_invoices.setdefault(inv.customer_id or "", []).append(inv)
    timelines = {cid: index.build(cid, now=now) for cid in demo_customers}
    correlated = 0
    for cid, tl in timelines.items():
        assert tl.known and [r.id for r in tl.identities[B]] == [cid], cid
        ats = [e.event.at for e in tl.oldest_first()]
        assert ats and ats == sorted(ats), cid
        assert [e.event.at for e in tl.newest_first()] == sorted(ats, reverse=True)
        for inv in billing_invoices.get(cid, []):
            group = [e for e in tl.oldest_first() if e.group == f"invoice:{inv.ref.id}"]
            finalized = [e for e in group if e.event.kind is EventKind.INVOICE_FINALIZED]
            for copy in erp_copies.get(inv.ref.id, []):
                if copy.created is None or not finalized:
                    continue
                [created] = [e for e in group if e.event.kind is EventKind.ERP_INVOICE_CREATED
                             and e.event.ref == copy.ref]
                assert created.event.system is E and created.lag == created.event.at - finalized[0].event.at
                correlated += 1
    assert correlated >= customers, "most demo invoices have an ERP copy: the correlation was not exercised"
    planted = [m for m in env.dataset.manifest if m.rule == "invoice.missing_in_erp"]
    assert planted
    for m in planted:
        assert m.customer is not None
        assert any(e.status == "missing" and e.group == f"invoice:{m.object}"
                   and e.event.kind is EventKind.ERP_INVOICE_CREATED for e in timelines[m.customer].missing), m
    on_timelines = [e for e in result.exceptions if e.customer_id in timelines]
    assert on_timelines
    for exc in on_timelines:
        assert exc.id in timelines[exc.customer_id].exception_ids  # type: ignore[index]
    assert not index.build("cus_nobody", now=now).known
