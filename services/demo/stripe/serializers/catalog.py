"""Stripe JSON of the catalog: prices and products (a dangling price reference still renders
as a valid, inactive price)."""

from __future__ import annotations

from services.demo.store import BillingStore, BPrice, BProduct
from services.demo.stripe.responses import JSON


def price_type(p: BPrice) -> str:
    """``recurring``, or ``one_time`` for a price created inline by ``add_invoice_items``."""
    return "one_time" if p.extra.get("type") == "one_time" else "recurring"


def render_price(store: BillingStore, p: BPrice) -> JSON:
    one_time = price_type(p) == "one_time"
    return {
        "id": p.id,
        "object": "price",
        "active": p.active,
        "billing_scheme": "per_unit",
        "created": p.created,
        "currency": p.currency.lower(),
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": p.lookup_key or None,
        "metadata": dict(p.metadata),
        "nickname": p.nickname,
        "product": p.product,
        "recurring": None if one_time else {"aggregate_usage": None, "interval": p.interval,
                                            "interval_count": p.extra.get("interval_count", 1),
                                            "usage_type": "licensed"},
        "tax_behavior": p.extra.get("tax_behavior", "unspecified"),
        "tiers_mode": None,
        "transform_quantity": None,
        "type": price_type(p),
        "unit_amount": p.unit_amount,
        "unit_amount_decimal": p.extra.get("unit_amount_decimal", str(p.unit_amount)),
    }


def _default_price(store: BillingStore, product_id: str) -> str | None:
    fallback: str | None = None
    for price in store.prices.values():
        if price.product == product_id:
            if price.active:
                return price.id
            fallback = fallback or price.id
    return fallback


def render_product(store: BillingStore, p: BProduct) -> JSON:
    return {
        "id": p.id,
        "object": "product",
        "active": p.active,
        "created": p.created,
        "default_price": _default_price(store, p.id),
        "description": p.description,
        "features": [],
        "images": [],
        "livemode": False,
        "metadata": dict(p.metadata),
        "name": p.name,
        "package_dimensions": None,
        "shippable": p.extra.get("shippable"),
        "statement_descriptor": None,
        "tax_code": None,
        "unit_label": None,
        "updated": p.updated or p.created,
        "url": p.extra.get("url"),
    }


def _render_price_id(store: BillingStore, price_id: str) -> JSON:
    price = store.prices.get(price_id)
    if price is not None:
        return render_price(store, price)
    # a dangling reference still renders as a valid (inactive) price
    return render_price(store, BPrice(id=price_id, product="prod_unknown", unit_amount=0, currency="usd",
                                      interval="month", lookup_key="", created=0, active=False))
