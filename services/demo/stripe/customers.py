"""``/v1/customers``: list, retrieve, create and update customers (a customer's ``tax_id`` rides
in its metadata)."""

from __future__ import annotations

import copy
import re
from typing import Any

from services.demo.store import BCustomer
from services.demo.stripe.api_base import ApiBase
from services.demo.stripe.calls import _Call
from services.demo.stripe.errors import _invalid
from services.demo.stripe.forms import _as_str, _check_keys, _opt_str
from services.demo.stripe.lists import _LIST_PARAMS, CreatedRange, _parse_created
from services.demo.stripe.metadata import _apply_metadata, _parse_metadata
from services.demo.stripe.responses import JSON
from services.demo.stripe.serializers.customers import render_customer
from services.demo.stripe.serializers.events import _diff


class CustomersApi(ApiBase):
    """The customer endpoints."""

    def list_customers(self, call: _Call) -> JSON:
        p = call.params
        _check_keys(p, (*_LIST_PARAMS, "email", "created"))
        rng = _parse_created(p["created"]) if "created" in p else CreatedRange()
        email = _as_str(p["email"], "email") if "email" in p else None
        customers = self.store.customers

        def match(oid: str) -> bool:
            c = customers[oid]
            return not c.deleted and (email is None or c.email == email)

        return self.list_page(call, "customer", "/v1/customers", None, rng, match,
                              lambda oid: render_customer(self.store, customers[oid]))

    def retrieve_customer(self, call: _Call) -> JSON:
        _check_keys(call.params, ("expand",))
        c = self.get_customer(call.path_param("customer"), allow_deleted=True)
        return self.respond(call, render_customer(self.store, c))

    _CUSTOMER_FIELDS = ("name", "email", "description", "phone")

    def _customer_changes(self, p: dict[str, Any]) -> tuple[dict[str, str | None], Any, Any]:
        _check_keys(p, (*self._CUSTOMER_FIELDS, "metadata", "address", "expand"))
        fields_: dict[str, str | None] = {f: _opt_str(_as_str(p[f], f)) for f in self._CUSTOMER_FIELDS if f in p}
        metadata = _parse_metadata(p["metadata"]) if "metadata" in p else ...
        address: Any = ...
        if "address" in p:
            addr = p["address"]
            if addr == "":
                address = None
            elif isinstance(addr, dict):
                _check_keys(addr, ("country",), "address")
                country = _opt_str(_as_str(addr.get("country", ""), "address[country]"))
                if country is not None and not re.fullmatch(r"[A-Za-z]{2}", country):
                    raise _invalid("Country must be a two-letter ISO code.", "address[country]")
                address = country.upper() if country else None
            else:
                raise _invalid("Invalid object", "address")
        return fields_, metadata, address

    def create_customer(self, call: _Call) -> JSON:
        fields_, metadata, country = self._customer_changes(call.params)
        c = BCustomer(id=self.store.new_id("cus"), created=call.now, name=fields_.get("name") or "",
                      email=fields_.get("email"), country=None if country is ... else country, tax_id=None,
                      description=fields_.get("description"), phone=fields_.get("phone"))
        if metadata is not ... and metadata is not None:
            tax = metadata.pop("tax_id", None)
            c.tax_id = tax
            c.metadata = {k: v for k, v in metadata.items() if v is not None}
        self.store.add_customer(c)
        snapshot = render_customer(self.store, c)
        self.emit(call, "customer.created", "customer", c.id, snapshot)
        call.wrote = True
        return self.respond(call, copy.deepcopy(snapshot))

    def update_customer(self, call: _Call) -> JSON:
        c = self.get_customer(call.path_param("customer"))
        fields_, metadata, country = self._customer_changes(call.params)
        before = render_customer(self.store, c)
        for name, value in fields_.items():
            setattr(c, name, value if name != "name" else (value or ""))
        if country is not ...:
            c.country = country
        if metadata is not ...:
            self._update_customer_metadata(c, metadata)
        after = render_customer(self.store, c)
        previous = _diff(before, after)
        if previous:
            self.emit(call, "customer.updated", "customer", c.id, after, previous)
            call.wrote = True
        return self.respond(call, copy.deepcopy(after))

    @staticmethod
    def _update_customer_metadata(c: BCustomer, metadata: dict[str, str | None] | None) -> None:
        if metadata is None:
            c.metadata.clear()
            c.tax_id = None
            return
        if "tax_id" in metadata:
            c.tax_id = metadata.pop("tax_id")
        _apply_metadata(c.metadata, metadata)
