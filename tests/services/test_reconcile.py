"""The rule engine on hand-built snapshots: one consistent customer, then one disagreement at a time."""

from __future__ import annotations

import string
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.core.domain import (
    RULES,
    Customer,
    Invoice,
    InvoiceStatus,
    Money,
    Subscription,
    SubscriptionStatus,
    Team,
    Tier,
)
from services.core.reconcile import match_name, norm_name, norm_tax, reconcile
from services.store.exception_history import ExceptionTracker
from services.store.storage import Storage
from tests.worlds import NOW, B, E, S, World, ref


def test_consistent_world_has_no_exception() -> None:
    assert World(5).rules() == []


def test_unmapped_erp_with_ranked_candidates_and_suppression() -> None:
    w = World(2)
    party = w.e.customers.pop("pcus_0")
    w.e.customers["px"] = Customer(ref(E, "party.party", "px"), None, "ACME 0 gmbh", None, "DE1234", "DE")
    w.e.customers["py"] = Customer(ref(E, "party.party", "py"), None, "Acme 0", None, None, None)
    del w.e.invoices["ein_cus_0"]
    assert party.customer_id == "cus_0"
    assert w.rules() == [("customer.unmapped_erp", "cus_0", "cus_0")]  # no missing invoice, no drift
    exc = reconcile(w.snapshot(), now=NOW).exceptions[0]
    cands = exc.sides[1].values["candidates"]
    assert [c["id"] for c in cands] == ["px", "py"]  # tax id + name beats name alone
    assert cands[0]["reasons"] == ["same tax id", "same name"]
    assert exc.owner is Team.FINANCE
    assert exc.fix_actions == RULES["customer.unmapped_erp"][1]


def test_unmapped_support_suppresses_entitlement_rules() -> None:
    w = World(1)
    del w.s.customers["ocus_0"]
    del w.s.entitlements["ocus_0"]
    assert w.rules() == [("customer.unmapped_support", "cus_0", "cus_0")]


def test_master_drift_normalises_and_names_fields() -> None:
    w = World(3)
    w.b.customers["cus_0"].name = "  Acme 0   GmbH "  # whitespace only: not drift
    w.b.customers["cus_0"].tax_id = "de 12-34"  # formatting only: not drift
    w.b.customers["cus_1"].country = "FR"
    w.s.customers["ocus_2"].name = "Acme Two"
    assert w.rules() == [("customer.master_drift", "cus_1", "cus_1"), ("customer.master_drift", "cus_2", "cus_2")]
    exc = next(x for x in reconcile(w.snapshot(), now=NOW).exceptions if x.object_id == "cus_1")
    assert "country" in exc.summary
    assert exc.sides[0].system is E and exc.sides[0].values["owner"] is True


def test_missing_in_erp_respects_grace_void_and_zero() -> None:
    w = World(1)
    w.paid_invoice("cus_0", "in_late", Decimal("10"), age=timedelta(minutes=16))
    w.paid_invoice("cus_0", "in_fresh", Decimal("10"), age=timedelta(minutes=5))
    w.paid_invoice("cus_0", "in_void", Decimal("10"), status=InvoiceStatus.VOID)
    w.paid_invoice("cus_0", "in_zero", Decimal("0"))
    for iid in ("in_late", "in_fresh", "in_void", "in_zero"):
        del w.e.invoices[f"e{iid}"]
    w.b.invoices["in_draft"] = Invoice(ref(B, "invoice", "in_draft"), "cus_0", InvoiceStatus.DRAFT,
                                       Money(Decimal(5), "EUR"))
    assert w.rules() == [("invoice.missing_in_erp", "cus_0", "in_late")]
    assert w.rules(invoice_grace=timedelta(minutes=1)) == [("invoice.missing_in_erp", "cus_0", "in_fresh"),
                                                           ("invoice.missing_in_erp", "cus_0", "in_late")]


def test_cancelled_erp_invoice_does_not_count() -> None:
    w = World(1)
    w.e.invoices["ein_cus_0"].status = InvoiceStatus.CANCELLED
    assert w.rules() == [("invoice.missing_in_erp", "cus_0", "in_cus_0")]


