"""The demo Stripe server's application: :class:`StripeApi` (every resource family's handlers,
plus secret-key authentication, parameter reading, the Request-Id and idempotent execution of
each call) and :func:`create_app`, the route table behind :class:`FaultMiddleware`."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from services.demo.faults import FaultInjector, FaultMiddleware
from services.demo.store import BillingStore
from services.demo.stripe.calls import Handler, _Call
from services.demo.stripe.catalog import CatalogApi
from services.demo.stripe.customers import CustomersApi
from services.demo.stripe.errors import StripeError, _invalid, render_error
from services.demo.stripe.events import EventsApi
from services.demo.stripe.forms import parse_form
from services.demo.stripe.idempotency import _IdemEntry, _idempotent_replay
from services.demo.stripe.invoices import InvoicesApi
from services.demo.stripe.money import MoneyApi
from services.demo.stripe.params import operation as params_of
from services.demo.stripe.params import validate as validate_params
from services.demo.stripe.responses import API_VERSION, _json_bytes, _json_response, _new_request_id
from services.demo.stripe.subscriptions import SubscriptionsApi

log = logging.getLogger(__name__)


class StripeApi(CustomersApi, CatalogApi, SubscriptionsApi, InvoicesApi, MoneyApi, EventsApi):
    """The demo Stripe API: the handlers of every resource family and the plumbing each call
    runs through (:meth:`endpoint`)."""

    def authenticate(self, request: Request) -> str:
        """The API key of a request (the secret key or a restricted key), else Stripe's 401."""
        header = request.headers.get("authorization", "")
        scheme, _, cred = header.partition(" ")
        key: str | None = None
        if scheme.lower() == "bearer":
            key = cred.strip()
        elif scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(cred.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            key = decoded.partition(":")[0]
        if not key:
            raise StripeError(
                401, "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
                headers={"WWW-Authenticate": 'Basic realm="Stripe"'})
        known = [self.api_key, *self.restricted_keys]
        if not any(hmac.compare_digest(key.encode(), k.encode()) for k in known):
            raise StripeError(401, "Invalid API Key provided.",
                              headers={"WWW-Authenticate": 'Basic realm="Stripe"'})
        return key

    def authorize(self, key: str, operation: str) -> None:
        """A restricted key may call an operation only with its resource's permission (``GET``:
        read, anything else: write; write implies read). Stripe checks it right after the key,
        before it reads the parameters, and answers 403 with its permission error naming the
        permission that is missing — so an invalid write tells "not permitted" (403) from
        "permitted" (400) without writing anything."""
        scopes = self.restricted_keys.get(key)
        if scopes is None:
            return  # the secret key may do everything
        method, _, path = operation.partition(" ")
        resource = RAK_RESOURCES[path.split("/")[2]]
        need = "read" if method == "GET" else "write"
        have = scopes.get(resource)
        if have == "write" or have == need:
            return
        shown = key[:8] + "*" * max(0, len(key) - 14) + key[-6:]
        raise StripeError(403, f"The provided key '{shown}' does not have the required permissions for this endpoint "
                               f"on account '{DEMO_ACCOUNT}'. Having the 'rak_{resource}_{need}' permission would "
                               "allow this request to continue.")

    async def read_params(self, request: Request) -> dict[str, Any]:
        if request.method == "POST":
            ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
            raw = await request.body()
            if raw and ctype not in ("", "application/x-www-form-urlencoded"):
                raise _invalid("Invalid request: request bodies must be application/x-www-form-urlencoded.")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _invalid("Invalid request: the body is not valid UTF-8.") from None
            params = parse_form(text)
            if request.url.query:
                params.update(parse_form(request.url.query))
            return params
        return parse_form(request.url.query)

    def endpoint(self, operation: str, handler: Handler) -> Callable[[Request], Any]:
        """The route's endpoint: ``operation`` (``"GET /v1/customers"``) names its parameters in
        the spec (``params.py``): any other is refused as Stripe refuses it."""
        params_of(operation)  # a route without a spec operation is a programming error

        async def run(request: Request) -> Response:
            request_id = _new_request_id()
            try:
                self.authorize(self.authenticate(request), operation)
                params = await self.read_params(request)
                typed = validate_params(operation, params)
                key = request.headers.get("idempotency-key") if request.method == "POST" else None
                if key is not None and (not key or len(key) > 255):
                    raise _invalid("Idempotency-Key must be 1 to 255 characters.", "Idempotency-Key")
                call = _Call(request, params, request_id, key, int(self.clock()), typed=typed)
                response = self.execute(handler, call)
                if call.wrote:
                    request.state.write = True
                return response
            except StripeError as exc:
                return _json_response(exc.status, exc.body(), request_id, exc.headers)
            except Exception:
                log.exception("demo billing: unexpected error on %s %s", request.method, request.url.path)
                err = StripeError(500, "An unexpected error occurred.", type_="api_error")
                return _json_response(500, err.body(), request_id)

        return run

    def execute(self, handler: Handler, call: _Call) -> Response:
        with self.store.lock:
            key = call.idempotency_key
            if key is not None:
                replay = _idempotent_replay(self.idempotency, call, key)
                if replay is not None:
                    return replay
            body = handler(call)
            data = _json_bytes(body)
            headers: dict[str, str] = {}
            if key is not None:
                self.idempotency[key] = _IdemEntry(call.request.method, call.request.url.path,
                                                   call.params, 200, data, call.now)
                headers["Idempotency-Key"] = key
        return Response(data, status_code=200, media_type="application/json",
                        headers={"Request-Id": call.request_id, "Stripe-Version": API_VERSION, **headers})


# --------------------------------------------------------------------------------------
# Application
# --------------------------------------------------------------------------------------

#: the demo company's Stripe account (named in permission errors, as Stripe names the caller's)
DEMO_ACCOUNT = "acct_1SyncDeskDemo00"
#: the first path segment after /v1/ -> the resource a restricted key's permission names
RAK_RESOURCES: dict[str, str] = {
    "customers": "customer", "subscriptions": "subscription", "invoices": "invoice", "events": "event",
    "prices": "plan", "products": "product", "tax_rates": "tax_rate", "coupons": "coupon",
    "credit_notes": "credit_note", "charges": "charge", "refunds": "refund",
}


#: every operation the server serves: (method, path as the spec writes it, handler name)
OPERATIONS: tuple[tuple[str, str, str], ...] = (
    ("GET", "/v1/customers", "list_customers"),
    ("POST", "/v1/customers", "create_customer"),
    ("GET", "/v1/customers/{customer}", "retrieve_customer"),
    ("POST", "/v1/customers/{customer}", "update_customer"),
    ("GET", "/v1/prices", "list_prices"),
    ("GET", "/v1/products", "list_products"),
    ("GET", "/v1/products/{id}", "retrieve_product"),
    ("GET", "/v1/subscriptions", "list_subscriptions"),
    ("POST", "/v1/subscriptions", "create_subscription"),
    ("GET", "/v1/subscriptions/{subscription_exposed_id}", "retrieve_subscription"),
    ("POST", "/v1/subscriptions/{subscription_exposed_id}", "update_subscription"),
    ("GET", "/v1/invoices", "list_invoices"),
    ("GET", "/v1/invoices/{invoice}", "retrieve_invoice"),
    ("GET", "/v1/events", "list_events"),
    ("GET", "/v1/events/{id}", "retrieve_event"),
    ("GET", "/v1/tax_rates", "list_tax_rates"),
    ("GET", "/v1/tax_rates/{tax_rate}", "retrieve_tax_rate"),
    ("GET", "/v1/coupons", "list_coupons"),
    ("GET", "/v1/coupons/{coupon}", "retrieve_coupon"),
    ("GET", "/v1/credit_notes", "list_credit_notes"),
    ("GET", "/v1/credit_notes/{id}", "retrieve_credit_note"),
    ("GET", "/v1/credit_notes/{credit_note}/lines", "list_credit_note_lines"),
    ("GET", "/v1/charges", "list_charges"),
    ("GET", "/v1/charges/{charge}", "retrieve_charge"),
    ("GET", "/v1/refunds", "list_refunds"),
    ("GET", "/v1/refunds/{refund}", "retrieve_refund"),
)


async def _not_found(request: Request, exc: Exception) -> Response:
    err = StripeError(404, f"Unrecognized request URL ({request.method}: {request.url.path}). Please see "
                           "https://stripe.com/docs or we can help at https://support.stripe.com/.")
    return _json_response(404, err.body())


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return await _not_found(request, exc)


def create_app(store: BillingStore, injector: FaultInjector, api_key: str, *,
               clock: Callable[[], int] | None = None) -> ASGIApp:
    """The demo billing server: a Starlette app behind :class:`FaultMiddleware`."""
    api = StripeApi(store, api_key, clock or (lambda: int(time.time())))
    ep = api.endpoint
    routes = [Route(path, ep(f"{method} {path}", getattr(api, handler)), methods=[method])
              for method, path, handler in OPERATIONS]
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _method_not_allowed})
    app.state.api = api
    return FaultMiddleware(app, injector, render_error)
