"""Stripe-compatible demo billing server (API version 2023-08-16) over a :class:`BillingStore`.

Speaks the subset of the Stripe REST API SyncDesk uses (customers, subscriptions, invoices,
prices, products, events) with Stripe's conventions: secret-key auth (Basic or Bearer),
form-encoded bodies with bracket nesting, cursor pagination newest first, ``expand[]``,
``Idempotency-Key`` replay, the ``{"error": {...}}`` envelope and a ``Request-Id`` on every
response. Wrapped in :class:`FaultMiddleware` so faults can be injected on demand.

Records are rendered to Stripe JSON only when a request asks for them; list pages walk a
per-collection creation-order index (id -> position) so paging is O(page) and not O(N).
"""

from __future__ import annotations

import base64
import binascii
import copy
import fnmatch
import hashlib
import hmac
import itertools
import json
import logging
import re
import secrets
import string
import time
from bisect import bisect_left, bisect_right
from calendar import monthrange
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from services.demo.faults import FaultInjector, FaultMiddleware
from services.demo.store import (
    BCustomer,
    BEvent,
    BillingStore,
    BInvoice,
    BInvoiceLine,
    BPrice,
    BProduct,
    BSubItem,
    BSubscription,
)

log = logging.getLogger(__name__)

API_VERSION = "2023-08-16"
MAX_LIMIT = 100
DEFAULT_LIMIT = 10
EVENT_RETENTION_SECONDS = 30 * 86400
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
MAX_EXPAND_DEPTH = 4
SUBSCRIPTION_STATUSES = ("active", "trialing", "past_due", "canceled", "unpaid", "incomplete",
                         "incomplete_expired", "paused")
INVOICE_STATUSES = ("draft", "open", "paid", "uncollectible", "void")

JSON = dict[str, Any]

# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


