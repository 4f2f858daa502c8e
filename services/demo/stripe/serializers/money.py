"""Stripe JSON of the money objects (API version 2023-08-16): tax rates, coupons, an invoice's
discount, credit notes and their lines, charges and refunds. Amounts are integers in minor
units; a tax rate's ``percentage`` is a JSON number, as Stripe sends it, made from the stored
decimal text."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from services.demo.store import (
    BCharge,
    BCoupon,
    BCreditNote,
    BCreditNoteLine,
    BillingStore,
    BInvoice,
    BRefund,
    BTaxRate,
)
from services.demo.stripe.responses import JSON


def _number(text: str) -> int | float:
    d = Decimal(text)
    return int(d) if d == d.to_integral_value() else float(d)


def render_tax_rate(r: BTaxRate) -> JSON:
    return {
        "id": r.id, "object": "tax_rate", "active": r.active, "country": r.country, "created": r.created,
        "description": r.description, "display_name": r.display_name, "effective_percentage": _number(r.percentage),
        "inclusive": r.inclusive, "jurisdiction": r.jurisdiction, "livemode": False, "metadata": dict(r.metadata),
        "percentage": _number(r.percentage), "state": r.state, "tax_type": r.tax_type,
    }


def render_coupon(c: BCoupon) -> JSON:
    return {
        "id": c.id, "object": "coupon", "amount_off": c.amount_off, "created": c.created, "currency": c.currency,
        "duration": c.duration, "duration_in_months": c.duration_in_months, "livemode": False,
        "max_redemptions": None, "metadata": dict(c.metadata), "name": c.name,
        "percent_off": _number(c.percent_off) if c.percent_off is not None else None, "redeem_by": None,
        "times_redeemed": c.times_redeemed, "valid": True,
    }


def render_discount(store: BillingStore, inv: BInvoice) -> JSON | None:
    """The invoice's discount object (``None`` when it has none)."""
    if inv.discount_id is None or inv.coupon is None:
        return None
    coupon = store.coupons.get(inv.coupon)
    if coupon is None:
        return None
    return {
        "id": inv.discount_id, "object": "discount", "checkout_session": None, "coupon": render_coupon(coupon),
        "customer": inv.customer, "end": inv.discount_end, "invoice": None, "invoice_item": None,
        "promotion_code": None, "start": inv.discount_start or inv.created,
        "subscription": inv.discount_subscription,
    }


def render_stored_discount(store: BillingStore, d: dict[str, Any] | None, customer: str,
                           subscription: str | None) -> JSON | None:
    """A discount kept on a customer or subscription (``extra["discount"]``: id, coupon, start,
    end), or None when there is none (or its coupon is gone)."""
    coupon = store.coupons.get(d["coupon"]) if d else None
    if d is None or coupon is None:
        return None
    return {"id": d["id"], "object": "discount", "checkout_session": None, "coupon": render_coupon(coupon),
            "customer": customer, "end": d.get("end"), "invoice": None, "invoice_item": None,
            "promotion_code": None, "start": d["start"], "subscription": subscription}


def tax_reason(store: BillingStore, rate_id: str | None) -> str | None:
    rate = store.tax_rates.get(rate_id) if rate_id else None
    if rate is None:
        return None
    return "reverse_charge" if Decimal(rate.percentage) == 0 else "standard_rated"


def tax_amount(store: BillingStore, rate_id: str, amount: int, taxable: int) -> JSON:
    return {"amount": amount, "inclusive": False, "tax_rate": rate_id,
            "taxability_reason": tax_reason(store, rate_id), "taxable_amount": taxable}


def _group_taxes(store: BillingStore, parts: list[tuple[str | None, int, int]]) -> list[JSON]:
    """``[(rate, tax, taxable)]`` summed per rate, in first-seen order."""
    sums: dict[str, list[int]] = {}
    for rate, tax, taxable in parts:
        if rate is None:
            continue
        acc = sums.setdefault(rate, [0, 0])
        acc[0] += tax
        acc[1] += taxable
    return [tax_amount(store, rate, t, b) for rate, (t, b) in sums.items()]


def invoice_tax_amounts(store: BillingStore, inv: BInvoice) -> list[JSON]:
    return _group_taxes(store, [(ln.tax_rate, ln.tax_amount, ln.amount - ln.discount_amount) for ln in inv.lines])


