"""Any store object's Stripe JSON by kind (for ``expand[]`` and event payloads)."""

from __future__ import annotations

from services.demo.store import BillingStore
from services.demo.stripe.responses import JSON
from services.demo.stripe.serializers.catalog import render_price, render_product
from services.demo.stripe.serializers.customers import render_customer
from services.demo.stripe.serializers.invoices import render_invoice
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
    return None
