"""The demo billing server's subscription parameters do what Stripe does with them: the ones with
an effect in the demo change the subscription (trial, cancellation, billing cycle anchor, backdated
start, one-off invoice items, an incomplete first payment, inline prices, list filters), the others
are kept and answered back as set (and unset by an empty string); every answer is the spec's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from services.demo.dataset import generate
from services.demo.faults import FaultInjector
from services.demo.serving import ThreadedServers
from services.demo.stripe.app import create_app
from tests.specs import validate_response

API_KEY = "sk_test_subscription_params_8fX2"
NOW = 1_700_000_000
DAY = 86400


class Billing:
    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def call(self, method: str, path: str, data: dict[str, str] | None = None, status: int = 200) -> dict[str, Any]:
        resp = self.http.request(method, path, **({"params": data} if method == "GET" else {"data": data or {}}))
        assert resp.status_code == status, resp.text
        body: dict[str, Any] = resp.json()
        template = path if not path.startswith("/v1/subscriptions/") else "/v1/subscriptions/{subscription_exposed_id}"
        if path.startswith("/v1/invoices/"):
            template = "/v1/invoices/{invoice}"
        validate_response("stripe", method, template, status, body)
        return body

    def first(self, path: str) -> dict[str, Any]:
        body = self.call("GET", path, {"limit": "1"})
        return dict(body["data"][0])

    def price(self) -> dict[str, Any]:
        return self.call("GET", "/v1/prices", {"limit": "1", "active": "true", "type": "recurring"})["data"][0]

    def customer(self) -> str:
        return str(self.call("POST", "/v1/customers", {"name": "Params", "email": "p@params.example"})["id"])

    def subscribe(self, **extra: str) -> dict[str, Any]:
        return self.call("POST", "/v1/subscriptions", {"customer": self.customer(),
                                                       "items[0][price]": self.price()["id"], **extra})


@pytest.fixture
def billing() -> Iterator[Billing]:
    store = generate(20, 1, anchor=NOW).billing
    app = create_app(store, FaultInjector("billing"), API_KEY, clock=lambda: NOW)
    with ThreadedServers({"billing": app}) as servers, httpx.Client(
            base_url=servers.url("billing"), headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10) as http:
        yield Billing(http)


def test_trial_end_cancel_at_anchor_and_backdated_start_shape_the_subscription(billing: Billing) -> None:
    trial = billing.subscribe(trial_end=str(NOW + 10 * DAY))
    assert trial["status"] == "trialing" and trial["trial_end"] == trial["current_period_end"] == NOW + 10 * DAY
    assert trial["latest_invoice"] is None  # no first invoice during a trial
    anchored = billing.subscribe(billing_cycle_anchor=str(NOW + 5 * DAY), cancel_at=str(NOW + 40 * DAY),
                                 backdate_start_date=str(NOW - DAY))
    assert anchored["status"] == "active" and anchored["current_period_end"] == NOW + 5 * DAY
    assert anchored["billing_cycle_anchor"] == NOW + 5 * DAY and anchored["cancel_at"] == NOW + 40 * DAY
    assert anchored["canceled_at"] == NOW and anchored["start_date"] == NOW - DAY
    assert billing.subscribe(trial_end="now")["status"] == "active"


def test_one_off_invoice_items_are_billed_on_the_first_invoice_and_default_incomplete_leaves_it_open(
        billing: Billing) -> None:
    price = billing.price()
    plain = billing.subscribe()
    with_item = billing.subscribe(**{"add_invoice_items[0][price]": price["id"], "add_invoice_items[0][quantity]": "2"})
    first = billing.call("GET", f"/v1/invoices/{plain['latest_invoice']}")
    second = billing.call("GET", f"/v1/invoices/{with_item['latest_invoice']}")
    assert second["total"] == first["total"] + 2 * price["unit_amount"]
    assert len(second["lines"]["data"]) == len(first["lines"]["data"]) + 1
    pending = billing.subscribe(payment_behavior="default_incomplete")
    assert pending["status"] == "incomplete"
    invoice = billing.call("GET", f"/v1/invoices/{pending['latest_invoice']}")
    assert invoice["status"] == "open" and invoice["amount_paid"] == 0


def test_items_and_settings_are_kept_and_answered_back(billing: Billing) -> None:
    rate = billing.first("/v1/tax_rates")["id"]
    sub = billing.subscribe(**{
        "items[0][metadata][seat]": "blue", "items[0][tax_rates][0]": rate,
        "items[0][billing_thresholds][usage_gte]": "5", "default_tax_rates[0]": rate,
        "automatic_tax[enabled]": "true", "collection_method": "send_invoice", "days_until_due": "14",
        "description": "Team plan", "billing_thresholds[amount_gte]": "1000",
        "pending_invoice_item_interval[interval]": "week",
        "payment_settings[payment_method_types][0]": "card",
        "trial_settings[end_behavior][missing_payment_method]": "pause"})
    again = billing.call("GET", f"/v1/subscriptions/{sub['id']}")
    for body in (sub, again):
        item = body["items"]["data"][0]
        assert item["metadata"] == {"seat": "blue"} and item["billing_thresholds"] == {"usage_gte": 5}
        assert [r["id"] for r in item["tax_rates"]] == [rate] == [r["id"] for r in body["default_tax_rates"]]
        assert body["automatic_tax"] == {"enabled": True}
        assert (body["collection_method"], body["days_until_due"], body["description"]) == (
            "send_invoice", 14, "Team plan")
        assert body["billing_thresholds"] == {"amount_gte": 1000, "reset_billing_cycle_anchor": None}
        assert body["pending_invoice_item_interval"] == {"interval": "week", "interval_count": 1}
        assert body["payment_settings"]["payment_method_types"] == ["card"]
        assert body["trial_settings"] == {"end_behavior": {"missing_payment_method": "pause"}}
    # an empty string unsets; an update merges
    path = f"/v1/subscriptions/{sub['id']}"
    after = billing.call("POST", path, {"description": "", "default_tax_rates": "", "billing_thresholds": "",
                                        "items[0][id]": sub["items"]["data"][0]["id"],
                                        "items[0][metadata][seat]": "", "items[0][metadata][floor]": "3",
                                        "pause_collection[behavior]": "void",
                                        "cancellation_details[comment]": "moving to annual"})
    assert after["description"] is None and after["default_tax_rates"] == [] and after["billing_thresholds"] is None
    assert after["items"]["data"][0]["metadata"] == {"floor": "3"}
    assert after["pause_collection"] == {"behavior": "void", "resumes_at": None}
    assert after["cancellation_details"]["comment"] == "moving to annual"
    assert after["collection_method"] == "send_invoice"  # not sent: kept


def test_unknown_tax_rates_and_coupons_are_refused_and_a_coupon_the_account_has_is_the_discount(
        billing: Billing) -> None:
    body = billing.call("POST", "/v1/subscriptions", {"customer": billing.customer(),
                                                      "items[0][price]": billing.price()["id"],
                                                      "default_tax_rates[0]": "txr_missing"}, status=400)
    assert body["error"]["code"] == "resource_missing" and body["error"]["param"] == "default_tax_rates[0]"
    coupon = billing.first("/v1/coupons")["id"]
    sub = billing.subscribe(coupon=coupon)
    assert sub["discount"]["coupon"]["id"] == coupon and sub["discount"]["subscription"] == sub["id"]


def test_trial_end_now_and_billing_cycle_anchor_now_restart_the_period(billing: Billing) -> None:
    sub = billing.subscribe(trial_period_days="7")
    path = f"/v1/subscriptions/{sub['id']}"
    ended = billing.call("POST", path, {"trial_end": "now"})
    assert ended["status"] == "active" and ended["trial_end"] == NOW
    assert ended["current_period_start"] == NOW and ended["current_period_end"] > NOW + 20 * DAY
    longer = billing.call("POST", path, {"trial_end": str(NOW + 3 * DAY)})
    assert longer["status"] == "trialing" and longer["current_period_end"] == NOW + 3 * DAY
    anchored = billing.call("POST", path, {"billing_cycle_anchor": "now"})
    assert anchored["billing_cycle_anchor"] == NOW == anchored["current_period_start"]


def test_an_inline_price_makes_a_subscription_in_its_currency(billing: Billing) -> None:
    product = billing.first("/v1/products")["id"]
    sub = billing.call("POST", "/v1/subscriptions", {
        "customer": billing.customer(), "items[0][price_data][currency]": "usd",
        "items[0][price_data][product]": product, "items[0][price_data][unit_amount]": "1250",
        "items[0][price_data][recurring][interval]": "week"})
    price = sub["items"]["data"][0]["price"]
    assert (price["currency"], price["unit_amount"], price["recurring"]["interval"]) == ("usd", 1250, "week")
    assert price["active"] is False and sub["currency"] == "usd"
    assert sub["current_period_end"] == NOW + 7 * DAY


def test_the_list_filters_by_collection_method_period_and_automatic_tax(billing: Billing) -> None:
    sent = billing.subscribe(collection_method="send_invoice", days_until_due="30",
                             **{"automatic_tax[enabled]": "true"})
    by_method = billing.call("GET", "/v1/subscriptions", {"collection_method": "send_invoice", "limit": "100"})
    assert [s["id"] for s in by_method["data"]] == [sent["id"]]
    taxed = billing.call("GET", "/v1/subscriptions", {"automatic_tax[enabled]": "true", "limit": "100"})
    assert [s["id"] for s in taxed["data"]] == [sent["id"]]
    end = sent["current_period_end"]
    ranged = billing.call("GET", "/v1/subscriptions", {"current_period_end[gte]": str(end),
                                                       "current_period_end[lte]": str(end), "limit": "100"})
    assert sent["id"] in [s["id"] for s in ranged["data"]]
    assert all(s["current_period_end"] == end for s in ranged["data"])
    assert billing.call("GET", "/v1/subscriptions", {"test_clock": "clock_none"})["data"] == []