def test_amount_currency_duplicate_payment_orphan() -> None:
    w = World(6)
    w.e.invoices["ein_cus_0"].total = Money(Decimal("90.01"), "EUR")
    w.e.invoices["ein_cus_1"].total = Money(Decimal("90.00"), "USD")
    w.e.invoices["dup"] = Invoice(ref(E, "account.invoice", "dup"), "cus_2", InvoiceStatus.DRAFT,
                                  Money(Decimal("1"), "EUR"), billing_invoice_id="in_cus_2")
    w.e.invoices["ein_cus_3"].status = InvoiceStatus.POSTED  # paid 3 days ago in billing
    w.b.invoices["in_cus_4"].status = InvoiceStatus.VOID
    w.e.invoices["orph"] = Invoice(ref(E, "account.invoice", "orph"), "cus_5", InvoiceStatus.POSTED,
                                   Money(Decimal("5"), "EUR"), billing_invoice_id="in_gone")
    w.e.invoices["manual"] = Invoice(ref(E, "account.invoice", "manual"), "cus_5", InvoiceStatus.POSTED,
                                     Money(Decimal("5"), "EUR"), billing_invoice_id="PO-7")
    assert w.rules() == [
        ("invoice.amount_mismatch", "cus_0", "in_cus_0"),
        ("invoice.currency_mismatch", "cus_1", "in_cus_1"),  # its own rule: another currency, not an amount
        ("invoice.duplicate_in_erp", "cus_2", "in_cus_2"),
        ("invoice.orphan_in_erp", "cus_5", "in_gone"),
        ("invoice.payment_state", "cus_3", "in_cus_3"),
        ("invoice.payment_state", "cus_4", "in_cus_4"),
    ]


def test_payment_grace() -> None:
    w = World(1)
    w.e.invoices["ein_cus_0"].status = InvoiceStatus.POSTED
    w.b.invoices["in_cus_0"].paid_at = NOW - timedelta(minutes=30)
    assert w.rules() == []
    assert w.rules(payment_grace=timedelta(minutes=10)) == [("invoice.payment_state", "cus_0", "in_cus_0")]


def test_terms_mismatch_plan_quantity_period() -> None:
    w = World(3)
    w.e.subscriptions["scus_0"].plan_key = "ent_monthly"
    w.e.subscriptions["scus_1"].quantity = 4
    w.e.subscriptions["scus_2"].current_period_end = NOW + timedelta(days=21)
    found = reconcile(w.snapshot(), now=NOW).exceptions
    assert sorted((x.rule, x.object_id) for x in found) == [("subscription.terms_mismatch", f"sub_cus_{i}")
                                                            for i in range(3)]
    assert "plan" in found[0].summary or "plan" in found[1].summary


def test_entitlements_missing_mismatch_orphan_and_config_override() -> None:
    w = World(3)
    w.s.entitlements["ocus_0"].tier = None
    w.s.entitlements["ocus_1"].tier = Tier.STANDARD
    w.b.subscriptions["sub_cus_2"].status = SubscriptionStatus.CANCELED
    del w.e.subscriptions["scus_2"]
    assert w.rules() == [("entitlement.missing", "cus_0", "cus_0"), ("entitlement.orphan", "cus_2", "cus_2"),
                         ("entitlement.tier_mismatch", "cus_1", "cus_1")]
    # configuration can say pro grants standard: then cus_1 agrees and cus_0 is still missing
    rules = w.rules(plan_tiers={"pro_monthly": Tier.STANDARD})
    assert ("entitlement.tier_mismatch", "cus_1", "cus_1") not in rules


def test_highest_tier_of_several_active_subscriptions() -> None:
    w = World(1)
    w.b.subscriptions["sub_x"] = Subscription(ref(B, "subscription", "sub_x"), "cus_0", SubscriptionStatus.TRIALING,
                                              "ent_monthly", 1)
    assert w.rules() == [("entitlement.tier_mismatch", "cus_0", "cus_0")]


def test_rules_without_data_are_skipped_not_guessed() -> None:
    w = World(2)
    result = reconcile(w.snapshot(B, S), now=NOW)
    assert "invoice.missing_in_erp" not in result.evaluated_rules
    assert result.skipped_rules["invoice.missing_in_erp"] == "no data from erp"
    assert result.exceptions == []


