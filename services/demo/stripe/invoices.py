"""``/v1/invoices``: list (by customer, subscription, status, collection method, created and due
date) and retrieve."""

from __future__ import annotations

from services.demo.stripe.api_base import ApiBase
from services.demo.stripe.calls import _Call
from services.demo.stripe.errors import _invalid, _no_such
from services.demo.stripe.forms import _as_str
from services.demo.stripe.lists import CreatedRange, _parse_created
from services.demo.stripe.responses import JSON
from services.demo.stripe.serializers.invoices import render_invoice

INVOICE_STATUSES = ("draft", "open", "paid", "uncollectible", "void")


class InvoicesApi(ApiBase):
    """The invoice endpoints."""

    def list_invoices(self, call: _Call) -> JSON:
        p = call.params
        due = _parse_created(p["due_date"], "due_date") if "due_date" in p else None
        rng = _parse_created(p["created"]) if "created" in p else CreatedRange()
        status = _as_str(p["status"], "status") if "status" in p else None
        if status is not None and status not in INVOICE_STATUSES:
            raise _invalid(f"Invalid status: must be one of {', '.join(INVOICE_STATUSES)}", "status")
        method = _as_str(p["collection_method"], "collection_method") if "collection_method" in p else None
        customer = _as_str(p["customer"], "customer") if "customer" in p else None
        subscription = _as_str(p["subscription"], "subscription") if "subscription" in p else None
        invoices = self.store.invoices
        index = self.index("invoice")
        candidates: list[int] | None = None
        if subscription is not None:
            candidates = index.positions(self.store.invoices_by_subscription.get(subscription, ()))
        elif customer is not None:
            candidates = index.positions(self.store.invoices_by_customer.get(customer, ()))

        def match(oid: str) -> bool:
            inv = invoices[oid]
            due_date = inv.extra.get("due_date")
            return ((status is None or inv.status == status) and (customer is None or inv.customer == customer)
                    and (subscription is None or inv.subscription == subscription)
                    and (method is None or method == inv.extra.get("collection_method", "charge_automatically"))
                    and (due is None or (due_date is not None and due.contains(due_date))))

        return self.list_page(call, "invoice", "/v1/invoices", candidates, rng, match,
                              lambda oid: render_invoice(self.store, invoices[oid]))

    def retrieve_invoice(self, call: _Call) -> JSON:
        oid = call.path_param("invoice")
        inv = self.store.invoices.get(oid)
        if inv is None:
            raise _no_such("invoice", oid, param="invoice")
        return self.respond(call, render_invoice(self.store, inv))
