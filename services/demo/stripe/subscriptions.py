"""``/v1/subscriptions``: list, retrieve, create (with its first invoice, paid at once unless
trialing) and update; the billing-period arithmetic.

Every parameter Stripe's spec defines for these operations is taken (``params.py`` has already
checked its type), applied where it has an effect in the demo and otherwise kept in the record's
``extra`` and answered as Stripe answers it:

- applied: items (a price, or ``price_data`` making an inline price; quantity, ``deleted``, and
  per item ``metadata``, ``tax_rates``, ``billing_thresholds``), ``trial_end`` / ``trial_period_days``
  / ``trial_from_plan`` (the prices carry no trial), ``cancel_at`` and ``cancel_at_period_end``,
  ``billing_cycle_anchor`` (the first period ends at it; ``now`` restarts the period),
  ``backdate_start_date``, ``coupon`` (the subscription's discount), ``currency`` (must be the
  prices'), ``add_invoice_items`` (one-off lines on the first invoice; on an update, kept for the
  next one), ``payment_behavior=default_incomplete`` (the first invoice left open, the subscription
  ``incomplete``), the list filters (``automatic_tax``, ``collection_method``,
  ``current_period_start`` / ``current_period_end``, ``test_clock``);
- kept and echoed: ``automatic_tax``, ``billing_thresholds``, ``cancellation_details``,
  ``collection_method``, ``days_until_due``, ``default_tax_rates``, ``description``,
  ``pause_collection``, ``payment_settings``, ``pending_invoice_item_interval``,
  ``trial_settings``;
- accepted with nothing to change in the demo: ``expand`` (applied), ``off_session``,
  ``proration_behavior``, ``proration_date``, ``items[][clear_usage]``;
- answered as Stripe answers them for an account without such objects (``references.py``):
  ``default_payment_method``, ``default_source``, ``promotion_code``, ``on_behalf_of``,
  ``transfer_data[destination]`` (no such object), ``application_fee_percent`` (Connect only);
  a tax rate or coupon the account does not have is refused the same way."""

from __future__ import annotations

import copy
from calendar import monthrange
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from services.core.currency import exponent, from_minor
from services.demo.store import BCustomer, BInvoice, BInvoiceLine, BPrice, BSubItem, BSubscription
from services.demo.stripe.api_base import ApiBase
from services.demo.stripe.calls import _Call
from services.demo.stripe.errors import _invalid, _missing_param, _no_such
from services.demo.stripe.forms import _as_bool, _as_int, _as_list, _as_str
from services.demo.stripe.lists import CreatedRange, _parse_created
from services.demo.stripe.metadata import _apply_metadata, _parse_metadata
from services.demo.stripe.references import no_such, refuse_connect_only, refuse_references
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
    symbols = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}
    sym = symbols.get(currency.lower())
    value = f"{from_minor(amount, currency):,.{exponent(currency)}f}"  # the currency's own exponent
    return f"{sym}{value}" if sym else f"{value} {currency.upper()}"


#: parameters naming objects the demo billing server does not hold (``references.py``)
_REFERENCES = ("default_payment_method", "default_source", "promotion_code", "on_behalf_of", "transfer_data")


#: the values Stripe permits where the request spec says only "a string" (its answer's enums)
_EU_BANK_COUNTRIES = ("BE", "DE", "ES", "FR", "IE", "NL")
_CB = "payment_settings[payment_method_options][customer_balance]"


def _check_customer_balance(options: dict[str, Any]) -> None:
    """The customer balance options' values Stripe permits (the request spec leaves them open)."""
    cb = options.get("customer_balance") or {}
    if cb.get("funding_type") not in (None, "bank_transfer"):
        raise _invalid(f"Invalid {_CB}[funding_type]: must be bank_transfer", f"{_CB}[funding_type]")
    eu = (cb.get("bank_transfer") or {}).get("eu_bank_transfer") or {}
    if eu and eu.get("country") not in _EU_BANK_COUNTRIES:
        param = f"{_CB}[bank_transfer][eu_bank_transfer][country]"
        raise _invalid(f"Invalid {param}: must be one of {', '.join(_EU_BANK_COUNTRIES[:-1])}, or "
                       f"{_EU_BANK_COUNTRIES[-1]}", param)


