"""Stripe JSON of a customer, with its invoice prefix and next invoice sequence (read from
its numbered invoices) and its delinquency."""

from __future__ import annotations

import hashlib

from services.demo.store import BCustomer, BillingStore
from services.demo.stripe.responses import JSON


def _invoice_seq(number: str | None) -> tuple[str, int] | None:
    if not number or "-" not in number:
        return None
    prefix, _, seq = number.rpartition("-")
    return (prefix, int(seq)) if seq.isdigit() else None


def customer_invoice_prefix(store: BillingStore, customer_id: str) -> tuple[str, int]:
    """(invoice prefix, next invoice sequence) of a customer, from its numbered invoices."""
    prefix: str | None = None
    last = 0
    for iid in store.invoices_by_customer.get(customer_id, ()):
        inv = store.invoices.get(iid)
        parsed = _invoice_seq(inv.number if inv else None)
        if parsed is None:
            continue
        if prefix is None:
            prefix = parsed[0]
        if parsed[0] == prefix:
            last = max(last, parsed[1])
    if prefix is None:
        prefix = hashlib.sha1(customer_id.encode()).hexdigest()[:8].upper()
    return prefix, last + 1


def _customer_delinquent(store: BillingStore, customer_id: str) -> bool:
    for iid in store.invoices_by_customer.get(customer_id, ()):
        inv = store.invoices.get(iid)
        if inv is not None and (inv.status == "uncollectible" or (inv.status == "open" and inv.attempt_count > 0)):
            return True
    return False


def _customer_metadata(c: BCustomer) -> dict[str, str]:
    md = dict(c.metadata)
    if c.tax_id:
        md["tax_id"] = c.tax_id
    return md


def render_customer(store: BillingStore, c: BCustomer) -> JSON:
    if c.deleted:
        return {"id": c.id, "object": "customer", "deleted": True}
    prefix, next_seq = customer_invoice_prefix(store, c.id)
    address = None
    if c.country is not None:
        address = {"city": None, "country": c.country, "line1": None, "line2": None,
                   "postal_code": None, "state": None}
    return {
        "id": c.id,
        "object": "customer",
        "address": address,
        "balance": 0,
        "created": c.created,
        "currency": c.currency,
        "default_source": None,
        "delinquent": _customer_delinquent(store, c.id),
        "description": c.description,
        "discount": None,
        "email": c.email,
        "invoice_prefix": prefix,
        "invoice_settings": {"custom_fields": None, "default_payment_method": None, "footer": None,
                             "rendering_options": None},
        "livemode": False,
        "metadata": _customer_metadata(c),
        "name": c.name or None,
        "next_invoice_sequence": next_seq,
        "phone": c.phone,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }
