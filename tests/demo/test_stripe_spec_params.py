"""The demo Stripe server takes every parameter the official OpenAPI spec defines for the
operations it serves (``services/demo/stripe/params.py`` + ``request_params.json``), and refuses
the others as Stripe does.

Every case is built from the spec's own schemas (``request_params.json``, itself checked against
the shipped subset here): for each served operation and each of its parameters, one request per
way the schema allows a value (each ``anyOf`` branch, each property of an object, the items of an
array), sent over loopback to the real demo server; its answer is validated against the spec
(``tests.specs``). A parameter that names an object (a customer, a price, a list cursor) is given
an existing one; a request the real Stripe would answer with a business error (an object the
demo does not hold, such as a coupon) is listed in :data:`BUSINESS_ERRORS` with that error, so
nothing is skipped silently.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from services.demo.dataset import generate
from services.demo.faults import FaultInjector
from services.demo.serving import ThreadedServers
from services.demo.spec_table import render_table
from services.demo.stripe import params as spec_params
from services.demo.stripe.app import OPERATIONS, create_app
from tests.specs import load_subset, validate_response

API_KEY = "sk_test_spec_walk_4eC39HqLyjWDarjtT1zdp7dc"
NOW = 1_700_000_000
DAY = 86400

#: parameter (leaf name) -> the list whose first object it names (``<ref:...>``, read from
#: the server when the request is sent)
REFS: dict[str, str] = {
    "customer": "/v1/customers", "subscription": "/v1/subscriptions", "product": "/v1/products",
    "ids": "/v1/products", "price": "/v1/prices?active=true&type=recurring", "coupon": "/v1/coupons",
    "tax_rates": "/v1/tax_rates", "default_tax_rates": "/v1/tax_rates", "invoice": "/v1/invoices",
    "charge": "/v1/charges", "payment_intent": "/v1/charges", "credit_note": "/v1/credit_notes",
}
#: parameter (leaf name) -> a plain valid value
PLAIN: dict[str, str] = {
    "currency": "usd", "type": "customer.created", "types": "customer.created", "email": "walk@spec.example",
    "country": "US", "lookup_keys": "x", "invoice_prefix": "SPEC1",
}
#: stands for the id of the item of the subscription an update is sent to
ITEM = "<the subscription's item>"
#: stands for a property of the operation's object that can be expanded, read from the object
EXPANDABLE = "<an expandable property>"
#: id prefix -> the property name that references it (what ``expand[]`` accepts)
_EXPANDABLE_PREFIXES = {"cus_": "customer", "sub_": "subscription", "in_": "invoice", "prod_": "product",
                        "price_": "price", "ch_": "charge", "re_": "refund", "cn_": "credit_note"}
#: stands for an id of the listed kind (``starting_after`` / ``ending_before``), read from the
#: list itself when the request is sent
CURSOR = "<an id from the list>"
#: integer parameters that are times: a moment the operation accepts (future for schedules)
TIMES: dict[str, int] = {
    "trial_end": NOW + 10 * DAY, "cancel_at": NOW + 40 * DAY, "billing_cycle_anchor": NOW + 5 * DAY,
    "backdate_start_date": NOW - DAY, "proration_date": NOW, "resumes_at": NOW + 30 * DAY,
    "created": NOW - 50 * DAY, "due_date": NOW, "current_period_end": NOW + 20 * DAY,
    "current_period_start": NOW - 10 * DAY, "gt": NOW - 500 * DAY, "gte": NOW - 500 * DAY,
    "lt": NOW + DAY, "lte": NOW + DAY,
}

#: the subscription writes
_SUB_WRITES = ("POST /v1/subscriptions", "POST /v1/subscriptions/{subscription_exposed_id}")

#: (operation, parameter path prefix) -> the business error the real Stripe answers for the value
#: built here, because the object it names does not exist in the demo's account (the demo holds
#: customers, prices, products, subscriptions, invoices and events only)
BUSINESS_ERRORS: dict[tuple[str, str], str] = {
    **{(op, param): "No such token" for op in ("POST /v1/customers", "POST /v1/customers/{customer}")
       for param in ("source=", 'card="', 'bank_account="')},
    **{("POST /v1/customers/{customer}", param): "No such source"
       for param in ("default_source", "default_card", "default_bank_account", "default_alipay_account")},
    # raw card and account numbers: Stripe refuses them unless the account is allowed to send them
    ("POST /v1/customers/{customer}", "card={"): "Sending credit card numbers directly",
    ("POST /v1/customers/{customer}", "bank_account={"): "Sending credit card numbers directly",
    ("POST /v1/customers", "payment_method"): "No such PaymentMethod",
    ("POST /v1/customers", "invoice_settings={\"default_payment_method\""): "No such PaymentMethod",
    ("POST /v1/customers/{customer}", "invoice_settings={\"default_payment_method\""): "No such PaymentMethod",
    ("POST /v1/customers", "promotion_code"): "No such promotion code",
    ("POST /v1/customers/{customer}", "promotion_code"): "No such promotion code",
    ("POST /v1/customers", "test_clock"): "No such test clock",
    # an item id of another subscription, and a second item with the subscription's own price
    ("POST /v1/subscriptions/{subscription_exposed_id}", 'items=[{"id": "x"'): "No such subscription_item",
    ("POST /v1/subscriptions/{subscription_exposed_id}", 'items=[{"price": "<ref'):
        "Cannot add multiple subscription items with the same price",
    # deleting the subscription's only item
    ("POST /v1/subscriptions/{subscription_exposed_id}", 'items=[{"deleted": "true"'):
        "must have at least one active item",
    # the subscription is in the currency of the first recurring price listed (not usd): a price or
    # invoice item in usd does not fit it
    ("POST /v1/subscriptions", 'currency="usd"'): "does not match the currency of the prices",
    **{(op, 'add_invoice_items=[{"price_data"'): "must match the subscription's currency"
       for op in _SUB_WRITES},
    ("POST /v1/subscriptions/{subscription_exposed_id}", 'items=[{"price_data"'):
        "same currency as the subscription",
    # "x" is no decimal amount
    ("POST /v1/subscriptions", 'items=[{"price_data": {"currency": "usd", "product": "<ref:/v1/products>", '
                               '"recurring": {"interval": "day"}, "unit_amount_decimal"'): "Invalid decimal",
    # the values Stripe permits where the request's schema says only "a string"
    **{(op, 'payment_settings={"payment_method_options": {"customer_balance": {"bank_transfer": '
            '{"eu_bank_transfer"'): "must be one of BE, DE, ES, FR, IE, or NL"
       for op in _SUB_WRITES},
    **{(op, 'payment_settings={"payment_method_options": {"customer_balance": {"funding_type"'):
       "must be bank_transfer" for op in _SUB_WRITES},
    # objects the demo's account does not hold, and Connect's fee outside Connect, as for customers
    **{(op, param): message for op in _SUB_WRITES
       for param, message in (('default_payment_method="x"', "No such PaymentMethod"),
                              ('default_source="x"', "No such source"),
                              ('promotion_code="x"', "No such promotion code"),
                              ('on_behalf_of="x"', "No such account"),
                              ("transfer_data={", "No such account"),
                              ("application_fee_percent", "Can only apply an application_fee_percent"))},
}


#: the codes of a refused parameter (what a documented parameter must never get)
_PARAMETER_CODES = ("parameter_unknown", "parameter_missing", "parameter_invalid_integer")

# --------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------


@dataclass
class Demo:
    http: httpx.Client


@pytest.fixture
def demo() -> Iterator[Demo]:
    store = generate(20, 1, anchor=NOW).billing
    app = create_app(store, FaultInjector("billing"), API_KEY, clock=lambda: NOW)
    with ThreadedServers({"billing": app}) as servers, httpx.Client(
            base_url=servers.url("billing"), headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10) as http:
        yield Demo(http)


# --------------------------------------------------------------------------------------
# Values from schemas
# --------------------------------------------------------------------------------------


def _scalar(schema: dict[str, Any], name: str, op: str) -> Any:
    kind = schema.get("type", "string")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "boolean":
        return "true"
    if kind == "integer":
        return str(TIMES.get(name, 1))
    if kind == "number":
        return "1.5"
    if name in ("starting_after", "ending_before"):
        return CURSOR
    if name == "expand":
        return EXPANDABLE
    value = f"<ref:{REFS[name]}>" if name in REFS else PLAIN.get(name, "x")
    limit = schema.get("maxLength")
    assert not isinstance(limit, int) or len(value) <= limit
    return value


def variants(schema: dict[str, Any], name: str, op: str) -> list[Any]:
    """Every shape of a valid value ``schema`` allows: each ``anyOf`` branch; for an object, one
    value per property (with the required ones); for an array, one item of each shape."""
    if "anyOf" in schema:
        return [v for branch in schema["anyOf"] for v in variants(branch, name, op)]
    if schema.get("type") == "object" or "properties" in schema:
        props: dict[str, Any] = schema.get("properties", {})
        required = {p: variants(props[p], p, op)[0] for p in schema.get("required", [])}
        out: list[Any] = []
        for prop, sub in props.items():
            # a subscription item is a price (or price data) with options; an update names the item
            companion: dict[str, Any] = {}
            if name == "items" and prop not in ("price", "price_data", "id"):
                companion = {"id": ITEM} if "id" in props else {"price": variants(props["price"], "price", op)[0]}
            out += [{**required, **companion, prop: v} for v in variants(sub, prop, op)]
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            out += [{**required, "key": v} for v in variants(extra, "key", op)]
        # (an object without properties cannot be sent as a form: Stripe's forms carry no empty hash)
        return out
    if schema.get("type") == "array":
        return [[item] for item in variants(schema.get("items", {}), name, op)]
    return [_scalar(schema, name, op)]


def form(value: Any, prefix: str) -> list[tuple[str, str]]:
    """Stripe's bracket encoding of a nested value."""
    if isinstance(value, dict):
        return [pair for key, sub in value.items() for pair in form(sub, f"{prefix}[{key}]")]
    if isinstance(value, list):
        return [pair for i, sub in enumerate(value) for pair in form(sub, f"{prefix}[{i}]")]
    return [(prefix, str(value))]


@dataclass(frozen=True)
class Case:
    op: str
    param: str
    value: Any

    @property
    def id(self) -> str:
        return f"{self.op} {self.param}={json.dumps(self.value, sort_keys=True)}"


def cases() -> list[Case]:
    out: list[Case] = []
    for method, path, _handler in OPERATIONS:
        op = f"{method} {path}"
        for name, schema in spec_params.operation(op)["params"].items():
            out += [Case(op, name, v) for v in variants(schema, name, op)]
    return out


CASES = cases()


# --------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------


def _new_customer(demo: Demo) -> str:
    resp = demo.http.post("/v1/customers", data={"name": "Spec walk", "email": "walk@spec.example"})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["id"])


def _new_subscription(demo: Demo) -> str:
    resp = demo.http.post("/v1/subscriptions", data={"customer": _new_customer(demo),
                                                      "items[0][price]": _first_id(demo, REFS["price"])})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["id"])


def _first_id(demo: Demo, list_path: str) -> str:
    path, _, query = list_path.partition("?")
    resp = demo.http.get(path, params=[("limit", "1"), *parse_qsl(query)])
    assert resp.status_code == 200, resp.text
    data = resp.json()["data"]
    assert data, f"{list_path} lists nothing: the case needs an existing object"
    return str(data[0]["id"])


