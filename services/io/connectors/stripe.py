"""Stripe billing connector (API version 2023-08-16) over the shared ResilientClient.

Reads products, prices, customers, subscriptions, invoices, credit notes, refunds (each with
its charge expanded: the invoice it paid) and the last 30 days of events;
every object is validated and mapped onto the canonical model by
:mod:`services.io.connectors.stripe_payloads`. An object that does not validate or map (a
time out of range, a wrong type, a missing field), or an id listed twice with different
content, is quarantined (``SystemData.quarantined``) and the refresh goes on; in an
incremental refresh, an event whose object cannot be read quarantines that object (its
previous version stays).

Incremental refresh walks ``/v1/events`` newer than the cursor's event (``ending_before``),
so its cost is about ``ceil(changes / 100) + 1`` requests; an unknown or expired cursor falls
back to a full refresh.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any, TypeVar

import httpx

from services.compute import run_cpu
from services.core.domain import CreditNote, Customer, Invoice, Plan, Refund, Subscription, System
from services.core.errors import ConnectorError, NotFoundError, ProtocolError
from services.core.sysdata import (
    Delta,
    Intake,
    Kind,
    Progress,
    ProgressCallback,
    RefreshResult,
    SystemData,
    no_progress,
    release,
)
from services.io.config import SystemConnection
from services.io.connectors.base import (
    Clock,
    Connector,
    RecordUnreadable,
    gather_or_cancel,
    quarantine,
    raw_id,
    utc_now,
)
from services.io.connectors.stripe_payloads import (
    ListEnvelope,
    StripeCustomer,
    StripeEvent,
    StripePrice,
    StripeProduct,
    _DeletedCheck,
    _what,
    credit_note_from,
    invoice_from,
    lifecycle_event,
    map_customer,
    map_price,
    parse_customer,
    parse_event,
    parse_price,
    parse_product,
    refund_from,
    refunds_of_charge,
    subscription_from,
)
from services.io.http import DEFAULT_POLICIES, HttpPolicy, ResilientClient

log = logging.getLogger(__name__)

API_VERSION = "2023-08-16"
PAGE_LIMIT = 100
#: concurrent cursor chains (monthly ``created`` windows) for the large lists of a full refresh
LIST_WINDOWS = 13
EVENT_RETENTION = timedelta(days=30)
#: a cursor this close to the retention limit is treated as expired (clock skew, slow refresh)
RETENTION_MARGIN = timedelta(hours=1)


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

#: the quarantine kind of each list's objects: the table kind of what they become, else the object
PHASE_KINDS: dict[str, str] = {
    "customers": Kind.CUSTOMER.value, "subscriptions": Kind.SUBSCRIPTION.value, "invoices": Kind.INVOICE.value,
    "prices": Kind.PLAN.value, "products": "product", "events": Kind.EVENT.value,
    "credit notes": Kind.CREDIT_NOTE.value, "refunds": Kind.REFUND.value,
}
#: a refund is listed with its charge expanded: the charge names the invoice it paid
REFUND_PARAMS: dict[str, Any] = {"expand[]": ["data.charge"]}
REFUND_PARAMS_ONE: dict[str, Any] = {"expand[]": ["charge"]}


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
    credit_notes: list[CreditNote] = field(default_factory=list)
    refunds: list[Refund] = field(default_factory=list)
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

    def _page(self, response: httpx.Response, operation: str, parse: Callable[[dict[str, Any]], T],
              intake: Intake | None = None, kind: str = "object") -> _Page:
        """Decode + validate one list page (run off the event loop). An object that does not
        validate is quarantined in ``intake`` (without one, the page fails)."""
        body = ResilientClient.json_body(response, self.system, operation)
        env = self.parse(ListEnvelope, body, f"{operation} page")
        items: list[Any] = []
        for obj in env.data:
            try:
                items.append(parse(obj))
            except Exception as exc:
                quarantine(intake, self.system, kind, raw_id(obj), exc)
        ids = [oid for oid in (raw_id(obj) for obj in env.data) if isinstance(oid, str)]
        if env.has_more and env.data and not isinstance(raw_id(env.data[-1]), str):
            raise ProtocolError(self.system, operation, "cannot page on: the last object of the page has no id")
        return _Page(items, ids, env.has_more)

    async def _list(self, path: str, phase: str, parse: Callable[[dict[str, Any]], T],
                    progress: ProgressCallback, params: dict[str, Any] | None = None,
                    first: _Page | None = None, intake: Intake | None = None) -> list[T]:
        """Every object of a list endpoint, newest first, following ``starting_after``."""
        out: list[T] = []
        page = first
        while True:
            if page is None:
                page = await self._fetch_page(path, phase, parse, params, intake=intake)
            out.extend(page.items)
            progress(Progress(self.system, phase, len(out)))
            if not page.has_more or not page.raw_ids:
                return out
            last = page.raw_ids[-1]
            page = await self._fetch_page(path, phase, parse, params, starting_after=last, intake=intake)

    async def _list_windowed(self, path: str, phase: str, parse: Callable[[dict[str, Any]], T],
                             progress: ProgressCallback, bounds: list[int],
                             params: dict[str, Any] | None = None, intake: Intake | None = None) -> list[T]:
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

        parts = await asyncio.gather(*(self._list(path, phase, parse, reporter(i), {**(params or {}), **w},
                                                  intake=intake)
                                       for i, w in enumerate(windows)))
        return [item for part in reversed(parts) for item in part]

    async def _fetch_page(self, path: str, phase: str, parse: Callable[[dict[str, Any]], T],
                          params: dict[str, Any] | None, *, starting_after: str | None = None,
                          ending_before: str | None = None, intake: Intake | None = None) -> _Page:
        query: dict[str, Any] = {**(params or {}), "limit": PAGE_LIMIT}
        if starting_after is not None:
            query["starting_after"] = starting_after
        if ending_before is not None:
            query["ending_before"] = ending_before
        operation = f"list {phase}"
        response = await self.client.request("GET", path, operation=operation, params=query)
        return await run_cpu(self._page, response, operation, parse, intake, PHASE_KINDS.get(phase, "object"))

    # -- full refresh ------------------------------------------------------------------

    async def full_refresh(self, progress: ProgressCallback = no_progress) -> RefreshResult:
        started = self.requests_made
        now = self.clock()
        since = int((now - EVENT_RETENTION).timestamp())
        ev_params = {"created[gte]": since}
        # The newest event first: it becomes the cursor, and every object listed afterwards is
        # at least as new as it (changes in between are simply replayed by the next increment).
        intake = Intake(self.system)
        first_events = await self._fetch_page("/v1/events", "events", parse_event, ev_params, intake=intake)
        parts = _FullParts()

        async def products() -> None:
            found = await self._list("/v1/products", "products", parse_product, progress, intake=intake)
            for p in found:
                intake.put(parts.products, "product", p.id, p)

        async def prices() -> None:
            parts.prices = await self._list("/v1/prices", "prices", parse_price, progress, intake=intake)

        # large lists run as several concurrent cursor chains over monthly ``created`` windows
        months = [int((now - timedelta(days=30 * k)).timestamp()) for k in range(1, LIST_WINDOWS)]

        async def customers() -> None:
            parts.customers = await self._list_windowed("/v1/customers", "customers", parse_customer,
                                                        progress, months, intake=intake)

        async def subscriptions() -> None:
            parts.subscriptions = await self._list_windowed("/v1/subscriptions", "subscriptions",
                                                            subscription_from, progress, months,
                                                            {"status": "all"}, intake=intake)

        async def invoices() -> None:
            parts.invoices = await self._list_windowed("/v1/invoices", "invoices", invoice_from, progress,
                                                       months, intake=intake)

        async def credit_notes() -> None:
            parts.credit_notes = await self._list("/v1/credit_notes", "credit notes", credit_note_from, progress,
                                                  intake=intake)

        async def refunds() -> None:
            parts.refunds = await self._list("/v1/refunds", "refunds", refund_from, progress, REFUND_PARAMS,
                                             intake=intake)

        async def events() -> None:
            # the first page above only fixed the cursor; the 30 days are listed in weekly windows
            weeks = [since + k * 7 * 86400 for k in range(1, 5)]
            parts.events = await self._list_windowed("/v1/events", "events", parse_event, progress, weeks,
                                                     ev_params, intake=intake)

        await gather_or_cancel(products(), prices(), customers(), subscriptions(), invoices(), credit_notes(),
                               refunds(), events())

        def assemble() -> SystemData:
            # each record goes in through the intake: an id listed twice with different
            # content is quarantined, never silently overwritten; one that does not map is too
            data = SystemData(System.BILLING)
            for c in parts.customers:
                if not c.deleted:
                    try:
                        intake.put(data.customers, Kind.CUSTOMER, c.id, map_customer(c))
                    except Exception as exc:
                        quarantine(intake, self.system, Kind.CUSTOMER, c.id, exc)
            for p in parts.prices:
                if not p.deleted:
                    try:
                        intake.put(data.plans, Kind.PLAN, p.id, map_price(p, parts.products))
                    except Exception as exc:
                        quarantine(intake, self.system, Kind.PLAN, p.id, exc)
            for s in parts.subscriptions:
                intake.put(data.subscriptions, Kind.SUBSCRIPTION, s.ref.id, s)
            for i in parts.invoices:
                intake.put(data.invoices, Kind.INVOICE, i.ref.id, i)
            for cn in parts.credit_notes:
                intake.put(data.credit_notes, Kind.CREDIT_NOTE, cn.ref.id, cn)
            for r in parts.refunds:
                intake.put(data.refunds, Kind.REFUND, r.ref.id, r)
            for ev in parts.events:
                try:
                    fact = lifecycle_event(ev, data.plans)
                except Exception as exc:
                    quarantine(intake, self.system, Kind.EVENT, ev.id, exc)
                    continue
                if fact is not None:
                    intake.put(data.events, Kind.EVENT, ev.id, fact)
            release(parts.customers, parts.events, parts.subscriptions, parts.invoices,  # here, not on the loop
                    parts.credit_notes, parts.refunds)
            return intake.into(data)

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
        intake = Intake(self.system)
        try:
            events = await self._new_events(last_id if isinstance(last_id, str) else None, int(last_created),
                                            progress, intake)
        except ConnectorError as exc:
            if exc.vendor_code == "resource_missing" or isinstance(exc, NotFoundError):
                return await self._fallback(started, progress, f"the cursor's event is gone ({exc.message})")
            raise
        delta = await self._apply_events(events, known, intake)
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
                          progress: ProgressCallback, intake: Intake | None = None) -> list[StripeEvent]:
        """Events newer than the cursor, oldest first."""
        ordered: list[StripeEvent] = []
        if last_id is not None:
            # ending_before pages towards newer events; each page is newest first
            anchor = last_id
            while True:
                page = await self._fetch_page("/v1/events", "events", parse_event, None, ending_before=anchor,
                                              intake=intake)
                ordered.extend(reversed(page.items))
                progress(Progress(self.system, "events", len(ordered)))
                if not page.has_more or not page.raw_ids:
                    break
                anchor = page.raw_ids[0]
        else:
            newest_first = await self._list("/v1/events", "events", parse_event, progress,
                                            {"created[gte]": last_created}, intake=intake)
            ordered = list(reversed(newest_first))
        seen: set[str] = set()
        unique: list[StripeEvent] = []
        for ev in ordered:
            if ev.id not in seen:
                seen.add(ev.id)
                unique.append(ev)
        return unique

    async def _apply_events(self, events: list[StripeEvent], known: SystemData, intake: Intake | None = None) -> Delta:
        intake = intake or Intake(self.system)
        up = SystemData(System.BILLING)
        deletions: dict[Kind, set[str]] = {}
        products: dict[str, StripeProduct] = {}

        def upsert(kind: Kind, key: str, record: Any) -> None:
            deletions.get(kind, set()).discard(key)
            up.table(kind)[key] = record
            intake.clear(kind, key)  # a newer version read fine

        def delete(kind: Kind, key: str) -> None:
            up.table(kind).pop(key, None)
            deletions.setdefault(kind, set()).add(key)
            intake.clear(kind, key)

        plans_view: dict[str, Plan] = {**known.plans}
        for ev in events:
            obj = ev.data.object
            try:
                await self._apply_event(ev, obj, products, plans_view, upsert, delete, up, intake)
            except RecordUnreadable as exc:
                quarantine(intake, self.system, _event_object_kind(obj), raw_id(obj), exc)
            except ConnectorError:
                raise  # the system failed (reading a product or its prices), not this record
            except Exception as exc:
                quarantine(intake, self.system, _event_object_kind(obj), raw_id(obj), exc)
        return Delta(intake.into(up), {k: v for k, v in deletions.items() if v})

    async def _apply_event(self, ev: StripeEvent, obj: dict[str, Any], products: dict[str, StripeProduct],
                           plans_view: dict[str, Plan], upsert: Callable[[Kind, str, Any], None],
                           delete: Callable[[Kind, str], None], up: SystemData, intake: Intake) -> None:
        """What one event changes (in the incremental refresh's delta)."""
        kind = obj.get("object")
        gone = ev.type.endswith(".deleted")
        if ev.type.startswith("customer.subscription."):
            sub = subscription_from(obj)
            upsert(Kind.SUBSCRIPTION, sub.ref.id, sub)
        elif ev.type.startswith("customer.") and kind == "customer":
            c = parse_customer(obj)
            if gone or c.deleted:
                delete(Kind.CUSTOMER, c.id)
            else:
                upsert(Kind.CUSTOMER, c.id, map_customer(c))
        elif ev.type.startswith("invoice.") and kind == "invoice":
            if gone or self.parse(_DeletedCheck, obj, _what("invoice", obj)).deleted:
                delete(Kind.INVOICE, str(obj["id"]))
            else:
                inv = invoice_from(obj)
                upsert(Kind.INVOICE, inv.ref.id, inv)
        elif ev.type.startswith("credit_note.") and kind == "credit_note":
            cn = credit_note_from(obj)
            upsert(Kind.CREDIT_NOTE, cn.ref.id, cn)
        elif ev.type.startswith("charge.refund") and kind == "charge":
            # charge.refunded / charge.refund.updated: the charge embeds its refunds
            for refund in refunds_of_charge(obj):
                upsert(Kind.REFUND, refund.ref.id, refund)
        elif ev.type.startswith("refund.") and kind == "refund":
            # the event's refund names its charge only: read it again with the charge expanded
            rid = str(obj["id"])
            upsert(Kind.REFUND, rid, refund_from(await self._get_json(f"/v1/refunds/{rid}", "read refund",
                                                                      REFUND_PARAMS_ONE)))
        elif ev.type.startswith("product.") and kind == "product":
            prod = parse_product(obj)
            products[prod.id] = prod
            # the tier lives on the product: re-map every price of it
            for price in await self._list("/v1/prices", "prices", parse_price, no_progress,
                                          {"product": prod.id}, intake=intake):
                plan = map_price(price, {prod.id: prod})
                plans_view[price.id] = plan
                upsert(Kind.PLAN, price.id, plan)
        elif ev.type.startswith("price.") and kind == "price":
            price = parse_price(obj)
            if gone or price.deleted:
                delete(Kind.PLAN, price.id)
                plans_view.pop(price.id, None)
                return
            pid = price.product_id
            if pid not in products and not isinstance(price.product, StripeProduct):
                products[pid] = parse_product(
                    await self._get_json(f"/v1/products/{pid}", "read product"))
            plan = map_price(price, products)
            plans_view[price.id] = plan
            upsert(Kind.PLAN, price.id, plan)
        fact = lifecycle_event(ev, plans_view)
        if fact is not None:
            up.events[ev.id] = fact

    # -- id listing (deletion check) -----------------------------------------------------------

    async def list_ids(self, progress: ProgressCallback = no_progress) -> dict[Kind, set[str]]:
        def ids_only(obj: dict[str, Any]) -> tuple[str, bool]:
            # only the id matters here: an object that is otherwise unreadable is still there
            # (it must not look deleted); one without a readable id cannot be one we hold
            oid = raw_id(obj)
            if not isinstance(oid, str):
                return "", True
            return oid, obj.get("deleted") is True

        result: dict[Kind, set[str]] = {}

        async def one(kind: Kind, path: str, phase: str, params: dict[str, Any] | None = None) -> None:
            found = await self._list(path, phase, ids_only, progress, params)
            result[kind] = {oid for oid, deleted in found if not deleted}

        await gather_or_cancel(
            one(Kind.CUSTOMER, "/v1/customers", "customers"),
            one(Kind.SUBSCRIPTION, "/v1/subscriptions", "subscriptions", {"status": "all"}),
            one(Kind.INVOICE, "/v1/invoices", "invoices"),
            one(Kind.PLAN, "/v1/prices", "prices"),
            one(Kind.CREDIT_NOTE, "/v1/credit_notes", "credit notes"),
            one(Kind.REFUND, "/v1/refunds", "refunds"),
        )
        return result

    # -- single reads and writes (actions) -------------------------------------------------------

    async def get_customer(self, customer_id: str) -> Customer | None:
        """The customer, or ``None`` when Stripe reports it deleted."""
        c = parse_customer(await self._get_json(f"/v1/customers/{customer_id}", "read customer"))
        return None if c.deleted else map_customer(c)

    async def get_subscription(self, subscription_id: str) -> Subscription:
        return subscription_from(await self._get_json(f"/v1/subscriptions/{subscription_id}",
                                                      "read subscription"))

    async def get_invoice(self, invoice_id: str) -> Invoice:
        return invoice_from(await self._get_json(f"/v1/invoices/{invoice_id}", "read invoice"))

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
        c = parse_customer(ResilientClient.json_body(response, self.system, operation))
        if c.deleted:
            raise NotFoundError(self.system, operation, f"customer {customer_id} is deleted")
        return map_customer(c)


def _event_object_kind(obj: Any) -> str:
    """The quarantine kind of an event's object (what a refresh could not read)."""
    name = obj.get("object") if isinstance(obj, dict) else None
    return {"customer": Kind.CUSTOMER.value, "subscription": Kind.SUBSCRIPTION.value, "invoice": Kind.INVOICE.value,
            "price": Kind.PLAN.value, "credit_note": Kind.CREDIT_NOTE.value, "refund": Kind.REFUND.value,
            "charge": Kind.REFUND.value}.get(name if isinstance(name, str) else "", str(name or "object"))


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
