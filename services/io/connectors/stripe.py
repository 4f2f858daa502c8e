"""Stripe billing connector (API version 2023-08-16) over the shared ResilientClient.

Reads products, prices, customers, subscriptions, invoices and the last 30 days of events,
validates every object with pydantic models of Stripe's payloads (extra fields allowed,
required fields and types checked strictly: a string where Stripe promises an integer is a
:class:`ProtocolError` naming the object, never coerced) and maps them onto the canonical model:

- customers keyed by ``cus_...``: name, email, tax id (``metadata["tax_id"]``, else the first
  expanded ``tax_ids`` value), country (``address.country``); a ``{"deleted": true}`` customer
  is a deletion;
- plans keyed by price id: ``key`` = ``lookup_key`` (the price id when it has none), tier from
  the product's ``metadata["tier"]``;
- subscriptions keyed by ``sub_...``: ``plan_key``/``quantity`` of the first item;
- invoices keyed by ``in_...``: total in major units using the currency's minor-unit exponent
  (zero-decimal currencies such as JPY have exponent 0, three-decimal ones such as KWD 3);
- :class:`LifecycleEvent` for history no record keeps: plan / quantity changes and scheduled
  cancellations (``customer.subscription.updated`` with ``previous_attributes``), cancellations
  (``customer.subscription.deleted``) and failed payments (``invoice.payment_failed``).

Incremental refresh walks ``/v1/events`` newer than the cursor's event (``ending_before``),
so its cost is about ``ceil(changes / 100) + 1`` requests; an unknown or expired cursor falls
back to a full refresh.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Annotated, Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, StringConstraints

from services.compute import run_cpu
from services.core.domain import (
    Customer,
    EventKind,
    ExternalRef,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    LifecycleEvent,
    Money,
    Plan,
    Subscription,
    SubscriptionStatus,
    System,
    Tier,
)
from services.core.errors import ConnectorError, NotFoundError
from services.core.sysdata import (
    Delta,
    Kind,
    Progress,
    ProgressCallback,
    RefreshResult,
    SystemData,
    no_progress,
    release,
)
from services.io.config import SystemConnection
from services.io.connectors.base import Clock, Connector, from_unix, utc_now
from services.io.http import DEFAULT_POLICIES, HttpPolicy, ResilientClient

log = logging.getLogger(__name__)

API_VERSION = "2023-08-16"
PAGE_LIMIT = 100
#: concurrent cursor chains (monthly ``created`` windows) for the large lists of a full refresh
LIST_WINDOWS = 13
EVENT_RETENTION = timedelta(days=30)
#: a cursor this close to the retention limit is treated as expired (clock skew, slow refresh)
RETENTION_MARGIN = timedelta(hours=1)

#: Stripe's zero-decimal and three-decimal currencies; every other currency has 2 decimals.
ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx",
                          "vnd", "vuv", "xaf", "xof", "xpf"})
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})


def currency_exponent(currency: str) -> int:
    c = currency.lower()
    if c in ZERO_DECIMAL:
        return 0
    if c in THREE_DECIMAL:
        return 3
    return 2


def to_money(minor: int, currency: str) -> Money:
    """Stripe's integer minor units -> Money in major units (exact Decimal)."""
    return Money(Decimal(minor).scaleb(-currency_exponent(currency)), currency.upper())


# --------------------------------------------------------------------------------------
# Stripe payload models (only the fields SyncDesk reads; everything else is allowed)
# --------------------------------------------------------------------------------------

Currency = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Za-z]{3}$")]
OptInt = StrictInt | None
OptStr = StrictStr | None


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
    created: OptInt = None


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
    created: OptInt = None

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
    current_period_end: StrictInt
    current_period_start: OptInt = None
    created: OptInt = None
    canceled_at: OptInt = None
    cancel_at_period_end: StrictBool = False
    trial_end: OptInt = None


class StripeStatusTransitions(_Model):
    finalized_at: OptInt = None
    paid_at: OptInt = None
    voided_at: OptInt = None
    marked_uncollectible_at: OptInt = None