def _concrete(demo: Demo, method: str, template: str) -> str:
    """``template`` with each ``{id}`` an existing object's (a new customer or subscription
    for an update, the first listed object otherwise)."""
    path = template
    while "{" in path:
        head, _, rest = path.partition("{")
        name, _, tail = rest.partition("}")
        if method == "POST" and name == "customer":
            oid = _new_customer(demo)
        elif method == "POST" and name == "subscription_exposed_id":
            oid = _new_subscription(demo)
        else:
            oid = _first_id(demo, head.rstrip("/"))
        path = head + oid + tail
    return path


def _expandable(demo: Demo, path: str, pairs: list[tuple[str, str]]) -> str:
    """A property of ``path``'s object (``data.`` + one of its items' for a list) that names
    another object, or ``""`` (the parameter sent empty) when it has none."""
    resp = demo.http.get(path)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    prefix = ""
    if body.get("object") == "list":
        assert body["data"], f"{path} lists nothing: the case needs an existing object"
        body, prefix = body["data"][0], "data."
    for key, value in body.items():
        if isinstance(value, str) and key in _EXPANDABLE_PREFIXES.values() and any(
                value.startswith(p) for p in _EXPANDABLE_PREFIXES):
            return prefix + key
    return ""


def send(demo: Demo, op: str, pairs: list[tuple[str, str]]) -> tuple[httpx.Response, str]:
    """The request of ``op`` with ``pairs`` (plus what the operation needs besides them: an
    existing object in its path, a customer and an item for a new subscription)."""
    method, template = op.split(" ", 1)
    sent = {k for k, _ in pairs}
    path = _concrete(demo, method, template)
    if any(v == CURSOR for _k, v in pairs):
        cursor = _first_id(demo, path)
        pairs = [(k, cursor if v == CURSOR else v) for k, v in pairs]
    pairs = [(k, _first_id(demo, v[5:-1]) if v.startswith("<ref:") else v) for k, v in pairs]
    if any(v == ITEM for _k, v in pairs):
        item = demo.http.get(path).json()["items"]["data"][0]["id"]
        pairs = [(k, item if v == ITEM else v) for k, v in pairs]
    if any(v == EXPANDABLE for _k, v in pairs):
        prop = _expandable(demo, path if method == "GET" else _concrete(demo, "GET", template), pairs)
        if method == "POST" and "{" not in template:  # a create answers one object, not a list
            prop = prop.removeprefix("data.")
        pairs = [(k, prop if v == EXPANDABLE else v) for k, v in pairs if v != EXPANDABLE or prop]
    if op == "POST /v1/subscriptions":
        if not any(k.startswith("customer") for k in sent):
            pairs = [("customer", _new_customer(demo)), *pairs]
        if not any(k.startswith("items") for k in sent):
            pairs = [*pairs, ("items[0][price]", _first_id(demo, REFS["price"]))]
    if method == "GET":
        return demo.http.get(path, params=pairs), path
    return demo.http.post(path, data=dict(pairs)), path


