"""The ``demo-readonly`` accounts: the demo servers' answer to "what does a permission gap look like".

Besides the generated company's own credentials (the ``demo`` profile, which may do
everything), each demo server serves one account that may read everything SyncDesk reads but
not write what its fixes write — as a cautious administrator would set it up:

- billing: a Stripe restricted key ``rk_test_…`` with **read** scopes only (customers,
  subscriptions, invoices, events, prices, products, credit notes, refunds, charges, tax rates,
  coupons): writes answer Stripe's 403 permission error;
- ERP: a Tryton user ``reader`` whose group may read invoices, their lines and taxes but not
  create, write or delete them (``ir.model.access``); its current company is the demo company;
- support: a Zendesk light agent (``role: agent``, ``role_type: 1``), who may read but not
  update organizations or tickets.

These accounts are served beside the world, not saved in it (:meth:`install` puts them on the
servers each time an environment starts). Their secrets are demo constants, like the ``demo``
profile's, and are written into the config file with it by ``demo-server --write-config``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from services.core.domain import System
from services.demo.stripe.api_base import ApiBase
from services.demo.tryton.service import DemoUser, TrytonService
from services.demo.zendesk.auth import AuthMiddleware, DemoAgent
from services.io.config import Profile, Secret, SystemConnection

PROFILE_NAME = "demo-readonly"
STRIPE_KEY = "rk_test_syncdesk_demo_readonly_7Hq2LmN9pXv4Rt6Wk"
STRIPE_SCOPES: dict[str, str] = {r: "read" for r in (
    "customer", "subscription", "invoice", "event", "plan", "product", "tax_rate", "coupon", "credit_note",
    "charge", "refund")}
TRYTON_LOGIN = "reader"
TRYTON_PASSWORD = "demo-reader-password-5mQx"
TRYTON_USER_ID = 900001
_READ_ONLY = {"read": True, "write": False, "create": False, "delete": False}
TRYTON_ACCESS: dict[str, dict[str, bool]] = {
    m: dict(_READ_ONLY) for m in ("account.invoice", "account.invoice.line", "account.invoice.tax")}
ZENDESK_EMAIL = "light.agent@syncdesk-demo.example"
ZENDESK_TOKEN = "demo-zendesk-light-agent-token-Qw3rT9zXc2Vb"
ZENDESK_USER_ID = 399000001
ZENDESK_LIGHT_AGENT_ROLE = 360000000101


def install(billing: ApiBase, erp: TrytonService, support: AuthMiddleware) -> None:
    """Serve the three accounts on the running demo servers."""
    billing.restricted_keys[STRIPE_KEY] = dict(STRIPE_SCOPES)
    erp.extra_users[TRYTON_LOGIN] = DemoUser(TRYTON_USER_ID, TRYTON_LOGIN, TRYTON_PASSWORD, "Invoice Reader",
                                             "Account Reader", {m: dict(a) for m, a in TRYTON_ACCESS.items()})
    since = datetime(2024, 1, 2, 9, 0, tzinfo=UTC)
    support.agents[ZENDESK_EMAIL] = DemoAgent(ZENDESK_EMAIL, ZENDESK_TOKEN, {
        "id": ZENDESK_USER_ID, "name": "Lee Light", "email": ZENDESK_EMAIL, "role": "agent", "role_type": 1,
        "custom_role_id": ZENDESK_LIGHT_AGENT_ROLE, "organization_id": None, "created_at": since,
        "updated_at": since, "active": True, "verified": True, "time_zone": "UTC", "locale": "en-US",
        "phone": None, "external_id": None, "tags": [], "suspended": False, "restricted_agent": True,
        "only_private_comments": True})


def profile(urls: dict[System, str], database: str, tax_map: dict[str, int], name: str = PROFILE_NAME) -> Profile:
    """The profile that logs in with the three accounts."""
    return Profile(name, {
        System.BILLING: SystemConnection(System.BILLING, "stripe", urls[System.BILLING], {},
                                         {"api_key": Secret(STRIPE_KEY)}),
        System.ERP: SystemConnection(System.ERP, "tryton", urls[System.ERP],
                                     {"database": database, "login": TRYTON_LOGIN},
                                     {"password": Secret(TRYTON_PASSWORD)}, dict(tax_map)),
        System.SUPPORT: SystemConnection(System.SUPPORT, "zendesk", urls[System.SUPPORT], {"email": ZENDESK_EMAIL},
                                         {"api_token": Secret(ZENDESK_TOKEN)}),
    })
