"""Stripe JSON of a subscription, with its items and its latest invoice."""

from __future__ import annotations

from services.demo.store import BillingStore, BInvoice, BSubscription
from services.demo.stripe.responses import JSON
from services.demo.stripe.serializers.catalog import _render_price_id
from services.demo.stripe.serializers.money import render_stored_discount, render_tax_rate


def _latest_invoice_id(store: BillingStore, subscription_id: str) -> str | None:
    best: BInvoice | None = None
    for iid in store.invoices_by_subscription.get(subscription_id, ()):
        inv = store.invoices.get(iid)
        if inv is not None and (best is None or inv.created >= best.created):
            best = inv
    return best.id if best else None


def _render_sub_items(store: BillingStore, s: BSubscription) -> JSON:
    data: list[JSON] = [{
        "id": it.id,
        "object": "subscription_item",
        "billing_thresholds": it.extra.get("billing_thresholds"),
        "created": it.created,
        "metadata": dict(it.extra.get("metadata") or {}),
        "price": _render_price_id(store, it.price),
        "quantity": it.quantity,
        "subscription": s.id,
        "tax_rates": _tax_rates(store, it.extra.get("tax_rates")),
    } for it in s.items]
    return {"object": "list", "data": data, "has_more": False,
            "url": f"/v1/subscription_items?subscription={s.id}"}


def _tax_rates(store: BillingStore, ids: list[str] | None) -> list[JSON]:
    return [render_tax_rate(store.tax_rates[r]) for r in ids or () if r in store.tax_rates]


def render_subscription(store: BillingStore, s: BSubscription) -> JSON:
    """The subscription as Stripe answers it; the parameters the demo keeps in ``extra`` are
    answered as set (``services/demo/stripe/subscriptions.py``)."""
    x = s.extra
    cancel_at = s.current_period_end if s.cancel_at_period_end and s.status != "canceled" else None
    if x.get("cancel_at") is not None and s.status != "canceled":
        cancel_at = x["cancel_at"]
    details = x.get("cancellation_details") or {}
    settings = x.get("payment_settings") or {}
    return {
        "id": s.id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": x.get("automatic_tax") or {"enabled": False},
        "billing_cycle_anchor": x.get("billing_cycle_anchor") or (s.trial_end if s.trial_end else s.start_date),
        "billing_thresholds": x.get("billing_thresholds"),
        "cancel_at": cancel_at,
        "cancel_at_period_end": s.cancel_at_period_end,
        "canceled_at": s.canceled_at,
        "cancellation_details": {"comment": details.get("comment"), "feedback": details.get("feedback"),
                                 "reason": "cancellation_requested" if s.canceled_at else None},
        "collection_method": x.get("collection_method", "charge_automatically"),
        "created": s.created,
        "currency": s.currency.lower(),
        "current_period_end": s.current_period_end,
        "current_period_start": s.current_period_start,
        "customer": s.customer,
        "days_until_due": x.get("days_until_due"),
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": _tax_rates(store, x.get("default_tax_rates")),
        "description": x.get("description"),
        "discount": render_stored_discount(store, s.extra.get("discount"), s.customer, s.id),
        "ended_at": s.ended_at,
        "items": _render_sub_items(store, s),
        "latest_invoice": _latest_invoice_id(store, s.id),
        "livemode": False,
        "metadata": dict(s.metadata),
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": x.get("pause_collection"),
        "payment_settings": {"payment_method_options": settings.get("payment_method_options"),
                             "payment_method_types": settings.get("payment_method_types"),
                             "save_default_payment_method": settings.get("save_default_payment_method") or "off"},
        "pending_invoice_item_interval": x.get("pending_invoice_item_interval"),
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": s.start_date,
        "status": s.status,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": s.trial_end,
        "trial_settings": x.get("trial_settings") or {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": s.trial_start,
    }
