"""The demo billing server's money endpoints over loopback, on a generated company of 200
customers: ``/v1/tax_rates``, ``/v1/coupons``, ``/v1/credit_notes`` (and a note's lines),
``/v1/charges`` and ``/v1/refunds`` list and retrieve what the store holds, filter and page as
Stripe does, and every answer validates against the official OpenAPI subset
(``tests/data/specs/stripe``, extended for G1 by ``tests/data/specs/refresh.py``); invoices with
taxes and discounts validate too; the money events are listed and carry their objects; the
official ``stripe`` SDK reads it all; a saved world keeps the money."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
import stripe

from services.demo.dataset import generate
from services.demo.faults import FaultInjector
from services.demo.serving import ThreadedServers
from services.demo.store import BillingStore, DemoDataset
from services.demo.stripe.app import create_app
from services.demo.world_codec import WorldMeta, dump_world, encode_world, load_world
from tests.specs import validate_component, validate_response

API_KEY = "sk_test_money_4eC39HqLyjWDarjtT1zdp7dc"
ANCHOR = 1_750_000_020


@dataclass
class Served:
    ds: DemoDataset
    store: BillingStore
    url: str
    http: httpx.Client


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    ds = generate(200, 2, anchor=ANCHOR)  # seed 2: every kind of money event in the last 30 days
    app = create_app(ds.billing, FaultInjector("billing"), API_KEY, clock=lambda: ANCHOR + 60)
    with ThreadedServers({"billing": app}) as servers:
        url = servers.url("billing")
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30) as http:
            yield Served(ds, ds.billing, url, http)


def get(s: Served, path: str, params: Any = None, expect: int = 200) -> Any:
    r = s.http.get(path, params=params)
    assert r.status_code == expect, r.text
    body = r.json()
    validate_response("stripe", "GET", path, expect, body)
    return body


def walk(s: Served, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every item of a list endpoint, page by page (``starting_after``), each page validated."""
    out: list[dict[str, Any]] = []
    query: dict[str, Any] = {"limit": 7, **(params or {})}
    while True:
        page = get(s, path, query)
        out.extend(page["data"])
        if not page["has_more"]:
            return out
        query["starting_after"] = page["data"][-1]["id"]


def test_tax_rates_and_coupons_are_served_as_the_spec_defines_them(served: Served) -> None:
    st = served.store
    rates = walk(served, "/v1/tax_rates")
    assert [r["id"] for r in rates] == [r.id for r in reversed(st.tax_rates.values())]
    for r in rates:
        assert get(served, f"/v1/tax_rates/{r['id']}") == r
    by_id = {r["id"]: r for r in rates}
    for rid, rate in st.tax_rates.items():
        assert Decimal(str(by_id[rid]["percentage"])) == Decimal(rate.percentage)
    assert walk(served, "/v1/tax_rates", {"active": "false"}) == []
    assert len(walk(served, "/v1/tax_rates", {"inclusive": "false", "active": "true"})) == len(st.tax_rates)
    coupons = walk(served, "/v1/coupons")
    assert {c["id"] for c in coupons} == set(st.coupons)
    assert {c["duration"] for c in coupons} == {"once", "repeating", "forever"}
    assert get(served, "/v1/coupons/WELCOME20")["percent_off"] == 20
    err = get(served, "/v1/tax_rates/txr_nope", expect=404)["error"]
    assert err["code"] == "resource_missing" and err["param"] == "tax_rate"


def test_credit_notes_their_lines_charges_and_refunds(served: Served) -> None:
    st = served.store
    notes = walk(served, "/v1/credit_notes")
    assert [n["id"] for n in notes] == [n.id for n in reversed(st.credit_notes.values())]
    assert {n["type"] for n in notes} == {"pre_payment", "post_payment"}
    for n in notes:
        cn = st.credit_notes[n["id"]]
        assert (n["invoice"], n["customer"], n["total"], n["amount"]) == (cn.invoice, cn.customer, cn.total, cn.total)
        assert n["total_excluding_tax"] + sum(t["amount"] for t in n["tax_amounts"]) == n["total"]
        assert get(served, f"/v1/credit_notes/{n['id']}") == n
        lines = walk(served, f"/v1/credit_notes/{n['id']}/lines", {"limit": 1})
        assert lines == n["lines"]["data"] and len(lines) == len(cn.lines)
        by_invoice = get(served, "/v1/credit_notes", {"invoice": cn.invoice, "limit": 100})["data"]
        assert n["id"] in {x["id"] for x in by_invoice} and all(x["invoice"] == cn.invoice for x in by_invoice)
    one = next(iter(st.credit_notes.values()))
    mine = walk(served, "/v1/credit_notes", {"customer": one.customer})
    assert mine and all(x["customer"] == one.customer for x in mine)

    refunds = walk(served, "/v1/refunds")
    assert [r["id"] for r in refunds] == [r.id for r in reversed(st.refunds.values())]
    for r in refunds:
        assert get(served, f"/v1/refunds/{r['id']}") == r
        charge = get(served, f"/v1/charges/{r['charge']}")
        assert charge["amount_refunded"] >= r["amount"] and r["id"] in {x["id"] for x in charge["refunds"]["data"]}
        assert charge["refunded"] == (charge["amount_refunded"] == charge["amount"])
        assert [x["id"] for x in get(served, "/v1/refunds", {"charge": r["charge"]})["data"]] == \
            [x["id"] for x in charge["refunds"]["data"]]
        assert get(served, "/v1/refunds", {"payment_intent": r["payment_intent"]})["data"]
        inv = get(served, f"/v1/invoices/{charge['invoice']}")
        assert (inv["charge"], inv["payment_intent"]) == (charge["id"], charge["payment_intent"])
    assert any(c["refunded"] for c in (get(served, f"/v1/charges/{r['charge']}") for r in refunds))
    first = get(served, "/v1/charges", {"limit": 100})
    assert len(first["data"]) == 100 and first["has_more"]
    some = first["data"][0]
    assert [c["id"] for c in get(served, "/v1/charges", {"customer": some["customer"], "limit": 100})["data"]] == \
        [c.id for c in reversed(st.charges.values()) if c.customer == some["customer"]]
    assert get(served, "/v1/charges", {"transfer_group": "none"})["data"] == []


