"""``/v1/customers``: list, retrieve, create and update customers (a customer's ``tax_id`` rides
in its metadata).

Every parameter Stripe's spec defines for these operations is taken (``params.py`` has already
checked its type): name, email, description, phone, metadata and the address's country live in
the record's own fields; the rest of the address, ``balance``, ``invoice_prefix``,
``next_invoice_sequence``, ``invoice_settings``, ``preferred_locales``, ``shipping``,
``tax_exempt``, ``tax[ip_address]``, ``cash_balance`` settings, ``tax_id_data`` and ``test_clock``
are kept in ``extra`` and answered as Stripe answers them; parameters naming objects the demo does
not hold (coupons, payment methods, sources ...) are answered as Stripe answers an unknown id
(``references.py``)."""

from __future__ import annotations

import copy
import re
from typing import Any

from services.demo.store import BCustomer
from services.demo.stripe.api_base import ApiBase
from services.demo.stripe.calls import _Call
from services.demo.stripe.errors import _invalid
from services.demo.stripe.forms import _as_str, _opt_str
from services.demo.stripe.lists import CreatedRange, _parse_created
from services.demo.stripe.metadata import _apply_metadata, _parse_metadata
from services.demo.stripe.references import check_test_clock, refuse_references
from services.demo.stripe.responses import JSON
from services.demo.stripe.serializers.customers import render_customer
from services.demo.stripe.serializers.events import _diff

#: parameters naming objects the demo billing server does not hold
_REFERENCES = ("coupon", "promotion_code", "payment_method", "source", "card", "bank_account", "default_source",
               "default_card", "default_bank_account", "default_alipay_account")
_ADDRESS_PARTS = ("city", "line1", "line2", "postal_code", "state")


