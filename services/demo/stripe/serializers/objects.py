"""Any store object's Stripe JSON by kind (for ``expand[]`` and event payloads)."""

from __future__ import annotations

from services.demo.store import BillingStore
from services.demo.stripe.responses import JSON
from services.demo.stripe.serializers.catalog import render_price, render_product
from services.demo.stripe.serializers.customers import render_customer
from services.demo.stripe.serializers.invoices import render_invoice
from services.demo.stripe.serializers.money import (
    render_charge,
    render_coupon,
    render_credit_note,
    render_refund,
    render_tax_rate,
)
from services.demo.stripe.serializers.subscriptions import render_subscription


def render_object(store: BillingStore, kind: str, oid: str) -> JSON | None:
    """The current rendering of a store object by kind, or ``None`` when it does not exist."""
    if kind == "customer":
        c = store.customers.get(oid)
        return render_customer(store, c) if c else None
    if kind == "subscription":
        s = store.subscriptions.get(oid)
        return render_subscription(store, s) if s else None
    if kind == "invoice":
        i = store.invoices.get(oid)
        return render_invoice(store, i) if i else None
    if kind == "product":
        p = store.products.get(oid)
        return render_product(store, p) if p else None
    if kind == "price":
        pr = store.prices.get(oid)
        return render_price(store, pr) if pr else None
    if kind == "credit_note":
        cn = store.credit_notes.get(oid)
        return render_credit_note(store, cn) if cn else None
    if kind == "charge":
        ch = store.charges.get(oid)
        return render_charge(store, ch) if ch else None
    if kind == "refund":
        rf = store.refunds.get(oid)
        return render_refund(rf) if rf else None
    if kind == "tax_rate":
        tr = store.tax_rates.get(oid)
        return render_tax_rate(tr) if tr else None
    if kind == "coupon":
        cp = store.coupons.get(oid)
        return render_coupon(cp) if cp else None
    return None