def _credit_note_line(store: BillingStore, cn: BCreditNote, ln: BCreditNoteLine) -> JSON:
    rate = store.tax_rates.get(ln.tax_rate) if ln.tax_rate else None
    discount_amounts = ([{"amount": ln.discount_amount, "discount": inv_disc}]
                        if (inv_disc := _invoice_discount_id(store, cn)) is not None else [])
    unit = ln.amount // ln.quantity if ln.quantity else ln.amount
    return {
        "id": ln.id, "object": "credit_note_line_item", "amount": ln.amount,
        "amount_excluding_tax": ln.amount, "description": ln.description, "discount_amount": ln.discount_amount,
        "discount_amounts": discount_amounts, "invoice_line_item": ln.invoice_line_item, "livemode": False,
        "quantity": ln.quantity,
        "tax_amounts": [tax_amount(store, ln.tax_rate, ln.tax_amount, ln.amount - ln.discount_amount)]
        if ln.tax_rate else [],
        "tax_rates": [render_tax_rate(rate)] if rate is not None else [], "type": "invoice_line_item",
        "unit_amount": unit, "unit_amount_decimal": str(unit), "unit_amount_excluding_tax": str(unit),
    }


def _invoice_discount_id(store: BillingStore, cn: BCreditNote) -> str | None:
    inv = store.invoices.get(cn.invoice)
    return inv.discount_id if inv is not None else None


def credit_note_lines(store: BillingStore, cn: BCreditNote) -> list[JSON]:
    return [_credit_note_line(store, cn, ln) for ln in cn.lines]


def render_credit_note(store: BillingStore, cn: BCreditNote) -> JSON:
    disc = _invoice_discount_id(store, cn)
    return {
        "id": cn.id, "object": "credit_note", "amount": cn.total, "amount_shipping": 0, "created": cn.created,
        "currency": cn.currency, "customer": cn.customer, "customer_balance_transaction": None,
        "discount_amount": cn.discount,
        "discount_amounts": [{"amount": cn.discount, "discount": disc}] if disc is not None else [],
        "effective_at": cn.created, "invoice": cn.invoice,
        "lines": {"object": "list", "data": credit_note_lines(store, cn), "has_more": False,
                  "url": f"/v1/credit_notes/{cn.id}/lines"},
        "livemode": False, "memo": cn.memo, "metadata": dict(cn.metadata), "number": cn.number,
        "out_of_band_amount": None, "pdf": f"https://pay.stripe.com/credit_notes/demo/{cn.id}/pdf",
        "reason": cn.reason, "refund": cn.refund, "shipping_cost": None, "status": cn.status,
        "subtotal": cn.subtotal, "subtotal_excluding_tax": cn.subtotal,
        "tax_amounts": _group_taxes(store, [(ln.tax_rate, ln.tax_amount, ln.amount - ln.discount_amount)
                                            for ln in cn.lines]),
        "total": cn.total, "total_excluding_tax": cn.subtotal - cn.discount, "type": cn.type,
        "voided_at": None,
    }


def render_refund(r: BRefund) -> JSON:
    return {
        "id": r.id, "object": "refund", "amount": r.amount, "balance_transaction": None, "charge": r.charge,
        "created": r.created, "currency": r.currency, "metadata": dict(r.metadata),
        "payment_intent": r.payment_intent, "reason": r.reason, "receipt_number": None,
        "source_transfer_reversal": None, "status": r.status, "transfer_reversal": None,
    }


def render_charge(store: BillingStore, ch: BCharge) -> JSON:
    customer = store.customers.get(ch.customer)
    refunds = [render_refund(r) for r in reversed(store.refunds.values()) if r.charge == ch.id]
    ok = ch.status == "succeeded"
    return {
        "id": ch.id, "object": "charge", "amount": ch.amount, "amount_captured": ch.amount if ok else 0,
        "amount_refunded": ch.amount_refunded, "application": None, "application_fee": None,
        "application_fee_amount": None, "balance_transaction": None,
        "billing_details": {"address": None, "email": customer.email if customer else None,
                            "name": customer.name if customer else None, "phone": None},
        "calculated_statement_descriptor": "SYNCDESK DEMO", "captured": ok, "created": ch.created,
        "currency": ch.currency, "customer": ch.customer, "description": "Subscription update",
        "disputed": False, "failure_balance_transaction": None, "failure_code": ch.failure_code,
        "failure_message": ch.failure_message, "fraud_details": {}, "invoice": ch.invoice, "livemode": False,
        "metadata": dict(ch.metadata), "on_behalf_of": None, "outcome": None, "paid": ok,
        "payment_intent": ch.payment_intent, "payment_method": None, "payment_method_details": None,
        "receipt_email": None, "receipt_number": None, "receipt_url": None,
        "refunded": ch.amount_refunded >= ch.amount > 0,
        "refunds": {"object": "list", "data": refunds, "has_more": False, "url": f"/v1/charges/{ch.id}/refunds"},
        "review": None, "shipping": None, "source_transfer": None, "statement_descriptor": None,
        "statement_descriptor_suffix": None, "status": ch.status, "transfer_data": None, "transfer_group": None,
    }
