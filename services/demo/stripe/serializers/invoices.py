"""Stripe JSON of an invoice and its line items."""

from __future__ import annotations

from services.demo.store import BillingStore, BInvoice, BInvoiceLine
from services.demo.stripe.responses import JSON
from services.demo.stripe.serializers.catalog import _render_price_id
from services.demo.stripe.serializers.customers import customer_address, customer_shipping
from services.demo.stripe.serializers.money import invoice_tax_amounts, render_discount, render_tax_rate, tax_amount


def _subscription_item_for(store: BillingStore, subscription_id: str | None, price_id: str) -> str | None:
    sub = store.subscriptions.get(subscription_id) if subscription_id else None
    if sub is None:
        return None
    for it in sub.items:
        if it.price == price_id:
            return it.id
    return None


def _render_line(store: BillingStore, inv: BInvoice, line: BInvoiceLine) -> JSON:
    rate = store.tax_rates.get(line.tax_rate) if line.tax_rate else None
    out: JSON = {
        "id": line.id,
        "object": "line_item",
        "amount": line.amount,
        "amount_excluding_tax": line.amount,
        "currency": inv.currency.lower(),
        "description": line.description,
        "discount_amounts": [{"amount": line.discount_amount, "discount": inv.discount_id}]
        if inv.discount_id is not None else [],
        "discountable": True,
        "discounts": [],
        "livemode": False,
        "metadata": {},
        "period": {"end": line.period_end, "start": line.period_start},
        "price": _render_price_id(store, line.price),
        "proration": line.proration,
        "proration_details": {"credited_items": None},
        "quantity": line.quantity,
        "subscription": inv.subscription,
        "tax_amounts": [tax_amount(store, rate.id, line.tax_amount, line.amount - line.discount_amount)]
        if rate is not None else [],
        "tax_rates": [render_tax_rate(rate)] if rate is not None else [],
        "type": "subscription" if inv.subscription else "invoiceitem",
        "unit_amount_excluding_tax": str(line.amount // line.quantity) if line.quantity else "0",
    }
    si = _subscription_item_for(store, inv.subscription, line.price)
    if si is not None:
        out["subscription_item"] = si
    return out


def render_invoice(store: BillingStore, inv: BInvoice) -> JSON:
    customer = store.customers.get(inv.customer)
    sub = store.subscriptions.get(inv.subscription) if inv.subscription else None
    paid = inv.status == "paid"
    due = inv.total - inv.pre_payment_credit_notes_amount
    remaining = 0 if inv.status in ("paid", "void") else max(0, due - inv.amount_paid)
    address = customer_address(customer) if customer is not None else None
    return {
        "id": inv.id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "SyncDesk Demo Inc.",
        "account_tax_ids": None,
        "amount_due": due,
        "amount_paid": inv.amount_paid,
        "amount_remaining": remaining,
        "amount_shipping": 0,
        "application": None,
        "application_fee_amount": None,
        "attempt_count": inv.attempt_count,
        "attempted": inv.attempt_count > 0 or paid,
        "auto_advance": inv.status in ("draft", "open"),
        "automatic_tax": {"enabled": False, "status": None},
        "billing_reason": inv.billing_reason,
        "charge": inv.charge,
        "collection_method": inv.extra.get("collection_method", "charge_automatically"),
        "created": inv.created,
        "currency": inv.currency.lower(),
        "custom_fields": None,
        "customer": inv.customer,
        "customer_address": address,
        "customer_email": customer.email if customer else None,
        "customer_name": customer.name if customer else None,
        "customer_phone": customer.phone if customer else None,
        "customer_shipping": customer_shipping(customer) if customer is not None else None,
        "customer_tax_exempt": customer.extra.get("tax_exempt", "none") if customer is not None else None,
        "customer_tax_ids": [{"type": t["type"], "value": t["value"]} for t in customer.extra.get("tax_ids", [])]
        if customer is not None else [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": inv.extra.get("description"),
        "discount": render_discount(store, inv),
        "discounts": [inv.discount_id] if inv.discount_id is not None else [],
        "due_date": inv.extra.get("due_date"),
        "effective_at": inv.finalized_at,
        "ending_balance": 0 if inv.finalized_at else None,
        "footer": inv.footer,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": {"object": "list", "data": [_render_line(store, inv, ln) for ln in inv.lines],
                  "has_more": False, "url": f"/v1/invoices/{inv.id}/lines"},
        "livemode": False,
        "metadata": dict(inv.metadata),
        "next_payment_attempt": inv.next_payment_attempt if inv.status == "open" else None,
        "number": inv.number,
        "on_behalf_of": None,
        "paid": paid,
        "paid_out_of_band": False,
        "payment_intent": inv.payment_intent,
        "payment_settings": {"default_mandate": None, "payment_method_options": None,
                             "payment_method_types": None},
        "period_end": inv.period_end,
        "period_start": inv.period_start,
        "post_payment_credit_notes_amount": inv.post_payment_credit_notes_amount,
        "pre_payment_credit_notes_amount": inv.pre_payment_credit_notes_amount,
        "quote": None,
        "receipt_number": None,
        "rendering_options": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": inv.status,
        "status_transitions": {"finalized_at": inv.finalized_at, "marked_uncollectible_at": None,
                               "paid_at": inv.paid_at, "voided_at": inv.voided_at},
        "subscription": inv.subscription,
        "subscription_details": {"metadata": dict(sub.metadata) if sub else None},
        "subtotal": inv.subtotal,
        "subtotal_excluding_tax": inv.subtotal,
        "tax": inv.tax,
        "test_clock": None,
        "total": inv.total,
        "total_discount_amounts": [{"amount": inv.discount_total, "discount": inv.discount_id}]
        if inv.discount_id is not None else [],
        "total_excluding_tax": inv.subtotal - inv.discount_total,
        "total_tax_amounts": invoice_tax_amounts(store, inv),
        "transfer_data": None,
        "webhooks_delivered_at": inv.finalized_at or inv.created,
    }
