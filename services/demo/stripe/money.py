"""The money endpoints (read-only, as the demo company's history made them): ``/v1/tax_rates``
(list by ``active``, ``inclusive``, ``created``; retrieve), ``/v1/coupons`` (list, retrieve),
``/v1/credit_notes`` (list by ``customer`` / ``invoice``; retrieve; a note's ``lines``),
``/v1/charges`` (list by ``customer`` / ``payment_intent``, ``created``; retrieve) and
``/v1/refunds`` (list by ``charge`` / ``payment_intent``, ``created``; retrieve)."""

from __future__ import annotations

from typing import Any

from services.demo.stripe.api_base import ApiBase
from services.demo.stripe.calls import _Call
from services.demo.stripe.errors import _invalid, _no_such
from services.demo.stripe.forms import _as_bool, _as_str
from services.demo.stripe.lists import CreatedRange, _parse_created, _parse_limit
from services.demo.stripe.responses import JSON
from services.demo.stripe.serializers.money import (
    credit_note_lines,
    render_charge,
    render_coupon,
    render_credit_note,
    render_refund,
    render_tax_rate,
)


def _opt_str(p: dict[str, Any], name: str) -> str | None:
    return _as_str(p[name], name) if name in p and p[name] != "" else None


class MoneyApi(ApiBase):
    """Tax rates, coupons, credit notes, charges and refunds."""

    def _created(self, call: _Call) -> CreatedRange:
        return _parse_created(call.params["created"]) if "created" in call.params else CreatedRange()

    # ---- tax rates ----------------------------------------------------------------------

    def list_tax_rates(self, call: _Call) -> JSON:
        p = call.params
        active = _as_bool(p["active"], "active") if "active" in p else None
        inclusive = _as_bool(p["inclusive"], "inclusive") if "inclusive" in p else None
        rates = self.store.tax_rates

        def match(oid: str) -> bool:
            r = rates[oid]
            return (active is None or r.active == active) and (inclusive is None or r.inclusive == inclusive)

        return self.list_page(call, "tax_rate", "/v1/tax_rates", None, self._created(call), match,
                              lambda oid: render_tax_rate(rates[oid]))

    def retrieve_tax_rate(self, call: _Call) -> JSON:
        oid = call.path_param("tax_rate")
        r = self.store.tax_rates.get(oid)
        if r is None:
            raise _no_such("tax_rate", oid, param="tax_rate")
        return self.respond(call, render_tax_rate(r))

    # ---- coupons ------------------------------------------------------------------------

    def list_coupons(self, call: _Call) -> JSON:
        coupons = self.store.coupons
        return self.list_page(call, "coupon", "/v1/coupons", None, self._created(call), lambda oid: True,
                              lambda oid: render_coupon(coupons[oid]))

    def retrieve_coupon(self, call: _Call) -> JSON:
        oid = call.path_param("coupon")
        c = self.store.coupons.get(oid)
        if c is None:
            raise _no_such("coupon", oid, param="coupon")
        return self.respond(call, render_coupon(c))

    # ---- credit notes -------------------------------------------------------------------

    def list_credit_notes(self, call: _Call) -> JSON:
        customer = _opt_str(call.params, "customer")
        invoice = _opt_str(call.params, "invoice")
        notes = self.store.credit_notes

        def match(oid: str) -> bool:
            cn = notes[oid]
            return (customer is None or cn.customer == customer) and (invoice is None or cn.invoice == invoice)

        return self.list_page(call, "credit_note", "/v1/credit_notes", None, CreatedRange(), match,
                              lambda oid: render_credit_note(self.store, notes[oid]))

    def retrieve_credit_note(self, call: _Call) -> JSON:
        oid = call.path_param("id")
        cn = self.store.credit_notes.get(oid)
        if cn is None:
            raise _no_such("credit_note", oid)
        return self.respond(call, render_credit_note(self.store, cn))

    def list_credit_note_lines(self, call: _Call) -> JSON:
        """A credit note's lines in their order, paged by ``starting_after`` / ``ending_before``."""
        oid = call.path_param("credit_note")
        cn = self.store.credit_notes.get(oid)
        if cn is None:
            raise _no_such("credit_note", oid, param="credit_note")
        p = call.params
        limit = _parse_limit(p)
        lines = credit_note_lines(self.store, cn)
        ids = [ln["id"] for ln in lines]
        after, before = _opt_str(p, "starting_after"), _opt_str(p, "ending_before")
        if after and before:
            raise _invalid("You may only specify one of these parameters: ending_before, starting_after.",
                           "ending_before")
        for name, cursor in (("starting_after", after), ("ending_before", before)):
            if cursor is not None and cursor not in ids:
                raise _no_such("credit_note_line_item", cursor, param=name, status=400)
        if after is not None:
            window = lines[ids.index(after) + 1:]
            page, more = window[:limit], len(window) > limit
        elif before is not None:
            window = lines[:ids.index(before)]
            page, more = window[-limit:], len(window) > limit
        else:
            page, more = lines[:limit], len(lines) > limit
        body: JSON = {"object": "list", "data": page, "has_more": more, "url": f"/v1/credit_notes/{oid}/lines"}
        return self.respond(call, body)

    # ---- charges and refunds ------------------------------------------------------------

    def list_charges(self, call: _Call) -> JSON:
        customer = _opt_str(call.params, "customer")
        intent = _opt_str(call.params, "payment_intent")
        group = _opt_str(call.params, "transfer_group")
        charges = self.store.charges

        def match(oid: str) -> bool:
            ch = charges[oid]
            return (group is None and (customer is None or ch.customer == customer)
                    and (intent is None or ch.payment_intent == intent))

        return self.list_page(call, "charge", "/v1/charges", None, self._created(call), match,
                              lambda oid: render_charge(self.store, charges[oid]))

    def retrieve_charge(self, call: _Call) -> JSON:
        oid = call.path_param("charge")
        ch = self.store.charges.get(oid)
        if ch is None:
            raise _no_such("charge", oid, param="charge")
        return self.respond(call, render_charge(self.store, ch))

    def list_refunds(self, call: _Call) -> JSON:
        charge = _opt_str(call.params, "charge")
        intent = _opt_str(call.params, "payment_intent")
        refunds = self.store.refunds

        def match(oid: str) -> bool:
            r = refunds[oid]
            return (charge is None or r.charge == charge) and (intent is None or r.payment_intent == intent)

        return self.list_page(call, "refund", "/v1/refunds", None, self._created(call), match,
                              lambda oid: render_refund(refunds[oid]))

    def retrieve_refund(self, call: _Call) -> JSON:
        oid = call.path_param("refund")
        r = self.store.refunds.get(oid)
        if r is None:
            raise _no_such("refund", oid, param="refund")
        return self.respond(call, render_refund(r))
