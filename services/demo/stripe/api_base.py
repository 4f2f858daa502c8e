"""What every resource's handlers share: the server's state (store, API key, clock, list
indexes, idempotency store) and the helpers they call (emit an event, respond with
``expand[]``, serve a list page, look up a customer, subscription or price)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.demo.store import BCustomer, BEvent, BillingStore, BPrice, BSubscription
from services.demo.stripe.calls import _Call
from services.demo.stripe.errors import _invalid, _no_such
from services.demo.stripe.expand import apply_expand
from services.demo.stripe.forms import _as_list, _as_str
from services.demo.stripe.idempotency import _IdemEntry
from services.demo.stripe.lists import CreatedRange, OrderIndex, _parse_limit, paginate
from services.demo.stripe.responses import JSON


@dataclass
class ApiBase:
    """The state and shared helpers of the demo Stripe API (the handlers live in one subclass per
    resource family; :class:`~services.demo.stripe.app.StripeApi` joins them)."""

    store: BillingStore
    api_key: str
    clock: Callable[[], int]
    indexes: dict[str, OrderIndex] = field(default_factory=dict)
    idempotency: dict[str, _IdemEntry] = field(default_factory=dict)
    #: restricted keys (``rk_…``) besides the secret key: key -> {resource: "read" | "write"}
    #: (resources as Stripe names the permissions: ``customer``, ``invoice``, ``plan``…; write
    #: implies read, a resource left out is "None"), see ``StripeApi.authorize``
    restricted_keys: dict[str, dict[str, str]] = field(default_factory=dict)

    # ---- plumbing -------------------------------------------------------------------

    def index(self, kind: str) -> OrderIndex:
        sources: dict[str, dict[str, Any] | list[Any]] = {
            "customer": self.store.customers, "subscription": self.store.subscriptions,
            "invoice": self.store.invoices, "price": self.store.prices, "product": self.store.products,
            "event": self.store.events, "tax_rate": self.store.tax_rates, "coupon": self.store.coupons,
            "credit_note": self.store.credit_notes, "charge": self.store.charges, "refund": self.store.refunds,
        }
        source = sources[kind]
        idx = self.indexes.get(kind)
        if idx is None:
            idx = self.indexes[kind] = OrderIndex()
        idx.sync(source)
        return idx

    def emit(self, call: _Call, type_: str, kind: str, oid: str, snapshot: JSON,
             previous: JSON | None = None) -> BEvent:
        event = BEvent(id=self.store.new_id("evt"), type=type_, created=call.now, object_kind=kind,
                       object_id=oid, snapshot=snapshot, previous_attributes=previous,
                       request_id=call.request_id, idempotency_key=call.idempotency_key)
        self.store.events.append(event)
        return event

    @staticmethod
    def _expand_list(call: _Call) -> list[str]:
        return [str(x) for x in _as_list(call.params.get("expand", []), "expand")]

    def respond(self, call: _Call, body: JSON) -> JSON:
        expand = self._expand_list(call)
        return apply_expand(self.store, body, expand, call.now) if expand else body

    def list_page(self, call: _Call, kind: str, url: str, candidates: Sequence[int] | None,
                  rng: CreatedRange, match: Callable[[str], bool],
                  render: Callable[[str], JSON]) -> JSON:
        """Shared list logic: cursors, limit, filtering, rendering, expansion."""
        params = call.params
        limit = _parse_limit(params)
        index = self.index(kind)
        starting_after = self._cursor(index, kind, params, "starting_after")
        ending_before = self._cursor(index, kind, params, "ending_before")
        if starting_after and ending_before:
            raise _invalid("You may only specify one of these parameters: ending_before, starting_after.",
                           "ending_before")
        if candidates is None:
            candidates = index.span(rng)
        elif rng.lo is not None or rng.hi is not None:
            created = index.created
            candidates = [p for p in candidates if rng.contains(created[p])]
        page = paginate(index, candidates, match, limit, starting_after, ending_before)
        body: JSON = {"object": "list", "data": [render(oid) for oid in page.ids],
                      "has_more": page.has_more, "url": url}
        return self.respond(call, body)

    @staticmethod
    def _cursor(index: OrderIndex, kind: str, params: dict[str, Any], name: str) -> str | None:
        if name not in params or params[name] == "":
            return None
        oid = _as_str(params[name], name)
        if oid not in index.pos:
            raise _no_such(kind, oid, param=name, status=400)
        return oid

    # ---- lookups --------------------------------------------------------------------

    def get_customer(self, oid: str, param: str = "id", status: int = 404,
                     allow_deleted: bool = False) -> BCustomer:
        c = self.store.customers.get(oid)
        if c is None or (c.deleted and not allow_deleted):
            raise _no_such("customer", oid, param=param, status=status)
        return c

    def get_subscription(self, oid: str) -> BSubscription:
        s = self.store.subscriptions.get(oid)
        if s is None:
            raise _no_such("subscription", oid)
        return s

    def get_price(self, oid: Any, param: str) -> BPrice:
        pid = _as_str(oid, param)
        p = self.store.prices.get(pid)
        if p is None:
            raise _no_such("price", pid, param=param, status=400)
        return p
