"""The credit rules on hand-built snapshots: ``credit_note.missing_in_erp`` (a billing credit
note no ERP credit note of its invoice's ERP copy answers for its amount) and
``invoice.refund_not_reflected`` (an invoice refunded in full in billing whose ERP copy is still
paid with no ERP credit note); their owner, severity, fixes and catalogue entries."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from services.actions.model import RULE_ACTIONS, ActionKind
from services.core.domain import RULES, CreditNote, InvoiceStatus, Money, Refund, Severity, Team
from services.core.ownership import RULE_OWNERSHIP_KEY
from services.core.reconcile import DEFAULT_SEVERITY, RULE_SYSTEMS, ReconcileConfig, reconcile
from services.demo.generator.ground_truth import RULES as DEMO_RULES
from tests.worlds import NOW, B, E, World, ref

CREDIT_RULES = ("credit_note.missing_in_erp", "invoice.refund_not_reflected")
HOUR = timedelta(hours=1)


def billing_note(w: World, cnid: str, iid: str, total: str, *, at: datetime = NOW - 2 * HOUR,
                 status: str = "issued", currency: str = "EUR") -> None:
    cid = w.b.invoices[iid].customer_id
    w.b.credit_notes[cnid] = CreditNote(ref(B, "credit_note", cnid), cid, iid, status,
                                        Money(Decimal(total), currency), number=f"{iid}-CN", created=at)


def erp_note(w: World, nid: str, iid: str, total: str, *, status: str = "posted", currency: str = "EUR") -> None:
    """An ERP credit note crediting the ERP copy ``e{iid}`` (its ``invoice_id`` the copy's id)."""
    cid = w.b.invoices[iid].customer_id
    w.e.credit_notes[nid] = CreditNote(ref(E, "account.invoice", nid), cid, f"e{iid}", status,
                                       Money(Decimal(total), currency), number=f"ERP/{nid}")


def refund(w: World, rid: str, iid: str, amount: str, *, at: datetime = NOW - 2 * HOUR,
           status: str = "succeeded", note: str | None = None) -> None:
    cid = w.b.invoices[iid].customer_id
    w.b.refunds[rid] = Refund(ref(B, "refund", rid), cid, iid, f"ch_{iid}", Money(Decimal(amount), "EUR"), status,
                              created=at, credit_note_id=note)


def found(w: World) -> list[tuple[str, str | None, str]]:
    return [f for f in w.rules() if f[0] in CREDIT_RULES]


# --------------------------------------------------------------------------------------
# credit_note.missing_in_erp
# --------------------------------------------------------------------------------------


def test_a_billing_credit_note_the_erp_booked_for_its_amount_is_no_exception() -> None:
    w = World(2)
    billing_note(w, "cn_0", "in_cus_0", "30.00")
    erp_note(w, "n0", "in_cus_0", "30.00")
    # two credit notes of one invoice, answered by two ERP credit notes (order does not matter)
    billing_note(w, "cn_1a", "in_cus_1", "10.00")
    billing_note(w, "cn_1b", "in_cus_1", "20.00", at=NOW - 3 * HOUR)
    erp_note(w, "n1a", "in_cus_1", "10.00")
    erp_note(w, "n1b", "in_cus_1", "20.00")
    assert w.rules() == []


def test_a_billing_credit_note_without_erp_credit_note_is_missing_in_erp_naming_it() -> None:
    w = World(2)
    billing_note(w, "cn_0", "in_cus_0", "30.00")
    billing_note(w, "cn_1", "in_cus_1", "30.00")
    erp_note(w, "n1", "in_cus_1", "30.00")
    result = reconcile(w.snapshot(), ReconcileConfig(), NOW)
    assert [(x.rule, x.customer_id, x.object_id) for x in result.exceptions] == [
        ("credit_note.missing_in_erp", "cus_0", "cn_0")]
    x = result.exceptions[0]
    assert x.owner is Team.FINANCE and x.severity is Severity.HIGH and x.fix_actions == ("credit", "flag", "accept")
    assert "in_cus_0-CN" in x.summary and "30.00 EUR" in x.summary and "ACME-cus_0" in x.summary
    billing, erp = x.sides
    assert (billing.system, erp.system) == (B, E)
    assert billing.values["total"] == "30.00" and erp.values["credit note"] is None
    assert erp.values["invoice"] == "ERP/cus_0"


def test_an_erp_credit_note_of_another_invoice_does_not_answer_and_one_of_another_amount_differs() -> None:
    w = World(3)
    billing_note(w, "cn_0", "in_cus_0", "30.00")
    erp_note(w, "n0", "in_cus_0", "29.99")  # a cent short: booked, for another amount
    billing_note(w, "cn_1", "in_cus_1", "30.00")
    erp_note(w, "n1", "in_cus_2", "30.00")  # credits another invoice (cus_2 has no billing note)
    # one ERP credit note answers one billing credit note only
    billing_note(w, "cn_2a", "in_cus_2", "30.00", at=NOW - 3 * HOUR)
    billing_note(w, "cn_2b", "in_cus_2", "30.00")
    assert w.rules() == [("credit_note.amount_mismatch", "cus_0", "cn_0"),
                        ("credit_note.missing_in_erp", "cus_1", "cn_1"),
                        ("credit_note.missing_in_erp", "cus_2", "cn_2b")]


def test_a_cancelled_erp_credit_note_does_not_answer_and_a_cancelled_copy_s_credit_note_does() -> None:
    w = World(1)
    billing_note(w, "cn_0", "in_cus_0", "30.00")
    erp_note(w, "n0", "in_cus_0", "30.00", status="cancelled")
    assert found(w) == [("credit_note.missing_in_erp", "cus_0", "cn_0")]
    # the credited copy was cancelled (Tryton's credit with refund) and the invoice re-posted:
    # the ERP credit note of the cancelled copy answers
    w = World(1)
    old = w.e.invoices["ein_cus_0"]
    w.e.invoices["ein_cus_0"] = replace(old, status=InvoiceStatus.CANCELLED)
    w.e.invoices["elive"] = replace(old, ref=ref(E, "account.invoice", "elive"), number="ERP/2")
    billing_note(w, "cn_0", "in_cus_0", "30.00")
    erp_note(w, "n0", "in_cus_0", "30.00")
    assert w.rules() == []


def test_within_the_invoice_grace_a_void_note_or_no_erp_copy_is_no_exception() -> None:
    w = World(4)
    billing_note(w, "cn_0", "in_cus_0", "30.00", at=NOW - timedelta(minutes=10))  # in flight
    billing_note(w, "cn_1", "in_cus_1", "30.00", status="void")
    billing_note(w, "cn_2", "in_cus_2", "30.00")
    del w.e.invoices["ein_cus_2"]  # the invoice itself never reached the ERP: invoice.missing_in_erp
    billing_note(w, "cn_3", "in_cus_3", "30.00")
    w.e.invoices["ein_cus_3"].status = InvoiceStatus.DRAFT  # nothing posted to credit yet
    assert found(w) == []
    assert ("invoice.missing_in_erp", "cus_2", "in_cus_2") in w.rules()
    # past the grace, the in-flight one is missing
    assert ("credit_note.missing_in_erp", "cus_0", "cn_0") in [
        (x.rule, x.customer_id, x.object_id) for x in reconcile(
            w.snapshot(), ReconcileConfig(invoice_grace=timedelta(minutes=5)), NOW).exceptions]


def test_a_customer_the_erp_does_not_know_gets_only_unmapped() -> None:
    w = World()
    w.customer("cus_x", erp=False).paid_invoice("cus_x", "in_x", Decimal("90.00"))
    del w.e.invoices["ein_x"]
    billing_note(w, "cn_x", "in_x", "30.00")
    refund(w, "re_x", "in_x", "90.00")
    assert w.rules() == [("customer.unmapped_erp", "cus_x", "cus_x")]


# --------------------------------------------------------------------------------------
# invoice.refund_not_reflected
# --------------------------------------------------------------------------------------


def test_a_full_refund_the_erp_still_shows_paid_is_refund_not_reflected() -> None:
    w = World(2)
    refund(w, "re_0", "in_cus_0", "90.00")
    refund(w, "re_1", "in_cus_1", "90.00")
    erp_note(w, "n1", "in_cus_1", "90.00")  # booked: the ERP credited the copy
    result = reconcile(w.snapshot(), ReconcileConfig(), NOW)
    assert [(x.rule, x.customer_id, x.object_id) for x in result.exceptions] == [
        ("invoice.refund_not_reflected", "cus_0", "in_cus_0")]
    x = result.exceptions[0]
    assert x.owner is Team.FINANCE and x.severity is Severity.HIGH and x.fix_actions == ("credit", "flag", "accept")
    assert "refunded in full" in x.summary and "90.00 EUR" in x.summary
    billing, erp = x.sides
    assert billing.values["refunded"] == "90.00" and erp.values["state"] == "paid"


def test_refunds_adding_up_to_the_total_are_full_and_a_partial_one_is_not() -> None:
    w = World(2)
    refund(w, "re_0a", "in_cus_0", "40.00", at=NOW - 5 * HOUR)
    refund(w, "re_0b", "in_cus_0", "50.00")
    refund(w, "re_1", "in_cus_1", "89.99")  # a cent short of the total: a partial refund
    refund(w, "re_1f", "in_cus_1", "0.01", status="failed")
    assert found(w) == [("invoice.refund_not_reflected", "cus_0", "in_cus_0")]


def test_no_refund_exception_when_the_erp_copy_is_not_paid_or_a_credit_note_covers_it_or_in_flight() -> None:
    w = World(4)
    refund(w, "re_0", "in_cus_0", "90.00")
    w.e.invoices["ein_cus_0"].status = InvoiceStatus.POSTED  # the payment reversed in the ERP
    # a refunded credit note: credit_note.missing_in_erp speaks for it, never both
    refund(w, "re_1", "in_cus_1", "90.00", note="cn_1")
    billing_note(w, "cn_1", "in_cus_1", "90.00")
    refund(w, "re_2", "in_cus_2", "90.00", at=NOW - timedelta(minutes=10))  # within the grace
    refund(w, "re_3", "in_cus_3", "90.00")
    erp_note(w, "n3", "in_cus_3", "90.00", status="draft")  # booked, not posted yet: in the ERP
    assert found(w) == [("credit_note.missing_in_erp", "cus_1", "cn_1")]


# --------------------------------------------------------------------------------------
# The catalogue
# --------------------------------------------------------------------------------------


def test_the_credit_rules_are_in_every_catalogue() -> None:
    for rule in CREDIT_RULES:
        assert RULES[rule] == (Team.FINANCE, ("credit", "flag", "accept"))
        assert RULE_SYSTEMS[rule] == frozenset({B, E})
        assert DEFAULT_SEVERITY[rule] is Severity.HIGH
        assert RULE_ACTIONS[rule] == (ActionKind.CREDIT, ActionKind.FLAG, ActionKind.ACCEPT)
        assert rule in RULE_OWNERSHIP_KEY
        assert rule in DEMO_RULES


def test_without_erp_data_the_credit_rules_are_skipped_not_resolved() -> None:
    w = World(1)
    billing_note(w, "cn_0", "in_cus_0", "30.00")
    result = reconcile(w.snapshot(B), ReconcileConfig(), NOW)
    assert set(CREDIT_RULES) <= set(result.skipped_rules) and not set(CREDIT_RULES) & result.evaluated_rules
