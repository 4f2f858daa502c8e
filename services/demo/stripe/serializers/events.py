"""Stripe JSON of an event (its object snapshot and ``previous_attributes``), and the
``previous_attributes`` of an update."""

from __future__ import annotations

import copy

from services.demo.store import BEvent, BillingStore
from services.demo.stripe.responses import API_VERSION, JSON
from services.demo.stripe.serializers.objects import render_object


def render_event(store: BillingStore, e: BEvent) -> JSON:
    if e.snapshot is not None:
        obj: JSON = copy.deepcopy(e.snapshot)
    else:
        obj = render_object(store, e.object_kind, e.object_id) or {"id": e.object_id, "object": e.object_kind}
    data: JSON = {"object": obj}
    if e.previous_attributes is not None:
        data["previous_attributes"] = copy.deepcopy(e.previous_attributes)
    return {
        "id": e.id,
        "object": "event",
        "account": store.account_id,
        "api_version": API_VERSION,
        "created": e.created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 0,
        "request": {"id": e.request_id, "idempotency_key": e.idempotency_key},
        "type": e.type,
    }


def _diff(before: JSON, after: JSON) -> JSON:
    """Stripe's ``previous_attributes``: old values of the top-level fields that changed;
    for ``metadata`` only the changed keys (``None`` for keys that were absent)."""
    previous: JSON = {}
    for key, old in before.items():
        new = after.get(key)
        if old == new:
            continue
        if key == "metadata" and isinstance(old, dict) and isinstance(new, dict):
            previous[key] = {k: old.get(k) for k in set(old) | set(new) if old.get(k) != new.get(k)}
        else:
            previous[key] = old
    return previous