class SubscriptionsApi(ApiBase):
    """The subscription endpoints."""

    def list_subscriptions(self, call: _Call) -> JSON:
        p, t = call.params, call.typed
        rng = _parse_created(p["created"]) if "created" in p else CreatedRange()
        status = _as_str(p.get("status", ""), "status") or None
        valid = (*SUBSCRIPTION_STATUSES, "ended", "all")
        if status is not None and status not in valid:
            raise _invalid(f"Invalid status: must be one of {', '.join(valid)}", "status")
        price = _as_str(p["price"], "price") if "price" in p else None
        customer = _as_str(p["customer"], "customer") if "customer" in p else None
        auto_tax = (t.get("automatic_tax") or {}).get("enabled") if "automatic_tax" in t else None
        collection = t.get("collection_method")
        ends = _parse_created(p["current_period_end"], "current_period_end") if "current_period_end" in p else None
        starts = (_parse_created(p["current_period_start"], "current_period_start")
                  if "current_period_start" in p else None)
        # Stripe lists a test clock's subscriptions only when that clock is asked for
        clock = t.get("test_clock") or None
        subs = self.store.subscriptions
        customers = self.store.customers
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
            if not ok or (price is not None and not any(it.price == price for it in s.items)):
                return False
            if auto_tax is not None and bool((s.extra.get("automatic_tax") or {}).get("enabled")) != auto_tax:
                return False
            if collection is not None and s.extra.get("collection_method", "charge_automatically") != collection:
                return False
            if ends is not None and not ends.contains(s.current_period_end):
                return False
            if starts is not None and not starts.contains(s.current_period_start):
                return False
            owner = customers.get(s.customer)
            return (owner.extra.get("test_clock") if owner is not None else None) == clock

        return self.list_page(call, "subscription", "/v1/subscriptions", candidates, rng, match,
                              lambda oid: render_subscription(self.store, subs[oid]))

    def retrieve_subscription(self, call: _Call) -> JSON:
        s = self.get_subscription(call.path_param("subscription_exposed_id"))
        return self.respond(call, render_subscription(self.store, s))

    # ---- items ------------------------------------------------------------------------------

    def _inline_price(self, data: dict[str, Any], param: str, now: int, one_time: bool) -> BPrice:
        """A price made from ``price_data`` (``items[][price_data]`` recurring, ``add_invoice_items``
        one-off), as Stripe makes one: kept by the account, not active for new use."""
        product = self.store.products.get(str(data.get("product")))
        if product is None:
            raise no_such("product", data.get("product"), f"{param}[product]")
        if "unit_amount" in data and data["unit_amount"] is not None:
            unit = int(data["unit_amount"])
            decimal_text = str(unit)
        elif data.get("unit_amount_decimal") is not None:
            text = str(data["unit_amount_decimal"])
            try:
                amount = Decimal(text)
            except InvalidOperation:
                raise _invalid(f"Invalid decimal: {text}", f"{param}[unit_amount_decimal]") from None
            if not amount.is_finite() or amount < 0 or amount != amount.to_integral_value():
                raise _invalid(f"Invalid decimal: {text}: the demo bills whole minor units",
                               f"{param}[unit_amount_decimal]")
            unit, decimal_text = int(amount), text
        else:
            unit, decimal_text = 0, "0"
        recurring = data.get("recurring") or {}
        price = BPrice(id=self.store.new_id("price"), product=product.id, unit_amount=unit,
                       currency=str(data["currency"]).lower(), interval=str(recurring.get("interval") or "month"),
                       lookup_key="", created=now, active=False)
        price.extra["unit_amount_decimal"] = decimal_text
        if recurring.get("interval_count"):
            price.extra["interval_count"] = int(recurring["interval_count"])
        if data.get("tax_behavior"):
            price.extra["tax_behavior"] = data["tax_behavior"]
        if one_time:
            price.extra["type"] = "one_time"
        self.store.prices[price.id] = price
        return price

    def _tax_rate_ids(self, value: Any, param: str) -> list[str]:
        """Tax rate ids the account has (an empty list unsets); an unknown one is refused."""
        ids = [str(v) for v in (value or [])]
        for i, rid in enumerate(ids):
            if rid not in self.store.tax_rates:
                raise no_such("tax_rates", rid, f"{param}[{i}]")
        return ids

    def _item_extra(self, item: BSubItem, typed: dict[str, Any]) -> None:
        """``items[]``'s metadata, tax rates and billing thresholds, kept on the item."""
        if "metadata" in typed:
            meta = dict(item.extra.get("metadata") or {})
            if typed["metadata"] is None:
                meta = {}
            else:
                for k, v in typed["metadata"].items():
                    if v:
                        meta[k] = v
                    else:
                        meta.pop(k, None)
            item.extra["metadata"] = meta
        if "tax_rates" in typed:
            item.extra["tax_rates"] = typed["tax_rates"]
        if "billing_thresholds" in typed:
            bt = typed["billing_thresholds"]
            item.extra["billing_thresholds"] = None if bt is None else {"usage_gte": bt.get("usage_gte")}

    def _item_typed(self, typed: dict[str, Any], i: int, param: str) -> dict[str, Any]:
        out = dict(typed)
        if "tax_rates" in out:
            out["tax_rates"] = self._tax_rate_ids(out["tax_rates"], f"{param}[tax_rates]")
        return out

    def _parse_new_items(self, raw: Any, typed: Any, now: int) -> list[tuple[BPrice, int, dict[str, Any]]]:
        items = _as_list(raw, "items")
        if not items:
            raise _missing_param("items")
        typed_items = typed if isinstance(typed, list) else []
        out: list[tuple[BPrice, int, dict[str, Any]]] = []
        for i, item in enumerate(items):
            param = f"items[{i}]"
            if not isinstance(item, dict):
                raise _invalid("Invalid object", param)
            t = typed_items[i] if i < len(typed_items) and isinstance(typed_items[i], dict) else {}
            if "price" in item:
                price = self.get_price(item["price"], f"{param}[price]")
            elif t.get("price_data"):
                price = self._inline_price(t["price_data"], f"{param}[price_data]", now, one_time=False)
            else:
                raise _missing_param(f"{param}[price]")
            qty = _as_int(item.get("quantity", "1"), f"{param}[quantity]")
            if qty < 0:
                raise _invalid("This value must be greater than or equal to 0.", f"{param}[quantity]")
            out.append((price, qty, self._item_typed(t, i, param)))
        return out

    def _invoice_items(self, typed: Any, currency: str, now: int) -> list[tuple[BPrice, int, list[str]]]:
        """``add_invoice_items``: (price, quantity, tax rates) of each item naming a price (or
        price data) in the subscription's currency; an item naming none bills nothing."""
        out: list[tuple[BPrice, int, list[str]]] = []
        for i, item in enumerate(typed or []):
            param = f"add_invoice_items[{i}]"
            data = item.get("price_data")
            if item.get("price"):
                price: BPrice | None = self.get_price(item["price"], f"{param}[price]")
            elif not data:
                continue
            else:
                price = None
            given = price.currency if price is not None else str(data.get("currency", ""))
            if given.lower() != currency.lower():
                raise _invalid(f"The currency of {param} ({given.lower()}) must match the subscription's "
                               f"currency ({currency.lower()}).", param)
            if price is None:
                price = self._inline_price(data, f"{param}[price_data]", now, one_time=True)
            rates = self._tax_rate_ids(item.get("tax_rates"), f"{param}[tax_rates]")
            out.append((price, int(item.get("quantity") or 1), rates))
        return out

    # ---- settings kept in extra ---------------------------------------------------------------

    def _settings(self, call: _Call, sub: BSubscription | None) -> dict[str, Any]:
        """The ``extra`` values the request sets (``None`` removes one), its references checked."""
        t = call.typed
        refuse_references(t, _REFERENCES)
        refuse_connect_only(t)
        out: dict[str, Any] = {}
        if "automatic_tax" in t:
            out["automatic_tax"] = {"enabled": bool((t["automatic_tax"] or {}).get("enabled"))}
        if "billing_thresholds" in t:
            bt = t["billing_thresholds"]
            out["billing_thresholds"] = None if bt is None else {
                "amount_gte": bt.get("amount_gte"), "reset_billing_cycle_anchor": bt.get("reset_billing_cycle_anchor")}
        if "collection_method" in t:
            out["collection_method"] = t["collection_method"]
        if "days_until_due" in t:
            out["days_until_due"] = t["days_until_due"]
        if "description" in t:
            out["description"] = t["description"] or None
        if "default_tax_rates" in t:
            out["default_tax_rates"] = self._tax_rate_ids(t["default_tax_rates"], "default_tax_rates") or None
        if "pause_collection" in t:
            pc = t["pause_collection"]
            out["pause_collection"] = None if pc is None else {"behavior": pc["behavior"],
                                                               "resumes_at": pc.get("resumes_at")}
        if "pending_invoice_item_interval" in t:
            pi = t["pending_invoice_item_interval"]
            out["pending_invoice_item_interval"] = None if pi is None else {
                "interval": pi["interval"], "interval_count": pi.get("interval_count") or 1}
        if "trial_settings" in t:
            out["trial_settings"] = t["trial_settings"]
        if "payment_settings" in t:
            merged = dict((sub.extra.get("payment_settings") if sub is not None else None) or {})
            merged.update(t["payment_settings"] or {})
            _check_customer_balance(merged.get("payment_method_options") or {})
            out["payment_settings"] = merged
        if "cancellation_details" in t:
            merged = dict((sub.extra.get("cancellation_details") if sub is not None else None) or {})
            for key, value in (t["cancellation_details"] or {}).items():
                merged[key] = value or None
            out["cancellation_details"] = merged
        coupon = t.get("coupon")
        if coupon:
            if coupon not in self.store.coupons:
                raise no_such("coupon", coupon, "coupon")
            self.store.coupons[coupon].times_redeemed += 1
            out["discount"] = {"id": self.store.new_id("di"), "coupon": coupon, "start": call.now, "end": None}
        elif "coupon" in t:
            out["discount"] = None
        return out

    @staticmethod
    def _apply_settings(sub: BSubscription, changes: dict[str, Any]) -> None:
        for key, value in changes.items():
            if value is None:
                sub.extra.pop(key, None)
            else:
                sub.extra[key] = value

    # ---- create ------------------------------------------------------------------------------

    def create_subscription(self, call: _Call) -> JSON:
        p, t = call.params, call.typed
        if "customer" not in p:
            raise _missing_param("customer")
        customer = self.get_customer(_as_str(p["customer"], "customer"), param="customer", status=400)
        if "items" not in p:
            raise _missing_param("items")
        now = call.now
        items = self._parse_new_items(p["items"], t.get("items"), now)
        currencies = {pr.currency.lower() for pr, _, _ in items}
        if len(currencies) > 1:
            raise _invalid("All prices on a subscription must have the same currency.", "items")
        currency = next(iter(currencies))
        if t.get("currency") and str(t["currency"]).lower() != currency:
            raise _invalid(f"Currency {str(t['currency']).lower()} does not match the currency of the prices on the "
                           f"subscription ({currency}).", "currency")
        self._check_proration(p)
        settings = self._settings(call, None)
        extras = self._invoice_items(t.get("add_invoice_items"), currency, now)
        trial_days = _as_int(p["trial_period_days"], "trial_period_days") if "trial_period_days" in p else 0
        if trial_days < 0 or trial_days > 730:
            raise _invalid("trial_period_days must be between 0 and 730.", "trial_period_days")
        metadata = _parse_metadata(p["metadata"]) if "metadata" in p else {}
        trial_end = now + trial_days * 86400 if trial_days else None
        if isinstance(t.get("trial_end"), int):
            if t["trial_end"] <= now:
                raise _invalid("Invalid timestamp: must be an integer Unix timestamp in the future.", "trial_end")
            trial_end = t["trial_end"]
        elif t.get("trial_end") == "now":
            trial_end = None  # no trial
        start = t["backdate_start_date"] if isinstance(t.get("backdate_start_date"), int) else now
        interval, count = items[0][0].interval, items[0][0].extra.get("interval_count", 1)
        anchor = t.get("billing_cycle_anchor")
        if trial_end:
            period_end = trial_end
        elif isinstance(anchor, int) and anchor > now:
            period_end = anchor  # a prorated first period up to the anchor
        else:
            period_end = add_interval(now, interval, count)
        incomplete = t.get("payment_behavior") == "default_incomplete" and not trial_end
        sub = BSubscription(
            id=self.store.new_id("sub"), customer=customer.id,
            status="trialing" if trial_end else ("incomplete" if incomplete else "active"),
            items=[BSubItem(self.store.new_id("si"), pr.id, qty, now) for pr, qty, _ in items],
            created=now, start_date=start, current_period_start=now, current_period_end=period_end,
            currency=currency, trial_start=now if trial_end else None, trial_end=trial_end,
            metadata={k: v for k, v in (metadata or {}).items() if v is not None})
        for item, (_, _, typed) in zip(sub.items, items, strict=True):
            self._item_extra(item, typed)
        self._apply_settings(sub, settings)
        if isinstance(anchor, int):
            sub.extra["billing_cycle_anchor"] = anchor
        if isinstance(t.get("cancel_at"), int):
            sub.extra["cancel_at"], sub.canceled_at = t["cancel_at"], now
        if t.get("cancel_at_period_end"):
            sub.cancel_at_period_end, sub.canceled_at = True, now
        self.store.add_subscription(sub)
        invoice: tuple[str, list[tuple[str, JSON]]] | None = None
        if not trial_end:
            invoice = self._first_invoice(sub, customer, now, extras, paid=not incomplete)
        snapshot = render_subscription(self.store, sub)
        self.emit(call, "customer.subscription.created", "subscription", sub.id, snapshot)
        if invoice is not None:
            invoice_id, snapshots = invoice
            for type_, inv_snapshot in snapshots:
                self.emit(call, type_, "invoice", invoice_id, inv_snapshot)
        call.wrote = True
        return self.respond(call, copy.deepcopy(snapshot))

    def _first_invoice(self, sub: BSubscription, customer: BCustomer, now: int,
                       extras: list[tuple[BPrice, int, list[str]]] | None = None,
                       paid: bool = True) -> tuple[str, list[tuple[str, JSON]]]:
        """Create the subscription_create invoice: draft -> finalized -> paid (left open when
        ``paid`` is false), with snapshots; ``extras``: one-off lines (``add_invoice_items``)."""
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
        for price, qty, _rates in extras or ():
            product = self.store.products.get(price.product)
            lines.append(BInvoiceLine(id=self.store.new_id("il"), price=price.id, quantity=qty,
                                      amount=price.unit_amount * qty,
                                      description=product.name if product else price.product,
                                      period_start=now, period_end=now))
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
        if paid:
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

    # ---- update ------------------------------------------------------------------------------

    def update_subscription(self, call: _Call) -> JSON:
        sub = self.get_subscription(call.path_param("subscription_exposed_id"))
        p, t = call.params, call.typed
        self._check_proration(p)
        if (sub.status in ("canceled", "incomplete_expired")
                and set(p) - {"metadata", "expand", "cancellation_details"}):
            raise _invalid("A canceled subscription can only update its cancellation_details and metadata.")
        now = call.now
        if isinstance(t.get("trial_end"), int) and t["trial_end"] <= now:  # refused before anything changes
            raise _invalid("Invalid timestamp: must be an integer Unix timestamp in the future.", "trial_end")
        settings = self._settings(call, sub)
        pending = self._invoice_items(t.get("add_invoice_items"), sub.currency, now)
        before = render_subscription(self.store, sub)
        new_items = self._updated_items(sub, p["items"], t.get("items"), now) if "items" in p else None
        cancel = _as_bool(p["cancel_at_period_end"], "cancel_at_period_end") \
            if "cancel_at_period_end" in p else None
        metadata = _parse_metadata(p["metadata"]) if "metadata" in p else ...
        if new_items is not None:
            sub.items = new_items
        if cancel is not None and cancel != sub.cancel_at_period_end:
            sub.cancel_at_period_end = cancel
            sub.canceled_at = now if cancel else None
        if "cancel_at" in t:
            if isinstance(t["cancel_at"], int):
                sub.extra["cancel_at"], sub.cancel_at_period_end, sub.canceled_at = t["cancel_at"], False, now
            elif sub.extra.pop("cancel_at", None) is not None and not sub.cancel_at_period_end:
                sub.canceled_at = None
        if metadata is not ...:
            _apply_metadata(sub.metadata, metadata)
        self._apply_settings(sub, settings)
        self._update_period(sub, t, now)
        if pending:
            queued = list(sub.extra.get("pending_invoice_items") or [])
            queued += [{"price": pr.id, "quantity": qty, "tax_rates": rates} for pr, qty, rates in pending]
            sub.extra["pending_invoice_items"] = queued  # billed on the next invoice
        after = render_subscription(self.store, sub)
        previous = _diff(before, after)
        if previous:
            self.emit(call, "customer.subscription.updated", "subscription", sub.id, after, previous)
            call.wrote = True
        elif pending:
            call.wrote = True
        return self.respond(call, copy.deepcopy(after))

    def _update_period(self, sub: BSubscription, t: dict[str, Any], now: int) -> None:
        """``trial_end`` (a new trial end, or ``now``: the trial ends and a period starts) and
        ``billing_cycle_anchor=now`` (the period restarts now)."""
        price = self.store.prices.get(sub.items[0].price) if sub.items else None
        interval = price.interval if price is not None else "month"
        count = price.extra.get("interval_count", 1) if price is not None else 1
        trial_end = t.get("trial_end")
        if isinstance(trial_end, int):  # in the future (update_subscription checked it)
            sub.trial_start = sub.trial_start or now
            sub.trial_end = sub.current_period_end = trial_end
            sub.status = "trialing"
        elif trial_end == "now" and sub.status == "trialing":
            sub.trial_end, sub.status = now, "active"
            sub.current_period_start, sub.current_period_end = now, add_interval(now, interval, count)
        if t.get("billing_cycle_anchor") == "now":
            sub.current_period_start, sub.current_period_end = now, add_interval(now, interval, count)
            sub.extra["billing_cycle_anchor"] = now

    def _updated_items(self, sub: BSubscription, raw: Any, typed: Any, now: int) -> list[BSubItem]:
        items = [BSubItem(it.id, it.price, it.quantity, it.created, dict(it.extra)) for it in sub.items]
        by_id = {it.id: it for it in items}
        typed_items = typed if isinstance(typed, list) else []
        for i, change in enumerate(_as_list(raw, "items")):
            param = f"items[{i}]"
            if not isinstance(change, dict):
                raise _invalid("Invalid object", param)
            tc = typed_items[i] if i < len(typed_items) and isinstance(typed_items[i], dict) else {}
            extra = self._item_typed(tc, i, param)
            qty = _as_int(change["quantity"], f"{param}[quantity]") if "quantity" in change else None
            if qty is not None and qty < 0:
                raise _invalid("This value must be greater than or equal to 0.", f"{param}[quantity]")
            price = self.get_price(change["price"], f"{param}[price]") if "price" in change else None
            if price is None and tc.get("price_data"):
                if str(tc["price_data"].get("currency", "")).lower() != sub.currency.lower():
                    raise _invalid("All prices on a subscription must have the same currency as the subscription.",
                                   f"{param}[price_data][currency]")
                price = self._inline_price(tc["price_data"], f"{param}[price_data]", now, one_time=False)
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
                self._item_extra(item, extra)
            else:
                if price is None:
                    raise _missing_param(f"{param}[price]")
                if any(it.price == price.id for it in items):
                    raise _invalid(f"Cannot add multiple subscription items with the same price: {price.id}",
                                   f"{param}[price]")
                new = BSubItem(self.store.new_id("si"), price.id, 1 if qty is None else qty, now)
                self._item_extra(new, extra)
                items.append(new)
                by_id[new.id] = new
        if not items:
            raise _invalid("A subscription must have at least one active item.", "items")
        currencies = {self.store.prices[it.price].currency.lower() for it in items if it.price in self.store.prices}
        if len(currencies) > 1 or (currencies and sub.currency.lower() not in currencies):
            raise _invalid("All prices on a subscription must have the same currency as the subscription.",
                           "items")
        return items