def test_invoices_with_taxes_discounts_and_credit_notes_validate(served: Served) -> None:
    st = served.store
    wanted = [i for i in st.invoices.values() if i.coupon or i.tax or i.pre_payment_credit_notes_amount
              or i.post_payment_credit_notes_amount or i.next_payment_attempt]
    assert len(wanted) > 50
    for inv in wanted[:150]:
        body = get(served, f"/v1/invoices/{inv.id}", {"expand[]": "discounts"} if inv.coupon else None)
        assert body["total"] == inv.total and body["tax"] == inv.tax
        if inv.coupon:
            assert body["discount"]["coupon"]["id"] == inv.coupon
    customer = next(c for c in st.customers.values() if c.extra.get("tax_exempt") == "reverse")
    body = get(served, f"/v1/customers/{customer.id}", {"expand[]": "tax_ids"})
    assert body["tax_exempt"] == "reverse" and body["tax_ids"]["data"][0]["value"] == customer.tax_id
    assert body["tax_ids"]["data"][0]["verification"]["status"] == "verified"  # a valid EU VAT id


def test_money_events_are_listed_with_their_objects(served: Served) -> None:
    for kind, component in (("credit_note.created", "credit_note"), ("charge.refunded", "charge"),
                            ("invoice.updated", "invoice")):
        events = walk(served, "/v1/events", {"type": kind})
        assert events, kind
        assert [e["id"] for e in events] == [e.id for e in reversed(served.store.events) if e.type == kind]
        for e in events:
            assert e["type"] == kind and e["data"]["object"]["object"] == component
            validate_component("stripe", component, e["data"]["object"])
    refunded = walk(served, "/v1/events", {"type": "charge.refunded"})
    assert all(e["data"]["object"]["amount_refunded"] > 0 for e in refunded)


def test_the_official_sdk_reads_the_money(served: Served) -> None:
    http_client = stripe.RequestsClient()
    client = stripe.StripeClient(API_KEY, base_addresses={"api": served.url}, http_client=http_client,
                                 max_network_retries=0, stripe_version="2023-08-16")
    try:
        rates = list(client.v1.tax_rates.list({"limit": 5}).auto_paging_iter())
        assert {r.id for r in rates} == set(served.store.tax_rates)
        notes = list(client.v1.credit_notes.list({"limit": 10}).auto_paging_iter())
        assert {n.id for n in notes} == set(served.store.credit_notes)
        note = client.v1.credit_notes.retrieve(notes[0].id)
        assert note.total == served.store.credit_notes[note.id].total
        assert [ln.id for ln in client.v1.credit_notes.line_items.list(note.id).data] == \
            [ln.id for ln in served.store.credit_notes[note.id].lines]
        refund = client.v1.refunds.retrieve(next(iter(served.store.refunds)))
        assert client.v1.charges.retrieve(refund.charge).amount_refunded >= refund.amount
        assert client.v1.coupons.retrieve("LOYALTY10").duration == "forever"
    finally:
        http_client.close()


def test_a_saved_world_keeps_the_money(served: Served) -> None:
    ds = served.ds
    meta = WorldMeta(ds.customers, ds.seed, ds.anchor, None, created_at=float(ANCHOR), clock=float(ANCHOR))
    loaded, _ = load_world(dump_world(encode_world(ds, meta)))
    b, b2 = ds.billing, loaded.billing
    for name in ("tax_rates", "coupons", "credit_notes", "charges", "refunds", "invoices"):
        assert [asdict(r) for r in getattr(b, name).values()] == [asdict(r) for r in getattr(b2, name).values()], name


def test_discounts_show_on_customers_and_subscriptions_and_a_coupon_can_be_applied(served: Served) -> None:
    st = served.store
    loyal = [c for c in st.customers.values() if c.extra.get("discount")]
    running = [s for s in st.subscriptions.values() if s.extra.get("discount")]
    assert loyal and running
    for c in loyal:
        body = get(served, f"/v1/customers/{c.id}")
        assert body["discount"]["coupon"]["id"] == "LOYALTY10" and body["discount"]["customer"] == c.id
    for s in running:
        body = get(served, f"/v1/subscriptions/{s.id}")
        assert body["discount"]["coupon"]["duration"] == "repeating" and body["discount"]["subscription"] == s.id
        assert body["discount"]["end"] > ANCHOR
    before = st.coupons["SAVE45EUR"].times_redeemed
    r = served.http.post("/v1/customers", data={"name": "Coupon GmbH", "coupon": "SAVE45EUR"})
    assert r.status_code == 200, r.text
    validate_response("stripe", "POST", "/v1/customers", 200, r.json())
    assert r.json()["discount"]["coupon"]["id"] == "SAVE45EUR" and st.coupons["SAVE45EUR"].times_redeemed == before + 1
    cid = r.json()["id"]
    r = served.http.post(f"/v1/customers/{cid}", data={"coupon": ""})
    assert r.status_code == 200 and r.json()["discount"] is None
    r = served.http.post(f"/v1/customers/{cid}", data={"coupon": "NOPE"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "coupon"
