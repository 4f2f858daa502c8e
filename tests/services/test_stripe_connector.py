"""The Stripe billing connector against the demo billing server over loopback (and a few
MockTransport answers for what a well-behaved server never sends)."""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.core.currency import from_minor
from services.core.domain import EventKind, InvoiceStatus, Money, SubscriptionStatus, System, Tier
from services.core.errors import (
    AuthenticationError,
    NotFoundError,
    ProtocolError,
    RemoteValidationError,
    UnavailableError,
)
from services.core.sysdata import Kind, Progress, SystemData
from services.demo.dataset import generate
from services.demo.faults import FaultInjector
from services.demo.serving import ThreadedServers
from services.demo.store import BCustomer, BillingStore
from services.demo.stripe.app import create_app
from services.io.config import Secret, SystemConnection
from services.io.connectors.base import from_unix
from services.io.connectors.stripe import API_VERSION, StripeConnector, form_pairs
from services.io.connectors.stripe_payloads import currency_exponent, to_money
from services.io.http import HttpPolicy

API_KEY = "sk_test_connector_51H8xYzQ"
FAST = HttpPolicy(rate_per_second=None, concurrency=8, max_retries=2, backoff_base=0.01, backoff_max=0.05)


@dataclass
class Billing:
    store: BillingStore
    injector: FaultInjector
    url: str


@pytest.fixture
def billing() -> Iterator[Billing]:
    ds = generate(120, 12)  # a world with cancellations among its last 30 days of events
    store = ds.billing
    # a deleted customer: Stripe no longer lists it
    store.add_customer(BCustomer("cus_deletedZ", ds.anchor - 5, "Gone Ltd", None, None, None, deleted=True))
    injector = FaultInjector("billing")
    with ThreadedServers({"billing": create_app(store, injector, API_KEY)}) as servers:
        yield Billing(store, injector, servers.url("billing"))


