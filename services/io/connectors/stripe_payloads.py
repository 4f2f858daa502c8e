"""Stripe's payloads (API version 2023-08-16): pydantic models of the objects SyncDesk reads
(extra fields allowed, required fields and types checked strictly: a string where Stripe
promises an integer is a :class:`ProtocolError` naming the object, never coerced) and their
mapping onto the canonical model:

- customers keyed by ``cus_...``: name, email, tax id (``metadata["tax_id"]``, else the first
  expanded ``tax_ids`` value), country (``address.country``); a ``{"deleted": true}`` customer
  is a deletion;
- plans keyed by price id: ``key`` = ``lookup_key`` (the price id when it has none), tier from
  the product's ``metadata["tier"]``;
- subscriptions keyed by ``sub_...``: ``plan_key``/``quantity`` of the first item;
- invoices keyed by ``in_...``: total in major units using the currency's minor-unit exponent
  (zero-decimal currencies such as JPY have exponent 0, three-decimal ones such as KWD 3); net
  (``total_excluding_tax``), tax (``tax``), tax per rate (``total_tax_amounts``: the rate's
  percentage from the rate objects the lines carry, reverse charge from ``taxability_reason``),
  discount (``total_discount_amounts``); each line's net, tax, discount, period and proration;
- credit notes keyed by ``cn_...`` (:class:`CreditNote`: the credited invoice, status, total
  with tax, net, tax per rate, lines) and refunds keyed by ``re_...`` (:class:`Refund`: the
  charge and, through it, the invoice it paid: listed with ``expand[]=data.charge``);
- :class:`LifecycleEvent` for history no record keeps: plan / quantity changes and scheduled
  cancellations (``customer.subscription.updated`` with ``previous_attributes``), cancellations
  (``customer.subscription.deleted``) and failed payments (``invoice.payment_failed``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, StringConstraints

from services.core.currency import stripe_exponent
from services.core.domain import (
    CreditNote,
    Customer,
    EventKind,
    ExternalRef,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LifecycleEvent,
    Money,
    Plan,
    Refund,
    Subscription,
    SubscriptionStatus,
    System,
    TaxAmount,
    Tier,
)
from services.io.connectors.base import UnixTime, from_unix, parse_payload

log = logging.getLogger(__name__)

#: the exponent of Stripe's integer ``amount`` fields (services.core.currency holds Stripe's lists)
currency_exponent = stripe_exponent


def to_money(minor: int, currency: str) -> Money:
    """Stripe's integer minor units -> Money in major units (exact Decimal)."""
    return Money(Decimal(minor).scaleb(-currency_exponent(currency)), currency.upper())


# --------------------------------------------------------------------------------------
# Stripe payload models (only the fields SyncDesk reads; everything else is allowed)
# --------------------------------------------------------------------------------------

Currency = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Za-z]{3}$")]
OptInt = StrictInt | None
OptStr = StrictStr | None
#: a Unix time field: an integer a datetime can hold (2**62 is refused, naming the field)
OptTime = UnixTime | None


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class StripeRef(_Model):
    """An expanded object where only the id matters (e.g. ``customer`` with ``expand[]``)."""

    id: StrictStr


class ListEnvelope(_Model):
    object: Literal["list"]
    data: list[dict[str, Any]]
    has_more: StrictBool
    url: OptStr = None


class StripeAddress(_Model):
    country: OptStr = None


class StripeTaxId(_Model):
    value: StrictStr


class StripeTaxIdList(_Model):
    data: list[StripeTaxId] = Field(default_factory=list)


class StripeCustomer(_Model):
    id: StrictStr
    object: Literal["customer"] = "customer"
    deleted: StrictBool = False
    name: OptStr = None
    email: OptStr = None
    address: StripeAddress | None = None
    metadata: dict[str, StrictStr] = Field(default_factory=dict)
    tax_ids: StripeTaxIdList | None = None
    created: OptTime = None


