"""The Stripe-compatible demo billing server, held against the official SDK and the
official OpenAPI subset (every response body is validated with ``tests.specs``)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import stripe

from services.demo.faults import FaultInjector
from services.demo.serving import ThreadedServers
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
from services.demo.stripe.app import create_app
from services.demo.stripe.errors import StripeError
from services.demo.stripe.forms import parse_form
from services.demo.stripe.lists import CreatedRange, OrderIndex, paginate
from services.demo.stripe.serializers.catalog import render_price, render_product
from services.demo.stripe.serializers.customers import render_customer
from services.demo.stripe.serializers.events import render_event
from services.demo.stripe.serializers.invoices import render_invoice
from services.demo.stripe.serializers.subscriptions import render_subscription
from services.demo.stripe.subscriptions import add_interval
from tests.specs import validate_component, validate_response

API_KEY = "sk_test_unit_4eC39HqLyjWDarjtT1zdp7dc"
NOW = 1_700_000_000
DAY = 86400


# --------------------------------------------------------------------------------------
# A small billing company
# --------------------------------------------------------------------------------------


def build_store() -> BillingStore:
    st = BillingStore()
    t0 = NOW - 400 * DAY
    st.products["prod_std"] = BProduct("prod_std", "Standard", t0, {"tier": "standard"})
    st.products["prod_prem"] = BProduct("prod_prem", "Premium", t0 + 1, {"tier": "premium"},
                                        description="Premium support")
    st.products["prod_old"] = BProduct("prod_old", "Legacy", t0 + 2, {"tier": "standard"}, active=False)
    for price in (
        BPrice("price_std_m", "prod_std", 2000, "usd", "month", "standard_monthly", t0),
        BPrice("price_prem_m", "prod_prem", 5000, "usd", "month", "premium_monthly", t0 + 1),
        BPrice("price_prem_y", "prod_prem", 50000, "usd", "year", "premium_yearly", t0 + 2),
        BPrice("price_eur_m", "prod_std", 1800, "eur", "month", "standard_monthly_eur", t0 + 3),
        BPrice("price_old_m", "prod_old", 1000, "usd", "month", "legacy_monthly", t0 + 4, active=False),
    ):
        st.prices[price.id] = price
    base = NOW - 100 * DAY
    people = [
        ("cus_A", base, "Acme Corp", "ops@acme.example", "US", "US-111"),
        ("cus_B", base + DAY, "Beta GmbH", "billing@beta.example", "DE", "DE-222"),
        ("cus_C", base + 2 * DAY, "Cobalt SA", "ap@cobalt.example", "FR", None),
        ("cus_D", base + 2 * DAY, "Delta Ltd", "ap@delta.example", "GB", None),  # same second as cus_C
        ("cus_E", base + 3 * DAY, "Echo Inc", "ops@acme.example", None, None),  # same email as cus_A
    ]
    for cid, created, name, email, country, tax in people:
        st.add_customer(BCustomer(cid, created, name, email, country, tax, {"segment": "smb"}, currency="usd"))
    st.add_customer(BCustomer("cus_Z", base + 4 * DAY, "Gone", None, None, None, deleted=True))

    def sub(sid: str, cus: str, status: str, price: str, created: int, **kw: Any) -> BSubscription:
        return BSubscription(sid, cus, status, [BSubItem(f"si_{sid[4:]}", price, 1, created)], created, created,
                             NOW - 10 * DAY, NOW + 20 * DAY, "usd", **kw)

    st.add_subscription(sub("sub_A", "cus_A", "active", "price_std_m", base + 10))
    st.add_subscription(sub("sub_B", "cus_B", "trialing", "price_prem_m", base + DAY + 10,
                            trial_start=NOW - 10 * DAY, trial_end=NOW + 4 * DAY))
    st.add_subscription(sub("sub_C", "cus_C", "canceled", "price_prem_y", base + 2 * DAY + 10,
                            canceled_at=NOW - 5 * DAY, ended_at=NOW - 5 * DAY))
    for n in range(3):
        created = base + 10 + n * 30 * DAY
        st.add_invoice(BInvoice(
            f"in_A{n}", "cus_A", "sub_A", "paid", f"ACME0001-{n + 1:04d}", "usd", 2000, 2000, 2000, created,
            created, created + 30 * DAY,
            [BInvoiceLine(f"il_A{n}", "price_std_m", 1, 2000, "1 × Standard (at $20.00 / month)", created,
                          created + 30 * DAY)],
            finalized_at=created, paid_at=created + 60, attempt_count=1,
            billing_reason="subscription_create" if n == 0 else "subscription_cycle"))
    created = base + 2 * DAY + 10
    st.add_invoice(BInvoice("in_C0", "cus_C", "sub_C", "open", "COBA0002-0001", "usd", 50000, 50000, 0, created,
                            created, created + 365 * DAY,
                            [BInvoiceLine("il_C0", "price_prem_y", 1, 50000, "1 × Premium", created,
                                          created + 365 * DAY)],
                            finalized_at=created, attempt_count=2))
    st.add_invoice(BInvoice("in_C1", "cus_C", None, "void", "COBA0002-0002", "usd", 100, 100, 0, created + 1,
                            created, created, [], finalized_at=created, voided_at=created + 100,
                            billing_reason="manual"))
    # dataset events: no snapshot (render the current object)
    st.events.append(BEvent("evt_old", "customer.created", NOW - 40 * DAY, "customer", "cus_A"))
    st.events.append(BEvent("evt_1", "customer.created", NOW - 20 * DAY, "customer", "cus_B"))
    st.events.append(BEvent("evt_2", "invoice.finalized", NOW - 15 * DAY, "invoice", "in_C0"))
    st.events.append(BEvent("evt_3", "customer.subscription.updated", NOW - 10 * DAY, "subscription", "sub_A",
                            previous_attributes={"cancel_at_period_end": True}))
    st.events.append(BEvent("evt_4", "invoice.paid", NOW - 5 * DAY, "invoice", "in_A2"))
    return st


@dataclass
class Demo:
    store: BillingStore
    injector: FaultInjector
    url: str
    http: httpx.Client


@pytest.fixture
def demo() -> Iterator[Demo]:
    store = build_store()
    injector = FaultInjector("billing")
    app = create_app(store, injector, API_KEY, clock=lambda: NOW)
    with ThreadedServers({"billing": app}) as servers:
        url = servers.url("billing")
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10) as http:
            yield Demo(store, injector, url, http)


@pytest.fixture
def sdk(demo: Demo) -> Iterator[stripe.StripeClient]:
    http_client = stripe.RequestsClient()
    client = stripe.StripeClient(API_KEY, base_addresses={"api": demo.url}, http_client=http_client,
                                 max_network_retries=0, stripe_version="2023-08-16")
    yield client
    http_client.close()


def checked(resp: httpx.Response, method: str, path: str, status: int = 200) -> Any:
    """Assert status, Request-Id and JSON; validate the body against the official subset."""
    assert resp.status_code == status, resp.text
    assert resp.headers["request-id"].startswith("req_")
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    validate_response("stripe", method, path, status, body)
    return body


def get(demo: Demo, path: str, **params: Any) -> Any:
    """GET with query ``params``; ``expect`` (not sent) is the expected status."""
    expect = int(params.pop("expect", 200))
    return checked(demo.http.get(path, params=params), "GET", path, expect)


def post(demo: Demo, path: str, data: Any, expect: int = 200, headers: dict[str, str] | None = None) -> Any:
    return checked(demo.http.post(path, data=data, headers=headers), "POST", path, expect)


def ids(body: dict[str, Any]) -> list[str]:
    return [o["id"] for o in body["data"]]


# --------------------------------------------------------------------------------------
# The official SDK
# --------------------------------------------------------------------------------------


def test_sdk_auto_pagination_retrieve(sdk: stripe.StripeClient) -> None:
    customers = sdk.v1.customers.list(params={"limit": 2})
    assert len(customers.data) == 2 and customers.has_more
    walked = [c.id for c in customers.auto_paging_iter()]
    # newest first; cus_C and cus_D share a second: reverse insertion order; deleted cus_Z hidden
    assert walked == ["cus_E", "cus_D", "cus_C", "cus_B", "cus_A"]
    c = sdk.v1.customers.retrieve("cus_B")
    assert c.name == "Beta GmbH"
    assert c.address is not None and c.address.country == "DE"
    assert c.to_dict()["metadata"] == {"segment": "smb", "tax_id": "DE-222"}


def test_sdk_create_update_customer_and_subscription(demo: Demo, sdk: stripe.StripeClient) -> None:
    c = sdk.v1.customers.create(params={"name": "New Co", "email": "new@co.example",
                                        "address": {"country": "NL"},
                                        "metadata": {"tax_id": "NL-9", "source": "test"}})
    assert c.id.startswith("cus_") and c.created == NOW
    assert c.to_dict()["metadata"] == {"tax_id": "NL-9", "source": "test"}
    assert demo.store.customers[c.id].tax_id == "NL-9"
    c2 = sdk.v1.customers.update(c.id, params={"email": "ap@co.example", "metadata": {"source": ""}})
    assert c2.email == "ap@co.example" and "source" not in c2.to_dict()["metadata"]

    s = sdk.v1.subscriptions.create(params={"customer": c.id,
                                            "items": [{"price": "price_prem_m", "quantity": 3}],
                                            "metadata": {"deal": "42"}})
    assert s.status == "active" and s.customer == c.id
    assert s.items.data[0].price.id == "price_prem_m" and s.items.data[0].quantity == 3
    assert s.items.data[0].price.lookup_key == "premium_monthly"
    # (SDK 16's types follow a newer API version without current_period_end: read it as a key)
    assert s["current_period_end"] == add_interval(NOW, "month")
    assert s.latest_invoice is not None

    inv = sdk.v1.invoices.retrieve(str(s.latest_invoice))
    assert inv.status == "paid" and inv.total == 15000 and inv.amount_paid == 15000
    assert inv.billing_reason == "subscription_create" and inv.number and inv.number.endswith("-0001")
    assert inv.status_transitions.paid_at == NOW

    item_id = s.items.data[0].id
    s2 = sdk.v1.subscriptions.update(s.id, params={
        "items": [{"id": item_id, "price": "price_std_m", "quantity": 2}],
        "cancel_at_period_end": True, "proration_behavior": "none"})
    assert s2.items.data[0].price.id == "price_std_m" and s2.items.data[0].quantity == 2
    assert s2.cancel_at_period_end is True and s2.cancel_at == s2["current_period_end"]

    listed = sdk.v1.invoices.list(params={"customer": c.id})
    assert [i.id for i in listed.data] == [inv.id]
    events = sdk.v1.events.list(params={"limit": 100})
    types = [e.type for e in events.data]
    assert types[:7] == ["customer.subscription.updated", "invoice.paid", "invoice.finalized",
                         "invoice.created", "customer.subscription.created", "customer.updated",
                         "customer.created"]
    upd = events.data[0]
    assert upd.to_dict()["data"]["previous_attributes"]["cancel_at_period_end"] is False
    assert upd.request is not None and upd.request.id and upd.request.id.startswith("req_")


def test_sdk_errors(demo: Demo, sdk: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sdk.v1.customers.retrieve("cus_nope")
    assert exc.value.http_status == 404 and exc.value.code == "resource_missing"
    bad_http = stripe.RequestsClient()
    bad = stripe.StripeClient("sk_test_wrong", base_addresses={"api": demo.url},
                              http_client=bad_http, max_network_retries=0)
    with pytest.raises(stripe.AuthenticationError):
        bad.v1.customers.list()
    bad_http.close()
    demo.injector.config.rate_limit = 0.001
    sdk.v1.customers.list()  # the burst token
    with pytest.raises(stripe.RateLimitError):
        sdk.v1.customers.list()


# --------------------------------------------------------------------------------------
# Every operation, raw, validated against the spec
# --------------------------------------------------------------------------------------


def test_every_operation_validates(demo: Demo) -> None:
    get(demo, "/v1/customers", limit=100)
    get(demo, "/v1/customers/cus_A")
    deleted = get(demo, "/v1/customers/cus_Z")
    assert deleted == {"id": "cus_Z", "object": "customer", "deleted": True}
    created = post(demo, "/v1/customers", {"name": "X", "address[country]": "us", "phone": "+1 555"})
    assert created["address"]["country"] == "US"
    post(demo, f"/v1/customers/{created['id']}", {"description": "vip", "metadata[a]": "b"})
    prices = get(demo, "/v1/prices", limit=100)
    assert all(p["object"] == "price" and p["recurring"]["interval"] in ("month", "year") for p in prices["data"])
    products = get(demo, "/v1/products")
    assert {p["id"]: p["metadata"]["tier"] for p in products["data"]}["prod_prem"] == "premium"
    assert get(demo, "/v1/products/prod_std")["default_price"] == "price_std_m"
    subs = get(demo, "/v1/subscriptions")
    assert ids(subs) == ["sub_B", "sub_A"]  # canceled excluded by default
    sub = post(demo, "/v1/subscriptions", {"customer": "cus_D", "items[0][price]": "price_std_m",
                                           "trial_period_days": "14"})
    assert sub["status"] == "trialing" and sub["trial_end"] == NOW + 14 * DAY and sub["latest_invoice"] is None
    assert not demo.store.invoices_by_subscription.get(sub["id"])
    got = get(demo, f"/v1/subscriptions/{sub['id']}")
    assert got["items"]["data"][0]["price"]["product"] == "prod_std"
    post(demo, f"/v1/subscriptions/{sub['id']}", {"metadata[k]": "v"})
    invoices = get(demo, "/v1/invoices", limit=100)
    assert ids(invoices) == ["in_A2", "in_A1", "in_C1", "in_C0", "in_A0"]
    inv = get(demo, "/v1/invoices/in_C0")
    assert inv["amount_remaining"] == 50000 and inv["paid"] is False and inv["lines"]["object"] == "list"
    assert inv["lines"]["data"][0]["subscription_item"] == "si_C"
    void = get(demo, "/v1/invoices/in_C1")
    assert void["status_transitions"]["voided_at"] == void["created"] + 99 and void["amount_remaining"] == 0
    events = get(demo, "/v1/events", limit=100)
    assert "evt_old" not in ids(events)  # older than 30 days
    assert get(demo, "/v1/events/evt_2")["data"]["object"]["id"] == "in_C0"
    err = get(demo, "/v1/events/evt_old", expect=404)
    assert err["error"]["code"] == "resource_missing"


def test_renderers_are_pure_and_valid() -> None:
    st = build_store()
    validate_component("stripe", "customer", render_customer(st, st.customers["cus_A"]))
    validate_component("stripe", "deleted_customer", render_customer(st, st.customers["cus_Z"]))
    validate_component("stripe", "subscription", render_subscription(st, st.subscriptions["sub_B"]))
    validate_component("stripe", "invoice", render_invoice(st, st.invoices["in_A0"]))
    validate_component("stripe", "price", render_price(st, st.prices["price_eur_m"]))
    validate_component("stripe", "product", render_product(st, st.products["prod_old"]))
    ev = render_event(st, st.events[3])
    validate_component("stripe", "event", ev)
    assert ev["data"]["object"]["object"] == "subscription"
    assert ev["data"]["previous_attributes"] == {"cancel_at_period_end": True}
    cust = render_customer(st, st.customers["cus_A"])
    assert cust["invoice_prefix"] == "ACME0001" and cust["next_invoice_sequence"] == 4
    assert cust["metadata"] == {"segment": "smb", "tax_id": "US-111"}


# --------------------------------------------------------------------------------------
# Pagination
# --------------------------------------------------------------------------------------


def test_pagination_edges(demo: Demo) -> None:
    empty = get(demo, "/v1/invoices", customer="cus_E")
    assert empty == {"object": "list", "data": [], "has_more": False, "url": "/v1/invoices"}
    one_page = get(demo, "/v1/customers", limit=5)
    assert len(one_page["data"]) == 5 and one_page["has_more"] is False
    after_last = get(demo, "/v1/customers", starting_after="cus_A")
    assert after_last["data"] == [] and after_last["has_more"] is False
    page = get(demo, "/v1/customers", limit=2, starting_after="cus_D")
    assert ids(page) == ["cus_C", "cus_B"] and page["has_more"] is True
    before = get(demo, "/v1/customers", limit=2, ending_before="cus_B")
    assert ids(before) == ["cus_D", "cus_C"] and before["has_more"] is True
    before_all = get(demo, "/v1/customers", limit=10, ending_before="cus_C")
    assert ids(before_all) == ["cus_E", "cus_D"] and before_all["has_more"] is False
    for bad in ("0", "101", "abc", "-1"):
        err = get(demo, "/v1/customers", expect=400, limit=bad)
        assert err["error"]["type"] == "invalid_request_error" and err["error"]["param"] == "limit"
    missing = get(demo, "/v1/customers", expect=400, starting_after="cus_nope")
    assert missing["error"]["code"] == "resource_missing" and missing["error"]["param"] == "starting_after"
    # cursor on an indexed (customer-filtered) list
    a = get(demo, "/v1/invoices", customer="cus_A", limit=1, starting_after="in_A2")
    assert ids(a) == ["in_A1"] and a["has_more"] is True
    both = get(demo, "/v1/customers", expect=400, starting_after="cus_A", ending_before="cus_E")
    assert both["error"]["type"] == "invalid_request_error"


def test_filters(demo: Demo) -> None:
    assert ids(get(demo, "/v1/customers", email="ops@acme.example")) == ["cus_E", "cus_A"]
    base = NOW - 100 * DAY
    assert ids(get(demo, "/v1/customers", **{"created[gt]": base, "created[lte]": base + 2 * DAY})) == \
        ["cus_D", "cus_C", "cus_B"]
    assert ids(get(demo, "/v1/customers", created=base + DAY)) == ["cus_B"]
    assert ids(get(demo, "/v1/subscriptions", status="all")) == ["sub_C", "sub_B", "sub_A"]
    assert ids(get(demo, "/v1/subscriptions", status="ended")) == ["sub_C"]
    assert ids(get(demo, "/v1/subscriptions", status="trialing")) == ["sub_B"]
    assert ids(get(demo, "/v1/subscriptions", customer="cus_C", status="canceled")) == ["sub_C"]
    assert ids(get(demo, "/v1/subscriptions", price="price_std_m")) == ["sub_A"]
    assert get(demo, "/v1/subscriptions", expect=400, status_x="1")["error"]["param"] == "status_x"
    assert get(demo, "/v1/subscriptions", expect=400, status="weird")["error"]["param"] == "status"
    assert ids(get(demo, "/v1/invoices", status="paid", customer="cus_A", limit=2)) == ["in_A2", "in_A1"]
    assert ids(get(demo, "/v1/invoices", subscription="sub_C")) == ["in_C0"]
    assert ids(get(demo, "/v1/invoices", status="open")) == ["in_C0"]
    assert ids(get(demo, "/v1/events", type="invoice.*")) == ["evt_4", "evt_2"]
    assert ids(get(demo, "/v1/events", type="customer.*")) == ["evt_3", "evt_1"]
    assert ids(get(demo, "/v1/events", **{"types[]": ["invoice.paid", "customer.created"]})) == ["evt_4", "evt_1"]
    assert ids(get(demo, "/v1/events", **{"created[gte]": NOW - 15 * DAY})) == ["evt_4", "evt_3", "evt_2"]
    assert ids(get(demo, "/v1/prices", **{"lookup_keys[]": ["premium_monthly", "premium_yearly"]})) == \
        ["price_prem_y", "price_prem_m"]
    assert ids(get(demo, "/v1/prices", active="false")) == ["price_old_m"]
    assert ids(get(demo, "/v1/prices", product="prod_std", currency="eur")) == ["price_eur_m"]
    assert get(demo, "/v1/prices", type="one_time")["data"] == []
    assert ids(get(demo, "/v1/products", active="true")) == ["prod_prem", "prod_std"]
    assert ids(get(demo, "/v1/products", **{"ids[0]": "prod_std", "ids[1]": "prod_old"})) == ["prod_old", "prod_std"]
    bad_created = get(demo, "/v1/invoices", expect=400, **{"created[between]": 1})
    assert bad_created["error"]["param"] == "created[between]"


def test_paging_is_linear_at_scale() -> None:
    """A full walk of 600,000 records in pages of 100 looks at each record about once."""

    @dataclass(slots=True)
    class Rec:
        id: str
        created: int

    n = 600_000
    records = {f"in_{i:07d}": Rec(f"in_{i:07d}", 1_600_000_000 + i // 3) for i in range(n)}
    index = OrderIndex()
    index.sync(records)
    calls = 0

    def match(_: str) -> bool:
        nonlocal calls
        calls += 1
        return True

    started = time.perf_counter()
    cursor: str | None = None
    seen = 0
    pages = 0
    candidates = index.span(CreatedRange())
    while True:
        page = paginate(index, candidates, match, 100, starting_after=cursor)
        seen += len(page.ids)
        pages += 1
        if not page.has_more:
            break
        cursor = page.ids[-1]
    elapsed = time.perf_counter() - started
    assert seen == n and pages == n // 100
    assert calls <= n + pages  # each page peeks at one extra record
    assert elapsed < 10
    # appending keeps the index incremental; a record created "in the past" is placed by time
    records["in_new"] = Rec("in_new", 1_600_000_000)
    index.sync(records)
    assert index.ids[index.pos["in_new"]] == "in_new" and index.pos["in_new"] == 3


def test_full_http_walk_of_invoices(demo: Demo) -> None:
    st = demo.store
    with st.lock:
        for i in range(500):
            cid = ("cus_A", "cus_B", "cus_C")[i % 3]
            st.add_invoice(BInvoice(f"in_bulk{i:05d}", cid, None, "paid", None, "usd", 100, 100, 100,
                                    NOW - 50 * DAY + i, NOW - 50 * DAY, NOW - 50 * DAY, [], attempt_count=1))
    seen: list[str] = []
    cursor: dict[str, Any] = {}
    while True:
        body = get(demo, "/v1/invoices", limit=100, **cursor)
        seen += ids(body)
        if not body["has_more"]:
            break
        cursor = {"starting_after": seen[-1]}
    assert len(seen) == len(set(seen)) == 505
    created = [st.invoices[i].created for i in seen]
    assert created == sorted(created, reverse=True)
    only_b = get(demo, "/v1/invoices", customer="cus_B", limit=100)
    assert len(only_b["data"]) == 100 and {i["customer"] for i in only_b["data"]} == {"cus_B"}


# --------------------------------------------------------------------------------------
# Auth, unknown ids, errors
# --------------------------------------------------------------------------------------


def test_auth(demo: Demo) -> None:
    with httpx.Client(base_url=demo.url) as anon:
        none = checked(anon.get("/v1/customers"), "GET", "/v1/customers", 401)
        assert none["error"]["type"] == "invalid_request_error"
        wrong = checked(anon.get("/v1/customers", headers={"Authorization": "Bearer sk_test_bad"}),
                        "GET", "/v1/customers", 401)
        assert "sk_test_bad" not in wrong["error"]["message"]
        basic = base64.b64encode(f"{API_KEY}:".encode()).decode()
        checked(anon.get("/v1/customers", headers={"Authorization": f"Basic {basic}"}), "GET", "/v1/customers")
        checked(anon.get("/v1/customers", auth=(API_KEY, "")), "GET", "/v1/customers")
        checked(anon.get("/v1/customers", headers={"Authorization": f"Bearer {API_KEY}"}), "GET", "/v1/customers")
        garbage = checked(anon.get("/v1/customers", headers={"Authorization": "Basic %%%"}),
                          "GET", "/v1/customers", 401)
        assert garbage["error"]["type"] == "invalid_request_error"
        assert anon.post("/v1/customers", data={"name": "x"}).status_code == 401
    assert len(demo.store.customers) == 6


def test_unknown_ids(demo: Demo) -> None:
    for path, kind in (("/v1/customers/cus_x", "customer"), ("/v1/subscriptions/sub_x", "subscription"),
                       ("/v1/invoices/in_x", "invoice"), ("/v1/products/prod_x", "product"),
                       ("/v1/events/evt_x", "event")):
        err = get(demo, path, expect=404)["error"]
        assert err["code"] == "resource_missing" and err["type"] == "invalid_request_error"
        assert err["message"] == f"No such {kind}: '{path.rsplit('/', 1)[1]}'"
    assert get(demo, "/v1/customers/cus_x", expect=404)["error"]["param"] == "id"
    err = post(demo, "/v1/customers/cus_x", {"name": "n"}, expect=404)["error"]
    assert err["code"] == "resource_missing"
    err = post(demo, "/v1/subscriptions", {"customer": "cus_x", "items[0][price]": "price_std_m"}, 400)["error"]
    assert err["param"] == "customer" and err["code"] == "resource_missing"
    err = post(demo, "/v1/subscriptions", {"customer": "cus_A", "items[0][price]": "price_x"}, 400)["error"]
    assert err["param"] == "items[0][price]"
    err = post(demo, "/v1/subscriptions", {"customer": "cus_A"}, 400)["error"]
    assert err["param"] == "items" and err["code"] == "parameter_missing"
    unknown = demo.http.get("/v1/payouts")  # not served (charges are, since G1)
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "invalid_request_error"
    assert unknown.headers["request-id"].startswith("req_")


def test_unknown_and_bad_params(demo: Demo) -> None:
    err = post(demo, "/v1/customers", {"name": "x", "nickname": "y"}, 400)["error"]
    assert err["param"] == "nickname" and err["code"] == "parameter_unknown"
    # the spec's nested parameters are accepted as Stripe accepts them; an unknown one at any depth is not
    assert post(demo, "/v1/customers", {"address[line1]": "Main St"})["address"]["line1"] == "Main St"
    err = post(demo, "/v1/customers", {"address[planet]": "Mars"}, 400)["error"]
    assert err["param"] == "address[planet]" and err["code"] == "parameter_unknown"
    err = post(demo, "/v1/subscriptions", {"customer": "cus_A", "items[0][price]": "price_std_m",
                                           "items[0][quantity]": "two"}, 400)["error"]
    assert err["param"] == "items[0][quantity]"
    err = post(demo, "/v1/subscriptions", {"customer": "cus_A", "items[0][price]": "price_std_m",
                                           "items[1][price]": "price_eur_m"}, 400)["error"]
    assert err["param"] == "items"
    err = post(demo, "/v1/subscriptions/sub_C", {"cancel_at_period_end": "true"}, 400)["error"]
    assert "canceled" in err["message"]
    err = post(demo, "/v1/subscriptions/sub_A", {"proration_behavior": "sometimes"}, 400)["error"]
    assert err["param"] == "proration_behavior"
    resp = demo.http.post("/v1/customers", content=b'{"name": "x"}', headers={"Content-Type": "application/json"})
    checked(resp, "POST", "/v1/customers", 400)
    # nothing refused was stored: the one accepted customer (and its customer.created event) only
    assert len(demo.store.customers) == 7 and len(demo.store.events) == 6


# --------------------------------------------------------------------------------------
# Writes: events, idempotency, subscription updates
# --------------------------------------------------------------------------------------


def test_customer_update_event_and_previous_attributes(demo: Demo) -> None:
    body = post(demo, "/v1/customers/cus_A", {"name": "Acme Corporation", "metadata[tax_id]": "US-999",
                                              "metadata[segment]": "", "metadata[new]": "1",
                                              "address[country]": "CA"})
    assert body["name"] == "Acme Corporation" and body["address"]["country"] == "CA"
    assert body["metadata"] == {"tax_id": "US-999", "new": "1"}
    c = demo.store.customers["cus_A"]
    assert c.tax_id == "US-999" and c.metadata == {"new": "1"} and c.country == "CA"
    ev = demo.store.events[-1]
    assert ev.type == "customer.updated" and ev.object_id == "cus_A" and ev.snapshot is not None
    assert ev.previous_attributes is not None
    assert ev.previous_attributes["name"] == "Acme Corp"
    assert ev.previous_attributes["metadata"] == {"tax_id": "US-111", "segment": "smb", "new": None}
    assert ev.previous_attributes["address"]["country"] == "US"
    rendered = get(demo, f"/v1/events/{ev.id}")
    assert rendered["data"]["object"]["name"] == "Acme Corporation"
    # the snapshot is frozen: later changes do not alter the event
    post(demo, "/v1/customers/cus_A", {"name": "Later"})
    assert get(demo, f"/v1/events/{ev.id}")["data"]["object"]["name"] == "Acme Corporation"
    # a no-op update records nothing
    count = len(demo.store.events)
    post(demo, "/v1/customers/cus_A", {"name": "Later"})
    assert len(demo.store.events) == count
    cleared = post(demo, "/v1/customers/cus_A", {"metadata": "", "address": "", "email": ""})
    assert cleared["metadata"] == {} and cleared["address"] is None and cleared["email"] is None


def test_subscription_item_changes(demo: Demo) -> None:
    body = post(demo, "/v1/subscriptions/sub_A", {
        "items[0][id]": "si_A", "items[0][quantity]": "5",
        "items[1][price]": "price_prem_m", "items[1][quantity]": "2", "metadata[plan]": "combo"})
    assert [(i["price"]["id"], i["quantity"]) for i in body["items"]["data"]] == \
        [("price_std_m", 5), ("price_prem_m", 2)]
    ev = demo.store.events[-1]
    assert ev.type == "customer.subscription.updated" and ev.previous_attributes is not None
    assert ev.previous_attributes["items"]["data"][0]["quantity"] == 1
    assert ev.previous_attributes["metadata"] == {"plan": None}
    body = post(demo, "/v1/subscriptions/sub_A", {"items[0][id]": "si_A", "items[0][deleted]": "true"})
    assert [i["price"]["id"] for i in body["items"]["data"]] == ["price_prem_m"]
    err = post(demo, "/v1/subscriptions/sub_A", {"items[0][id]": "si_nope", "items[0][quantity]": "1"}, 400)
    assert err["error"]["code"] == "resource_missing"


def test_idempotency(demo: Demo) -> None:
    headers = {"Idempotency-Key": "key-1"}
    data = {"name": "Once Ltd", "metadata[x]": "1"}
    first = demo.http.post("/v1/customers", data=data, headers=headers)
    body = checked(first, "POST", "/v1/customers")
    assert "idempotent-replayed" not in first.headers
    events_after_first = len(demo.store.events)
    again = demo.http.post("/v1/customers", data=data, headers=headers)
    assert checked(again, "POST", "/v1/customers") == body
    assert again.headers["idempotent-replayed"] == "true"
    assert sum(1 for c in demo.store.customers.values() if c.name == "Once Ltd") == 1
    assert len(demo.store.events) == events_after_first
    other = demo.http.post("/v1/customers", data={"name": "Twice Ltd"}, headers=headers)
    assert checked(other, "POST", "/v1/customers", 400)["error"]["type"] == "idempotency_error"
    elsewhere = demo.http.post("/v1/customers/cus_A", data=data, headers=headers)
    assert checked(elsewhere, "POST", "/v1/customers/cus_A", 400)["error"]["type"] == "idempotency_error"
    assert demo.store.customers["cus_A"].name == "Acme Corp"


def test_sdk_idempotency_error(sdk: stripe.StripeClient) -> None:
    sdk.v1.customers.create(params={"name": "A"}, options={"idempotency_key": "k"})
    with pytest.raises(stripe.IdempotencyError):
        sdk.v1.customers.create(params={"name": "B"}, options={"idempotency_key": "k"})


# --------------------------------------------------------------------------------------
# Expansion and form parsing
# --------------------------------------------------------------------------------------


def test_expand(demo: Demo) -> None:
    inv = get(demo, "/v1/invoices/in_A0", **{"expand[]": ["customer", "subscription"]})
    assert inv["customer"]["object"] == "customer" and inv["subscription"]["object"] == "subscription"
    listed = get(demo, "/v1/invoices", **{"expand[]": "data.customer", "customer": "cus_C"})
    assert {i["customer"]["id"] for i in listed["data"]} == {"cus_C"}
    sub = get(demo, "/v1/subscriptions/sub_A", **{"expand[0]": "latest_invoice",
                                                  "expand[1]": "items.data.price.product",
                                                  "expand[2]": "customer"})
    assert sub["latest_invoice"]["id"] == "in_A2"
    assert sub["items"]["data"][0]["price"]["product"]["metadata"]["tier"] == "standard"
    assert sub["customer"]["id"] == "cus_A"
    products = get(demo, "/v1/products", **{"expand[]": "data.default_price"})
    assert products["data"][0]["default_price"]["object"] == "price"
    prices = get(demo, "/v1/prices", **{"expand[]": "data.product"})
    assert all(p["product"]["object"] == "product" for p in prices["data"])
    ev = get(demo, "/v1/events/evt_4", **{"expand[]": "data.object.customer"})
    assert ev["data"]["object"]["customer"]["id"] == "cus_A"
    created = post(demo, "/v1/subscriptions", {"customer": "cus_E", "items[0][price]": "price_std_m",
                                               "expand[]": "latest_invoice"})
    assert created["latest_invoice"]["status"] == "paid"
    err = get(demo, "/v1/invoices", expect=400, **{"expand[]": "customer"})
    assert err["error"]["param"] == "expand"
    err = get(demo, "/v1/invoices/in_A0", expect=400, **{"expand[]": "status"})
    assert err["error"]["param"] == "expand"


def test_parse_form() -> None:
    parsed = parse_form("metadata[k]=v&metadata[0]=zero&items[0][price]=p&items[0][quantity]=2"
                        "&items[1][price]=q&expand[]=a&expand[]=b.c&name=A%20B&empty=")
    assert parsed == {"metadata": {"k": "v", "0": "zero"},
                      "items": [{"price": "p", "quantity": "2"}, {"price": "q"}],
                      "expand": ["a", "b.c"], "name": "A B", "empty": ""}
    assert parse_form("items[][price]=a&items[][quantity]=1&items[][price]=b") == \
        {"items": [{"price": "a", "quantity": "1"}, {"price": "b"}]}
    assert parse_form("items[10][price]=b&items[2][price]=a") == {"items": [{"price": "a"}, {"price": "b"}]}
    assert parse_form("created[gte]=1&created[lt]=5") == {"created": {"gte": "1", "lt": "5"}}
    assert parse_form("") == {}
    for bad in ("a[b=1", "a=1&a[b]=2", "a[b]=1&a=2", "[x]=1", "a[]=1&a[b]=2"):
        with pytest.raises(StripeError) as exc:
            parse_form(bad)
        assert exc.value.status == 400


def test_form_brackets_over_http(demo: Demo) -> None:
    raw = ("customer=cus_C&items[0][price]=price_std_m&items[0][quantity]=2"
           "&items[1][price]=price_prem_m&metadata[order]=A-1&metadata[note]=x%26y&expand[]=customer")
    resp = demo.http.post("/v1/subscriptions", content=raw.encode(),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    body = checked(resp, "POST", "/v1/subscriptions")
    assert [(i["price"]["id"], i["quantity"]) for i in body["items"]["data"]] == \
        [("price_std_m", 2), ("price_prem_m", 1)]
    assert body["metadata"] == {"order": "A-1", "note": "x&y"} and body["customer"]["id"] == "cus_C"
    inv = get(demo, f"/v1/invoices/{body['latest_invoice']}")
    assert inv["total"] == 2 * 2000 + 5000 and inv["number"] == "COBA0002-0003"
    assert [ln["amount"] for ln in inv["lines"]["data"]] == [4000, 5000]


# --------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------


def test_rate_limit(demo: Demo) -> None:
    demo.injector.config.rate_limit = 0.5
    assert demo.http.get("/v1/customers").status_code == 200
    resp = demo.http.get("/v1/customers")
    body = checked(resp, "GET", "/v1/customers", 429)
    assert body["error"]["code"] == "rate_limit"
    assert int(resp.headers["retry-after"]) >= 1


def test_server_errors_and_outage(demo: Demo) -> None:
    demo.injector.config.error_rate = 1.0
    body = checked(demo.http.get("/v1/customers"), "GET", "/v1/customers", 500)
    assert body["error"]["type"] == "api_error"
    demo.injector.config.error_rate = 0.0
    demo.injector.config.outage = True
    body = checked(demo.http.post("/v1/customers", data={"name": "x"}), "POST", "/v1/customers", 503)
    assert body["error"]["type"] == "api_error"
    assert len(demo.store.customers) == 6
    demo.injector.config.outage = False
    checked(demo.http.get("/v1/customers"), "GET", "/v1/customers")


def test_drop_after_commit(demo: Demo) -> None:
    demo.injector.config.drop_after_commit_rate = 1.0
    before = set(demo.store.customers)
    with pytest.raises(httpx.TransportError):
        demo.http.post("/v1/customers", data={"name": "Dropped Co"}, headers={"Idempotency-Key": "drop-1"})
    demo.injector.config.drop_after_commit_rate = 0.0
    (new_id,) = set(demo.store.customers) - before
    assert get(demo, f"/v1/customers/{new_id}")["name"] == "Dropped Co"
    assert demo.store.events[-1].type == "customer.created" and demo.store.events[-1].object_id == new_id
    # the retry with the same key replays instead of creating a second customer
    retry = demo.http.post("/v1/customers", data={"name": "Dropped Co"}, headers={"Idempotency-Key": "drop-1"})
    assert checked(retry, "POST", "/v1/customers")["id"] == new_id
    assert retry.headers["idempotent-replayed"] == "true"
    # reads are never dropped
    demo.injector.config.drop_after_commit_rate = 1.0
    get(demo, "/v1/customers")


def test_control_endpoint_is_reachable(demo: Demo) -> None:
    resp = demo.http.post("/_demo/faults", json={"error_rate": 1.0})
    assert resp.status_code == 200
    assert demo.http.get("/v1/customers").status_code == 500