def test_tracker_keeps_first_seen_closes_and_reopens(tmp_path: Path) -> None:
    storage = Storage.open_path(tmp_path / "t.db")
    tracker = ExceptionTracker(storage)
    w = World(2)
    w.s.entitlements["ocus_0"].tier = None
    r1 = tracker.update(reconcile(w.snapshot(), now=NOW))
    assert r1.opened == ["entitlement.missing:cus_0"]
    later = NOW + timedelta(hours=1)
    r2 = tracker.update(reconcile(w.snapshot(), now=later))
    assert r2.still_open == ["entitlement.missing:cus_0"]
    (exc,) = tracker.open_exceptions()
    assert exc.first_seen == NOW
    assert exc.last_seen == later
    assert exc.age(later) == 3600
    # support unreachable: its rules do not run, nothing is closed
    r3 = tracker.update(reconcile(w.snapshot(B, E), now=later))
    assert r3.closed == []
    assert len(tracker.open_exceptions()) == 1
    # fixed: closes by itself, history kept
    w.s.entitlements["ocus_0"].tier = Tier.PREMIUM
    r4 = tracker.update(reconcile(w.snapshot(), now=later + timedelta(hours=1)))
    assert r4.closed == ["entitlement.missing:cus_0"]
    assert tracker.open_exceptions() == []
    # broken again: reopened with a new first-seen, earlier occurrence in the history
    w.s.entitlements["ocus_0"].tier = None
    again = later + timedelta(hours=2)
    r5 = tracker.update(reconcile(w.snapshot(), now=again))
    assert r5.reopened == ["entitlement.missing:cus_0"]
    hist = tracker.history("entitlement.missing:cus_0")
    assert [h[0] for h in hist] == [NOW, again]
    assert hist[0][1] == later + timedelta(hours=1)
    assert tracker.open_exceptions()[0].sides[1].values == {"tier": None}
    storage.close()


def test_normalisers() -> None:
    assert norm_name(" a\u0301  b ") == norm_name("\u00e1 b")
    assert norm_tax("de 123.456-789") == "DE123456789"
    assert match_name("Müller & Söhne GmbH") == match_name("MULLER SOHNE gmbh")


# -- properties ---------------------------------------------------------------------
def test_credited_invoice_and_its_credit_note_drop_out_the_corrected_copy_is_compared() -> None:
    """After a credit + repost: the credited invoice is cancelled and the credit note carries no
    billing invoice id (how the Tryton connector maps them): neither is a duplicate, an orphan
    or a mismatch; the corrected copy is the one compared."""
    w = World(2)
    w.paid_invoice("cus_0", "in_open", Decimal("120.00"), status=InvoiceStatus.OPEN, erp_status=InvoiceStatus.POSTED)
    original = w.e.invoices["ein_open"]
    original.total = Money(Decimal("150.00"), "EUR")
    assert w.rules() == [("invoice.amount_mismatch", "cus_0", "in_open")]
    original.status = InvoiceStatus.CANCELLED
    w.e.invoices["enote"] = Invoice(ref(E, "account.invoice", "enote"), "cus_0", InvoiceStatus.PAID,
                                    Money(Decimal("-150.00"), "EUR"), number="INV-9", billing_invoice_id=None)
    w.e.invoices["ecopy"] = Invoice(ref(E, "account.invoice", "ecopy"), "cus_0", InvoiceStatus.POSTED,
                                    Money(Decimal("120.00"), "EUR"), number="INV-10", billing_invoice_id="in_open")
    assert w.rules() == []
    w.e.invoices["ecopy"].total = Money(Decimal("121.00"), "EUR")  # a wrong copy is a mismatch again
    assert w.rules() == [("invoice.amount_mismatch", "cus_0", "in_open")]
    exc = next(x for x in reconcile(w.snapshot(), now=NOW).exceptions)
    assert [s.ref.id for s in exc.sides if s.system is E and s.ref is not None] == ["ecopy"]


names = st.text(alphabet=string.ascii_letters + " &'<>éü", min_size=1, max_size=30)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(n=st.integers(1, 6), name=names, qty=st.integers(1, 500), cents=st.integers(1, 10**9))
def test_property_consistent_worlds_are_clean(n: int, name: str, qty: int, cents: int) -> None:
    w = World(n)
    w.customer("cus_x", name).paid_invoice("cus_x", "in_cus_x", Decimal("90.00"))
    w.b.subscriptions["sub_cus_x"].quantity = qty
    w.e.subscriptions["scus_x"].quantity = qty
    w.paid_invoice("cus_x", "in_x", Decimal(cents) / 100)
    assert w.rules() == []


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 5), pick=st.integers(0, 4), delta=st.integers(1, 10**6))
def test_property_one_amount_change_is_one_exception(n: int, pick: int, delta: int) -> None:
    w = World(n)
    cid = f"cus_{pick % n}"
    inv = w.e.invoices[f"ein_{cid}"]
    inv.total = Money(inv.total.amount + Decimal(delta) / 100, "EUR")
    assert w.rules() == [("invoice.amount_mismatch", cid, f"in_{cid}")]


@pytest.mark.parametrize("rule", sorted(RULES))
def test_every_rule_has_owner_severity_and_systems(rule: str) -> None:
    from services.core.reconcile import DEFAULT_SEVERITY, RULE_SYSTEMS

    assert rule in DEFAULT_SEVERITY
    assert rule in RULE_SYSTEMS