class StripeError(Exception):
    """An error answered in Stripe's envelope."""

    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> JSON:
        err: JSON = {"type": self.type, "message": self.message}
        if self.code is not None:
            err["code"] = self.code
            err["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param is not None:
            err["param"] = self.param
        return {"error": err}


def _invalid(message: str, param: str | None = None, code: str | None = None) -> StripeError:
    return StripeError(400, message, param=param, code=code)


def _unknown_param(name: str) -> StripeError:
    return _invalid(f"Received unknown parameter: {name}", name, "parameter_unknown")


def _missing_param(name: str) -> StripeError:
    return _invalid(f"Missing required param: {name}.", name, "parameter_missing")


def _no_such(kind: str, oid: str, *, param: str = "id", status: int = 404) -> StripeError:
    return StripeError(status, f"No such {kind}: '{oid}'", code="resource_missing", param=param)


def _new_request_id() -> str:
    alphabet = string.ascii_letters + string.digits
    return "req_" + "".join(secrets.choice(alphabet) for _ in range(14))


def _json_bytes(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _json_response(status: int, body: Any, request_id: str | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    hdrs = {"Request-Id": request_id or _new_request_id(), "Stripe-Version": API_VERSION}
    hdrs.update(headers or {})
    return Response(_json_bytes(body), status_code=status, media_type="application/json", headers=hdrs)


def render_error(status: int, message: str, retry_after: float | None) -> Response:
    """The :data:`ErrorRenderer` for :class:`FaultMiddleware`: Stripe's error envelope.

    429 is ``invalid_request_error`` with ``code: rate_limit`` (the 2023-08-16 spec's error
    ``type`` enum has no rate-limit type; the SDKs map status 429 to ``RateLimitError``)."""
    headers: dict[str, str] = {}
    if status == 429:
        err = StripeError(429, message, code="rate_limit")
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, int(-(-retry_after // 1))))
    elif status >= 500:
        err = StripeError(status, message, type_="api_error")
    else:
        err = StripeError(status, message)
    return _json_response(status, err.body(), headers=headers)


# --------------------------------------------------------------------------------------
# Form / query parsing: Stripe's bracket nesting (a[b][c]=v, a[]=v, a[0][b]=v)
# --------------------------------------------------------------------------------------

_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEG_RE = re.compile(r"\[([^\[\]]*)\]")
#: dicts under these keys keep digit keys as dict keys (metadata keys are free text)
_FREE_KEYS = frozenset({"metadata"})


def _split_key(key: str) -> list[str]:
    m = _KEY_RE.match(key)
    if m is None:
        raise _invalid(f"Invalid parameter name: {key}", key)
    return [m.group(1), *_SEG_RE.findall(m.group(2))]


def _assign(root: dict[str, Any], segments: list[str], value: str, key: str) -> None:
    node: Any = root
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        nxt = None if last else segments[i + 1]
        if seg == "":
            if not isinstance(node, list):
                raise _invalid(f"Invalid array parameter: {key}", key)
            if last:
                node.append(value)
                return
            tail = node[-1] if node else None
            if isinstance(tail, dict) and nxt != "" and nxt not in tail:
                node = tail
            else:
                child: Any = [] if nxt == "" else {}
                node.append(child)
                node = child
            continue
        if not isinstance(node, dict):
            raise _invalid(f"Invalid parameter nesting: {key}", key)
        if last:
            if isinstance(node.get(seg), dict | list):
                raise _invalid(f"Invalid parameter: {key} conflicts with a nested value", key)
            node[seg] = value
            return
        existing = node.get(seg)
        if existing is None:
            existing = [] if nxt == "" else {}
            node[seg] = existing
        elif not isinstance(existing, dict | list):
            raise _invalid(f"Invalid parameter: {key} conflicts with a scalar value", key)
        node = existing


def _finalize(node: Any, free: bool = False) -> Any:
    """Turn dicts whose keys are all indexes into lists ordered by index."""
    if isinstance(node, list):
        return [_finalize(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _finalize(v, k in _FREE_KEYS) for k, v in node.items()}
    if not free and out and all(k.isdigit() for k in out):
        return [out[k] for k in sorted(out, key=int)]
    return out


def parse_params(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Nested parameters from form/query pairs: ``metadata[k]=v`` -> ``{"metadata": {"k": "v"}}``,
    ``items[0][price]=p`` -> ``{"items": [{"price": "p"}]}``, ``expand[]=a`` -> ``{"expand": ["a"]}``."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        _assign(root, _split_key(key), value, key)
    result = _finalize(root)
    assert isinstance(result, dict)
    return result


def parse_form(text: str) -> dict[str, Any]:
    return parse_params(parse_qsl(text, keep_blank_values=True))


# --------------------------------------------------------------------------------------
# Parameter coercion helpers
# --------------------------------------------------------------------------------------


def _check_keys(params: dict[str, Any], allowed: Iterable[str], prefix: str = "") -> None:
    allowed_set = set(allowed)
    for k in params:
        if k not in allowed_set:
            raise _unknown_param(f"{prefix}[{k}]" if prefix else k)


def _as_str(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise _invalid(f"Invalid string: {param} must be a string", param)
    return value


def _as_int(value: Any, param: str) -> int:
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    raise _invalid(f"Invalid integer: {value if isinstance(value, str) else '(object)'}", param)


def _as_bool(value: Any, param: str) -> bool:
    if value in ("true", "True", "1"):
        return True
    if value in ("false", "False", "0"):
        return False
    raise _invalid(f"Invalid boolean: {value if isinstance(value, str) else '(object)'}", param)


def _as_list(value: Any, param: str) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value == "":
        return []
    raise _invalid(f"Invalid array: {param}", param)


def _opt_str(value: str) -> str | None:
    """Stripe unsets a field sent as an empty string."""
    return value or None


@dataclass(slots=True)
class CreatedRange:
    """Inclusive lower / exclusive upper bound on ``created``."""

    lo: int | None = None
    hi: int | None = None

    def contains(self, created: int) -> bool:
        return (self.lo is None or created >= self.lo) and (self.hi is None or created < self.hi)

    def tighten_lo(self, lo: int) -> None:
        self.lo = lo if self.lo is None else max(self.lo, lo)


def _parse_created(value: Any, param: str = "created") -> CreatedRange:
    rng = CreatedRange()
    if isinstance(value, str):
        exact = _as_int(value, param)
        return CreatedRange(exact, exact + 1)
    if not isinstance(value, dict):
        raise _invalid(f"Invalid {param}", param)
    for op, raw in value.items():
        n = _as_int(raw, f"{param}[{op}]")
        if op == "gt":
            lo, hi = n + 1, None
        elif op == "gte":
            lo, hi = n, None
        elif op == "lt":
            lo, hi = None, n
        elif op == "lte":
            lo, hi = None, n + 1
        else:
            raise _unknown_param(f"{param}[{op}]")
        if lo is not None:
            rng.lo = lo if rng.lo is None else max(rng.lo, lo)
        if hi is not None:
            rng.hi = hi if rng.hi is None else min(rng.hi, hi)
    return rng


def _parse_limit(params: dict[str, Any]) -> int:
    if "limit" not in params:
        return DEFAULT_LIMIT
    limit = _as_int(params["limit"], "limit")
    if limit < 1:
        raise _invalid("This value must be greater than or equal to 1.", "limit", "parameter_invalid_integer")
    if limit > MAX_LIMIT:
        raise _invalid(f"This value must be less than or equal to {MAX_LIMIT}.", "limit",
                       "parameter_invalid_integer")
    return limit


def _parse_metadata(value: Any, param: str = "metadata") -> dict[str, str | None] | None:
    """``None`` = unset all; otherwise key -> value (``None`` unsets that key)."""
    if isinstance(value, str):
        if value == "":
            return None
        raise _invalid("Invalid object", param)
    if not isinstance(value, dict):
        raise _invalid("Invalid object", param)
    out: dict[str, str | None] = {}
    for k, v in value.items():
        if not isinstance(v, str):
            raise _invalid(f"Invalid value for {param}[{k}]: metadata values must be strings", f"{param}[{k}]")
        if len(k) > 40:
            raise _invalid("Metadata keys can have up to 40 characters.", f"{param}[{k}]")
        if len(v) > 500:
            raise _invalid("Metadata values can have up to 500 characters.", f"{param}[{k}]")
        out[k] = v or None
    return out


def _apply_metadata(current: dict[str, str], changes: dict[str, str | None] | None) -> dict[str, str | None]:
    """Merge in place; returns previous values of changed keys (``None`` = was absent)."""
    previous: dict[str, str | None] = {}
    if changes is None:
        previous = dict(current)
        current.clear()
        return previous
    for k, v in changes.items():
        old = current.get(k)
        if old == v:
            continue
        previous[k] = old
        if v is None:
            current.pop(k, None)
        else:
            current[k] = v
    if len(current) > 50:
        raise _invalid("Metadata can have up to 50 keys.", "metadata")
    return previous


# --------------------------------------------------------------------------------------
# Rendering (pure functions of the store)
# --------------------------------------------------------------------------------------


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


def render_price(store: BillingStore, p: BPrice) -> JSON:
    return {
        "id": p.id,
        "object": "price",
        "active": p.active,
        "billing_scheme": "per_unit",
        "created": p.created,
        "currency": p.currency.lower(),
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": p.lookup_key,
        "metadata": dict(p.metadata),
        "nickname": p.nickname,
        "product": p.product,
        "recurring": {"aggregate_usage": None, "interval": p.interval, "interval_count": 1,
                      "usage_type": "licensed"},
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring",
        "unit_amount": p.unit_amount,
        "unit_amount_decimal": str(p.unit_amount),
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
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "unit_label": None,
        "updated": p.updated or p.created,
        "url": None,
    }


def _render_price_id(store: BillingStore, price_id: str) -> JSON:
    price = store.prices.get(price_id)
    if price is not None:
        return render_price(store, price)
    # a dangling reference still renders as a valid (inactive) price
    return render_price(store, BPrice(id=price_id, product="prod_unknown", unit_amount=0, currency="usd",
                                      interval="month", lookup_key="", created=0, active=False))


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
        "discount": None,
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


def _subscription_item_for(store: BillingStore, subscription_id: str | None, price_id: str) -> str | None:
    sub = store.subscriptions.get(subscription_id) if subscription_id else None
    if sub is None:
        return None
    for it in sub.items:
        if it.price == price_id:
            return it.id
    return None


def _render_line(store: BillingStore, inv: BInvoice, line: BInvoiceLine) -> JSON:
    out: JSON = {
        "id": line.id,
        "object": "line_item",
        "amount": line.amount,
        "amount_excluding_tax": line.amount,
        "currency": inv.currency.lower(),
        "description": line.description,
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "livemode": False,
        "metadata": {},
        "period": {"end": line.period_end, "start": line.period_start},
        "price": _render_price_id(store, line.price),
        "proration": line.proration,
        "proration_details": {"credited_items": None},
        "quantity": line.quantity,
        "subscription": inv.subscription,
        "tax_amounts": [],
        "tax_rates": [],
        "type": "subscription" if inv.subscription else "invoiceitem",
        "unit_amount_excluding_tax": str(line.amount // line.quantity) if line.quantity else "0",
    }
    si = _subscription_item_for(store, inv.subscription, line.price)
    if si is not None:
        out["subscription_item"] = si
    return out


def render_invoice(store: BillingStore, inv: BInvoice) -> JSON:
    customer = store.customers.get(inv.customer)
    sub = store.subscriptions.get(inv.subscription) if inv.subscription else None
    paid = inv.status == "paid"
    remaining = 0 if inv.status in ("paid", "void") else max(0, inv.total - inv.amount_paid)
    address = None
    if customer is not None and customer.country is not None:
        address = {"city": None, "country": customer.country, "line1": None, "line2": None,
                   "postal_code": None, "state": None}
    return {
        "id": inv.id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "SyncDesk Demo Inc.",
        "account_tax_ids": None,
        "amount_due": inv.total,
        "amount_paid": inv.amount_paid,
        "amount_remaining": remaining,
        "amount_shipping": 0,
        "application": None,
        "application_fee_amount": None,
        "attempt_count": inv.attempt_count,
        "attempted": inv.attempt_count > 0 or paid,
        "auto_advance": inv.status in ("draft", "open"),
        "automatic_tax": {"enabled": False, "status": None},
        "billing_reason": inv.billing_reason,
        "charge": None,
        "collection_method": "charge_automatically",
        "created": inv.created,
        "currency": inv.currency.lower(),
        "custom_fields": None,
        "customer": inv.customer,
        "customer_address": address,
        "customer_email": customer.email if customer else None,
        "customer_name": customer.name if customer else None,
        "customer_phone": customer.phone if customer else None,
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discount": None,
        "discounts": [],
        "due_date": None,
        "effective_at": inv.finalized_at,
        "ending_balance": 0 if inv.finalized_at else None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": {"object": "list", "data": [_render_line(store, inv, ln) for ln in inv.lines],
                  "has_more": False, "url": f"/v1/invoices/{inv.id}/lines"},
        "livemode": False,
        "metadata": dict(inv.metadata),
        "next_payment_attempt": None,
        "number": inv.number,
        "on_behalf_of": None,
        "paid": paid,
        "paid_out_of_band": False,
        "payment_intent": None,
        "payment_settings": {"default_mandate": None, "payment_method_options": None,
                             "payment_method_types": None},
        "period_end": inv.period_end,
        "period_start": inv.period_start,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "quote": None,
        "receipt_number": None,
        "rendering_options": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": inv.status,
        "status_transitions": {"finalized_at": inv.finalized_at, "marked_uncollectible_at": None,
                               "paid_at": inv.paid_at, "voided_at": inv.voided_at},
        "subscription": inv.subscription,
        "subscription_details": {"metadata": dict(sub.metadata) if sub else None},
        "subtotal": inv.subtotal,
        "subtotal_excluding_tax": inv.subtotal,
        "tax": None,
        "test_clock": None,
        "total": inv.total,
        "total_discount_amounts": [],
        "total_excluding_tax": inv.total,
        "total_tax_amounts": [],
        "transfer_data": None,
        "webhooks_delivered_at": inv.finalized_at or inv.created,
    }


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


# --------------------------------------------------------------------------------------
# Expansion
# --------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------
# Ordering index and cursor pagination
# --------------------------------------------------------------------------------------


class _Record(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def created(self) -> int: ...


class OrderIndex:
    """Creation order (oldest first; ties in insertion order) of one store collection, with
    ``id -> position`` so a cursor is found in O(1). Kept in step with the collection by
    :meth:`sync`: appended records are added incrementally; a shrunk or replaced collection
    is re-indexed."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.created: list[int] = []
        self.records: list[Any] = []
        self.pos: dict[str, int] = {}
        self._source: int = 0
        self._count = 0

    def sync(self, source: dict[str, Any] | list[Any]) -> None:
        n = len(source)
        if id(source) != self._source or n < self._count:
            self._rebuild(source)
        elif n > self._count:
            added = n - self._count
            if isinstance(source, dict):
                tail: list[_Record] = list(itertools.islice(reversed(source.values()), added))[::-1]
            else:
                tail = source[self._count:]
            for rec in tail:
                self._add(rec)
            self._count = n

    def _rebuild(self, source: dict[str, Any] | list[Any]) -> None:
        records: list[_Record] = list(source.values()) if isinstance(source, dict) else list(source)
        records.sort(key=lambda r: r.created)  # stable: ties keep insertion order
        self.records = records
        self.ids = [r.id for r in records]
        self.created = [r.created for r in records]
        self.pos = {oid: i for i, oid in enumerate(self.ids)}
        self._source = id(source)
        self._count = len(source)

    def _add(self, rec: _Record) -> None:
        oid, created = rec.id, rec.created
        if not self.created or created >= self.created[-1]:
            self.pos[oid] = len(self.ids)
            self.ids.append(oid)
            self.created.append(created)
            self.records.append(rec)
            return
        at = bisect_right(self.created, created)
        self.ids.insert(at, oid)
        self.created.insert(at, created)
        self.records.insert(at, rec)
        for i in range(at, len(self.ids)):
            self.pos[self.ids[i]] = i

    def record(self, oid: str) -> Any:
        """The record with this id as indexed (``None`` if unknown)."""
        p = self.pos.get(oid)
        return None if p is None else self.records[p]

    def span(self, rng: CreatedRange) -> range:
        """Positions whose ``created`` lies in ``rng``."""
        lo = 0 if rng.lo is None else bisect_left(self.created, rng.lo)
        hi = len(self.ids) if rng.hi is None else bisect_left(self.created, rng.hi)
        return range(lo, max(lo, hi))

    def positions(self, ids: Iterable[str]) -> list[int]:
        """Sorted positions of a (small) subset of ids, e.g. from a secondary index."""
        pos = self.pos
        return sorted(pos[i] for i in ids if i in pos)


@dataclass(slots=True)
class Page:
    ids: list[str]
    has_more: bool


def paginate(index: OrderIndex, candidates: Sequence[int], match: Callable[[str], bool], limit: int,
             starting_after: str | None = None, ending_before: str | None = None) -> Page:
    """One page newest first. ``candidates`` are ascending positions in ``index``;
    ``match(id)`` filters. Work is proportional to the records walked, not to the collection."""
    ids = index.ids
    out: list[str] = []
    if ending_before is not None:
        start = bisect_right(candidates, index.pos[ending_before])
        walk: Iterator[int] = (candidates[i] for i in range(start, len(candidates)))
    else:
        end = len(candidates) if starting_after is None else bisect_left(candidates, index.pos[starting_after])
        walk = (candidates[i] for i in range(end - 1, -1, -1))
    for p in walk:
        oid = ids[p]
        if match(oid):
            out.append(oid)
            if len(out) > limit:
                break
    has_more = len(out) > limit
    out = out[:limit]
    if ending_before is not None:
        out.reverse()
    return Page(out, has_more)


# --------------------------------------------------------------------------------------
# Time helpers
# --------------------------------------------------------------------------------------


def add_interval(ts: int, interval: str, count: int = 1) -> int:
    dt = datetime.fromtimestamp(ts, UTC)
    if interval == "day":
        return int((dt + timedelta(days=count)).timestamp())
    if interval == "week":
        return int((dt + timedelta(weeks=count)).timestamp())
    months = count * (12 if interval == "year" else 1)
    total = dt.month - 1 + months
    year, month = dt.year + total // 12, total % 12 + 1
    day = min(dt.day, monthrange(year, month)[1])
    return int(dt.replace(year=year, month=month, day=day).timestamp())


def _money(amount: int, currency: str) -> str:
    symbols = {"usd": "$", "eur": "€", "gbp": "£"}
    sym = symbols.get(currency.lower())
    value = f"{amount / 100:,.2f}"
    return f"{sym}{value}" if sym else f"{value} {currency.upper()}"


# --------------------------------------------------------------------------------------
# The API
# --------------------------------------------------------------------------------------


@dataclass
class _Call:
    request: Request
    params: dict[str, Any]
    request_id: str
    idempotency_key: str | None
    now: int
    wrote: bool = False

    def path_param(self, name: str) -> str:
        return str(self.request.path_params[name])


@dataclass(slots=True)
class _IdemEntry:
    method: str
    path: str
    params: dict[str, Any]
    status: int
    body: bytes
    created: int


Handler = Callable[[_Call], JSON]

_LIST_PARAMS = ("limit", "starting_after", "ending_before", "expand")


@dataclass
class StripeApi:
    store: BillingStore
    api_key: str
    clock: Callable[[], int]
    indexes: dict[str, OrderIndex] = field(default_factory=dict)
    idempotency: dict[str, _IdemEntry] = field(default_factory=dict)

    # ---- plumbing -------------------------------------------------------------------

    def index(self, kind: str) -> OrderIndex:
        sources: dict[str, dict[str, Any] | list[Any]] = {
            "customer": self.store.customers, "subscription": self.store.subscriptions,
            "invoice": self.store.invoices, "price": self.store.prices, "product": self.store.products,
            "event": self.store.events,
        }
        source = sources[kind]
        idx = self.indexes.get(kind)
        if idx is None:
            idx = self.indexes[kind] = OrderIndex()
        idx.sync(source)
        return idx

    def authenticate(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, cred = header.partition(" ")
        key: str | None = None
        if scheme.lower() == "bearer":
            key = cred.strip()
        elif scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(cred.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            key = decoded.partition(":")[0]
        if not key:
            raise StripeError(
                401, "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
                headers={"WWW-Authenticate": 'Basic realm="Stripe"'})
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            raise StripeError(401, "Invalid API Key provided.",
                              headers={"WWW-Authenticate": 'Basic realm="Stripe"'})

    async def read_params(self, request: Request) -> dict[str, Any]:
        if request.method == "POST":
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            raw = await request.body()
            if raw and ctype not in ("", "application/x-www-form-urlencoded"):
                raise _invalid("Invalid request: request bodies must be application/x-www-form-urlencoded.")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _invalid("Invalid request: the body is not valid UTF-8.") from None
            params = parse_form(text)
            if request.url.query:
                params.update(parse_form(request.url.query))
            return params
        return parse_form(request.url.query)

    def endpoint(self, handler: Handler) -> Callable[[Request], Any]:
        async def run(request: Request) -> Response:
            request_id = _new_request_id()
            try:
                self.authenticate(request)
                params = await self.read_params(request)
                key = request.headers.get("idempotency-key") if request.method == "POST" else None
                if key is not None and (not key or len(key) > 255):
                    raise _invalid("Idempotency-Key must be 1 to 255 characters.", "Idempotency-Key")
                call = _Call(request, params, request_id, key, int(self.clock()))
                response = self.execute(handler, call)
                if call.wrote:
                    request.state.write = True
                return response
            except StripeError as exc:
                return _json_response(exc.status, exc.body(), request_id, exc.headers)
            except Exception:
                log.exception("demo billing: unexpected error on %s %s", request.method, request.url.path)
                err = StripeError(500, "An unexpected error occurred.", type_="api_error")
                return _json_response(500, err.body(), request_id)

        return run

    def execute(self, handler: Handler, call: _Call) -> Response:
        with self.store.lock:
            key = call.idempotency_key
            if key is not None:
                replay = self._idempotent_replay(call, key)
                if replay is not None:
                    return replay
            body = handler(call)
            data = _json_bytes(body)
            headers: dict[str, str] = {}
            if key is not None:
                self.idempotency[key] = _IdemEntry(call.request.method, call.request.url.path,
                                                   call.params, 200, data, call.now)
                headers["Idempotency-Key"] = key
        return Response(data, status_code=200, media_type="application/json",
                        headers={"Request-Id": call.request_id, "Stripe-Version": API_VERSION, **headers})

    def _idempotent_replay(self, call: _Call, key: str) -> Response | None:
        cutoff = call.now - IDEMPOTENCY_TTL_SECONDS
        if self.idempotency and next(iter(self.idempotency.values())).created < cutoff:
            for k in [k for k, e in self.idempotency.items() if e.created < cutoff]:
                del self.idempotency[k]
        entry = self.idempotency.get(key)
        if entry is None:
            return None
        if entry.method != call.request.method or entry.path != call.request.url.path:
            raise StripeError(400, f"Keys for idempotent requests can only be used for the same endpoint "
                                   f"they were first used for ('{entry.method} {entry.path}'). Try using a "
                                   f"key other than '{key}' if you meant to execute a different request.",
                              type_="idempotency_error")
        if entry.params != call.params:
            raise StripeError(400, f"Keys for idempotent requests can only be used with the same parameters "
                                   f"they were first used with. Try using a key other than '{key}' if you "
                                   f"meant to execute a different request.", type_="idempotency_error")
        return Response(entry.body, status_code=entry.status, media_type="application/json",
                        headers={"Request-Id": call.request_id, "Stripe-Version": API_VERSION,
                                 "Idempotency-Key": key, "Idempotent-Replayed": "true"})

    def emit(self, call: _Call, type_: str, kind: str, oid: str, snapshot: JSON,
             previous: JSON | None = None) -> BEvent:
        event = BEvent(id=self.store.new_id("evt"), type=type_, created=call.now, object_kind=kind,
                       object_id=oid, snapshot=snapshot, previous_attributes=previous,
                       request_id=call.request_id, idempotency_key=call.idempotency_key)
        self.store.events.append(event)
        return event

    @staticmethod
    def _expand_list(call: _Call) -> list[str]:
        return [str(x) for x in _as_list(call.params.get("expand", []), "expand")]

    def respond(self, call: _Call, body: JSON) -> JSON:
        expand = self._expand_list(call)
        return apply_expand(self.store, body, expand) if expand else body

    def list_page(self, call: _Call, kind: str, url: str, candidates: Sequence[int] | None,
                  rng: CreatedRange, match: Callable[[str], bool],
                  render: Callable[[str], JSON]) -> JSON:
        """Shared list logic: cursors, limit, filtering, rendering, expansion."""
        params = call.params
        limit = _parse_limit(params)
        index = self.index(kind)
        starting_after = self._cursor(index, kind, params, "starting_after")
        ending_before = self._cursor(index, kind, params, "ending_before")
        if starting_after and ending_before:
            raise _invalid("You may only specify one of these parameters: ending_before, starting_after.",
                           "ending_before")
        if candidates is None:
            candidates = index.span(rng)
        elif rng.lo is not None or rng.hi is not None:
            created = index.created
            candidates = [p for p in candidates if rng.contains(created[p])]
        page = paginate(index, candidates, match, limit, starting_after, ending_before)
        body: JSON = {"object": "list", "data": [render(oid) for oid in page.ids],
                      "has_more": page.has_more, "url": url}
        return self.respond(call, body)

    @staticmethod
    def _cursor(index: OrderIndex, kind: str, params: dict[str, Any], name: str) -> str | None:
        if name not in params or params[name] == "":
            return None
        oid = _as_str(params[name], name)
        if oid not in index.pos:
            raise _no_such(kind, oid, param=name, status=400)
        return oid

    # ---- lookups --------------------------------------------------------------------

    def get_customer(self, oid: str, param: str = "id", status: int = 404,
                     allow_deleted: bool = False) -> BCustomer:
        c = self.store.customers.get(oid)
        if c is None or (c.deleted and not allow_deleted):
            raise _no_such("customer", oid, param=param, status=status)
        return c

    def get_subscription(self, oid: str) -> BSubscription:
        s = self.store.subscriptions.get(oid)
        if s is None:
            raise _no_such("subscription", oid)
        return s

    def get_price(self, oid: Any, param: str) -> BPrice:
        pid = _as_str(oid, param)
        p = self.store.prices.get(pid)
        if p is None:
            raise _no_such("price", pid, param=param, status=400)
        return p

    # ---- customers ------------------------------------------------------------------

    def list_customers(self, call: _Call) -> JSON:
        p = call.params
        _check_keys(p, (*_LIST_PARAMS, "email", "created"))
        rng = _parse_created(p["created"]) if "created" in p else CreatedRange()
        email = _as_str(p["email"], "email") if "email" in p else None
        customers = self.store.customers

        def match(oid: str) -> bool:
            c = customers[oid]
            return not c.deleted and (email is None or c.email == email)

        return self.list_page(call, "customer", "/v1/customers", None, rng, match,
                              lambda oid: render_customer(self.store, customers[oid]))

    def retrieve_customer(self, call: _Call) -> JSON:
        _check_keys(call.params, ("expand",))
        c = self.get_customer(call.path_param("customer"), allow_deleted=True)
        return self.respond(call, render_customer(self.store, c))

    _CUSTOMER_FIELDS = ("name", "email", "description", "phone")

    def _customer_changes(self, p: dict[str, Any]) -> tuple[dict[str, str | None], Any, Any]:
        _check_keys(p, (*self._CUSTOMER_FIELDS, "metadata", "address", "expand"))
        fields_: dict[str, str | None] = {f: _opt_str(_as_str(p[f], f)) for f in self._CUSTOMER_FIELDS if f in p}
        metadata = _parse_metadata(p["metadata"]) if "metadata" in p else ...
        address: Any = ...
        if "address" in p:
            addr = p["address"]
            if addr == "":
                address = None
            elif isinstance(addr, dict):
                _check_keys(addr, ("country",), "address")
                country = _opt_str(_as_str(addr.get("country", ""), "address[country]"))
                if country is not None and not re.fullmatch(r"[A-Za-z]{2}", country):
                    raise _invalid("Country must be a two-letter ISO code.", "address[country]")
                address = country.upper() if country else None
            else:
                raise _invalid("Invalid object", "address")
        return fields_, metadata, address

    def create_customer(self, call: _Call) -> JSON:
        fields_, metadata, country = self._customer_changes(call.params)
        c = BCustomer(id=self.store.new_id("cus"), created=call.now, name=fields_.get("name") or "",
                      email=fields_.get("email"), country=None if country is ... else country, tax_id=None,
                      description=fields_.get("description"), phone=fields_.get("phone"))
        if metadata is not ... and metadata is not None:
            tax = metadata.pop("tax_id", None)
            c.tax_id = tax
            c.metadata = {k: v for k, v in metadata.items() if v is not None}
        self.store.add_customer(c)
        snapshot = render_customer(self.store, c)
        self.emit(call, "customer.created", "customer", c.id, snapshot)
        call.wrote = True
        return self.respond(call, copy.deepcopy(snapshot))

    def update_customer(self, call: _Call) -> JSON:
        c = self.get_customer(call.path_param("customer"))
        fields_, metadata, country = self._customer_changes(call.params)
        before = render_customer(self.store, c)
        for name, value in fields_.items():
            setattr(c, name, value if name != "name" else (value or ""))
        if country is not ...:
            c.country = country
        if metadata is not ...:
            self._update_customer_metadata(c, metadata)
        after = render_customer(self.store, c)
        previous = _diff(before, after)
        if previous:
            self.emit(call, "customer.updated", "customer", c.id, after, previous)
            call.wrote = True
        return self.respond(call, copy.deepcopy(after))

    @staticmethod
    def _update_customer_metadata(c: BCustomer, metadata: dict[str, str | None] | None) -> None:
        if metadata is None:
            c.metadata.clear()
            c.tax_id = None
            return
        if "tax_id" in metadata:
            c.tax_id = metadata.pop("tax_id")
        _apply_metadata(c.metadata, metadata)

    # ---- prices / products ----------------------------------------------------------

    def list_prices(self, call: _Call) -> JSON:
        p = call.params
        _check_keys(p, (*_LIST_PARAMS, "active", "lookup_keys", "product", "type", "currency", "created"))
        rng = _parse_created(p["created"]) if "created" in p else CreatedRange()
        active = _as_bool(p["active"], "active") if "active" in p else None
        keys = {_as_str(k, "lookup_keys") for k in _as_list(p["lookup_keys"], "lookup_keys")} \
            if "lookup_keys" in p else None
        product = _as_str(p["product"], "product") if "product" in p else None
        currency = _as_str(p["currency"], "currency").lower() if "currency" in p else None
        type_ = _as_str(p["type"], "type") if "type" in p else None
        if type_ is not None and type_ not in ("one_time", "recurring"):
            raise _invalid(f"Invalid type: must be one of one_time or recurring ({type_})", "type")
        prices = self.store.prices

        def match(oid: str) -> bool:
            pr = prices[oid]
            return ((active is None or pr.active == active) and (keys is None or pr.lookup_key in keys)
                    and (product is None or pr.product == product)
                    and (currency is None or pr.currency.lower() == currency)
                    and (type_ is None or type_ == "recurring"))

        return self.list_page(call, "price", "/v1/prices", None, rng, match,
                              lambda oid: render_price(self.store, prices[oid]))

    def list_products(self, call: _Call) -> JSON:
        p = call.params
        _check_keys(p, (*_LIST_PARAMS, "active", "ids", "created"))
        rng = _parse_created(p["created"]) if "created" in p else CreatedRange()
        active = _as_bool(p["active"], "active") if "active" in p else None
        ids = {_as_str(i, "ids") for i in _as_list(p["ids"], "ids")} if "ids" in p else None
        products = self.store.products

        def match(oid: str) -> bool:
            pr = products[oid]
            return (active is None or pr.active == active) and (ids is None or oid in ids)

        return self.list_page(call, "product", "/v1/products", None, rng, match,
                              lambda oid: render_product(self.store, products[oid]))

    def retrieve_product(self, call: _Call) -> JSON:
        _check_keys(call.params, ("expand",))
        oid = call.path_param("id")
        p = self.store.products.get(oid)
        if p is None:
            raise _no_such("product", oid)
        return self.respond(call, render_product(self.store, p))

    # ---- subscriptions --------------------------------------------------------------

    def list_subscriptions(self, call: _Call) -> JSON:
        p = call.params
        _check_keys(p, (*_LIST_PARAMS, "customer", "status", "price", "created"))
        rng = _parse_created(p["created"]) if "created" in p else CreatedRange()
        status = _as_str(p.get("status", ""), "status") or None
        valid = (*SUBSCRIPTION_STATUSES, "ended", "all")
        if status is not None and status not in valid:
            raise _invalid(f"Invalid status: must be one of {', '.join(valid)}", "status")
        price = _as_str(p["price"], "price") if "price" in p else None
        customer = _as_str(p["customer"], "customer") if "customer" in p else None
        subs = self.store.subscriptions
        index = self.index("subscription")
        candidates = None if customer is None else \
            index.positions(self.store.subscriptions_by_customer.get(customer, ()))

        def match(oid: str) -> bool:
            s = subs[oid]
            if status is None:
                ok = s.status != "canceled"
            elif status == "ended":
                ok = s.status in ("canceled", "incomplete_expired")
            else:
                ok = status == "all" or s.status == status
            return ok and (price is None or any(it.price == price for it in s.items))

        return self.list_page(call, "subscription", "/v1/subscriptions", candidates, rng, match,
                              lambda oid: render_subscription(self.store, subs[oid]))

    def retrieve_subscription(self, call: _Call) -> JSON:
        _check_keys(call.params, ("expand",))
        s = self.get_subscription(call.path_param("subscription_exposed_id"))
        return self.respond(call, render_subscription(self.store, s))

    def _parse_new_items(self, raw: Any) -> list[tuple[BPrice, int]]:
        items = _as_list(raw, "items")
        if not items:
            raise _missing_param("items")
        out: list[tuple[BPrice, int]] = []
        for i, item in enumerate(items):
            param = f"items[{i}]"
            if not isinstance(item, dict):
                raise _invalid("Invalid object", param)
            _check_keys(item, ("price", "quantity"), param)
            if "price" not in item:
                raise _missing_param(f"{param}[price]")
            price = self.get_price(item["price"], f"{param}[price]")
            qty = _as_int(item.get("quantity", "1"), f"{param}[quantity]")
            if qty < 0:
                raise _invalid("This value must be greater than or equal to 0.", f"{param}[quantity]")
            out.append((price, qty))
        return out

    def create_subscription(self, call: _Call) -> JSON:
        p = call.params
        _check_keys(p, ("customer", "items", "trial_period_days", "metadata", "expand", "proration_behavior"))
        if "customer" not in p:
            raise _missing_param("customer")
        customer = self.get_customer(_as_str(p["customer"], "customer"), param="customer", status=400)
        if "items" not in p:
            raise _missing_param("items")
        items = self._parse_new_items(p["items"])
        currencies = {pr.currency.lower() for pr, _ in items}
        if len(currencies) > 1:
            raise _invalid("All prices on a subscription must have the same currency.", "items")
        self._check_proration(p)
        trial_days = _as_int(p["trial_period_days"], "trial_period_days") if "trial_period_days" in p else 0
        if trial_days < 0 or trial_days > 730:
            raise _invalid("trial_period_days must be between 0 and 730.", "trial_period_days")
        metadata = _parse_metadata(p["metadata"]) if "metadata" in p else {}
        now = call.now
        trial_end = now + trial_days * 86400 if trial_days else None
        period_end = trial_end if trial_end else add_interval(now, items[0][0].interval)
        sub = BSubscription(
            id=self.store.new_id("sub"), customer=customer.id, status="trialing" if trial_end else "active",
            items=[BSubItem(self.store.new_id("si"), pr.id, qty, now) for pr, qty in items],
            created=now, start_date=now, current_period_start=now, current_period_end=period_end,
            currency=currencies.pop(), trial_start=now if trial_end else None, trial_end=trial_end,
            metadata={k: v for k, v in (metadata or {}).items() if v is not None})
        self.store.add_subscription(sub)
        invoice: tuple[str, list[tuple[str, JSON]]] | None = None
        if not trial_end:
            invoice = self._first_invoice(sub, customer, now)
        snapshot = render_subscription(self.store, sub)
        self.emit(call, "customer.subscription.created", "subscription", sub.id, snapshot)
        if invoice is not None:
            invoice_id, snapshots = invoice
            for type_, inv_snapshot in snapshots:
                self.emit(call, type_, "invoice", invoice_id, inv_snapshot)
        call.wrote = True
        return self.respond(call, copy.deepcopy(snapshot))

    def _first_invoice(self, sub: BSubscription, customer: BCustomer,
                       now: int) -> tuple[str, list[tuple[str, JSON]]]:
        """Create the subscription_create invoice: draft -> finalized -> paid, with snapshots."""
        lines: list[BInvoiceLine] = []
        for it in sub.items:
            price = self.store.prices[it.price]
            product = self.store.products.get(price.product)
            name = product.name if product else price.product
            lines.append(BInvoiceLine(
                id=self.store.new_id("il"), price=price.id, quantity=it.quantity,
                amount=price.unit_amount * it.quantity,
                description=f"{it.quantity} × {name} (at {_money(price.unit_amount, price.currency)} / "
                            f"{price.interval})",
                period_start=sub.current_period_start, period_end=sub.current_period_end))
        total = sum(ln.amount for ln in lines)
        prefix, seq = customer_invoice_prefix(self.store, customer.id)
        inv = BInvoice(id=self.store.new_id("in"), customer=customer.id, subscription=sub.id, status="draft",
                       number=None, currency=sub.currency, subtotal=total, total=total, amount_paid=0,
                       created=now, period_start=now, period_end=now, lines=lines,
                       billing_reason="subscription_create")
        self.store.add_invoice(inv)
        snapshots = [("invoice.created", render_invoice(self.store, inv))]
        inv.status, inv.number, inv.finalized_at = "open", f"{prefix}-{seq:04d}", now
        snapshots.append(("invoice.finalized", render_invoice(self.store, inv)))
        inv.status, inv.amount_paid, inv.paid_at, inv.attempt_count = "paid", total, now, 1
        snapshots.append(("invoice.paid", render_invoice(self.store, inv)))
        return inv.id, snapshots

    @staticmethod
    def _check_proration(p: dict[str, Any]) -> None:
        if "proration_behavior" in p:
            value = _as_str(p["proration_behavior"], "proration_behavior")
            if value not in ("always_invoice", "create_prorations", "none"):
                raise _invalid("Invalid proration_behavior: must be one of always_invoice, "
                               "create_prorations, or none", "proration_behavior")

    def update_subscription(self, call: _Call) -> JSON:
        sub = self.get_subscription(call.path_param("subscription_exposed_id"))
        p = call.params
        _check_keys(p, ("items", "cancel_at_period_end", "metadata", "proration_behavior", "expand"))
        self._check_proration(p)
        if sub.status in ("canceled", "incomplete_expired") and set(p) - {"metadata", "expand"}:
            raise _invalid("A canceled subscription can only update its cancellation_details and metadata.")
        before = render_subscription(self.store, sub)
        new_items = self._updated_items(sub, p["items"], call.now) if "items" in p else None
        cancel = _as_bool(p["cancel_at_period_end"], "cancel_at_period_end") \
            if "cancel_at_period_end" in p else None
        metadata = _parse_metadata(p["metadata"]) if "metadata" in p else ...
        if new_items is not None:
            sub.items = new_items
        if cancel is not None and cancel != sub.cancel_at_period_end:
            sub.cancel_at_period_end = cancel
            sub.canceled_at = call.now if cancel else None
        if metadata is not ...:
            _apply_metadata(sub.metadata, metadata)
        after = render_subscription(self.store, sub)
        previous = _diff(before, after)
        if previous:
            self.emit(call, "customer.subscription.updated", "subscription", sub.id, after, previous)
            call.wrote = True
        return self.respond(call, copy.deepcopy(after))

    def _updated_items(self, sub: BSubscription, raw: Any, now: int) -> list[BSubItem]:
        items = [BSubItem(it.id, it.price, it.quantity, it.created) for it in sub.items]
        by_id = {it.id: it for it in items}
        for i, change in enumerate(_as_list(raw, "items")):
            param = f"items[{i}]"
            if not isinstance(change, dict):
                raise _invalid("Invalid object", param)
            _check_keys(change, ("id", "price", "quantity", "deleted"), param)
            qty = _as_int(change["quantity"], f"{param}[quantity]") if "quantity" in change else None
            if qty is not None and qty < 0:
                raise _invalid("This value must be greater than or equal to 0.", f"{param}[quantity]")
            price = self.get_price(change["price"], f"{param}[price]") if "price" in change else None
            if "id" in change:
                sid = _as_str(change["id"], f"{param}[id]")
                item = by_id.get(sid)
                if item is None:
                    raise _no_such("subscription_item", sid, param=f"{param}[id]", status=400)
                if "deleted" in change and _as_bool(change["deleted"], f"{param}[deleted]"):
                    items.remove(item)
                    del by_id[sid]
                    continue
                if price is not None:
                    item.price = price.id
                if qty is not None:
                    item.quantity = qty
            else:
                if price is None:
                    raise _missing_param(f"{param}[price]")
                if any(it.price == price.id for it in items):
                    raise _invalid(f"Cannot add multiple subscription items with the same price: {price.id}",
                                   f"{param}[price]")
                new = BSubItem(self.store.new_id("si"), price.id, 1 if qty is None else qty, now)
                items.append(new)
                by_id[new.id] = new
        if not items:
            raise _invalid("A subscription must have at least one active item.", "items")
        currencies = {self.store.prices[it.price].currency.lower() for it in items if it.price in self.store.prices}
        if len(currencies) > 1 or (currencies and sub.currency.lower() not in currencies):
            raise _invalid("All prices on a subscription must have the same currency as the subscription.",
                           "items")
        return items

    # ---- invoices -------------------------------------------------------------------

    def list_invoices(self, call: _Call) -> JSON:
        p = call.params
        _check_keys(p, (*_LIST_PARAMS, "customer", "status", "subscription", "created", "collection_method"))
        rng = _parse_created(p["created"]) if "created" in p else CreatedRange()
        status = _as_str(p["status"], "status") if "status" in p else None
        if status is not None and status not in INVOICE_STATUSES:
            raise _invalid(f"Invalid status: must be one of {', '.join(INVOICE_STATUSES)}", "status")
        method = _as_str(p["collection_method"], "collection_method") if "collection_method" in p else None
        customer = _as_str(p["customer"], "customer") if "customer" in p else None
        subscription = _as_str(p["subscription"], "subscription") if "subscription" in p else None
        invoices = self.store.invoices
        index = self.index("invoice")
        candidates: list[int] | None = None
        if subscription is not None:
            candidates = index.positions(self.store.invoices_by_subscription.get(subscription, ()))
        elif customer is not None:
            candidates = index.positions(self.store.invoices_by_customer.get(customer, ()))

        def match(oid: str) -> bool:
            inv = invoices[oid]
            return ((status is None or inv.status == status) and (customer is None or inv.customer == customer)
                    and (subscription is None or inv.subscription == subscription)
                    and (method is None or method == "charge_automatically"))

        return self.list_page(call, "invoice", "/v1/invoices", candidates, rng, match,
                              lambda oid: render_invoice(self.store, invoices[oid]))

    def retrieve_invoice(self, call: _Call) -> JSON:
        _check_keys(call.params, ("expand",))
        oid = call.path_param("invoice")
        inv = self.store.invoices.get(oid)
        if inv is None:
            raise _no_such("invoice", oid, param="invoice")
        return self.respond(call, render_invoice(self.store, inv))

    # ---- events ---------------------------------------------------------------------

    def list_events(self, call: _Call) -> JSON:
        p = call.params
        _check_keys(p, (*_LIST_PARAMS, "type", "types", "created", "delivery_success"))
        if "type" in p and "types" in p:
            raise _invalid("You may only specify one of these parameters: type, types.", "types")
        rng = _parse_created(p["created"]) if "created" in p else CreatedRange()
        rng.tighten_lo(call.now - EVENT_RETENTION_SECONDS)
        pattern = _as_str(p["type"], "type") if "type" in p else None
        types = {_as_str(t, "types") for t in _as_list(p["types"], "types")} if "types" in p else None
        if types is not None and len(types) > 20:
            raise _invalid("You may pass at most 20 types.", "types")
        if "delivery_success" in p:
            _as_bool(p["delivery_success"], "delivery_success")
        index = self.index("event")
        records, pos = index.records, index.pos

        def event(oid: str) -> BEvent:
            e: BEvent = records[pos[oid]]
            return e

        def match(oid: str) -> bool:
            t = event(oid).type
            if pattern is not None:
                return fnmatch.fnmatchcase(t, pattern) if "*" in pattern else t == pattern
            return types is None or t in types

        return self.list_page(call, "event", "/v1/events", None, rng, match,
                              lambda oid: render_event(self.store, event(oid)))

    def retrieve_event(self, call: _Call) -> JSON:
        _check_keys(call.params, ("expand",))
        oid = call.path_param("id")
        event: BEvent | None = self.index("event").record(oid)
        if event is None or event.created < call.now - EVENT_RETENTION_SECONDS:
            raise _no_such("event", oid)
        return self.respond(call, render_event(self.store, event))


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


# --------------------------------------------------------------------------------------
# Application
# --------------------------------------------------------------------------------------


async def _not_found(request: Request, exc: Exception) -> Response:
    err = StripeError(404, f"Unrecognized request URL ({request.method}: {request.url.path}). Please see "
                           "https://stripe.com/docs or we can help at https://support.stripe.com/.")
    return _json_response(404, err.body())


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return await _not_found(request, exc)


def create_app(store: BillingStore, injector: FaultInjector, api_key: str, *,
               clock: Callable[[], int] | None = None) -> ASGIApp:
    """The demo billing server: a Starlette app behind :class:`FaultMiddleware`."""
    api = StripeApi(store, api_key, clock or (lambda: int(time.time())))
    ep = api.endpoint
    routes = [
        Route("/v1/customers", ep(api.list_customers), methods=["GET"]),
        Route("/v1/customers", ep(api.create_customer), methods=["POST"]),
        Route("/v1/customers/{customer}", ep(api.retrieve_customer), methods=["GET"]),
        Route("/v1/customers/{customer}", ep(api.update_customer), methods=["POST"]),
        Route("/v1/prices", ep(api.list_prices), methods=["GET"]),
        Route("/v1/products", ep(api.list_products), methods=["GET"]),
        Route("/v1/products/{id}", ep(api.retrieve_product), methods=["GET"]),
        Route("/v1/subscriptions", ep(api.list_subscriptions), methods=["GET"]),
        Route("/v1/subscriptions", ep(api.create_subscription), methods=["POST"]),
        Route("/v1/subscriptions/{subscription_exposed_id}", ep(api.retrieve_subscription), methods=["GET"]),
        Route("/v1/subscriptions/{subscription_exposed_id}", ep(api.update_subscription), methods=["POST"]),
        Route("/v1/invoices", ep(api.list_invoices), methods=["GET"]),
        Route("/v1/invoices/{invoice}", ep(api.retrieve_invoice), methods=["GET"]),
        Route("/v1/events", ep(api.list_events), methods=["GET"]),
        Route("/v1/events/{id}", ep(api.retrieve_event), methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _method_not_allowed})
    app.state.api = api
    return FaultMiddleware(app, injector, render_error)