class StripeProduct(_Model):
    id: StrictStr
    object: Literal["product"] = "product"
    deleted: StrictBool = False
    name: OptStr = None
    metadata: dict[str, StrictStr] = Field(default_factory=dict)


class StripeRecurring(_Model):
    interval: StrictStr
    interval_count: OptInt = None


class StripePrice(_Model):
    id: StrictStr
    object: Literal["price"] = "price"
    deleted: StrictBool = False
    product: StrictStr | StripeProduct
    currency: Currency
    unit_amount: OptInt = None
    lookup_key: OptStr = None
    nickname: OptStr = None
    recurring: StripeRecurring | None = None
    active: StrictBool = True
    metadata: dict[str, StrictStr] = Field(default_factory=dict)
    created: OptTime = None

    @property
    def product_id(self) -> str:
        return self.product if isinstance(self.product, str) else self.product.id

    @property
    def plan_key(self) -> str:
        return self.lookup_key or self.id


class StripeSubItem(_Model):
    id: StrictStr
    price: StripePrice
    quantity: OptInt = None


class StripeSubItems(_Model):
    data: list[StripeSubItem]
    has_more: StrictBool = False


class StripeSubscription(_Model):
    id: StrictStr
    object: Literal["subscription"] = "subscription"
    customer: StrictStr | StripeRef
    status: Literal["active", "canceled", "incomplete", "incomplete_expired", "past_due", "paused",
                    "trialing", "unpaid"]
    items: StripeSubItems
    current_period_end: UnixTime
    current_period_start: OptTime = None
    created: OptTime = None
    canceled_at: OptTime = None
    cancel_at_period_end: StrictBool = False
    trial_end: OptTime = None


class StripeStatusTransitions(_Model):
    finalized_at: OptTime = None
    paid_at: OptTime = None
    voided_at: OptTime = None
    marked_uncollectible_at: OptTime = None


class StripeTaxRate(_Model):
    id: StrictStr
    object: Literal["tax_rate"] = "tax_rate"
    #: a JSON number (Stripe's); read through its decimal text, never used as a float
    percentage: StrictInt | StrictFloat
    display_name: OptStr = None
    tax_type: OptStr = None
    jurisdiction: OptStr = None


class StripeTaxAmount(_Model):
    amount: StrictInt
    tax_rate: StrictStr | StripeTaxRate
    inclusive: StrictBool = False
    taxability_reason: OptStr = None


class StripeDiscountAmount(_Model):
    amount: StrictInt


class StripePeriod(_Model):
    start: OptTime = None
    end: OptTime = None


class StripeInvoiceLine(_Model):
    id: OptStr = None
    amount: StrictInt
    description: OptStr = None
    quantity: OptInt = None
    price: StripePrice | None = None
    period: StripePeriod | None = None
    proration: StrictBool = False
    tax_amounts: list[StripeTaxAmount] | None = None
    tax_rates: list[StripeTaxRate] = Field(default_factory=list)
    discount_amounts: list[StripeDiscountAmount] | None = None


class StripeInvoiceLines(_Model):
    data: list[StripeInvoiceLine]
    has_more: StrictBool = False


class StripeInvoice(_Model):
    id: StrictStr
    object: Literal["invoice"] = "invoice"
    deleted: StrictBool = False
    customer: StrictStr | StripeRef | None = None
    status: Literal["draft", "open", "paid", "uncollectible", "void"]
    total: StrictInt
    currency: Currency
    number: OptStr = None
    subscription: StrictStr | StripeRef | None = None
    created: UnixTime
    status_transitions: StripeStatusTransitions
    lines: StripeInvoiceLines
    tax: OptInt = None
    total_excluding_tax: OptInt = None
    total_tax_amounts: list[StripeTaxAmount] | None = None
    total_discount_amounts: list[StripeDiscountAmount] | None = None


class StripeCreditNoteLine(_Model):
    id: OptStr = None
    amount: StrictInt
    description: OptStr = None
    quantity: OptInt = None
    discount_amount: OptInt = None
    tax_amounts: list[StripeTaxAmount] = Field(default_factory=list)
    tax_rates: list[StripeTaxRate] = Field(default_factory=list)


class StripeCreditNoteLines(_Model):
    data: list[StripeCreditNoteLine]
    has_more: StrictBool = False


class StripeCreditNote(_Model):
    id: StrictStr
    object: Literal["credit_note"] = "credit_note"
    customer: StrictStr | StripeRef | None = None
    invoice: StrictStr | StripeRef | None = None
    status: Literal["issued", "void"]
    currency: Currency
    total: StrictInt
    total_excluding_tax: OptInt = None
    tax_amounts: list[StripeTaxAmount] = Field(default_factory=list)
    number: OptStr = None
    created: UnixTime
    voided_at: OptTime = None
    lines: StripeCreditNoteLines | None = None


class StripeChargeRef(_Model):
    """A refund's charge, expanded (``expand[]=data.charge``): the invoice it paid."""

    id: StrictStr
    customer: StrictStr | StripeRef | None = None
    invoice: StrictStr | StripeRef | None = None


class StripeRefund(_Model):
    id: StrictStr
    object: Literal["refund"] = "refund"
    amount: StrictInt
    currency: Currency
    charge: StrictStr | StripeChargeRef | None = None
    status: OptStr = None
    created: UnixTime
    credit_note: OptStr = None  # not in the 2023-08-16 schema; the demo and some payloads carry it


class StripeRefundList(_Model):
    data: list[dict[str, Any]] = Field(default_factory=list)
    has_more: StrictBool = False


class StripeCharge(_Model):
    id: StrictStr
    object: Literal["charge"] = "charge"
    customer: StrictStr | StripeRef | None = None
    invoice: StrictStr | StripeRef | None = None
    refunds: StripeRefundList | None = None


class StripeEventData(_Model):
    object: dict[str, Any]
    previous_attributes: dict[str, Any] | None = None


class StripeEvent(_Model):
    id: StrictStr
    object: Literal["event"] = "event"
    type: StrictStr
    created: UnixTime
    data: StripeEventData


class _DeletedCheck(_Model):
    id: StrictStr
    deleted: StrictBool = False


# --------------------------------------------------------------------------------------
# Mapping helpers
# --------------------------------------------------------------------------------------

_INVOICE_STATUS: dict[str, InvoiceStatus] = {
    "draft": InvoiceStatus.DRAFT, "open": InvoiceStatus.OPEN, "paid": InvoiceStatus.PAID,
    "void": InvoiceStatus.VOID, "uncollectible": InvoiceStatus.UNCOLLECTIBLE,
}


def _ref(kind: str, oid: str) -> ExternalRef:
    return ExternalRef(System.BILLING, kind, oid)


