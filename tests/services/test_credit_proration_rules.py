"""``credit_note.amount_mismatch`` (a billing credit note whose ERP credit note differs in total,
net or tax per rate, to the minor unit of the currency) and ``subscription.proration_mismatch``
(a proration invoice whose ERP copy was booked without some or all of its proration lines — a
full period — instead of ``invoice.amount_mismatch`` / ``invoice.tax_mismatch``): on hand-built
snapshots, in the catalogues, and on the demo world, where they are found exactly where planted
(precision = recall = 1.0, no false positive) on several seeds."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from services.actions.model import RULE_ACTIONS, ActionKind
from services.core.currency import exponent
from services.core.domain import RULES, CreditNote, InvoiceLine, Money, Severity, TaxAmount, Team
from services.core.ownership import RULE_OWNERSHIP_KEY
from services.core.reconcile import DEFAULT_SEVERITY, RULE_SYSTEMS, ReconcileConfig, reconcile
from services.core.reconcile_money import lacking_prorations, note_differences
from services.demo.environment import DemoEnvironment, DemoOptions
from services.demo.generator.ground_truth import RULES as DEMO_RULES
from services.engine import RefreshMode
from tests.services.test_engine import ANCHOR as ENGINE_ANCHOR
from tests.services.test_engine import NO_LIMITS, make_engine
from tests.worlds import NOW, B, E, World, ref

NEW_RULES = ("credit_note.amount_mismatch", "subscription.proration_mismatch")
HOUR = timedelta(hours=1)


def vat(amount: str, currency: str = "EUR", pct: str = "20", rate_id: str = "txr_de") -> TaxAmount:
    return TaxAmount(rate_id, Decimal(pct), False, Money(Decimal(amount), currency), f"VAT {pct} %")


def billing_note(w: World, cnid: str, iid: str, total: str, *, tax: tuple[TaxAmount, ...] = (),
                 at: datetime = NOW - 2 * HOUR, currency: str = "EUR") -> None:
    cid = w.b.invoices[iid].customer_id
    tax_total = sum((t.amount.amount for t in tax), Decimal(0))
    w.b.credit_notes[cnid] = CreditNote(ref(B, "credit_note", cnid), cid, iid, "issued",
                                        Money(Decimal(total), currency),
                                        net=Money(Decimal(total) - tax_total, currency),
                                        tax=Money(tax_total, currency), taxes=tax, number=f"{iid}-CN",
                                        created=at)


def erp_note(w: World, nid: str, iid: str, total: str, *, tax: tuple[TaxAmount, ...] | None = (),
             tax_total: str | None = None, status: str = "posted", currency: str = "EUR",
             at: datetime = NOW - HOUR) -> None:
    """An ERP credit note of the ERP copy ``e{iid}``; ``tax=None``: its taxes per rate not read
    (``tax_total`` then says its tax in total)."""
    cid = w.b.invoices[iid].customer_id
    taxed = Decimal(tax_total) if tax_total is not None else sum((t.amount.amount for t in tax or ()), Decimal(0))
    w.e.credit_notes[nid] = CreditNote(ref(E, "account.invoice", nid), cid, f"e{iid}", status,
                                       Money(Decimal(total), currency), net=Money(Decimal(total) - taxed, currency),
                                       tax=Money(taxed, currency), taxes=tax or (), number=f"ERP/{nid}",
                                       created=at)


def in_currency(w: World, iid: str, currency: str) -> None:
    for inv in (w.b.invoices[iid], w.e.invoices[f"e{iid}"]):
        inv.total = Money(inv.total.amount, currency)


def found(w: World, **kw: object) -> list[tuple[str, str | None, str]]:
    return [f for f in w.rules(**kw) if f[0] in NEW_RULES]


# --------------------------------------------------------------------------------------
# credit_note.amount_mismatch
# --------------------------------------------------------------------------------------


def test_a_credit_note_booked_for_its_amount_and_tax_per_rate_is_no_exception() -> None:
    w = World(1)
    billing_note(w, "cn_0", "in_cus_0", "36.00", tax=(vat("6.00"),))
    erp_note(w, "n0", "in_cus_0", "36.00", tax=(vat("6.00", rate_id="7"),))  # the ERP's own rate id
    assert w.rules() == []


def test_another_total_is_an_amount_mismatch_showing_both_sides_in_the_currency() -> None:
    w = World(2)
    billing_note(w, "cn_0", "in_cus_0", "30.00")
    erp_note(w, "n0", "in_cus_0", "33.00")  # booked a tenth more
    billing_note(w, "cn_1", "in_cus_1", "30.00")
    erp_note(w, "n1", "in_cus_1", "30.00")
    result = reconcile(w.snapshot(), ReconcileConfig(), NOW)
    assert [(x.rule, x.customer_id, x.object_id) for x in result.exceptions] == [
        ("credit_note.amount_mismatch", "cus_0", "cn_0")]
    x = result.exceptions[0]
    assert x.owner is Team.FINANCE and x.severity is Severity.HIGH and x.fix_actions == ("correct", "flag", "accept")
    assert "in_cus_0-CN" in x.summary and "billing 30.00 EUR, ERP 33.00 EUR" in x.summary and "ERP/n0" in x.summary
    billing, erp = x.sides
    assert (billing.system, erp.system) == (B, E)
    assert (billing.values["total"], erp.values["total"]) == ("30.00 EUR", "33.00 EUR")
    assert (billing.values["net"], erp.values["net"]) == ("30.00 EUR", "33.00 EUR")
    assert erp.values["number"] == "ERP/n0" and erp.values["state"] == "posted"
    assert billing.values["invoice"] == "ACME-cus_0" and erp.values["invoice"] == "ERP/cus_0"


def test_the_same_total_with_another_tax_per_rate_is_an_amount_mismatch_naming_the_rate() -> None:
    w = World(1)
    billing_note(w, "cn_0", "in_cus_0", "36.00", tax=(vat("6.00"),))
    erp_note(w, "n0", "in_cus_0", "36.00", tax=(vat("5.40", rate_id="7"),))  # part of the tax as revenue
    result = reconcile(w.snapshot(), ReconcileConfig(), NOW)
    [x] = result.exceptions
    assert (x.rule, x.object_id) == ("credit_note.amount_mismatch", "cn_0")
    assert "tax at 20 % billing 6.00 EUR, ERP 5.40 EUR" in x.summary
    billing, erp = x.sides
    assert (billing.values["tax at 20 %"], erp.values["tax at 20 %"]) == ("6.00 EUR", "5.40 EUR")
    assert (billing.values["net"], erp.values["net"]) == ("30.00 EUR", "30.60 EUR")
    assert billing.values["total"] == erp.values["total"] == "36.00 EUR"


def test_credit_notes_compare_in_the_currency_s_minor_units() -> None:
    w = World(3)
    in_currency(w, "in_cus_0", "KWD")  # three decimals: 12.345 is not 12.340
    billing_note(w, "cn_0", "in_cus_0", "12.345", currency="KWD")
    erp_note(w, "n0", "in_cus_0", "12.340", currency="KWD")
    in_currency(w, "in_cus_1", "KWD")  # 12.34 is 12.340
    billing_note(w, "cn_1", "in_cus_1", "12.34", currency="KWD")
    erp_note(w, "n1", "in_cus_1", "12.340", currency="KWD")
    in_currency(w, "in_cus_2", "JPY")  # no decimals: 1,500 JPY and 1,501 JPY differ by one unit
    billing_note(w, "cn_2", "in_cus_2", "1500", currency="JPY")
    erp_note(w, "n2", "in_cus_2", "1501", currency="JPY")
    assert found(w) == [("credit_note.amount_mismatch", "cus_0", "cn_0"),
                        ("credit_note.amount_mismatch", "cus_2", "cn_2")]
    x = next(x for x in reconcile(w.snapshot(), ReconcileConfig(), NOW).exceptions if x.object_id == "cn_2")
    assert "billing 1,500 JPY, ERP 1,501 JPY" in x.summary


def test_the_same_total_pairs_first_then_the_oldest_left() -> None:
    w = World(1)
    billing_note(w, "cn_a", "in_cus_0", "10.00", at=NOW - 3 * HOUR)
    billing_note(w, "cn_b", "in_cus_0", "20.00")
    erp_note(w, "n_old", "in_cus_0", "11.00", at=NOW - 2 * HOUR)  # cn_a's, booked for another amount
    erp_note(w, "n_new", "in_cus_0", "20.00")  # cn_b's (same total): never taken by cn_a
    assert w.rules() == [("credit_note.amount_mismatch", "cus_0", "cn_a")]


def test_within_the_grace_a_note_with_only_another_amount_to_pair_is_in_flight() -> None:
    w = World(1)
    billing_note(w, "cn_0", "in_cus_0", "30.00", at=NOW - timedelta(minutes=5))
    erp_note(w, "n0", "in_cus_0", "12.00")  # an older ERP credit note of the invoice, another amount
    assert w.rules() == []
    assert found(w, invoice_grace=timedelta(minutes=1)) == [("credit_note.amount_mismatch", "cus_0", "cn_0")]


def test_taxes_per_rate_not_read_compare_the_tax_in_total() -> None:
    w = World(2)
    billing_note(w, "cn_0", "in_cus_0", "36.00", tax=(vat("6.00"),))
    erp_note(w, "n0", "in_cus_0", "36.00", tax=None, tax_total="6.00")  # the same tax: nothing to say
    billing_note(w, "cn_1", "in_cus_1", "36.00", tax=(vat("6.00"),))
    erp_note(w, "n1", "in_cus_1", "36.00", tax=None, tax_total="5.00")
    assert found(w) == [("credit_note.amount_mismatch", "cus_1", "cn_1")]
    x = next(x for x in reconcile(w.snapshot(), ReconcileConfig(), NOW).exceptions if x.object_id == "cn_1")
    assert x.sides[0].values["tax"] == "6.00 EUR" and x.sides[1].values["tax"] == "5.00 EUR"


def test_note_differences_lists_total_net_and_rates() -> None:
    b = CreditNote(ref(B, "credit_note", "cn"), "c", "i", "issued", Money(Decimal("36.00"), "EUR"),
                   net=Money(Decimal("30.00"), "EUR"), tax=Money(Decimal("6.00"), "EUR"), taxes=(vat("6.00"),))
    e = CreditNote(ref(E, "account.invoice", "n"), "c", "e", "posted", Money(Decimal("37.00"), "EUR"),
                   net=Money(Decimal("30.00"), "EUR"), tax=Money(Decimal("7.00"), "EUR"),
                   taxes=(vat("6.00", rate_id="7"), vat("1.00", pct="7", rate_id="8")))
    assert note_differences(b, e) == [("total", Decimal("36.00"), Decimal("37.00")),
                                      ("tax at 7 %", Decimal(0), Decimal("1.00"))]
    assert note_differences(b, b) == []


# --------------------------------------------------------------------------------------
# subscription.proration_mismatch
# --------------------------------------------------------------------------------------

PERIOD = (datetime(2026, 5, 15, tzinfo=UTC), datetime(2026, 6, 15, tzinfo=UTC))


def line(desc: str, amount: str, tax: str, *, proration: bool = False) -> InvoiceLine:
    return InvoiceLine(desc, "pro_monthly", Decimal(1), Money(Decimal(amount), "EUR"),
                       net=Money(Decimal(amount), "EUR"), tax=Money(Decimal(tax), "EUR"),
                       period_start=PERIOD[0], period_end=PERIOD[1], proration=proration,
                       taxes=(vat(tax),) if Decimal(tax) else ())


def prorated(w: World, iid: str, *, erp_net: str) -> None:
    """Billing invoice ``iid``: a credit for unused time (-20.00), the remaining time on the new
    plan (+50.00) and the new period (100.00), 20 % VAT: net 130.00, tax 26.00, total 156.00.
    Its ERP copy: ``erp_net`` untaxed, taxed at 20 %."""
    b, e = w.b.invoices[iid], w.e.invoices[f"e{iid}"]
    b.lines = [line("Unused time on 3 × Standard", "-20.00", "-4.00", proration=True),
               line("Remaining time on 3 × Pro", "50.00", "10.00", proration=True),
               line("3 × Pro (monthly)", "100.00", "20.00")]
    b.net, b.tax, b.total = (Money(Decimal("130.00"), "EUR"), Money(Decimal("26.00"), "EUR"),
                             Money(Decimal("156.00"), "EUR"))
    b.taxes = (vat("26.00"),)
    net = Decimal(erp_net)
    tax = (net * Decimal("0.2")).quantize(Decimal("0.01"))
    e.net, e.tax, e.total = Money(net, "EUR"), Money(tax, "EUR"), Money(net + tax, "EUR")
    e.taxes = (vat(str(tax), rate_id="7"),)


def test_a_copy_booked_as_a_full_period_is_a_proration_mismatch_not_an_amount_or_tax_mismatch() -> None:
    w = World(2)
    prorated(w, "in_cus_0", erp_net="100.00")  # only the period line: a full period
    prorated(w, "in_cus_1", erp_net="130.00")  # the same lines: agrees
    result = reconcile(w.snapshot(), ReconcileConfig(), NOW)
    assert [(x.rule, x.customer_id, x.object_id) for x in result.exceptions] == [
        ("subscription.proration_mismatch", "cus_0", "in_cus_0")]
    x = result.exceptions[0]
    assert x.owner is Team.FINANCE and x.severity is Severity.CRITICAL
    assert x.fix_actions == ("correct", "credit_repost", "flag", "accept")
    assert "ACME-cus_0" in x.summary and "full period" in x.summary
    assert "billing 156.00 EUR, ERP 120.00 EUR" in x.summary
    billing, erp = x.sides
    assert (billing.system, erp.system) == (B, E)
    assert (billing.values["total"], erp.values["total"]) == ("156.00 EUR", "120.00 EUR")
    assert (billing.values["net"], erp.values["net"]) == ("130.00 EUR", "100.00 EUR")
    assert (billing.values["tax"], erp.values["tax"]) == ("26.00 EUR", "20.00 EUR")
    assert billing.values["proration lines"] == ["Unused time on 3 × Standard: -20.00 EUR",
                                                 "Remaining time on 3 × Pro: 50.00 EUR"]
    assert str(erp.values["proration lines"]).startswith("none")
    assert billing.values["prorated period"] == "2026-05-15 – 2026-06-15"


def test_a_copy_without_the_credit_for_unused_time_lacks_one_of_two_proration_lines() -> None:
    w = World(1)
    prorated(w, "in_cus_0", erp_net="150.00")  # the credit (-20.00) left out
    result = reconcile(w.snapshot(), ReconcileConfig(), NOW)
    [x] = result.exceptions
    assert (x.rule, x.object_id) == ("subscription.proration_mismatch", "in_cus_0")
    assert "without 1 of its 2 proration lines" in x.summary
    assert x.sides[1].values["proration lines"] == ["Remaining time on 3 × Pro: 50.00 EUR"]


def test_another_difference_on_a_proration_invoice_stays_an_amount_mismatch() -> None:
    w = World(2)
    prorated(w, "in_cus_0", erp_net="131.00")  # no set of proration lines explains a euro more
    w.e.invoices["ein_cus_1"].total = Money(Decimal("91.00"), "EUR")  # no proration line at all
    assert w.rules() == [("invoice.amount_mismatch", "cus_0", "in_cus_0"),
                         ("invoice.amount_mismatch", "cus_1", "in_cus_1"),
                         ("invoice.tax_mismatch", "cus_0", "in_cus_0")]


def test_lacking_prorations_compares_totals_when_a_net_is_unknown() -> None:
    w = World(1)
    prorated(w, "in_cus_0", erp_net="100.00")
    b, e = w.b.invoices["in_cus_0"], w.e.invoices["ein_cus_0"]
    e.net = None  # an older snapshot: the lines' totals (net + tax) explain the ERP's total
    assert [ln.description for ln in lacking_prorations(b, e) or []] == [
        "Unused time on 3 × Standard", "Remaining time on 3 × Pro"]
    e.total = Money(Decimal("121.00"), "EUR")
    assert lacking_prorations(b, e) is None


def test_a_proration_copy_in_another_currency_is_a_currency_mismatch() -> None:
    w = World(1)
    prorated(w, "in_cus_0", erp_net="100.00")
    e = w.e.invoices["ein_cus_0"]
    e.total = Money(e.total.amount, "USD")
    assert w.rules() == [("invoice.currency_mismatch", "cus_0", "in_cus_0")]


# --------------------------------------------------------------------------------------
# The catalogues
# --------------------------------------------------------------------------------------


FIXES = {"credit_note.amount_mismatch": (ActionKind.CORRECT, ActionKind.FLAG, ActionKind.ACCEPT),
         "subscription.proration_mismatch": (ActionKind.CORRECT, ActionKind.CREDIT_REPOST, ActionKind.FLAG,
                                             ActionKind.ACCEPT)}


@pytest.mark.parametrize(("rule", "severity"), [("credit_note.amount_mismatch", Severity.HIGH),
                                                ("subscription.proration_mismatch", Severity.CRITICAL)])
def test_the_new_rules_are_in_every_catalogue(rule: str, severity: Severity) -> None:
    # a draft ERP credit note is corrected (a posted one: flag or accept); a proration copy is
    # corrected (a draft) or credited and reposted (a posted one) with billing's lines
    fixes = FIXES[rule]
    assert RULES[rule] == (Team.FINANCE, tuple(k.value for k in fixes))
    assert RULE_SYSTEMS[rule] == frozenset({B, E})
    assert DEFAULT_SEVERITY[rule] is severity
    assert RULE_ACTIONS[rule] == fixes
    assert RULE_OWNERSHIP_KEY[rule] == "invoice.content"
    assert rule in DEMO_RULES


def test_without_erp_data_the_new_rules_are_skipped_not_resolved() -> None:
    w = World(1)
    billing_note(w, "cn_0", "in_cus_0", "30.00")
    result = reconcile(w.snapshot(B), ReconcileConfig(), NOW)
    assert set(NEW_RULES) <= set(result.skipped_rules) and not set(NEW_RULES) & result.evaluated_rules


# --------------------------------------------------------------------------------------
# The demo world: found exactly where planted, on several seeds
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 3, 5])
async def test_the_demo_world_raises_the_new_rules_exactly_where_planted(seed: int, tmp_path: Path) -> None:
    opts = DemoOptions(customers=300, seed=seed, anchor=ENGINE_ANCHOR, faults=dict(NO_LIMITS))
    env = await asyncio.to_thread(lambda: DemoEnvironment(opts).start())
    try:
        engine = await make_engine(env, tmp_path)
        report = await engine.refresh(RefreshMode.FULL)
        assert report.ok, [o.error_text for o in report.failed]
        result, _ = await engine.reconcile(now=env.now())
        found_ = {(x.rule, x.customer_id, x.object_id) for x in result.exceptions}
        planted = {(m.rule, m.customer, m.object) for m in env.dataset.manifest}
        for rule in NEW_RULES:
            got = {f for f in found_ if f[0] == rule}
            want = {p for p in planted if p[0] == rule}
            assert len(want) >= 2, rule  # both variants planted
            precision, recall = len(got & want) / len(got), len(got & want) / len(want)
            assert (precision, recall) == (1.0, 1.0), (rule, got ^ want)
        assert found_ == planted  # and every other rule still at precision = recall = 1
        # the side-by-side names both sides' amounts in their currency
        for x in result.exceptions:
            if x.rule in NEW_RULES:
                assert {s.system for s in x.sides} == {B, E}
                for side in x.sides:  # with the currency's own exponent (JPY none, KWD three)
                    m = re.fullmatch(r"-?[\d,]+(?:\.(\d+))? ([A-Z]{3})", str(side.values["total"]))
                    assert m is not None and len(m.group(1) or "") == exponent(m.group(2)), side
        await engine.aclose()
        engine.storage.close()
    finally:
        await asyncio.to_thread(env.stop)
