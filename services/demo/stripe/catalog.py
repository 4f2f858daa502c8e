"""``/v1/prices`` and ``/v1/products``: the catalog, read-only, with every filter Stripe's spec
defines (``recurring[interval]``/``[usage_type]``, ``type``, ``shippable``, ``url`` ...)."""

from __future__ import annotations

from services.demo.stripe.api_base import ApiBase
from services.demo.stripe.calls import _Call
from services.demo.stripe.errors import _invalid, _no_such
from services.demo.stripe.forms import _as_bool, _as_list, _as_str
from services.demo.stripe.lists import CreatedRange, _parse_created
from services.demo.stripe.responses import JSON
from services.demo.stripe.serializers.catalog import price_type, render_price, render_product


class CatalogApi(ApiBase):
    """The price and product endpoints."""

    def list_prices(self, call: _Call) -> JSON:
        p = call.params
        recurring = call.typed.get("recurring") or {}
        rng = _parse_created(p["created"]) if "created" in p else CreatedRange()
        active = _as_bool(p["active"], "active") if "active" in p else None
        keys = {_as_str(k, "lookup_keys") for k in _as_list(p["lookup_keys"], "lookup_keys")} \
            if "lookup_keys" in p else None
        product = _as_str(p["product"], "product") if "product" in p else None
        currency = _as_str(p["currency"], "currency").lower() if "currency" in p else None
        type_ = _as_str(p["type"], "type") if "type" in p else None
        if type_ is not None and type_ not in ("one_time", "recurring"):
            raise _invalid(f"Invalid type: must be one of one_time or recurring ({type_})", "type")
        prices = self.store.prices

        def match(oid: str) -> bool:
            pr = prices[oid]
            kind = price_type(pr)
            return ((active is None or pr.active == active) and (keys is None or pr.lookup_key in keys)
                    and (product is None or pr.product == product)
                    and (currency is None or pr.currency.lower() == currency)
                    and (type_ is None or type_ == kind)
                    and (not recurring or (kind == "recurring"
                                           and recurring.get("interval", pr.interval) == pr.interval
                                           and recurring.get("usage_type", "licensed") == "licensed")))

        return self.list_page(call, "price", "/v1/prices", None, rng, match,
                              lambda oid: render_price(self.store, prices[oid]))

    def list_products(self, call: _Call) -> JSON:
        p = call.params
        rng = _parse_created(p["created"]) if "created" in p else CreatedRange()
        active = _as_bool(p["active"], "active") if "active" in p else None
        ids = {_as_str(i, "ids") for i in _as_list(p["ids"], "ids")} if "ids" in p else None
        if ids is not None and (p.get("starting_after") or p.get("ending_before")):
            raise _invalid("You may not specify `ids` along with `starting_after` or `ending_before`.", "ids")
        shippable = call.typed.get("shippable")
        url = call.typed.get("url")
        products = self.store.products

        def match(oid: str) -> bool:
            pr = products[oid]
            return ((active is None or pr.active == active) and (ids is None or oid in ids)
                    and (shippable is None or pr.extra.get("shippable") is shippable)
                    and (url is None or pr.extra.get("url") == url))

        return self.list_page(call, "product", "/v1/products", None, rng, match,
                              lambda oid: render_product(self.store, products[oid]))

    def retrieve_product(self, call: _Call) -> JSON:
        oid = call.path_param("id")
        p = self.store.products.get(oid)
        if p is None:
            raise _no_such("product", oid)
        return self.respond(call, render_product(self.store, p))