# --------------------------------------------------------------------------------------
# (a) the shipped table is the spec's
# --------------------------------------------------------------------------------------


def test_request_params_table_is_extracted_from_the_spec() -> None:
    spec = load_subset("stripe")
    extracted = spec_params.extract(spec)
    assert spec_params.load_table() == extracted
    served = {f"{m} {p}" for m, p, _h in OPERATIONS}
    assert served <= set(extracted), served - set(extracted)
    # the shipped file is exactly what `python -m services.demo.stripe.params` writes
    shipped = (spec_params.Path(spec_params.__file__).with_name(spec_params.TABLE_FILE)
               .read_text(encoding="utf-8"))
    assert shipped == render_table(extracted)


def test_every_served_operation_has_cases() -> None:
    by_op: dict[str, set[str]] = {}
    for case in CASES:
        by_op.setdefault(case.op, set()).add(case.param)
    for method, path, _h in OPERATIONS:
        op = f"{method} {path}"
        assert by_op.get(op, set()) == set(spec_params.operation(op)["params"]), op


# --------------------------------------------------------------------------------------
# (b) every documented parameter is accepted and answered as the spec says
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_documented_parameter_is_accepted(demo: Demo, case: Case) -> None:
    resp, path = send(demo, case.op, form(case.value, case.param))
    method = case.op.split(" ", 1)[0]
    body = resp.json()
    validate_response("stripe", method, path, resp.status_code, body)
    expected = next((err for (op, prefix), err in BUSINESS_ERRORS.items()
                     if op == case.op and case.id.startswith(f"{op} {prefix}")), None)
    if expected is None:
        assert resp.status_code == 200, resp.text
    else:
        assert resp.status_code in (400, 402, 404), resp.text
        assert expected in body["error"]["message"], resp.text
        assert body["error"].get("code") not in _PARAMETER_CODES, resp.text


