"""The validator behind ``tests.specs`` is strict where it must be and lets through what the specs allow.

The demo-server tests (``tests/demo``) trust ``validate_response``/``validate_component`` to fail on
a body the official subsets forbid; these tests hold the validator itself to that: a wrong type, a
missing required field, ``null`` where the schema is not ``nullable``, a malformed ``date-time`` and a
``writeOnly`` property in an answer are all rejected, while real answers of the demo servers and
``null`` in every kind of ``nullable`` field (typed, ``enum``, ``anyOf``) pass.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from jsonschema import ValidationError

from services.core.domain import System
from services.demo.environment import DemoEnvironment, DemoOptions
from tests.specs import SPECS, load_subset, subset_path, validate_component, validate_response


@pytest.fixture(scope="module")
def answers() -> Iterator[dict[str, Any]]:
    """Real answers of the demo Stripe and Zendesk servers over a small generated company."""
    with DemoEnvironment(DemoOptions(customers=6, seed=3)) as env:
        creds = env.dataset.credentials
        billing = httpx.Client(base_url=env.urls[System.BILLING], timeout=10,
                               headers={"Authorization": f"Bearer {creds.stripe_api_key}"})
        raw = base64.b64encode(f"{creds.zendesk_email}/token:{creds.zendesk_token}".encode()).decode()
        support = httpx.Client(base_url=env.urls[System.SUPPORT], timeout=10,
                               headers={"Authorization": f"Basic {raw}"})
        with billing, support:
            out: dict[str, Any] = {}
            for name, client, path in (
                ("customers", billing, "/v1/customers"),
                ("subscriptions", billing, "/v1/subscriptions"),
                ("invoices", billing, "/v1/invoices"),
                ("organizations", support, "/api/v2/organizations.json"),
                ("tickets", support, "/api/v2/tickets.json"),
            ):
                resp = client.get(path, params={"limit": 100} if client is billing else None)
                assert resp.status_code == 200, resp.text
                out[name] = resp.json()
            yield out


def stripe_list(answers: dict[str, Any], name: str) -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy(answers[name])
    assert body["data"], f"the demo company has no {name}"
    return body


def test_subsets_ship_with_the_repository() -> None:
    for vendor in ("stripe", "zendesk"):
        path = subset_path(vendor)
        assert path.is_relative_to(SPECS) and path.is_file()
        assert load_subset(vendor)["paths"], vendor
    assert (SPECS / "README.md").is_file() and (SPECS / "tryton" / "README.md").is_file()


def test_real_demo_answers_are_accepted(answers: dict[str, Any]) -> None:
    for name, path in (("customers", "/v1/customers"), ("subscriptions", "/v1/subscriptions"),
                       ("invoices", "/v1/invoices")):
        body = stripe_list(answers, name)
        validate_response("stripe", "GET", path, 200, body)
        validate_component("stripe", name[:-1], body["data"][0])
    assert answers["organizations"]["organizations"] and answers["tickets"]["tickets"]
    validate_response("zendesk", "GET", "/api/v2/organizations", 200, answers["organizations"])
    validate_response("zendesk", "GET", "/api/v2/tickets", 200, answers["tickets"])


@pytest.mark.parametrize(("field", "wrong"), [("balance", "0"), ("livemode", "false"), ("created", 1.5),
                                              ("metadata", []), ("id", 42)])
def test_a_wrong_type_is_rejected(answers: dict[str, Any], field: str, wrong: Any) -> None:
    body = stripe_list(answers, "customers")
    body["data"][0][field] = wrong
    with pytest.raises(ValidationError):
        validate_response("stripe", "GET", "/v1/customers", 200, body)
    with pytest.raises(ValidationError):
        validate_component("stripe", "customer", body["data"][0])


def test_a_wrong_type_is_rejected_by_the_zendesk_subset(answers: dict[str, Any]) -> None:
    body = copy.deepcopy(answers["organizations"])
    body["organizations"][0]["id"] = str(body["organizations"][0]["id"])
    with pytest.raises(ValidationError, match="is not of type 'integer'"):
        validate_response("zendesk", "GET", "/api/v2/organizations", 200, body)


@pytest.mark.parametrize("field", ["id", "object", "created", "livemode"])
def test_a_missing_required_field_is_rejected(answers: dict[str, Any], field: str) -> None:
    body = stripe_list(answers, "customers")
    del body["data"][0][field]
    with pytest.raises(ValidationError, match=f"'{field}' is a required property"):
        validate_response("stripe", "GET", "/v1/customers", 200, body)
    envelope = stripe_list(answers, "customers")
    del envelope["has_more"]
    with pytest.raises(ValidationError, match="'has_more' is a required property"):
        validate_response("stripe", "GET", "/v1/customers", 200, envelope)


def test_a_missing_required_field_is_rejected_by_the_zendesk_subset(answers: dict[str, Any]) -> None:
    body = copy.deepcopy(answers["tickets"])
    del body["tickets"][0]["requester_id"]
    with pytest.raises(ValidationError, match="'requester_id' is a required property"):
        validate_response("zendesk", "GET", "/api/v2/tickets", 200, body)


@pytest.mark.parametrize("field", [
    "description",  # nullable string
    "preferred_locales",  # nullable array
    "tax_exempt",  # nullable enum
    "address",  # nullable anyOf [$ref address]
    "default_source",  # nullable anyOf [string, bank_account, card, source]
])
def test_nullable_fields_accept_null(answers: dict[str, Any], field: str) -> None:
    body = stripe_list(answers, "customers")
    body["data"][0][field] = None
    validate_response("stripe", "GET", "/v1/customers", 200, body)
    validate_component("stripe", "customer", body["data"][0])


@pytest.mark.parametrize("field", ["balance", "livemode", "metadata", "invoice_settings", "object"])
def test_null_is_rejected_where_the_schema_is_not_nullable(answers: dict[str, Any], field: str) -> None:
    body = stripe_list(answers, "customers")
    body["data"][0][field] = None
    with pytest.raises(ValidationError):
        validate_component("stripe", "customer", body["data"][0])


def test_a_nullable_enum_still_rejects_a_value_outside_it(answers: dict[str, Any]) -> None:
    body = stripe_list(answers, "customers")
    body["data"][0]["tax_exempt"] = "sometimes"
    with pytest.raises(ValidationError, match="is not one of"):
        validate_component("stripe", "customer", body["data"][0])


def test_a_nullable_anyof_still_rejects_a_wrong_object(answers: dict[str, Any]) -> None:
    body = stripe_list(answers, "customers")
    body["data"][0]["address"] = {"city": 7}
    with pytest.raises(ValidationError):
        validate_component("stripe", "customer", body["data"][0])


def test_formats_are_checked(answers: dict[str, Any]) -> None:
    body = copy.deepcopy(answers["tickets"])
    assert "created_at" in body["tickets"][0]
    body["tickets"][0]["created_at"] = "yesterday"
    with pytest.raises(ValidationError, match="is not a 'date-time'"):
        validate_response("zendesk", "GET", "/api/v2/tickets", 200, body)


def test_a_write_only_property_in_an_answer_is_rejected(answers: dict[str, Any]) -> None:
    body = copy.deepcopy(answers["tickets"])
    body["tickets"][0]["comment"] = {"body": "a request field, never answered"}
    with pytest.raises(ValidationError, match="write-only"):
        validate_response("zendesk", "GET", "/api/v2/tickets", 200, body)


def test_a_missing_subset_is_an_error_not_a_skip() -> None:
    with pytest.raises(FileNotFoundError, match="ships with the repository"):
        load_subset("no-such-vendor")