class Recorder(httpx.AsyncBaseTransport):
    """A real loopback transport that remembers every request (headers included)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def connector(url: str, *, key: str = API_KEY, policy: HttpPolicy = FAST, transport: Any = None) -> StripeConnector:
    conn = SystemConnection(System.BILLING, "stripe", url, {}, {"api_key": Secret(key)})
    return StripeConnector.create(conn, policy=policy, transport=transport)


def newest_event_id(store: BillingStore) -> str:
    return sorted(store.events, key=lambda e: e.created)[-1].id  # stable: ties keep insertion order


# --------------------------------------------------------------------------------------
# Full refresh
# --------------------------------------------------------------------------------------


async def test_full_refresh_maps_every_record(billing: Billing) -> None:
    st = billing.store
    recorder = Recorder()
    progress: list[Progress] = []
    c = connector(billing.url, transport=recorder)
    try:
        result = await c.full_refresh(progress.append)
    finally:
        await c.aclose()
    data = result.full
    assert data is not None and result.delta is None

    live = {cid: cu for cid, cu in st.customers.items() if not cu.deleted}
    assert set(data.customers) == set(live)
    assert "cus_deletedZ" not in data.customers
    assert set(data.plans) == set(st.prices)
    assert set(data.subscriptions) == set(st.subscriptions)
    assert set(data.invoices) == set(st.invoices)

    for cid, bc in live.items():
        cu = data.customers[cid]
        assert (cu.customer_id, cu.name, cu.email, cu.tax_id, cu.country) == \
            (cid, bc.name, bc.email, bc.tax_id, bc.country)
        assert cu.ref.kind == "customer" and cu.created == from_unix(bc.created)
    assert any(cu.tax_id for cu in data.customers.values())
    assert any(cu.country for cu in data.customers.values())

    for pid, bp in st.prices.items():
        plan = data.plans[pid]
        assert plan.key == bp.lookup_key and plan.interval == bp.interval
        assert plan.tier == Tier(st.products[bp.product].metadata["tier"])
        assert plan.unit_price == Money(from_minor(bp.unit_amount, bp.currency), bp.currency.upper())  # yen: none
    assert {p.tier for p in data.plans.values()} == {Tier.STANDARD, Tier.PREMIUM, Tier.ENTERPRISE}

    for sid, bs in st.subscriptions.items():
        sub = data.subscriptions[sid]
        first = bs.items[0]
        assert sub.customer_id == bs.customer and sub.status is SubscriptionStatus(bs.status)
        assert sub.plan_key == st.prices[first.price].lookup_key and sub.quantity == first.quantity
        assert sub.current_period_end == from_unix(bs.current_period_end)

    for iid, bi in st.invoices.items():
        inv = data.invoices[iid]
        assert inv.total == Money(from_minor(bi.total, bi.currency), bi.currency.upper())
        assert isinstance(inv.total.amount, Decimal)
        assert inv.status is InvoiceStatus(bi.status) and inv.number == bi.number
        assert (inv.customer_id, inv.subscription_id, inv.billing_invoice_id) == (bi.customer, bi.subscription, iid)
        assert (inv.created, inv.finalized_at, inv.paid_at, inv.voided_at) == (
            from_unix(bi.created), from_unix(bi.finalized_at), from_unix(bi.paid_at), from_unix(bi.voided_at))
        assert [ln.plan_key for ln in inv.lines] == [st.prices[ln.price].lookup_key for ln in bi.lines]
        # G1: a line's amount is before discount and tax (Stripe's line ``amount``): the lines add up
        # to the subtotal; the total (checked above) is the subtotal less discounts plus tax
        assert sum((ln.amount.amount for ln in inv.lines), Decimal(0)) == from_minor(bi.subtotal, bi.currency)
        assert bi.total == bi.subtotal - bi.discount_total + (bi.tax or 0)
    assert {i.status for i in data.invoices.values()} >= {InvoiceStatus.PAID, InvoiceStatus.OPEN}

    # lifecycle facts from the last 30 days of events
    canceled = [e for e in st.events if e.type == "customer.subscription.deleted"]
    failed = [e for e in st.events if e.type == "invoice.payment_failed"]
    kinds: dict[EventKind, int] = defaultdict(int)
    for ev in data.events.values():
        kinds[ev.kind] += 1
    assert kinds[EventKind.SUBSCRIPTION_CANCELED] == len(canceled) > 0
    assert kinds[EventKind.INVOICE_PAYMENT_FAILED] == len(failed)
    some = data.events[canceled[0].id]
    assert some.correlation_key == f"tier:{canceled[0].object_id}" and some.ref.kind == "subscription"

    # cursor, request count, headers, progress
    newest = newest_event_id(st)
    assert result.cursor == {"last_event_id": newest,
                             "last_event_created": next(e.created for e in st.events if e.id == newest)}
    assert result.requests == len(recorder.requests) == c.requests_made
    assert all(r.headers["Stripe-Version"] == API_VERSION for r in recorder.requests)
    assert all(r.headers["Authorization"] == f"Bearer {API_KEY}" for r in recorder.requests)
    assert all(r.url.params.get("limit") == "100" for r in recorder.requests)
    # large lists run as concurrent chains over disjoint created windows (every invoice arrived: above)
    windows = [(r.url.params.get("created[gte]"), r.url.params.get("created[lt]"))
               for r in recorder.requests if r.url.path == "/v1/invoices" and not r.url.params.get("starting_after")]
    assert len(windows) == len(set(windows)) > 1
    assert (None, min(int(lt) for _, lt in windows if lt)) in [(g, int(lt) if lt else None) for g, lt in windows]
    phases: dict[str, list[int]] = defaultdict(list)
    for p in progress:
        assert p.system is System.BILLING
        phases[p.phase].append(p.done)
    assert set(phases) == {"products", "prices", "customers", "subscriptions", "invoices", "credit notes",
                           "refunds", "events"}
    assert phases["invoices"] == sorted(phases["invoices"]) and len(phases["invoices"]) > 1
    assert phases["invoices"][-1] == len(st.invoices)
    assert phases["customers"][-1] == len(live)


async def test_list_ids_match_the_store(billing: Billing) -> None:
    st = billing.store
    c = connector(billing.url)
    try:
        ids = await c.list_ids()
    finally:
        await c.aclose()
    assert ids == {
        Kind.CUSTOMER: {cid for cid, cu in st.customers.items() if not cu.deleted},
        Kind.SUBSCRIPTION: set(st.subscriptions),
        Kind.INVOICE: set(st.invoices),
        Kind.PLAN: set(st.prices),
        Kind.CREDIT_NOTE: set(st.credit_notes),
        Kind.REFUND: set(st.refunds),
    }


# --------------------------------------------------------------------------------------
# Incremental refresh
# --------------------------------------------------------------------------------------


async def _post(client: httpx.AsyncClient, path: str, data: dict[str, str]) -> dict[str, Any]:
    r = await client.post(path, data=data)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _comparable(data: SystemData) -> tuple[Any, ...]:
    return data.customers, data.plans, data.subscriptions, data.invoices, data.events


async def test_incremental_refresh_costs_proportional_to_changes(billing: Billing) -> None:
    st = billing.store
    c = connector(billing.url)
    try:
        full = await c.full_refresh()
        known = full.full
        assert known is not None

        idle = await c.incremental_refresh(full.cursor, known)
        assert idle.full is None and idle.delta is not None and idle.delta.count() == 0
        assert idle.requests <= 2 and idle.cursor == full.cursor

        live = [cid for cid, cu in st.customers.items() if not cu.deleted]
        renamed = live[:110]
        active = [s for s in st.subscriptions.values() if s.status == "active" and len(s.items) == 1][:16]
        by_key = {p.lookup_key: p for p in st.prices.values()}
        async with httpx.AsyncClient(base_url=billing.url, headers={"Authorization": f"Bearer {API_KEY}"}) as api:
            for n, cid in enumerate(renamed):
                await _post(api, f"/v1/customers/{cid}", {"name": f"Renamed {n}", "metadata[tax_id]": f"TX{n}"})
            requantified = active[:15]
            for s in requantified:
                item = s.items[0]
                await _post(api, f"/v1/subscriptions/{s.id}",
                            {"items[0][id]": item.id, "items[0][quantity]": str(item.quantity + 2)})
            replanned = active[15]
            old_price = st.prices[replanned.items[0].price]
            target_key = next(k for k, p in by_key.items()
                              if p.currency == old_price.currency and p.interval == old_price.interval
                              and k != old_price.lookup_key)
            await _post(api, f"/v1/subscriptions/{replanned.id}",
                        {"items[0][id]": replanned.items[0].id, "items[0][price]": by_key[target_key].id})
            created = await _post(api, "/v1/subscriptions",
                                  {"customer": live[-1], "items[0][price]": old_price.id, "items[0][quantity]": "3"})
        changes = len(renamed) + 16 + 4  # the new subscription also creates, finalizes and pays its first invoice

        progress: list[Progress] = []
        inc = await c.incremental_refresh(full.cursor, known, progress.append)
        assert inc.full is None and inc.delta is not None
        assert inc.requests <= 2 + math.ceil(changes / 100)
        up = inc.delta.upserts
        assert set(up.customers) == set(renamed)
        assert up.customers[renamed[7]].name == "Renamed 7" and up.customers[renamed[7]].tax_id == "TX7"
        assert set(up.subscriptions) == {s.id for s in active} | {created["id"]}
        assert up.subscriptions[created["id"]].quantity == 3
        assert len(up.invoices) == 1
        new_invoice = next(iter(up.invoices.values()))
        assert new_invoice.status is InvoiceStatus.PAID and new_invoice.subscription_id == created["id"]
        assert new_invoice.total.amount == from_minor(old_price.unit_amount * 3, old_price.currency)
        assert progress and progress[-1].done == changes
        summaries = {e.ref.id: e.summary for e in up.events.values() if e.kind is EventKind.SUBSCRIPTION_UPDATED}
        assert summaries[replanned.id] == f"Plan changed from {old_price.lookup_key} to {target_key}"
        s0 = requantified[0]
        assert summaries[s0.id] == f"Quantity changed from {s0.items[0].quantity - 2} to {s0.items[0].quantity}"
        assert len(summaries) == 16
        assert all(e.correlation_key == f"tier:{e.ref.id}" for e in up.events.values())
        assert inc.cursor["last_event_id"] == newest_event_id(st)

        # the delta brings the snapshot to exactly what a full refresh sees now
        known.apply(inc.delta)
        again = await c.full_refresh()
        assert again.full is not None
        assert _comparable(known) == _comparable(again.full)

        # and nothing new since
        quiet = await c.incremental_refresh(inc.cursor, known)
        assert quiet.delta is not None and quiet.delta.count() == 0 and quiet.requests <= 2
    finally:
        await c.aclose()


async def test_unknown_or_expired_cursor_falls_back_to_full_refresh(billing: Billing) -> None:
    c = connector(billing.url)
    try:
        known = SystemData(System.BILLING)
        unknown = {"last_event_id": "evt_doesnotexist", "last_event_created": int(time.time())}
        gone = await c.incremental_refresh(unknown, known)
        assert gone.delta is None and gone.full is not None
        assert len(gone.full.invoices) == len(billing.store.invoices)
        assert gone.cursor["last_event_id"] == newest_event_id(billing.store)

        before = c.requests_made
        old = await c.incremental_refresh({"last_event_id": billing.store.events[0].id,
                                           "last_event_created": int(time.time()) - 40 * 86400}, known)
        assert old.full is not None and old.requests == c.requests_made - before
    finally:
        await c.aclose()


# --------------------------------------------------------------------------------------
# Reads and writes for actions
# --------------------------------------------------------------------------------------


async def test_single_reads_and_idempotent_customer_update(billing: Billing) -> None:
    st = billing.store
    cid = next(cid for cid, cu in st.customers.items() if not cu.deleted)
    sid, bs = next(iter(st.subscriptions.items()))
    iid, bi = next(iter(st.invoices.items()))
    recorder = Recorder()
    c = connector(billing.url, transport=recorder)
    try:
        cu = await c.get_customer(cid)
        assert cu is not None and cu.name == st.customers[cid].name
        assert await c.get_customer("cus_deletedZ") is None
        sub = await c.get_subscription(sid)
        assert sub.customer_id == bs.customer and sub.quantity == bs.items[0].quantity
        inv = await c.get_invoice(iid)
        assert inv.total.amount == from_minor(bi.total, bi.currency) and inv.number == bi.number

        events_before = len(st.events)
        fields = {"name": "Nimbus Holdings", "tax_id": "DE123456789", "country": "de",
                  "metadata": {"segment": "enterprise"}}
        updated = await c.update_customer(cid, fields, "act-42")
        assert (updated.name, updated.tax_id, updated.country) == ("Nimbus Holdings", "DE123456789", "DE")
        assert st.customers[cid].tax_id == "DE123456789" and st.customers[cid].metadata["segment"] == "enterprise"
        again = await c.update_customer(cid, fields, "act-42")  # a replay: no second write
        assert again == updated and len(st.events) == events_before + 1
        post = [r for r in recorder.requests if r.method == "POST"]
        assert len(post) == 2 and all(r.headers["Idempotency-Key"] == "act-42" for r in post)
        assert post[0].headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert b"metadata%5Btax_id%5D=DE123456789" in post[0].content
        assert b"address%5Bcountry%5D=de" in post[0].content

        with pytest.raises(NotFoundError) as nf:
            await c.get_invoice("in_missing")
        assert nf.value.status == 404 and nf.value.vendor_code == "resource_missing"
        with pytest.raises(RemoteValidationError) as bad:
            await c.update_customer(cid, {"country": "Germany"}, "act-43")
        assert bad.value.status == 400 and "address[country]" in bad.value.message
    finally:
        await c.aclose()


def test_form_encoding_and_money() -> None:
    assert form_pairs({"name": "A", "metadata": {"tax_id": "X", "old": None}, "address": {"country": "DE"},
                       "items": [{"id": "si_1", "quantity": 2}], "expand": ["customer"], "flag": True}) == [
        ("name", "A"), ("metadata[tax_id]", "X"), ("metadata[old]", ""), ("address[country]", "DE"),
        ("items[0][id]", "si_1"), ("items[0][quantity]", "2"), ("expand[0]", "customer"), ("flag", "true")]
    assert currency_exponent("JPY") == 0 and currency_exponent("usd") == 2 and currency_exponent("kwd") == 3
    assert to_money(1500, "jpy") == Money(Decimal(1500), "JPY")
    assert to_money(1999, "eur") == Money(Decimal("19.99"), "EUR")
    assert to_money(5125, "kwd").amount == Decimal("5.125")


# --------------------------------------------------------------------------------------
# Errors and resilience
# --------------------------------------------------------------------------------------


async def test_wrong_key_is_an_authentication_error(billing: Billing) -> None:
    c = connector(billing.url, key="sk_test_wrong_key_123")
    try:
        with pytest.raises(AuthenticationError) as exc:
            await c.full_refresh()
    finally:
        await c.aclose()
    assert exc.value.status == 401 and "sk_test_wrong" not in str(exc.value)


async def test_server_rate_limit_is_retried_and_completes(billing: Billing) -> None:
    billing.injector.config.rate_limit = 3.0
    policy = HttpPolicy(rate_per_second=None, concurrency=8, max_retries=8, backoff_base=0.01, backoff_max=0.05)
    c = connector(billing.url, policy=policy)
    try:
        ids = await c.list_ids()
    finally:
        await c.aclose()
    assert ids[Kind.INVOICE] == set(billing.store.invoices)
    assert billing.injector.injected["429"] > 0
    assert c.client.stats.rate_limited == billing.injector.injected["429"] and c.client.stats.retries > 0


async def test_outage_fails_fast_with_unavailable(billing: Billing) -> None:
    billing.injector.config.outage = True
    policy = HttpPolicy(rate_per_second=None, max_retries=1, backoff_base=0.01, backoff_max=0.02)
    c = connector(billing.url, policy=policy)
    started = time.perf_counter()
    try:
        with pytest.raises(UnavailableError) as exc:
            await c.full_refresh()
    finally:
        await c.aclose()
    assert time.perf_counter() - started < 3 and exc.value.status == 503


# --------------------------------------------------------------------------------------
# Answers a well-behaved server never gives (MockTransport)
# --------------------------------------------------------------------------------------

EMPTY = {"object": "list", "data": [], "has_more": False, "url": "/v1/x"}


def _invoice(iid: str, **changes: Any) -> dict[str, Any]:
    inv: dict[str, Any] = {
        "id": iid, "object": "invoice", "customer": "cus_1", "status": "paid", "total": 1500, "currency": "jpy",
        "number": "A-0001", "subscription": None, "created": 1_700_000_000,
        "status_transitions": {"finalized_at": 1_700_000_000, "paid_at": 1_700_000_100, "voided_at": None},
        "lines": {"object": "list", "data": [{"id": "il_1", "amount": 1500, "quantity": 1, "description": "x",
                                              "price": None}], "has_more": False},
    }
    inv.update(changes)
    return inv


def mock(routes: dict[str, Any]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        body = routes.get(request.url.path, EMPTY)
        if callable(body):
            response: httpx.Response = body(request)
            return response
        if isinstance(body, bytes):
            return httpx.Response(200, content=body, headers={"Content-Type": "text/html"})
        return httpx.Response(200, json=body)

    return httpx.MockTransport(handler)


def _listing(*objs: dict[str, Any]) -> dict[str, Any]:
    return {"object": "list", "data": list(objs), "has_more": False, "url": "/v1/x"}


async def test_malformed_body_is_a_protocol_error() -> None:
    c = connector("http://billing.test", transport=mock({"/v1/customers": b"<html>gateway</html>"}))
    try:
        with pytest.raises(ProtocolError, match="not JSON"):
            await c.full_refresh()
    finally:
        await c.aclose()


@pytest.mark.parametrize(("path", "obj", "name"), [
    ("/v1/invoices", _invoice("in_bad", total="abc"), "invoice in_bad"),
    ("/v1/invoices", _invoice("in_str", total="1500"), "invoice in_str"),  # never coerced
    ("/v1/invoices", _invoice("in_cur", currency="dollars"), "invoice in_cur"),
    ("/v1/subscriptions", {"id": "sub_bad", "object": "subscription", "customer": "cus_1", "status": "sleeping",
                           "items": {"data": []}, "current_period_end": 1}, "subscription sub_bad"),
    ("/v1/customers", {"id": "cus_bad", "object": "customer", "email": 42}, "customer cus_bad"),
])
async def test_schema_violation_quarantines_the_object_and_a_single_read_names_it(
        path: str, obj: dict[str, Any], name: str) -> None:
    """In a listing, the object is quarantined (kind, id, reason) and the refresh goes on; read
    on its own (an action's read), it is a ProtocolError naming it, as before."""
    kind, oid = name.split()
    c = connector("http://billing.test", transport=mock({path: _listing(obj), f"{path}/{oid}": obj}))
    try:
        result = await c.full_refresh()
        with pytest.raises(ProtocolError) as exc:
            await (c.get_invoice(oid) if kind == "invoice" else c.get_subscription(oid) if kind == "subscription"
                   else c.get_customer(oid))
    finally:
        await c.aclose()
    assert name in str(exc.value)
    assert result.full is not None
    assert [(q.kind, q.record_id) for q in result.full.quarantined.values()] == [(kind, oid)]
    assert oid not in result.full.table(Kind(kind))


async def test_zero_decimal_currency_and_deleted_customer_event() -> None:
    deleted = {"id": "evt_2", "object": "event", "type": "customer.deleted", "created": int(time.time()),
               "data": {"object": {"id": "cus_gone", "object": "customer", "deleted": True}}}
    paid = {"id": "evt_3", "object": "event", "type": "invoice.paid", "created": int(time.time()),
            "data": {"object": _invoice("in_jpy")}}
    handlers: dict[str, Any] = {
        "/v1/events": lambda req: httpx.Response(200, json=_listing(paid, deleted)),  # newest first
        "/v1/invoices/in_jpy": _invoice("in_jpy"),
        "/v1/customers/cus_gone": {"id": "cus_gone", "object": "customer", "deleted": True},
    }
    c = connector("http://billing.test", transport=mock(handlers))
    try:
        inv = await c.get_invoice("in_jpy")
        assert inv.total == Money(Decimal(1500), "JPY") and inv.lines[0].amount.amount == Decimal(1500)
        assert inv.finalized_at == from_unix(1_700_000_000) and inv.status is InvoiceStatus.PAID
        assert await c.get_customer("cus_gone") is None
        result = await c.incremental_refresh({"last_event_id": "evt_1", "last_event_created": int(time.time())},
                                             SystemData(System.BILLING))
    finally:
        await c.aclose()
    assert result.delta is not None
    assert result.delta.deletions == {Kind.CUSTOMER: {"cus_gone"}}
    assert set(result.delta.upserts.invoices) == {"in_jpy"}
    assert result.cursor == {"last_event_id": "evt_3", "last_event_created": paid["created"]}
    assert json.loads(json.dumps(result.cursor)) == result.cursor  # stored as JSON, read back unchanged