# --------------------------------------------------------------------------------------
# (c) what the spec does not allow is refused, naming the parameter
# --------------------------------------------------------------------------------------

SERVED = [f"{m} {p}" for m, p, _h in OPERATIONS]


def _refused(demo: Demo, op: str, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    method, template = op.split(" ", 1)
    path = _concrete(demo, method, template)
    if method == "GET":
        resp = demo.http.get(path, params=pairs)
    else:
        resp = demo.http.post(path, data=dict(pairs))
    assert resp.status_code == 400, resp.text
    body = resp.json()
    validate_response("stripe", method, path, 400, body)
    error: dict[str, Any] = body["error"]
    assert error["type"] == "invalid_request_error"
    return error


@pytest.mark.parametrize("op", SERVED)
def test_unknown_top_level_parameter_is_refused(demo: Demo, op: str) -> None:
    error = _refused(demo, op, [("nickname", "x")])
    assert error["code"] == "parameter_unknown" and error["param"] == "nickname"
    assert error["message"] == "Received unknown parameter: nickname"


def _closed_objects() -> list[tuple[str, str, str]]:
    """(operation, parameter, one of its properties) for every object parameter whose keys
    the spec closes (no ``additionalProperties``)."""
    out = []
    for op in SERVED:
        for name, schema in spec_params.operation(op)["params"].items():
            branches = schema.get("anyOf", [schema])
            for b in branches:
                if b.get("properties") and "additionalProperties" not in b:
                    out.append((op, name, next(iter(b["properties"]))))
                    break
    return out


@pytest.mark.parametrize(("op", "name", "known"), _closed_objects())
def test_unknown_nested_parameter_is_refused(demo: Demo, op: str, name: str, known: str) -> None:
    error = _refused(demo, op, [(f"{name}[planet]", "Mars")])
    assert error["code"] == "parameter_unknown" and error["param"] == f"{name}[planet]"
    # two levels down, inside an array of objects too
    nested = [(op, n, s) for n, s in spec_params.operation(op)["params"].items()
              if s.get("type") == "array" and s.get("items", {}).get("properties")]
    for _op, array_name, _schema in nested:
        err = _refused(demo, op, [(f"{array_name}[0][planet]", "Mars")])
        assert err["param"] == f"{array_name}[0][planet]" and err["code"] == "parameter_unknown", err


def _typed_params() -> list[tuple[str, str, str]]:
    """(operation, parameter, a value of the wrong type) for every integer, boolean or object
    parameter the spec defines without alternatives."""
    wrong = {"integer": "twelve", "boolean": "maybe", "object": "plain text"}
    out = []
    for op in SERVED:
        for name, schema in spec_params.operation(op)["params"].items():
            kind = "object" if "properties" in schema else schema.get("type")
            if "anyOf" not in schema and kind in wrong:
                out.append((op, name, wrong[kind]))
    return out


@pytest.mark.parametrize(("op", "name", "value"), _typed_params())
def test_wrong_type_is_refused_naming_the_parameter(demo: Demo, op: str, name: str, value: str) -> None:
    error = _refused(demo, op, [(name, value)])
    assert error["param"] == name and error.get("code") != "parameter_unknown", error
    assert error["message"].startswith("Invalid "), error


def _enums() -> list[tuple[str, str]]:
    return [(op, name) for op in SERVED for name, schema in spec_params.operation(op)["params"].items()
            if "enum" in schema and schema.get("type", "string") == "string"]


@pytest.mark.parametrize(("op", "name"), _enums())
def test_out_of_enum_value_is_refused_naming_the_parameter(demo: Demo, op: str, name: str) -> None:
    error = _refused(demo, op, [(name, "not_an_option")])
    assert error["param"] == name and error.get("code") != "parameter_unknown", error
    assert "must be one of" in error["message"], error


def test_the_walk_covers_every_kind_of_check() -> None:
    """The refusal tests have something to refuse (the spec's table is not empty of them)."""
    assert _closed_objects() and _typed_params() and _enums()
    assert {op for op, _n, _v in _typed_params()} >= {"GET /v1/customers", "POST /v1/subscriptions"}
