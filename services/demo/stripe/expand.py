"""``expand[]``: replace object ids in a response by the objects (dotted paths, through lists,
at most four levels), and add the properties Stripe includes only when asked (a customer's
``tax``, ``tax_ids``, ``cash_balance``, ``subscriptions``, ``sources``, ``invoice_credit_balance``;
a price's ``currency_options`` and ``tiers``)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from services.demo.store import BillingStore
from services.demo.stripe.errors import _invalid
from services.demo.stripe.references import render_test_clock
from services.demo.stripe.responses import JSON
from services.demo.stripe.serializers.customers import render_customer_included
from services.demo.stripe.serializers.objects import render_object

MAX_EXPAND_DEPTH = 4

_EXPANDERS: dict[str, str] = {
    # field name -> object kind it references
    "customer": "customer",
    "subscription": "subscription",
    "latest_invoice": "invoice",
    "product": "product",
    "default_price": "price",
    "price": "price",
    "test_clock": "test_clock",
    "invoice": "invoice",
    "charge": "charge",
    "refund": "refund",
    "credit_note": "credit_note",
}


def _included(store: BillingStore, node: JSON, key: str) -> Any:
    """A property Stripe includes only when it is expanded (``KeyError`` when there is none)."""
    kind, oid = node.get("object"), node.get("id")
    if kind == "customer" and isinstance(oid, str) and oid in store.customers:
        return render_customer_included(store, store.customers[oid], key)
    if kind == "price" and key == "currency_options":
        amount = node.get("unit_amount")
        return {node["currency"]: {"custom_unit_amount": None, "tax_behavior": node.get("tax_behavior"),
                                   "unit_amount": amount, "unit_amount_decimal": node.get("unit_amount_decimal")}}
    if kind == "price" and key == "tiers":
        return []
    raise KeyError(key)


def _expand_node(store: BillingStore, node: Any, path: list[str], full: str, now: int) -> Any:
    if isinstance(node, list):
        return [_expand_node(store, n, path, full, now) for n in node]
    if isinstance(node, dict) and path[0] not in node:
        with contextlib.suppress(KeyError):
            node[path[0]] = _included(store, node, path[0])
    if not isinstance(node, dict) or path[0] not in node:
        raise _invalid(f"This property cannot be expanded ({full}).", "expand")
    key, rest = path[0], path[1:]
    value = node[key]
    if isinstance(value, str):
        kind = _EXPANDERS.get(key)
        if kind is None:
            raise _invalid(f"This property cannot be expanded ({full}).", "expand")
        rendered = render_test_clock(store, value, now) if kind == "test_clock" else render_object(store, kind, value)
        if rendered is not None:
            value = rendered
    elif not rest and not isinstance(value, dict | list) and value is not None:
        raise _invalid(f"This property cannot be expanded ({full}).", "expand")
    if rest and value is not None:
        value = _expand_node(store, value, rest, full, now)
    node[key] = value
    return node


def apply_expand(store: BillingStore, body: JSON, expand: Sequence[str], now: int = 0) -> JSON:
    for full in expand:
        if not isinstance(full, str) or not full:
            raise _invalid("Invalid expand value", "expand")
        path = full.split(".")
        depth = len([p for p in path if p != "data"])
        if depth > MAX_EXPAND_DEPTH:
            raise _invalid(f"You cannot expand more than {MAX_EXPAND_DEPTH} levels of a property. "
                           f"Property: {full}", "expand")
        _expand_node(store, body, path, full, now)
    return body
