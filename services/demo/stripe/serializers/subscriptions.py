"""Stripe JSON of a subscription, with its items and its latest invoice."""

from __future__ import annotations

from services.demo.store import BillingStore, BInvoice, BSubscription
from services.demo.stripe.responses import JSON
from services.demo.stripe.serializers.catalog import _render_price_id
from services.demo.stripe.serializers.money import render_stored_discount


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
        "billing_thresholds": None,
        "created": it.created,
        "metadata": {},
        "price": _render_price_id(store, it.price),
        "quantity": it.quantity,
        "subscription": s.id,
        "tax_rates": [],
    } for it in s.items]
    return {"object": "list", "data": data, "has_more": False,
            "url": f"/v1/subscription_items?subscription={s.id}"}


def render_subscription(store: BillingStore, s: BSubscription) -> JSON:
    cancel_at = s.current_period_end if s.cancel_at_period_end and s.status != "canceled" else None
    return {
        "id": s.id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"enabled": False},
        "billing_cycle_anchor": s.trial_end if s.trial_end else s.start_date,
        "billing_thresholds": None,
        "cancel_at": cancel_at,
        "cancel_at_period_end": s.cancel_at_period_end,
        "canceled_at": s.canceled_at,
        "cancellation_details": {"comment": None, "feedback": None,
                                 "reason": "cancellation_requested" if s.canceled_at else None},
        "collection_method": "charge_automatically",
        "created": s.created,
        "currency": s.currency.lower(),
        "current_period_end": s.current_period_end,
        "current_period_start": s.current_period_start,
        "customer": s.customer,
        "days_until_due": None,
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discount": render_stored_discount(store, s.extra.get("discount"), s.customer, s.id),
        "ended_at": s.ended_at,
        "items": _render_sub_items(store, s),
        "latest_invoice": _latest_invoice_id(store, s.id),
        "livemode": False,
        "metadata": dict(s.metadata),
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {"payment_method_options": None, "payment_method_types": None,
                             "save_default_payment_method": "off"},
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": s.start_date,
        "status": s.status,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": s.trial_end,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": s.trial_start,
    }
