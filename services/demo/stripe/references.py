"""Parameters that name Stripe objects the demo billing server does not hold: coupons, promotion
codes, payment methods, sources and tokens, tax rates, connected accounts; and test clocks, which
it knows only as the clocks its customers are in.

Stripe answers a reference to an object that does not exist with ``resource_missing`` (HTTP 400,
the parameter named); having none of these objects, the demo answers every such reference the
same way — as the real service answers it for an account without them. Connect-only parameters
(``application_fee_percent``) are refused as Stripe refuses them on a request that is not made
on behalf of a connected account.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.demo.store import BillingStore
from services.demo.stripe.errors import StripeError, _invalid

#: parameter -> how Stripe names the object it refers to in "No such <kind>: '<id>'"
_KINDS: dict[str, str] = {
    "coupon": "coupon",
    "promotion_code": "promotion code",
    "payment_method": "PaymentMethod",
    "default_payment_method": "PaymentMethod",
    "source": "token",
    "card": "token",
    "bank_account": "token",
    "default_source": "source",
    "default_card": "source",
    "default_bank_account": "source",
    "default_alipay_account": "source",
    "default_tax_rates": "tax rate",
    "tax_rates": "tax rate",
    "on_behalf_of": "account",
    "destination": "account",
}

#: Stripe's answer to raw card details (a card or bank account sent as an object)
RAW_CARD_MESSAGE = ("Sending credit card numbers directly to the Stripe API is generally unsafe. We suggest you "
                    "use test tokens that map to the test card you are using, see https://stripe.com/docs/testing.")


def no_such(name: str, value: Any, param: str) -> StripeError:
    """Stripe's ``resource_missing`` for parameter ``name`` (shown as ``param``) naming ``value``."""
    kind = _KINDS.get(name, name.replace("_", " "))
    shown = value if isinstance(value, str) else "(object)"
    return StripeError(400, f"No such {kind}: '{shown}'", code="resource_missing", param=param)


def refuse_references(typed: dict[str, Any], names: Iterable[str], prefix: str = "") -> None:
    """Refuse the first of ``names`` that ``typed`` sets to an object id (an empty string or list
    unsets and passes; a raw card or bank account is refused as Stripe refuses card numbers)."""
    for name in names:
        if name not in typed:
            continue
        value = typed[name]
        param = f"{prefix}[{name}]" if prefix else name
        if value is None or value == "" or value == []:
            continue
        if isinstance(value, dict) and name in ("card", "bank_account", "source"):
            raise _invalid(RAW_CARD_MESSAGE, param)
        if isinstance(value, list):
            raise no_such(name, value[0], f"{param}[0]")
        if name == "transfer_data":
            raise no_such("destination", value.get("destination"), f"{param}[destination]")
        raise no_such(name, value, param)


def refuse_connect_only(typed: dict[str, Any]) -> None:
    """``application_fee_percent`` outside Connect."""
    if typed.get("application_fee_percent") is not None:
        raise _invalid("Can only apply an application_fee_percent when the request is made on behalf of another "
                       "account (using an OAuth key, the Stripe-Account header, or the destination parameter).",
                       "application_fee_percent")


def known_test_clocks(store: BillingStore) -> set[str]:
    """The test clocks the demo knows: those its customers are in."""
    return {c.extra["test_clock"] for c in store.customers.values() if c.extra.get("test_clock")}


def check_test_clock(store: BillingStore, clock: Any, param: str = "test_clock") -> str | None:
    if clock is None or clock == "":
        return None
    if clock not in known_test_clocks(store):
        raise StripeError(400, f"No such test clock: '{clock}'", code="resource_missing", param=param)
    return str(clock)


def render_test_clock(store: BillingStore, clock: str, now: int) -> dict[str, Any]:
    """A ``test_helpers.test_clock`` for ``expand[]=test_clock`` (frozen at the demo's now)."""
    created = min((c.created for c in store.customers.values() if c.extra.get("test_clock") == clock),
                  default=now)
    return {"id": clock, "object": "test_helpers.test_clock", "created": created,
            "deletes_after": created + 30 * 86400, "frozen_time": now, "livemode": False, "name": None,
            "status": "ready"}
