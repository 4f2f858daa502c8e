"""``expand[]``: replace object ids in a response by the objects (dotted paths, through lists,
at most four levels)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.demo.store import BillingStore
from services.demo.stripe.errors import _invalid
from services.demo.stripe.responses import JSON
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
}


def _expand_node(store: BillingStore, node: Any, path: list[str], full: str) -> Any:
    if isinstance(node, list):
        return [_expand_node(store, n, path, full) for n in node]
    if not isinstance(node, dict) or path[0] not in node:
        raise _invalid(f"This property cannot be expanded ({full}).", "expand")
    key, rest = path[0], path[1:]
    value = node[key]
    if isinstance(value, str):
        kind = _EXPANDERS.get(key)
        if kind is None:
            raise _invalid(f"This property cannot be expanded ({full}).", "expand")
        rendered = render_object(store, kind, value)
        if rendered is not None:
            value = rendered
    elif not rest and not isinstance(value, dict | list) and value is not None:
        raise _invalid(f"This property cannot be expanded ({full}).", "expand")
    if rest and value is not None:
        value = _expand_node(store, value, rest, full)
    node[key] = value
    return node


def apply_expand(store: BillingStore, body: JSON, expand: Sequence[str]) -> JSON:
    for full in expand:
        if not isinstance(full, str) or not full:
            raise _invalid("Invalid expand value", "expand")
        path = full.split(".")
        depth = len([p for p in path if p != "data"])
        if depth > MAX_EXPAND_DEPTH:
            raise _invalid(f"You cannot expand more than {MAX_EXPAND_DEPTH} levels of a property. "
                           f"Property: {full}", "expand")
        _expand_node(store, body, path, full)
    return body