class CustomersApi(ApiBase):
    """The customer endpoints."""

    def list_customers(self, call: _Call) -> JSON:
        p = call.params
        rng = _parse_created(p["created"]) if "created" in p else CreatedRange()
        email = _as_str(p["email"], "email") if "email" in p else None
        # Stripe: customers in a test clock are listed only when that clock is asked for
        clock = call.typed.get("test_clock") or None
        customers = self.store.customers

        def match(oid: str) -> bool:
            c = customers[oid]
            return (not c.deleted and (email is None or c.email == email)
                    and c.extra.get("test_clock") == clock)

        return self.list_page(call, "customer", "/v1/customers", None, rng, match,
                              lambda oid: render_customer(self.store, customers[oid]))

    def retrieve_customer(self, call: _Call) -> JSON:
        c = self.get_customer(call.path_param("customer"), allow_deleted=True)
        return self.respond(call, render_customer(self.store, c))

    _CUSTOMER_FIELDS = ("name", "email", "description", "phone")

    def _customer_changes(self, p: dict[str, Any]) -> tuple[dict[str, str | None], Any, Any]:
        fields_: dict[str, str | None] = {f: _opt_str(_as_str(p[f], f)) for f in self._CUSTOMER_FIELDS if f in p}
        metadata = _parse_metadata(p["metadata"]) if "metadata" in p else ...
        address: Any = ...
        if "address" in p:
            addr = p["address"]
            if addr == "":
                address = None
            elif isinstance(addr, dict):
                country = _opt_str(_as_str(addr.get("country", ""), "address[country]"))
                if country is not None and not re.fullmatch(r"[A-Za-z]{2}", country):
                    raise _invalid("Country must be a two-letter ISO code.", "address[country]")
                address = country.upper() if country else None
            else:
                raise _invalid("Invalid object", "address")
        return fields_, metadata, address

    def _extra_changes(self, call: _Call, creating: bool) -> dict[str, Any]:
        """The ``extra`` values the request sets (``None`` removes one)."""
        t = call.typed
        out: dict[str, Any] = {}
        coupon = t.get("coupon")
        if coupon is not None and coupon != "" and coupon in self.store.coupons:
            # a coupon the account has: the customer's discount from now on (G1), as Stripe applies it
            self.store.coupons[coupon].times_redeemed += 1
            out["discount"] = {"id": self.store.new_id("di"), "coupon": coupon, "start": call.now, "end": None}
        elif "coupon" in t and (coupon is None or coupon == ""):
            out["discount"] = None
        refuse_references(t, [n for n in _REFERENCES if n != "coupon" or "discount" not in out])
        refuse_references(t.get("invoice_settings") or {}, ("default_payment_method",), "invoice_settings")
        if "address" in t:
            parts = {k: v for k, v in (t["address"] or {}).items() if k in _ADDRESS_PARTS and v}
            out["address"] = parts or None
        if "balance" in t:
            out["balance"] = t["balance"]
        if "invoice_prefix" in t:
            prefix = t["invoice_prefix"]
            if prefix and not re.fullmatch(r"[A-Z0-9]{3,12}", prefix):
                raise _invalid("Invoice prefix must be 3 to 12 uppercase letters or numbers.", "invoice_prefix")
            out["invoice_prefix"] = prefix or None
        if "next_invoice_sequence" in t:
            if t["next_invoice_sequence"] < 1:
                raise _invalid("This value must be greater than or equal to 1.", "next_invoice_sequence")
            out["next_invoice_sequence"] = t["next_invoice_sequence"]
        if "preferred_locales" in t:
            out["preferred_locales"] = list(t["preferred_locales"] or [])
        if "shipping" in t:
            ship = t["shipping"]
            out["shipping"] = None if not ship else {
                "address": {k: v for k, v in ship["address"].items() if v}, "name": ship["name"],
                "phone": ship.get("phone") or None}
        if "tax_exempt" in t:
            out["tax_exempt"] = t["tax_exempt"] or "none"
        if "tax" in t and t["tax"] is not None:
            out["tax_ip_address"] = t["tax"].get("ip_address") or None
        if "cash_balance" in t:
            settings = (t["cash_balance"] or {}).get("settings") or {}
            out["cash_balance_reconciliation_mode"] = settings.get("reconciliation_mode")
        if "test_clock" in t:
            out["test_clock"] = check_test_clock(self.store, t["test_clock"])
        if creating and t.get("tax_id_data"):
            out["tax_ids"] = [{"id": self.store.new_id("txi"), "type": d["type"], "value": d["value"],
                               "created": call.now, "country": _tax_id_country(d["type"], d["value"])}
                              for d in t["tax_id_data"]]
        return out

    def _apply_extra(self, c: BCustomer, changes: dict[str, Any], settings: Any) -> None:
        for key, value in changes.items():
            if value is None:
                c.extra.pop(key, None)
            else:
                c.extra[key] = value
        if settings is not None:  # invoice_settings: the keys sent replace theirs
            merged = dict(c.extra.get("invoice_settings") or {})
            for key, value in settings.items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            c.extra["invoice_settings"] = merged

    def create_customer(self, call: _Call) -> JSON:
        fields_, metadata, country = self._customer_changes(call.params)
        extra = self._extra_changes(call, creating=True)
        c = BCustomer(id=self.store.new_id("cus"), created=call.now, name=fields_.get("name") or "",
                      email=fields_.get("email"), country=None if country is ... else country, tax_id=None,
                      description=fields_.get("description"), phone=fields_.get("phone"))
        if metadata is not ... and metadata is not None:
            tax = metadata.pop("tax_id", None)
            c.tax_id = tax
            c.metadata = {k: v for k, v in metadata.items() if v is not None}
        self._apply_extra(c, extra, call.typed.get("invoice_settings"))
        self.store.add_customer(c)
        snapshot = render_customer(self.store, c)
        self.emit(call, "customer.created", "customer", c.id, snapshot)
        call.wrote = True
        return self.respond(call, copy.deepcopy(snapshot))

    def update_customer(self, call: _Call) -> JSON:
        c = self.get_customer(call.path_param("customer"))
        fields_, metadata, country = self._customer_changes(call.params)
        extra = self._extra_changes(call, creating=False)
        before = render_customer(self.store, c)
        for name, value in fields_.items():
            setattr(c, name, value if name != "name" else (value or ""))
        if country is not ...:
            c.country = country
        if metadata is not ...:
            self._update_customer_metadata(c, metadata)
        self._apply_extra(c, extra, call.typed.get("invoice_settings"))
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


def _tax_id_country(kind: str, value: str) -> str | None:
    """The country Stripe gives a tax id: its type's prefix (``eu_vat``: the number's own)."""
    if kind in ("eu_vat", "eu_oss_vat"):
        prefix = value[:2].upper()
        return "GR" if prefix == "EL" else prefix if prefix.isalpha() else None
    head = kind.split("_", 1)[0]
    return head.upper() if len(head) == 2 else None