class StripeInvoiceLine(_Model):
    id: OptStr = None
    amount: StrictInt
    description: OptStr = None
    quantity: OptInt = None
    price: StripePrice | None = None


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
    created: StrictInt
    status_transitions: StripeStatusTransitions
    lines: StripeInvoiceLines


class StripeEventData(_Model):
    object: dict[str, Any]
    previous_attributes: dict[str, Any] | None = None


class StripeEvent(_Model):
    id: StrictStr
    object: Literal["event"] = "event"
    type: StrictStr
    created: StrictInt
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


def form_pairs(fields: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Stripe's form encoding with bracket nesting: ``{"metadata": {"k": "v"}}`` ->
    ``metadata[k]=v``; lists -> ``a[0][b]``; ``None`` -> ``""`` (Stripe unsets the field)."""
    out: list[tuple[str, str]] = []
    for key, value in fields.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, Mapping):
            if not value:
                out.append((name, ""))
            out.extend(form_pairs(value, name))
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                if isinstance(v, Mapping):
                    out.extend(form_pairs(v, f"{name}[{i}]"))
                else:
                    out.append((f"{name}[{i}]", _scalar(v)))
        else:
            out.append((name, _scalar(value)))
    return out


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def stripe_error_parser(response: httpx.Response) -> tuple[str, str | None]:
    """Stripe's ``{"error": {"type", "code", "message", "param"}}`` -> (message, code)."""
    body = response.json()
    err = body["error"]
    message = str(err.get("message") or response.reason_phrase or f"HTTP {response.status_code}")
    param = err.get("param")
    if param:
        message = f"{message} (param: {param})"
    code = err.get("code") or err.get("type")
    return message, (str(code) if code else None)


class _BearerAuth(httpx.Auth):
    """Secret key as a Bearer token; never shown by ``repr``."""

    def __init__(self, key: str) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._key}"
        yield request

    def __repr__(self) -> str:
        return "_BearerAuth('********')"


T = TypeVar("T")


@dataclass
class _Page:
    items: list[Any]
    raw_ids: list[str]
    has_more: bool


@dataclass
class _FullParts:
    products: dict[str, StripeProduct] = field(default_factory=dict)
    prices: list[StripePrice] = field(default_factory=list)
    customers: list[StripeCustomer] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    invoices: list[Invoice] = field(default_factory=list)
    events: list[StripeEvent] = field(default_factory=list)


# --------------------------------------------------------------------------------------
# The connector
# --------------------------------------------------------------------------------------


