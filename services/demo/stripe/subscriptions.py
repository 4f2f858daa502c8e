"""``/v1/subscriptions``: list, retrieve, create (with its first invoice, paid at once unless
trialing) and update (items, cancel at period end, metadata); the billing-period arithmetic."""

from __future__ import annotations

import copy
from calendar import monthrange
from datetime import UTC, datetime, timedelta
from typing import Any

from services.demo.store import BCustomer, BInvoice, BInvoiceLine, BPrice, BSubItem, BSubscription
from services.demo.stripe.api_base import ApiBase
from services.demo.stripe.calls import _Call
from services.demo.stripe.errors import _invalid, _missing_param, _no_such
from services.demo.stripe.forms import _as_bool, _as_int, _as_list, _as_str, _check_keys
from services.demo.stripe.lists import _LIST_PARAMS, CreatedRange, _parse_created
from services.demo.stripe.metadata import _apply_metadata, _parse_metadata
from services.demo.stripe.responses import JSON
from services.demo.stripe.serializers.customers import customer_invoice_prefix
from services.demo.stripe.serializers.events import _diff
from services.demo.stripe.serializers.invoices import render_invoice
from services.demo.stripe.serializers.subscriptions import render_subscription

SUBSCRIPTION_STATUSES = ("active", "trialing", "past_due", "canceled", "unpaid", "incomplete",
                         "incomplete_expired", "paused")


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


class SubscriptionsApi(ApiBase):
    """The subscription endpoints."""

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
