"""Stripe JSON of a customer, with its invoice prefix and next invoice sequence (read from
its numbered invoices) and its delinquency."""

from __future__ import annotations

import hashlib
from typing import Any

from services.demo.store import BCustomer, BillingStore
from services.demo.stripe.responses import JSON
from services.demo.stripe.serializers.money import render_stored_discount
from services.demo.stripe.serializers.subscriptions import render_subscription


def _invoice_seq(number: str | None) -> tuple[str, int] | None:
    if not number or "-" not in number:
        return None
    prefix, _, seq = number.rpartition("-")
    return (prefix, int(seq)) if seq.isdigit() else None


def customer_invoice_prefix(store: BillingStore, customer_id: str) -> tuple[str, int]:
    """(invoice prefix, next invoice sequence) of a customer: the ``invoice_prefix`` and
    ``next_invoice_sequence`` it was given, else read from its numbered invoices."""
    customer = store.customers.get(customer_id)
    extra = customer.extra if customer is not None else {}
    prefix: str | None = extra.get("invoice_prefix")
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
    return prefix, max(last + 1, int(extra.get("next_invoice_sequence") or 0))


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


_ADDRESS_KEYS = ("city", "country", "line1", "line2", "postal_code", "state")


def render_address(parts: dict[str, Any] | None) -> JSON:
    """A Stripe ``address`` with every key (unset ones ``null``)."""
    parts = parts or {}
    return {k: parts.get(k) for k in _ADDRESS_KEYS}


def customer_address(c: BCustomer) -> JSON | None:
    """The customer's address: the parts it was given, its country kept in ``c.country``."""
    parts = c.extra.get("address")
    if c.country is None and not parts:
        return None
    return render_address({**(parts or {}), "country": c.country})


def customer_shipping(c: BCustomer) -> JSON | None:
    shipping = c.extra.get("shipping")
    if not shipping:
        return None
    return {"address": render_address(shipping.get("address")), "carrier": None, "name": shipping.get("name"),
            "phone": shipping.get("phone"), "tracking_number": None}


def _invoice_settings(c: BCustomer) -> JSON:
    given = c.extra.get("invoice_settings") or {}
    rendering = given.get("rendering_options")
    return {"custom_fields": given.get("custom_fields") or None, "default_payment_method": None,
            "footer": given.get("footer"),
            "rendering_options": {"amount_tax_display": rendering.get("amount_tax_display") or None}
            if rendering else None}


def render_tax_id(c: BCustomer, tax: JSON) -> JSON:
    return {"id": tax["id"], "object": "tax_id", "country": tax.get("country"), "created": tax["created"],
            "customer": c.id, "livemode": False, "type": tax["type"], "value": tax["value"],
            "verification": {"status": tax.get("verification", "pending"), "verified_address": None,
                             "verified_name": None}}


def render_customer_included(store: BillingStore, c: BCustomer, name: str) -> Any:
    """What ``expand[]=<name>`` adds to a customer for the properties Stripe leaves out unless asked
    (``tax``, ``tax_ids``, ``cash_balance``, ``subscriptions``, ``sources``,
    ``invoice_credit_balance``); ``KeyError`` for any other name."""
    if name == "tax_ids":
        data = [render_tax_id(c, t) for t in c.extra.get("tax_ids", [])]
        return {"object": "list", "data": data, "has_more": False, "url": f"/v1/customers/{c.id}/tax_ids"}
    if name == "tax":
        country = c.country or (customer_shipping(c) or {}).get("address", {}).get("country")
        return {"automatic_tax": "not_collecting" if country else "unrecognized_location",
                "ip_address": c.extra.get("tax_ip_address"),
                "location": {"country": country, "source": "billing_address", "state": None} if country else None}
    if name == "cash_balance":
        mode = c.extra.get("cash_balance_reconciliation_mode")
        return {"object": "cash_balance", "available": None, "customer": c.id, "livemode": False,
                "settings": {"reconciliation_mode": mode if mode in ("automatic", "manual") else "automatic",
                             "using_merchant_default": mode in (None, "merchant_default")}}
    if name == "subscriptions":
        subs = [store.subscriptions[s] for s in store.subscriptions_by_customer.get(c.id, ())
                if s in store.subscriptions and store.subscriptions[s].status != "canceled"]
        return {"object": "list", "data": [render_subscription(store, s) for s in reversed(subs)],
                "has_more": False, "url": f"/v1/customers/{c.id}/subscriptions"}
    if name == "sources":
        return {"object": "list", "data": [], "has_more": False, "url": f"/v1/customers/{c.id}/sources"}
    if name == "invoice_credit_balance":
        return {}
    raise KeyError(name)


def render_customer(store: BillingStore, c: BCustomer) -> JSON:
    if c.deleted:
        return {"id": c.id, "object": "customer", "deleted": True}
    prefix, next_seq = customer_invoice_prefix(store, c.id)
    address = customer_address(c)
    return {
        "id": c.id,
        "object": "customer",
        "address": address,
        "balance": c.extra.get("balance", 0),
        "created": c.created,
        "currency": c.currency,
        "default_source": None,
        "delinquent": _customer_delinquent(store, c.id),
        "description": c.description,
        "discount": render_stored_discount(store, c.extra.get("discount"), c.id, None),
        "email": c.email,
        "invoice_prefix": prefix,
        "invoice_settings": _invoice_settings(c),
        "livemode": False,
        "metadata": _customer_metadata(c),
        "name": c.name or None,
        "next_invoice_sequence": next_seq,
        "phone": c.phone,
        "preferred_locales": list(c.extra.get("preferred_locales", [])),
        "shipping": customer_shipping(c),
        "tax_exempt": c.extra.get("tax_exempt", "none"),
        "test_clock": c.extra.get("test_clock"),
    }