class StripeConnector(Connector):
    system = System.BILLING

    @classmethod
    def create(cls, conn: SystemConnection, *, policy: HttpPolicy | None = None,
               transport: Any = None, clock: Clock = utc_now) -> StripeConnector:
        client = ResilientClient(
            System.BILLING, conn.url, policy=policy or DEFAULT_POLICIES[System.BILLING],
            headers={"Stripe-Version": API_VERSION, "Accept": "application/json",
                     "User-Agent": "SyncDesk/1 (billing connector)"},
            auth=_BearerAuth(conn.secret("api_key")),
            error_parser=stripe_error_parser,
            request_id_headers=("Request-Id",),
            transport=transport,
        )
        return cls(conn, client, clock)

    # -- low-level ----------------------------------------------------------------------

    async def _get_json(self, path: str, operation: str, params: Any = None) -> Any:
        response = await self.client.request("GET", path, operation=operation, params=params)
        return ResilientClient.json_body(response, self.system, operation)

    def _page(self, response: httpx.Response, operation: str, parse: Callable[[dict[str, Any]], T]) -> _Page:
        """Decode + validate one list page (run off the event loop)."""
        body = ResilientClient.json_body(response, self.system, operation)
        env = self.parse(ListEnvelope, body, f"{operation} page")
        items = [parse(obj) for obj in env.data]
        ids = [str(obj.get("id")) for obj in env.data]
        return _Page(items, ids, env.has_more)

    async def _list(self, path: str, phase: str, parse: Callable[[dict[str, Any]], T],
                    progress: ProgressCallback, params: dict[str, Any] | None = None,
                    first: _Page | None = None) -> list[T]:
        """Every object of a list endpoint, newest first, following ``starting_after``."""
        out: list[T] = []
        page = first
        while True:
            if page is None:
                page = await self._fetch_page(path, phase, parse, params)
            out.extend(page.items)
            progress(Progress(self.system, phase, len(out)))
            if not page.has_more or not page.raw_ids:
                return out
            last = page.raw_ids[-1]
            page = await self._fetch_page(path, phase, parse, params, starting_after=last)

    async def _list_windowed(self, path: str, phase: str, parse: Callable[[dict[str, Any]], T],
                             progress: ProgressCallback, bounds: list[int],
                             params: dict[str, Any] | None = None) -> list[T]:
        """Like :meth:`_list`, but over disjoint ``created`` windows listed concurrently.

        One cursor chain is bound by its round trips (each page waits for the previous one);
        several chains over ``(-∞, b0), [b0, b1) … [bn, ∞)`` keep the request pipeline full, so
        the system's rate limit — not latency — sets the pace. Newest first, like one list.
        """
        edges = sorted(set(bounds))
        windows: list[dict[str, Any]] = []
        for lo, hi in pairwise([None, *edges, None]):
            window: dict[str, Any] = {}
            if lo is not None:
                window["created[gte]"] = lo
            if hi is not None:
                window["created[lt]"] = hi
            windows.append(window)
        counts = [0] * len(windows)

        def reporter(i: int) -> ProgressCallback:
            def report(p: Progress) -> None:
                counts[i] = p.done
                progress(Progress(self.system, phase, sum(counts)))
            return report

        parts = await asyncio.gather(*(self._list(path, phase, parse, reporter(i), {**(params or {}), **w})
                                       for i, w in enumerate(windows)))
        return [item for part in reversed(parts) for item in part]

    async def _fetch_page(self, path: str, phase: str, parse: Callable[[dict[str, Any]], T],
                          params: dict[str, Any] | None, *, starting_after: str | None = None,
                          ending_before: str | None = None) -> _Page:
        query: dict[str, Any] = {**(params or {}), "limit": PAGE_LIMIT}
        if starting_after is not None:
            query["starting_after"] = starting_after
        if ending_before is not None:
            query["ending_before"] = ending_before
        operation = f"list {phase}"
        response = await self.client.request("GET", path, operation=operation, params=query)
        return await run_cpu(self._page, response, operation, parse)

    # -- object parsing (validate + map) -------------------------------------------------

    def _what(self, kind: str, obj: Any) -> str:
        oid = obj.get("id") if isinstance(obj, dict) else None
        return f"{kind} {oid}" if oid else kind

    def parse_customer(self, obj: dict[str, Any]) -> StripeCustomer:
        return self.parse(StripeCustomer, obj, self._what("customer", obj))

    def parse_product(self, obj: dict[str, Any]) -> StripeProduct:
        return self.parse(StripeProduct, obj, self._what("product", obj))

    def parse_price(self, obj: dict[str, Any]) -> StripePrice:
        return self.parse(StripePrice, obj, self._what("price", obj))

    def parse_event(self, obj: dict[str, Any]) -> StripeEvent:
        return self.parse(StripeEvent, obj, self._what("event", obj))

    def map_customer(self, c: StripeCustomer) -> Customer:
        tax_id = c.metadata.get("tax_id") or None
        if tax_id is None and c.tax_ids is not None and c.tax_ids.data:
            tax_id = c.tax_ids.data[0].value
        return Customer(ref=_ref("customer", c.id), customer_id=c.id, name=c.name or "", email=c.email,
                        tax_id=tax_id, country=c.address.country if c.address else None,
                        created=from_unix(c.created))

    def map_price(self, p: StripePrice, products: Mapping[str, StripeProduct]) -> Plan:
        product = p.product if isinstance(p.product, StripeProduct) else products.get(p.product)
        tier = _tier(product.metadata.get("tier")) if product is not None else None
        if tier is None:
            tier = _tier(p.metadata.get("tier"))
        name = p.nickname or (product.name if product is not None and product.name else None) or p.plan_key
        return Plan(ref=_ref("price", p.id), key=p.plan_key, name=name,
                    unit_price=to_money(p.unit_amount, p.currency) if p.unit_amount is not None else None,
                    interval=p.recurring.interval if p.recurring else None, tier=tier)

    def subscription_from(self, obj: dict[str, Any]) -> Subscription:
        s = self.parse(StripeSubscription, obj, self._what("subscription", obj))
        first = s.items.data[0] if s.items.data else None
        return Subscription(
            ref=_ref("subscription", s.id), customer_id=_id_of(s.customer), status=SubscriptionStatus(s.status),
            plan_key=first.price.plan_key if first else None,
            quantity=(first.quantity if first and first.quantity is not None else (1 if first else 0)),
            current_period_start=from_unix(s.current_period_start), current_period_end=from_unix(s.current_period_end),
            created=from_unix(s.created), canceled_at=from_unix(s.canceled_at), trial_end=from_unix(s.trial_end))

    def invoice_from(self, obj: dict[str, Any]) -> Invoice:
        inv = self.parse(StripeInvoice, obj, self._what("invoice", obj))
        if inv.lines.has_more:
            log.warning("billing: invoice %s has more lines than embedded; only the first %d are read",
                        inv.id, len(inv.lines.data))
        lines = [InvoiceLine(description=ln.description or "",
                             plan_key=ln.price.plan_key if ln.price else None,
                             quantity=Decimal(ln.quantity if ln.quantity is not None else 1),
                             amount=to_money(ln.amount, inv.currency))
                 for ln in inv.lines.data]
        st = inv.status_transitions
        return Invoice(ref=_ref("invoice", inv.id), customer_id=_id_of(inv.customer),
                       status=_INVOICE_STATUS[inv.status], total=to_money(inv.total, inv.currency),
                       number=inv.number, billing_invoice_id=inv.id, subscription_id=_id_of(inv.subscription),
                       created=from_unix(inv.created), finalized_at=from_unix(st.finalized_at),
                       paid_at=from_unix(st.paid_at), voided_at=from_unix(st.voided_at), lines=lines)

    # -- lifecycle events ------------------------------------------------------------------

    def lifecycle_event(self, ev: StripeEvent, known_plans: Mapping[str, Plan] | None = None) -> LifecycleEvent | None:
        """The timeline fact an event reports, when no record keeps it (else ``None``)."""
        obj = ev.data.object
        at = from_unix(ev.created)
        assert at is not None
        if ev.type in ("customer.subscription.updated", "customer.subscription.deleted"):
            sub = self.subscription_from(obj)
            sid = sub.ref.id
            if ev.type == "customer.subscription.deleted":
                return LifecycleEvent(at, System.BILLING, EventKind.SUBSCRIPTION_CANCELED, sub.customer_id,
                                      sub.ref, f"Subscription cancelled ({sub.plan_key or 'no plan'})",
                                      correlation_key=f"tier:{sid}")
            summary = self._change_summary(ev.data.previous_attributes or {}, sub, known_plans or {})
            if summary is None:
                return None
            return LifecycleEvent(at, System.BILLING, EventKind.SUBSCRIPTION_UPDATED, sub.customer_id, sub.ref,
                                  summary, correlation_key=f"tier:{sid}")
        if ev.type == "invoice.payment_failed":
            inv = self.invoice_from(obj)
            return LifecycleEvent(at, System.BILLING, EventKind.INVOICE_PAYMENT_FAILED, inv.customer_id, inv.ref,
                                  f"Payment failed for invoice {inv.number or inv.ref.id} ({inv.total})",
                                  correlation_key=f"invoice:{inv.ref.id}")
        return None

    @staticmethod
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

    # -- full refresh ------------------------------------------------------------------

    async def full_refresh(self, progress: ProgressCallback = no_progress) -> RefreshResult:
        started = self.requests_made
        now = self.clock()
        since = int((now - EVENT_RETENTION).timestamp())
        ev_params = {"created[gte]": since}
        # The newest event first: it becomes the cursor, and every object listed afterwards is
        # at least as new as it (changes in between are simply replayed by the next increment).
        first_events = await self._fetch_page("/v1/events", "events", self.parse_event, ev_params)
        parts = _FullParts()

        async def products() -> None:
            found = await self._list("/v1/products", "products", self.parse_product, progress)
            parts.products = {p.id: p for p in found}

        async def prices() -> None:
            parts.prices = await self._list("/v1/prices", "prices", self.parse_price, progress)

        # large lists run as several concurrent cursor chains over monthly ``created`` windows
        months = [int((now - timedelta(days=30 * k)).timestamp()) for k in range(1, LIST_WINDOWS)]

        async def customers() -> None:
            parts.customers = await self._list_windowed("/v1/customers", "customers", self.parse_customer,
                                                        progress, months)

        async def subscriptions() -> None:
            parts.subscriptions = await self._list_windowed("/v1/subscriptions", "subscriptions",
                                                            self.subscription_from, progress, months,
                                                            {"status": "all"})

        async def invoices() -> None:
            parts.invoices = await self._list_windowed("/v1/invoices", "invoices", self.invoice_from, progress,
                                                       months)

        async def events() -> None:
            # the first page above only fixed the cursor; the 30 days are listed in weekly windows
            weeks = [since + k * 7 * 86400 for k in range(1, 5)]
            parts.events = await self._list_windowed("/v1/events", "events", self.parse_event, progress, weeks,
                                                     ev_params)

        await _run_all([products(), prices(), customers(), subscriptions(), invoices(), events()])

        def assemble() -> SystemData:
            data = SystemData(System.BILLING)
            for c in parts.customers:
                if not c.deleted:
                    data.customers[c.id] = self.map_customer(c)
            for p in parts.prices:
                if not p.deleted:
                    data.plans[p.id] = self.map_price(p, parts.products)
            data.subscriptions = {s.ref.id: s for s in parts.subscriptions}
            data.invoices = {i.ref.id: i for i in parts.invoices}
            for ev in parts.events:
                fact = self.lifecycle_event(ev, data.plans)
                if fact is not None:
                    data.events[ev.id] = fact
            release(parts.customers, parts.events, parts.subscriptions, parts.invoices)  # here, not on the loop
            return data

        data = await run_cpu(assemble)  # 100,000s of records: off the event loop
        if first_events.items:
            newest: StripeEvent = first_events.items[0]
            cursor: dict[str, Any] = {"last_event_id": newest.id, "last_event_created": newest.created}
        else:
            cursor = {"last_event_id": None, "last_event_created": int(now.timestamp())}
        return RefreshResult(System.BILLING, data, None, cursor, now, self.requests_made - started)

    # -- incremental refresh -------------------------------------------------------------

    async def incremental_refresh(self, cursor: dict[str, Any], known: SystemData,
                                  progress: ProgressCallback = no_progress) -> RefreshResult:
        started = self.requests_made
        now = self.clock()
        last_id = cursor.get("last_event_id")
        last_created = cursor.get("last_event_created")
        if not isinstance(last_created, int | float) or isinstance(last_created, bool):
            return await self._fallback(started, progress, "the cursor has no event time")
        if datetime.fromtimestamp(last_created, UTC) < now - EVENT_RETENTION + RETENTION_MARGIN:
            return await self._fallback(started, progress, "the cursor's event is past Stripe's 30-day retention")
        try:
            events = await self._new_events(last_id if isinstance(last_id, str) else None, int(last_created),
                                            progress)
        except ConnectorError as exc:
            if exc.vendor_code == "resource_missing" or isinstance(exc, NotFoundError):
                return await self._fallback(started, progress, f"the cursor's event is gone ({exc.message})")
            raise
        delta = await self._apply_events(events, known)
        if events:
            newest = events[-1]
            new_cursor: dict[str, Any] = {"last_event_id": newest.id, "last_event_created": newest.created}
        else:
            new_cursor = dict(cursor)
        return RefreshResult(System.BILLING, None, delta, new_cursor, now, self.requests_made - started)

    async def _fallback(self, started: int, progress: ProgressCallback, why: str) -> RefreshResult:
        log.info("billing: incremental refresh impossible (%s); doing a full refresh", why)
        result = await self.full_refresh(progress)
        result.requests = self.requests_made - started
        return result

    async def _new_events(self, last_id: str | None, last_created: int,
                          progress: ProgressCallback) -> list[StripeEvent]:
        """Events newer than the cursor, oldest first."""
        ordered: list[StripeEvent] = []
        if last_id is not None:
            # ending_before pages towards newer events; each page is newest first
            anchor = last_id
            while True:
                page = await self._fetch_page("/v1/events", "events", self.parse_event, None, ending_before=anchor)
                ordered.extend(reversed(page.items))
                progress(Progress(self.system, "events", len(ordered)))
                if not page.has_more or not page.raw_ids:
                    break
                anchor = page.raw_ids[0]
        else:
            newest_first = await self._list("/v1/events", "events", self.parse_event, progress,
                                            {"created[gte]": last_created})
            ordered = list(reversed(newest_first))
        seen: set[str] = set()
        unique: list[StripeEvent] = []
        for ev in ordered:
            if ev.id not in seen:
                seen.add(ev.id)
                unique.append(ev)
        return unique

    async def _apply_events(self, events: list[StripeEvent], known: SystemData) -> Delta:
        up = SystemData(System.BILLING)
        deletions: dict[Kind, set[str]] = {}
        products: dict[str, StripeProduct] = {}

        def upsert(kind: Kind, key: str, record: Any) -> None:
            deletions.get(kind, set()).discard(key)
            up.table(kind)[key] = record

        def delete(kind: Kind, key: str) -> None:
            up.table(kind).pop(key, None)
            deletions.setdefault(kind, set()).add(key)

        plans_view: dict[str, Plan] = {**known.plans}
        for ev in events:
            obj = ev.data.object
            kind = obj.get("object")
            gone = ev.type.endswith(".deleted")
            if ev.type.startswith("customer.subscription."):
                sub = self.subscription_from(obj)
                upsert(Kind.SUBSCRIPTION, sub.ref.id, sub)
            elif ev.type.startswith("customer.") and kind == "customer":
                c = self.parse_customer(obj)
                if gone or c.deleted:
                    delete(Kind.CUSTOMER, c.id)
                else:
                    upsert(Kind.CUSTOMER, c.id, self.map_customer(c))
            elif ev.type.startswith("invoice.") and kind == "invoice":
                if gone or self.parse(_DeletedCheck, obj, self._what("invoice", obj)).deleted:
                    delete(Kind.INVOICE, str(obj["id"]))
                else:
                    inv = self.invoice_from(obj)
                    upsert(Kind.INVOICE, inv.ref.id, inv)
            elif ev.type.startswith("product.") and kind == "product":
                prod = self.parse_product(obj)
                products[prod.id] = prod
                # the tier lives on the product: re-map every price of it
                for price in await self._list("/v1/prices", "prices", self.parse_price, no_progress,
                                              {"product": prod.id}):
                    plan = self.map_price(price, {prod.id: prod})
                    plans_view[price.id] = plan
                    upsert(Kind.PLAN, price.id, plan)
            elif ev.type.startswith("price.") and kind == "price":
                price = self.parse_price(obj)
                if gone or price.deleted:
                    delete(Kind.PLAN, price.id)
                    plans_view.pop(price.id, None)
                    continue
                pid = price.product_id
                if pid not in products and not isinstance(price.product, StripeProduct):
                    products[pid] = self.parse_product(
                        await self._get_json(f"/v1/products/{pid}", "read product"))
                plan = self.map_price(price, products)
                plans_view[price.id] = plan
                upsert(Kind.PLAN, price.id, plan)
            fact = self.lifecycle_event(ev, plans_view)
            if fact is not None:
                up.events[ev.id] = fact
        return Delta(up, {k: v for k, v in deletions.items() if v})

    # -- id listing (deletion check) -----------------------------------------------------------

    async def list_ids(self, progress: ProgressCallback = no_progress) -> dict[Kind, set[str]]:
        def ids_only(obj: dict[str, Any]) -> tuple[str, bool]:
            d = self.parse(_DeletedCheck, obj, self._what(str(obj.get("object") or "object"), obj))
            return d.id, d.deleted

        result: dict[Kind, set[str]] = {}

        async def one(kind: Kind, path: str, phase: str, params: dict[str, Any] | None = None) -> None:
            found = await self._list(path, phase, ids_only, progress, params)
            result[kind] = {oid for oid, deleted in found if not deleted}

        await _run_all([
            one(Kind.CUSTOMER, "/v1/customers", "customers"),
            one(Kind.SUBSCRIPTION, "/v1/subscriptions", "subscriptions", {"status": "all"}),
            one(Kind.INVOICE, "/v1/invoices", "invoices"),
            one(Kind.PLAN, "/v1/prices", "prices"),
        ])
        return result

    # -- single reads and writes (actions) -------------------------------------------------------

    async def get_customer(self, customer_id: str) -> Customer | None:
        """The customer, or ``None`` when Stripe reports it deleted."""
        c = self.parse_customer(await self._get_json(f"/v1/customers/{customer_id}", "read customer"))
        return None if c.deleted else self.map_customer(c)

    async def get_subscription(self, subscription_id: str) -> Subscription:
        return self.subscription_from(await self._get_json(f"/v1/subscriptions/{subscription_id}",
                                                           "read subscription"))

    async def get_invoice(self, invoice_id: str) -> Invoice:
        return self.invoice_from(await self._get_json(f"/v1/invoices/{invoice_id}", "read invoice"))

    async def update_customer(self, customer_id: str, fields: Mapping[str, Any], idempotency_key: str) -> Customer:
        """POST /v1/customers/{id} (form-encoded, bracket nesting) with an ``Idempotency-Key``.

        ``fields`` uses Stripe's parameter names (``name``, ``email``, ``metadata``,
        ``address``...); the canonical ``tax_id`` and ``country`` are accepted too and become
        ``metadata[tax_id]`` and ``address[country]``. ``None`` unsets a value."""
        if not idempotency_key:
            raise ValueError("an idempotency key is required for billing writes")
        body = _stripe_customer_fields(fields)
        operation = "update customer"
        response = await self.client.request("POST", f"/v1/customers/{customer_id}", operation=operation,
                                             data=dict(form_pairs(body)), headers={"Idempotency-Key": idempotency_key})
        c = self.parse_customer(ResilientClient.json_body(response, self.system, operation))
        if c.deleted:
            raise NotFoundError(self.system, operation, f"customer {customer_id} is deleted")
        return self.map_customer(c)


def _stripe_customer_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for key, value in fields.items():
        if key == "tax_id":
            body.setdefault("metadata", {})["tax_id"] = value
        elif key == "country":
            body.setdefault("address", {})["country"] = value
        elif key in ("metadata", "address") and isinstance(value, Mapping):
            body.setdefault(key, {}).update(value)
        else:
            body[key] = value
    return body


async def _run_all(jobs: Iterable[Awaitable[None]]) -> None:
    """Run concurrently; on the first failure cancel the others and raise that failure
    (a typed ConnectorError, not an ExceptionGroup)."""
    tasks = [asyncio.ensure_future(j) for j in jobs]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise

