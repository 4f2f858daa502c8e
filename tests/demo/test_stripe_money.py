"""The demo company's money (issue G1) in the generated billing world: every invoice's totals add up
from its lines, discounts and taxes to the minor unit on several seeds; credit notes, charges and
refunds agree with the invoices they belong to; the mix a real SaaS company has (EU VAT, the
reverse charge, US sales tax, tax-exempt customers, coupons of every kind, prorations, credit
notes before and after payment, partial and full refunds, failed payments with retries, three
currencies) is there at 200 customers; all of it is deterministic from ``(customers, seed)``; and
the generator's main stream (invoices, payment stories, events, plants) is what it was without
the money. The server's answers are in ``test_stripe_money_server.py``."""

from __future__ import annotations

import dataclasses
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.demo.dataset import generate
from services.demo.generator.billing_money import EU_VAT, MONEY_EVENTS, REVERSE_CHARGE_NOTE, _pct
from services.demo.store import BillingStore, BInvoice
from services.demo.stripe.serializers.invoices import render_invoice

ANCHOR = 1_750_000_020
SEEDS = (1, 2, 3, 7, 11)


def _tax(net: int, percentage: str) -> int:
    """Tax on ``net`` at ``percentage``, worked out here independently: exact product, half away from zero."""
    return int((Decimal(net) * Decimal(percentage) / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _check_invoice(b: BillingStore, inv: BInvoice, planted: bool) -> None:
    customer = b.customers[inv.customer]
    rate_ids = {ln.tax_rate for ln in inv.lines}
    if planted:  # an invoice rule's plant is billed without tax or discount (billing_money docstring)
        assert rate_ids == {None} and inv.coupon is None and inv.total == inv.subtotal
    assert len(rate_ids) == 1, "one customer, one tax treatment"
    for ln in inv.lines:
        assert abs(ln.discount_amount) <= abs(ln.amount) and ln.discount_amount * ln.amount >= 0
        if ln.tax_rate is None:
            assert ln.tax_amount == 0
        else:
            assert ln.tax_amount == _tax(ln.amount - ln.discount_amount, b.tax_rates[ln.tax_rate].percentage)
    subtotal = sum(ln.amount for ln in inv.lines)
    discount = sum(ln.discount_amount for ln in inv.lines)
    tax = sum(ln.tax_amount for ln in inv.lines)
    assert (inv.subtotal, inv.discount_total) == (subtotal, discount)
    assert inv.total == subtotal - discount + tax
    assert inv.tax == (None if rate_ids == {None} else tax)
    assert (inv.discount_id is None) == (inv.coupon is None)
    if inv.coupon is None:
        assert discount == 0
    exempt = customer.extra.get("tax_exempt", "none")
    if exempt == "exempt":
        assert rate_ids == {None}
    if exempt == "reverse" and not planted:
        rate = b.tax_rates[next(iter(rate_ids)) or ""]
        assert Decimal(rate.percentage) == 0 and tax == 0 and inv.footer == REVERSE_CHARGE_NOTE
    # what the server answers adds up the same way
    body = render_invoice(b, inv)
    assert body["subtotal"] == subtotal and body["total"] == inv.total
    assert body["total_excluding_tax"] == subtotal - discount
    assert body["total_excluding_tax"] + (body["tax"] or 0) == body["total"]
    assert sum(t["amount"] for t in body["total_tax_amounts"]) == tax
    taxable = sum(t["taxable_amount"] for t in body["total_tax_amounts"])
    assert taxable == (0 if inv.tax is None else subtotal - discount)
    assert sum(d["amount"] for d in body["total_discount_amounts"]) == discount
    for line in body["lines"]["data"]:
        net = line["amount"] - sum(d["amount"] for d in line["discount_amounts"])
        assert [t["taxable_amount"] for t in line["tax_amounts"]] == ([net] if line["tax_rates"] else [])
    assert body["amount_due"] == inv.total - inv.pre_payment_credit_notes_amount
    if inv.status == "paid":
        assert inv.amount_paid == (body["amount_due"] if inv.total > 0 else 0)
        assert body["amount_remaining"] == 0


def _check_notes_and_refunds(b: BillingStore) -> None:
    pre: Counter[str] = Counter()
    post: Counter[str] = Counter()
    for cn in b.credit_notes.values():
        inv = b.invoices[cn.invoice]
        assert cn.customer == inv.customer and cn.currency == inv.currency
        assert cn.number.startswith(f"{inv.number}-CN-")
        lines = {ln.id: ln for ln in inv.lines}
        for cl in cn.lines:
            il = lines[cl.invoice_line_item]
            assert 0 < cl.amount <= il.amount and 0 <= cl.discount_amount <= il.discount_amount
            assert cl.tax_rate == il.tax_rate
            expected = 0 if cl.tax_rate is None else _tax(cl.amount - cl.discount_amount,
                                                          b.tax_rates[cl.tax_rate].percentage)
            assert cl.tax_amount == expected
        assert cn.subtotal == sum(x.amount for x in cn.lines)
        assert cn.discount == sum(x.discount_amount for x in cn.lines)
        assert cn.tax == sum(x.tax_amount for x in cn.lines)
        assert cn.total == cn.subtotal - cn.discount + cn.tax
        assert 0 < cn.total <= inv.total
        assert cn.created >= (inv.finalized_at or 0)
        (pre if cn.type == "pre_payment" else post)[cn.invoice] += cn.total
        if cn.type == "post_payment":
            assert inv.status == "paid" and inv.paid_at is not None and cn.created > inv.paid_at
            if cn.refund is not None:
                assert b.refunds[cn.refund].amount == cn.total and b.refunds[cn.refund].credit_note == cn.id
            else:
                assert cn.credit_amount == cn.total
    for inv in b.invoices.values():
        assert inv.pre_payment_credit_notes_amount == pre[inv.id]
        assert inv.post_payment_credit_notes_amount == post[inv.id]
        assert inv.post_payment_credit_notes_amount <= inv.amount_paid
    refunded: Counter[str] = Counter()
    for r in b.refunds.values():
        ch = b.charges[r.charge]
        assert r.payment_intent == ch.payment_intent and r.currency == ch.currency and r.created > ch.created
        refunded[ch.id] += r.amount
    for ch in b.charges.values():
        inv = b.invoices[ch.invoice]
        assert inv.charge == ch.id and inv.payment_intent == ch.payment_intent and ch.created == inv.paid_at
        assert ch.amount == inv.amount_paid > 0 and ch.customer == inv.customer
        assert ch.amount_refunded == refunded[ch.id] <= ch.amount


@pytest.mark.parametrize("seed", SEEDS)
def test_every_invoice_adds_up_to_the_minor_unit(seed: int) -> None:
    ds = generate(120, seed, anchor=ANCHOR)
    b = ds.billing
    # the money's own plant on an invoice (a full refund the ERP never booked) is picked after the
    # money is settled, among ordinary invoices: billed as any other
    planted = {m.object for m in ds.manifest
               if m.rule.startswith("invoice.") and m.rule != "invoice.refund_not_reflected"}
    # a tax mismatch is planted on a taxed invoice (the other invoice plants are billed untaxed)
    taxed_plants = {m.object for m in ds.manifest if m.rule == "invoice.tax_mismatch"}
    assert b.invoices and taxed_plants
    for inv in b.invoices.values():
        _check_invoice(b, inv, inv.id in planted - taxed_plants)
    assert all(sum(ln.tax_amount for ln in b.invoices[i].lines) > 0 for i in taxed_plants)
    _check_notes_and_refunds(b)
    assert not {cn.invoice for cn in b.credit_notes.values()} & planted


def _mix(b: BillingStore) -> dict[str, int]:
    c: Counter[str] = Counter()
    for cu in b.customers.values():
        c["exempt:" + cu.extra.get("tax_exempt", "none")] += 1
    for inv in b.invoices.values():
        country = b.customers[inv.customer].country or ""
        c["currency:" + inv.currency] += 1
        rate = b.tax_rates[inv.lines[0].tax_rate] if inv.lines and inv.lines[0].tax_rate else None
        if rate is not None and inv.total > 0:
            if country in EU_VAT:
                c["eu_vat_standard" if Decimal(rate.percentage) > 0 else "eu_reverse_charge"] += 1
            elif country == "US":
                c["us_sales_tax:" + (rate.state or "")] += 1
            else:
                c[f"{country}:{rate.display_name}"] += 1
        if inv.coupon is not None:
            cp = b.coupons[inv.coupon]
            c["coupon:" + cp.duration] += 1
            c["coupon:" + ("percent" if cp.percent_off else "amount")] += 1
        c["proration_lines"] += sum(1 for ln in inv.lines if ln.proration)
        if inv.attempt_count >= 2:
            c["retried"] += 1
        if inv.next_payment_attempt is not None and inv.status == "open":
            c["retry_scheduled"] += 1
    for cn in b.credit_notes.values():
        c["credit_note:" + cn.type] += 1
        if cn.type == "post_payment":
            c["credit_note:refunded" if cn.refund else "credit_note:to_balance"] += 1
    for r in b.refunds.values():
        ch = b.charges[r.charge]
        c["refund:" + ("full" if r.amount == ch.amount else "partial")] += 1
        if r.credit_note is None:
            c["refund:without_credit_note"] += 1
    for s in b.subscriptions.values():
        if s.cancel_at_period_end:
            c["cancel_at_period_end"] += 1
        if s.trial_start is not None:
            c["trial"] += 1
    for p in b.prices.values():
        c["interval:" + p.interval] += sum(1 for s in b.subscriptions.values() if s.items[0].price == p.id)
    return dict(c)


def test_the_mix_of_a_real_saas_company_is_there_at_200_customers() -> None:
    b = generate(200, 1, anchor=ANCHOR).billing
    mix = _mix(b)
    needed = ["exempt:exempt", "exempt:reverse", "eu_vat_standard", "eu_reverse_charge", "GB:VAT", "CA:GST",
              "coupon:once", "coupon:repeating", "coupon:forever", "coupon:percent", "coupon:amount",
              "proration_lines", "credit_note:pre_payment", "credit_note:post_payment", "credit_note:refunded",
              "credit_note:to_balance", "refund:full", "refund:partial", "refund:without_credit_note",
              "retried", "cancel_at_period_end", "trial", "interval:month", "interval:year",
              "currency:usd", "currency:eur", "currency:gbp"]
    assert {k: mix.get(k, 0) for k in needed if mix.get(k, 0) < 2} == {}
    states = {k for k in mix if k.startswith("us_sales_tax:")}
    assert len(states) >= 3, states  # sales tax by state, several states
    # the tax rates and coupons the invoices use are served objects
    used = {ln.tax_rate for inv in b.invoices.values() for ln in inv.lines if ln.tax_rate}
    assert used <= set(b.tax_rates) and {inv.coupon for inv in b.invoices.values() if inv.coupon} <= set(b.coupons)
    counts = Counter(inv.coupon for inv in b.invoices.values() if inv.coupon)
    assert all(b.coupons[c].times_redeemed >= 1 for c in counts)


def test_retries_are_scheduled_on_open_invoices_on_some_seed() -> None:
    scheduled = 0
    for seed in SEEDS:
        b = generate(200, seed, anchor=ANCHOR).billing
        for inv in b.invoices.values():
            if inv.next_payment_attempt is not None:
                assert inv.status == "open" and inv.attempt_count >= 1 and inv.next_payment_attempt > ANCHOR
                scheduled += 1
    assert scheduled >= 1


def _money_state(b: BillingStore) -> dict[str, Any]:
    return {
        "tax_rates": [dataclasses.asdict(r) for r in b.tax_rates.values()],
        "coupons": [dataclasses.asdict(c) for c in b.coupons.values()],
        "credit_notes": [dataclasses.asdict(c) for c in b.credit_notes.values()],
        "charges": [dataclasses.asdict(c) for c in b.charges.values()],
        "refunds": [dataclasses.asdict(r) for r in b.refunds.values()],
        "invoices": [dataclasses.asdict(i) for i in b.invoices.values()],
        "customers": [(c.id, c.extra) for c in b.customers.values()],
        "events": [(e.id, e.type, e.created, e.object_id) for e in b.events],
    }


def test_the_money_is_deterministic_from_customers_and_seed() -> None:
    a = _money_state(generate(150, 5, anchor=ANCHOR).billing)
    assert a == _money_state(generate(150, 5, anchor=ANCHOR).billing)
    other = _money_state(generate(150, 6, anchor=ANCHOR).billing)
    assert a["credit_notes"] != other["credit_notes"] and a["invoices"] != other["invoices"]


def test_money_events_are_emitted_for_the_recent_ones() -> None:
    ds = generate(200, 2, anchor=ANCHOR)
    b = ds.billing
    since = ANCHOR - 30 * 86400
    events = Counter((e.type, e.object_id) for e in b.events if e.type in MONEY_EVENTS)
    for cn in b.credit_notes.values():
        assert (events[("credit_note.created", cn.id)] == 1) == (cn.created >= since)
        if cn.type == "pre_payment" and cn.created >= since:
            assert events[("invoice.updated", cn.invoice)] >= 1
    for r in b.refunds.values():
        assert (events[("charge.refunded", r.charge)] >= 1) == (r.created >= since or any(
            o.charge == r.charge and o.created >= since for o in b.refunds.values()))
    kinds = {t for t, _ in events}
    assert {"credit_note.created", "charge.refunded"} <= kinds
    assert [e.created for e in b.events] == sorted(e.created for e in b.events)


# the plants only the money makes possible, and the proration plant, chosen after the tax plant
# (customers the tax plant takes with the money are free without it)
MONEY_PLANTS = frozenset({"invoice.tax_mismatch", "credit_note.missing_in_erp", "credit_note.amount_mismatch",
                          "invoice.refund_not_reflected", "subscription.proration_mismatch"})


def _story(ds: Any) -> dict[str, Any]:
    b = ds.billing
    return {
        "invoices": [(i.id, i.customer, i.status, i.number, i.attempt_count, i.finalized_at, i.paid_at, i.voided_at,
                      [(ln.id, ln.price, ln.quantity, ln.amount, ln.proration) for ln in i.lines])
                     for i in b.invoices.values()],
        "subscriptions": [(s.id, s.status, s.current_period_end, s.canceled_at) for s in b.subscriptions.values()],
        "events": [(e.id, e.type, e.created, e.object_id) for e in b.events if e.type not in MONEY_EVENTS],
        # a tax mismatch is planted only where there is tax: the other plants are the same
        # as the credit plants (chosen after the money is settled) and the ERP credit notes
        "manifest": [(m.rule, m.customer, m.object) for m in ds.manifest if m.rule not in MONEY_PLANTS],
        "erp_refs": sorted((r["reference"] or "", r["state"]) for r in ds.erp.tables["account.invoice"].values()
                           if r.get("sequence_type_cache") != "credit_note"),
    }


def test_the_money_leaves_the_main_stream_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same company with the money switched off (no tax, no coupon, no credit note): the same
    invoices, payment stories, events, plants and ERP copies."""
    with_money = _story(generate(160, 4, anchor=ANCHOR))
    from services.demo.generator import billing_money

    for name in ("assign_customer", "on_subscription", "price_invoice", "unprice"):
        monkeypatch.setattr(billing_money._Money, name, lambda self, *a: None)
    monkeypatch.setattr(billing_money._Money, "settle", lambda self, custs, keep: None)
    without = _story(generate(160, 4, anchor=ANCHOR))
    assert with_money == without


@settings(max_examples=300, deadline=None)
@given(amount=st.integers(min_value=-10**9, max_value=10**9),
       percentage=st.decimals(min_value=0, max_value=100, places=3, allow_nan=False, allow_infinity=False))
def test_tax_rounding_is_half_away_from_zero_on_the_exact_product(amount: int, percentage: Decimal) -> None:
    text = str(percentage)
    assert _pct(amount, text) == _tax(amount, text)
    assert _pct(-amount, text) == -_pct(amount, text)  # a credit line's tax mirrors its debit's