def _id_of(value: str | StripeRef | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.id


def _tier(value: str | None) -> Tier | None:
    if not value:
        return None
    try:
        return Tier(value.strip().lower())
    except ValueError:
        log.warning("billing: unknown tier %r in product metadata (ignored)", value)
        return None


# --------------------------------------------------------------------------------------
# Validation and mapping of one object
# --------------------------------------------------------------------------------------


def _what(kind: str, obj: Any) -> str:
    oid = obj.get("id") if isinstance(obj, dict) else None
    return f"{kind} {oid}" if oid else kind


def parse_customer(obj: dict[str, Any]) -> StripeCustomer:
    return parse_payload(System.BILLING, StripeCustomer, obj, _what("customer", obj))


def parse_product(obj: dict[str, Any]) -> StripeProduct:
    return parse_payload(System.BILLING, StripeProduct, obj, _what("product", obj))


def parse_price(obj: dict[str, Any]) -> StripePrice:
    return parse_payload(System.BILLING, StripePrice, obj, _what("price", obj))


def parse_event(obj: dict[str, Any]) -> StripeEvent:
    return parse_payload(System.BILLING, StripeEvent, obj, _what("event", obj))


def map_customer(c: StripeCustomer) -> Customer:
    tax_id = c.metadata.get("tax_id") or None
    if tax_id is None and c.tax_ids is not None and c.tax_ids.data:
        tax_id = c.tax_ids.data[0].value
    return Customer(ref=_ref("customer", c.id), customer_id=c.id, name=c.name or "", email=c.email,
                    tax_id=tax_id, country=c.address.country if c.address else None,
                    created=from_unix(c.created))


def map_price(p: StripePrice, products: Mapping[str, StripeProduct]) -> Plan:
    product = p.product if isinstance(p.product, StripeProduct) else products.get(p.product)
    tier = _tier(product.metadata.get("tier")) if product is not None else None
    if tier is None:
        tier = _tier(p.metadata.get("tier"))
    name = p.nickname or (product.name if product is not None and product.name else None) or p.plan_key
    return Plan(ref=_ref("price", p.id), key=p.plan_key, name=name,
                unit_price=to_money(p.unit_amount, p.currency) if p.unit_amount is not None else None,
                interval=p.recurring.interval if p.recurring else None, tier=tier)


def subscription_from(obj: dict[str, Any]) -> Subscription:
    s = parse_payload(System.BILLING, StripeSubscription, obj, _what("subscription", obj))
    first = s.items.data[0] if s.items.data else None
    return Subscription(
        ref=_ref("subscription", s.id), customer_id=_id_of(s.customer), status=SubscriptionStatus(s.status),
        plan_key=first.price.plan_key if first else None,
        quantity=(first.quantity if first and first.quantity is not None else (1 if first else 0)),
        current_period_start=from_unix(s.current_period_start), current_period_end=from_unix(s.current_period_end),
        created=from_unix(s.created), canceled_at=from_unix(s.canceled_at), trial_end=from_unix(s.trial_end))


def _percentage(value: int | float) -> Decimal:
    """A tax rate's JSON number as the decimal it was written as (``19.6`` -> Decimal("19.6"))."""
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _rates(lines: list[StripeInvoiceLine] | list[StripeCreditNoteLine]) -> dict[str, StripeTaxRate]:
    """The tax rate objects the lines carry, by id (``total_tax_amounts`` names them by id only)."""
    return {r.id: r for ln in lines for r in ln.tax_rates}


def _tax_amounts(amounts: list[StripeTaxAmount], currency: str,
                 rates: Mapping[str, StripeTaxRate]) -> tuple[TaxAmount, ...]:
    """Stripe's tax amounts summed per rate, in the order first listed."""
    sums: dict[str | None, list[Any]] = {}
    for ta in amounts:
        rate = ta.tax_rate if isinstance(ta.tax_rate, StripeTaxRate) else rates.get(ta.tax_rate)
        rid = ta.tax_rate if isinstance(ta.tax_rate, str) else ta.tax_rate.id
        pct = _percentage(rate.percentage) if rate is not None else None
        reverse = ta.taxability_reason == "reverse_charge" or (
            rate is not None and pct == 0 and (rate.tax_type or "").lower() == "vat")
        name = rate.display_name if rate is not None else None
        acc = sums.setdefault(rid, [0, pct, reverse, name])
        acc[0] += ta.amount
    return tuple(TaxAmount(rid, pct, reverse, to_money(total, currency), name)
                 for rid, (total, pct, reverse, name) in sums.items())


def _discounts(amounts: list[StripeDiscountAmount] | None, currency: str) -> Money | None:
    return None if amounts is None else to_money(sum(d.amount for d in amounts), currency)


def invoice_from(obj: dict[str, Any]) -> Invoice:
    inv = parse_payload(System.BILLING, StripeInvoice, obj, _what("invoice", obj))
    if inv.lines.has_more:
        log.warning("billing: invoice %s has more lines than embedded; only the first %d are read",
                    inv.id, len(inv.lines.data))
    cur = inv.currency
    rates = _rates(inv.lines.data)
    lines: list[InvoiceLine] = []
    for ln in inv.lines.data:
        discount = _discounts(ln.discount_amounts, cur)
        taxes = _tax_amounts(ln.tax_amounts, cur, rates) if ln.tax_amounts is not None else ()
        lines.append(InvoiceLine(
            description=ln.description or "", plan_key=ln.price.plan_key if ln.price else None,
            quantity=Decimal(ln.quantity if ln.quantity is not None else 1), amount=to_money(ln.amount, cur),
            net=to_money(ln.amount - sum(d.amount for d in ln.discount_amounts or ()), cur),
            tax=(to_money(sum(t.amount for t in ln.tax_amounts), cur) if ln.tax_amounts is not None else None),
            discount=discount, period_start=from_unix(ln.period.start) if ln.period else None,
            period_end=from_unix(ln.period.end) if ln.period else None, proration=ln.proration, taxes=taxes))
    st = inv.status_transitions
    return Invoice(ref=_ref("invoice", inv.id), customer_id=_id_of(inv.customer),
                   status=_INVOICE_STATUS[inv.status], total=to_money(inv.total, cur),
                   number=inv.number, billing_invoice_id=inv.id, subscription_id=_id_of(inv.subscription),
                   created=from_unix(inv.created), finalized_at=from_unix(st.finalized_at),
                   paid_at=from_unix(st.paid_at), voided_at=from_unix(st.voided_at), lines=lines,
                   net=to_money(inv.total_excluding_tax, cur) if inv.total_excluding_tax is not None else None,
                   tax=to_money(inv.tax or 0, cur) if inv.total_tax_amounts is not None or inv.tax is not None
                   else None,
                   taxes=(_tax_amounts(inv.total_tax_amounts, cur, rates) if inv.total_tax_amounts is not None
                          else None),
                   discount=_discounts(inv.total_discount_amounts, cur))


def credit_note_from(obj: dict[str, Any]) -> CreditNote:
    cn = parse_payload(System.BILLING, StripeCreditNote, obj, _what("credit_note", obj))
    cur = cn.currency
    data = cn.lines.data if cn.lines is not None else []
    rates = _rates(data)
    lines = [InvoiceLine(description=ln.description or "", plan_key=None,
                         quantity=Decimal(ln.quantity if ln.quantity is not None else 1),
                         amount=to_money(ln.amount, cur),
                         net=to_money(ln.amount - (ln.discount_amount or 0), cur),
                         tax=to_money(sum(t.amount for t in ln.tax_amounts), cur),
                         discount=to_money(ln.discount_amount or 0, cur),
                         taxes=_tax_amounts(ln.tax_amounts, cur, rates))
             for ln in data]
    taxes = _tax_amounts(cn.tax_amounts, cur, rates)
    return CreditNote(ref=_ref("credit_note", cn.id), customer_id=_id_of(cn.customer), invoice_id=_id_of(cn.invoice),
                      status=cn.status, total=to_money(cn.total, cur),
                      net=to_money(cn.total_excluding_tax, cur) if cn.total_excluding_tax is not None else None,
                      tax=to_money(sum(t.amount for t in cn.tax_amounts), cur), taxes=taxes, number=cn.number,
                      lines=lines, created=from_unix(cn.created), voided_at=from_unix(cn.voided_at))


def refund_from(obj: dict[str, Any], charge: StripeCharge | None = None) -> Refund:
    """A refund; its charge either expanded in it or given (a ``charge.refunded`` event's)."""
    r = parse_payload(System.BILLING, StripeRefund, obj, _what("refund", obj))
    ch = r.charge if isinstance(r.charge, StripeChargeRef) else charge
    charge_id = r.charge.id if isinstance(r.charge, StripeChargeRef) else r.charge
    return Refund(ref=_ref("refund", r.id), customer_id=_id_of(ch.customer) if ch is not None else None,
                  invoice_id=_id_of(ch.invoice) if ch is not None else None, charge_id=charge_id,
                  amount=to_money(r.amount, r.currency), status=r.status or "succeeded",
                  created=from_unix(r.created), credit_note_id=r.credit_note)


def parse_charge(obj: dict[str, Any]) -> StripeCharge:
    return parse_payload(System.BILLING, StripeCharge, obj, _what("charge", obj))


def refunds_of_charge(obj: dict[str, Any]) -> list[Refund]:
    """The refunds a charge embeds (a ``charge.refunded`` event's object)."""
    ch = parse_charge(obj)
    if ch.refunds is None:
        return []
    return [refund_from({**r, "charge": ch.id}, ch) for r in ch.refunds.data]


def lifecycle_event(ev: StripeEvent, known_plans: Mapping[str, Plan] | None = None) -> LifecycleEvent | None:
    """The timeline fact an event reports, when no record keeps it (else ``None``)."""
    obj = ev.data.object
    at = from_unix(ev.created)
    assert at is not None
    if ev.type in ("customer.subscription.updated", "customer.subscription.deleted"):
        sub = subscription_from(obj)
        sid = sub.ref.id
        if ev.type == "customer.subscription.deleted":
            return LifecycleEvent(at, System.BILLING, EventKind.SUBSCRIPTION_CANCELED, sub.customer_id,
                                  sub.ref, f"Subscription cancelled ({sub.plan_key or 'no plan'})",
                                  correlation_key=f"tier:{sid}")
        summary = _change_summary(ev.data.previous_attributes or {}, sub, known_plans or {})
        if summary is None:
            return None
        return LifecycleEvent(at, System.BILLING, EventKind.SUBSCRIPTION_UPDATED, sub.customer_id, sub.ref,
                              summary, correlation_key=f"tier:{sid}")
    if ev.type == "invoice.payment_failed":
        inv = invoice_from(obj)
        return LifecycleEvent(at, System.BILLING, EventKind.INVOICE_PAYMENT_FAILED, inv.customer_id, inv.ref,
                              f"Payment failed for invoice {inv.number or inv.ref.id} ({inv.total})",
                              correlation_key=f"invoice:{inv.ref.id}")
    return None


def _change_summary(prev: dict[str, Any], sub: Subscription, plans: Mapping[str, Plan]) -> str | None:
    old_key: str | None = None
    old_qty: int | None = None
    items = prev.get("items")
    if isinstance(items, dict) and isinstance(items.get("data"), list):
        data = items["data"]
        first = data[0] if data and isinstance(data[0], dict) else None
        if first is not None:
            price = first.get("price")
            if isinstance(price, dict):
                old_key = price.get("lookup_key") or price.get("id")
            elif isinstance(price, str):
                old_key = plans[price].key if price in plans else price
            q = first.get("quantity")
            old_qty = q if isinstance(q, int) and not isinstance(q, bool) else None
    plan = prev.get("plan")
    if old_key is None and isinstance(plan, dict):
        old_key = plan.get("lookup_key") or (plans[plan["id"]].key if plan.get("id") in plans else plan.get("id"))
    q = prev.get("quantity")
    if old_qty is None and isinstance(q, int) and not isinstance(q, bool):
        old_qty = q
    parts: list[str] = []
    if old_key is not None and old_key != sub.plan_key:
        parts.append(f"Plan changed from {old_key} to {sub.plan_key}")
    if old_qty is not None and old_qty != sub.quantity:
        parts.append(f"{'quantity' if parts else 'Quantity'} changed from {old_qty} to {sub.quantity}")
    if prev.get("cancel_at_period_end") is False and sub.canceled_at is not None:
        end = sub.current_period_end.date().isoformat() if sub.current_period_end else "period end"
        parts.append(f"{'cancellation' if parts else 'Cancellation'} scheduled for {end}")
    elif prev.get("cancel_at_period_end") is True and sub.canceled_at is None:
        parts.append(f"{'cancellation' if parts else 'Cancellation'} withdrawn")
    return "; ".join(parts) if parts else None
