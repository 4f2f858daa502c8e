"""In-memory stores behind the three demo servers: the contract between the dataset
generator (``dataset.py``, which fills them) and the servers (which serve and mutate them).

Records are compact (slotted dataclasses for billing, plain dicts for the generic ERP and
support tables) and rendered into vendor JSON only when a request asks for them, so a
100,000-customer company fits in memory and generates in seconds.

Each store has a ``lock`` (``threading.RLock``): servers take it around every read-modify-
write so the demo stays consistent when several servers or threads share one process.

All timestamps are ``int`` unix seconds (UTC) in billing, aware UTC ``datetime`` in support,
naive UTC ``datetime`` in the ERP (as Tryton stores them); money is ``int`` minor units in
billing (as Stripe), ``Decimal`` in the ERP (as Tryton).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, ClassVar

# --------------------------------------------------------------------------------------
# Billing (Stripe-compatible)
# --------------------------------------------------------------------------------------


@dataclass(slots=True)
class BProduct:
    id: str  # prod_...
    name: str
    created: int
    metadata: dict[str, str] = field(default_factory=dict)  # includes "tier": standard|premium|enterprise
    active: bool = True
    description: str | None = None
    updated: int = 0
    #: request parameters the demo billing server stores and echoes back as Stripe does (response
    #: field name -> its Stripe JSON; ``services/demo/stripe/``): set only through the API
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class BPrice:
    id: str  # price_...
    product: str  # prod_...
    unit_amount: int  # minor units
    currency: str  # lower-case, as Stripe ("usd")
    interval: str  # "month" | "year"
    lookup_key: str  # plan key shared with the ERP product code, e.g. "pro_monthly"
    created: int
    nickname: str | None = None
    active: bool = True
    metadata: dict[str, str] = field(default_factory=dict)
    #: request parameters the demo billing server stores and echoes back as Stripe does (response
    #: field name -> its Stripe JSON; ``services/demo/stripe/``): set only through the API
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class BCustomer:
    id: str  # cus_...
    created: int
    name: str
    email: str | None
    country: str | None  # ISO 3166 alpha-2, rendered as address.country
    tax_id: str | None  # rendered as metadata["tax_id"]
    metadata: dict[str, str] = field(default_factory=dict)
    currency: str | None = None
    description: str | None = None
    phone: str | None = None
    deleted: bool = False
    #: request parameters the demo billing server stores and echoes back as Stripe does (response
    #: field name -> its Stripe JSON; ``services/demo/stripe/``): set only through the API
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class BSubItem:
    id: str  # si_...
    price: str  # price_...
    quantity: int
    created: int
    #: request parameters the demo billing server stores and echoes back as Stripe does (response
    #: field name -> its Stripe JSON; ``services/demo/stripe/``): set only through the API
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class BSubscription:
    id: str  # sub_...
    customer: str
    status: str  # trialing|active|past_due|canceled|unpaid|incomplete|incomplete_expired|paused
    items: list[BSubItem]
    created: int
    start_date: int
    current_period_start: int
    current_period_end: int
    currency: str
    trial_start: int | None = None
    trial_end: int | None = None
    cancel_at_period_end: bool = False
    canceled_at: int | None = None
    ended_at: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    #: request parameters the demo billing server stores and echoes back as Stripe does (response
    #: field name -> its Stripe JSON; ``services/demo/stripe/``): set only through the API
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class BInvoiceLine:
    id: str  # il_...
    price: str
    quantity: int
    amount: int  # minor units
    description: str
    period_start: int
    period_end: int
    proration: bool = False
    #: the money beside ``amount`` (minor units, all on the line's net: ``amount`` is before
    #: discount and tax, as Stripe's line ``amount`` with exclusive tax rates): the discount it
    #: took, the tax rate applied (``txr_...``; None = no tax rate) and the tax that rate gives
    #: on ``amount - discount_amount``. The ERP copy needs these three per line.
    discount_amount: int = 0
    tax_rate: str | None = None
    tax_amount: int = 0


@dataclass(slots=True)
class BInvoice:
    id: str  # in_...
    customer: str
    subscription: str | None
    status: str  # draft|open|paid|void|uncollectible
    number: str | None
    currency: str
    subtotal: int
    total: int
    amount_paid: int
    created: int
    period_start: int
    period_end: int
    lines: list[BInvoiceLine]
    finalized_at: int | None = None
    paid_at: int | None = None
    voided_at: int | None = None
    billing_reason: str = "subscription_cycle"  # subscription_create|subscription_cycle|subscription_update|manual
    attempt_count: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    #: request parameters the demo billing server stores and echoes back as Stripe does (response
    #: field name -> its Stripe JSON; ``services/demo/stripe/``): set only through the API
    extra: dict[str, Any] = field(default_factory=dict)
    #: the money (minor units): ``subtotal`` = sum of line amounts, ``total`` = ``subtotal -
    #: discount_total + (tax or 0)``; ``tax`` None when no tax rate applies (as Stripe)
    tax: int | None = None
    discount_total: int = 0
    coupon: str | None = None  # the coupon of the invoice's discount (``di_`` id in ``discount_id``)
    discount_id: str | None = None
    discount_subscription: str | None = None  # set when the discount is the subscription's (else the customer's)
    discount_start: int | None = None
    discount_end: int | None = None
    footer: str | None = None  # e.g. the reverse-charge legal note
    next_payment_attempt: int | None = None
    charge: str | None = None  # ``ch_...`` of the successful charge
    payment_intent: str | None = None  # ``pi_...``
    pre_payment_credit_notes_amount: int = 0
    post_payment_credit_notes_amount: int = 0


@dataclass(slots=True)
class BTaxRate:
    id: str  # txr_...
    created: int
    display_name: str  # "VAT", "Sales Tax", "GST"
    percentage: str  # decimal text, e.g. "19" or "6.25" (never a float)
    tax_type: str  # vat | sales_tax | gst
    country: str | None
    state: str | None = None
    jurisdiction: str | None = None
    description: str | None = None
    inclusive: bool = False
    active: bool = True
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class BCoupon:
    id: str
    created: int
    name: str
    duration: str  # once | repeating | forever
    percent_off: str | None = None  # decimal text
    amount_off: int | None = None  # minor units of ``currency``
    currency: str | None = None
    duration_in_months: int | None = None
    times_redeemed: int = 0
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class BCreditNoteLine:
    id: str  # cnli_...
    invoice_line_item: str  # il_...
    description: str
    quantity: int
    amount: int  # credited amount before discount and tax, minor units (Stripe's line ``amount``)
    discount_amount: int = 0
    tax_rate: str | None = None
    tax_amount: int = 0  # on ``amount - discount_amount``


@dataclass(slots=True)
class BCreditNote:
    id: str  # cn_...
    created: int
    customer: str
    invoice: str
    number: str
    currency: str
    type: str  # pre_payment | post_payment
    reason: str | None  # duplicate | fraudulent | order_change | product_unsatisfactory
    lines: list[BCreditNoteLine]
    subtotal: int  # sum of line amounts
    discount: int  # sum of line discount amounts
    tax: int  # sum of line tax
    total: int  # subtotal - discount + tax (Stripe's ``amount`` and ``total``)
    refund: str | None = None  # re_... (post-payment, refunded to the card)
    credit_amount: int = 0  # post-payment, left on the customer's balance
    memo: str | None = None
    status: str = "issued"
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class BCharge:
    id: str  # ch_...
    created: int
    customer: str
    invoice: str
    payment_intent: str
    amount: int
    currency: str
    amount_refunded: int = 0
    status: str = "succeeded"  # succeeded | failed
    failure_code: str | None = None
    failure_message: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class BRefund:
    id: str  # re_...
    created: int
    amount: int
    charge: str
    payment_intent: str
    currency: str
    reason: str | None = None  # duplicate | fraudulent | requested_by_customer
    credit_note: str | None = None
    status: str = "succeeded"
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class BEvent:
    id: str  # evt_...
    type: str  # e.g. "invoice.finalized", "customer.subscription.updated"
    created: int
    object_kind: str  # "customer" | "subscription" | "invoice" | "product" | "price"
    object_id: str
    snapshot: dict[str, Any] | None = None  # rendered object at event time; None = render current state
    previous_attributes: dict[str, Any] | None = None
    request_id: str | None = None
    idempotency_key: str | None = None


class BillingStore:
    """Billing records. Dicts preserve insertion order, which is creation order (oldest
    first); Stripe lists newest first, so servers iterate in reverse."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.account_id = "acct_demo"
        self.products: dict[str, BProduct] = {}
        self.prices: dict[str, BPrice] = {}
        self.customers: dict[str, BCustomer] = {}
        self.subscriptions: dict[str, BSubscription] = {}
        self.invoices: dict[str, BInvoice] = {}
        self.events: list[BEvent] = []  # oldest first
        self.tax_rates: dict[str, BTaxRate] = {}
        self.coupons: dict[str, BCoupon] = {}
        self.credit_notes: dict[str, BCreditNote] = {}
        self.charges: dict[str, BCharge] = {}
        self.refunds: dict[str, BRefund] = {}
        # secondary indexes (kept up to date by whoever inserts)
        self.subscriptions_by_customer: dict[str, list[str]] = defaultdict(list)
        self.invoices_by_customer: dict[str, list[str]] = defaultdict(list)
        self.invoices_by_subscription: dict[str, list[str]] = defaultdict(list)
        self._counter = 0
        #: the demo Stripe server's answers kept for ``Idempotency-Key`` replays
        #: (``services/demo/stripe/idempotency.py``: key -> ``_IdemEntry``): server state that
        #: lives here so that it is saved and reloaded with the records it answered about
        self.idempotency: dict[str, Any] = {}

    def add_customer(self, c: BCustomer) -> None:
        self.customers[c.id] = c

    def add_subscription(self, s: BSubscription) -> None:
        self.subscriptions[s.id] = s
        self.subscriptions_by_customer[s.customer].append(s.id)

    def add_invoice(self, i: BInvoice) -> None:
        self.invoices[i.id] = i
        self.invoices_by_customer[i.customer].append(i.id)
        if i.subscription:
            self.invoices_by_subscription[i.subscription].append(i.id)

    def new_id(self, prefix: str) -> str:
        """A fresh id for an object created at run time (dataset ids come from the RNG)."""
        self._counter += 1
        return f"{prefix}_{'R'}{self._counter:013d}"

    @property
    def counter(self) -> int:
        """How many ids :meth:`new_id` handed out (saved with the world, so ids never repeat)."""
        return self._counter

    @counter.setter
    def counter(self, value: int) -> None:
        self._counter = value

    def rebuild_indexes(self) -> None:
        """The secondary indexes again from the records (in creation order, as inserts build
        them): after the records were loaded from a saved world."""
        self.subscriptions_by_customer = defaultdict(list)
        self.invoices_by_customer = defaultdict(list)
        self.invoices_by_subscription = defaultdict(list)
        for s in self.subscriptions.values():
            self.subscriptions_by_customer[s.customer].append(s.id)
        for i in self.invoices.values():
            self.invoices_by_customer[i.customer].append(i.id)
            if i.subscription:
                self.invoices_by_subscription[i.subscription].append(i.id)


# --------------------------------------------------------------------------------------
# ERP (Tryton-compatible): generic tables of dict records, keyed by integer id.
# --------------------------------------------------------------------------------------

#: Models and fields the demo ERP holds (a subset of the real Tryton 8.2 modules, same names).
#: Many2One fields hold an int id (or None); One2Many/Many2Many hold a list of ids;
#: Char/Selection hold str; Numeric hold Decimal; Date hold date; DateTime hold naive UTC datetime.
#: Every record also has ``id``, ``create_date`` (datetime), ``write_date`` (datetime | None),
#: ``create_uid``, ``write_uid`` and ``rec_name`` (str).
ERP_MODELS: dict[str, dict[str, str]] = {
    "res.user": {"login": "char", "name": "char", "company": "many2one:company.company",
                 "language": "char", "active": "boolean"},
    "res.user.warning": {"user": "many2one:res.user", "name": "char", "always": "boolean"},
    "company.company": {"party": "many2one:party.party", "currency": "many2one:currency.currency"},
    "currency.currency": {"name": "char", "code": "char", "symbol": "char", "digits": "integer"},
    # a currency's rate against the company currency from ``date`` on (trytond's currency module)
    "currency.currency.rate": {"currency": "many2one:currency.currency", "date": "date", "rate": "numeric"},
    "country.country": {"name": "char", "code": "char"},
    "party.party": {"name": "char", "code": "char", "active": "boolean",
                    "identifiers": "one2many:party.identifier.party",
                    "addresses": "one2many:party.address.party",
                    "contact_mechanisms": "one2many:party.contact_mechanism.party",
                    "tax_identifier": "many2one:party.identifier",
                    "email": "char"},  # email, tax_identifier: computed by the server
    "party.identifier": {"party": "many2one:party.party", "type": "selection", "code": "char"},
    "party.address": {"party": "many2one:party.party", "country": "many2one:country.country",
                      "city": "char", "street": "char", "postal_code": "char"},
    "party.contact_mechanism": {"party": "many2one:party.party", "type": "selection", "value": "char"},
    "product.template": {"name": "char", "type": "selection", "list_price": "numeric",
                         "products": "one2many:product.product.template"},
    "product.product": {"template": "many2one:product.template", "code": "char", "name": "char",
                        "active": "boolean"},  # name: computed from template
    "account.invoice": {"type": "selection", "number": "char", "reference": "char",
                        "party": "many2one:party.party", "company": "many2one:company.company",
                        "currency": "many2one:currency.currency", "invoice_date": "date",
                        "state": "selection", "description": "char",
                        "untaxed_amount": "numeric", "tax_amount": "numeric", "total_amount": "numeric",
                        "amount_to_pay": "numeric", "lines": "one2many:account.invoice.line.invoice",
                        "move": "many2one:account.move", "journal": "many2one:account.journal",
                        "account": "many2one:account.account",
                        "payment_term": "many2one:account.invoice.payment_term",
                        "invoice_address": "many2one:party.address",
                        # credits: set when numbered / credited; origin_invoices is computed
                        "sequence_type_cache": "selection", "cancel_move": "many2one:account.move",
                        "origin_invoices": "many2many:account.invoice",
                        # the invoice's taxes (trytond's ``update_taxes`` keeps them: services/demo/tryton/taxes.py)
                        "taxes": "one2many:account.invoice.tax.invoice"},
    "account.invoice.line": {"invoice": "many2one:account.invoice", "type": "selection",
                             "product": "many2one:product.product", "description": "char",
                             "quantity": "float", "unit_price": "numeric", "amount": "numeric",
                             "account": "many2one:account.account", "unit": "many2one:product.uom",
                             "origin": "reference",  # a credit note's line: "account.invoice.line,<id>"
                             "taxes": "many2many:account.tax"},
    # account.invoice.tax: one per (account, tax, sign of the base) of an invoice, as trytond computes it
    "account.invoice.tax": {"invoice": "many2one:account.invoice", "description": "char", "sequence": "integer",
                            "base": "numeric", "amount": "numeric", "manual": "boolean",
                            "tax": "many2one:account.tax", "account": "many2one:account.account",
                            "legal_notice": "text"},
    # percentage (or fixed) taxes of the account module, grouped (VAT, sales tax)
    "account.tax.group": {"name": "char", "code": "char", "kind": "selection"},
    "account.tax": {"name": "char", "description": "char", "type": "selection", "rate": "numeric",
                    "amount": "numeric", "group": "many2one:account.tax.group",
                    "company": "many2one:company.company", "invoice_account": "many2one:account.account",
                    "credit_note_account": "many2one:account.account", "legal_notice": "text",
                    "active": "boolean", "sequence": "integer", "start_date": "date", "end_date": "date",
                    "parent": "many2one:account.tax", "update_unit_price": "boolean"},
    # a party's customer tax rule gives its invoice lines their taxes (``on_change`` of the product)
    "account.tax.rule": {"name": "char", "kind": "selection", "company": "many2one:company.company",
                         "lines": "one2many:account.tax.rule.line.rule"},
    "account.tax.rule.line": {"rule": "many2one:account.tax.rule", "tax": "many2one:account.tax",
                              "origin_tax": "many2one:account.tax", "group": "many2one:account.tax.group",
                              "keep_origin": "boolean", "sequence": "integer", "start_date": "date",
                              "end_date": "date"},
    "sale.subscription.service": {"product": "many2one:product.product"},
    "sale.subscription": {"number": "char", "reference": "char", "party": "many2one:party.party",
                          "company": "many2one:company.company", "currency": "many2one:currency.currency",
                          "state": "selection", "start_date": "date", "end_date": "date",
                          "next_invoice_date": "date",
                          "lines": "one2many:sale.subscription.line.subscription"},
    "sale.subscription.line": {"subscription": "many2one:sale.subscription",
                               "service": "many2one:sale.subscription.service",
                               "quantity": "float", "unit_price": "numeric",
                               "start_date": "date", "end_date": "date"},
}


class ErpStore:
    """Generic tables ``tables[model][id] -> record dict``. Ids are allocated per model,
    ascending from 1; ``indexes`` give O(1) lookups on the fields SyncDesk searches by."""

    INDEXED: ClassVar[dict[str, tuple[str, ...]]] = {
        "party.party": ("code",),
        "account.invoice": ("reference", "party"),
        "sale.subscription": ("reference", "party"),
        "product.product": ("code",),
        "account.invoice.line": ("invoice",),
        "account.invoice.tax": ("invoice",),
        "account.tax.rule.line": ("rule",),
        "currency.currency.rate": ("currency",),
        "sale.subscription.line": ("subscription",),
        "party.identifier": ("party",),
        "party.address": ("party",),
        "party.contact_mechanism": ("party",),
    }

    def __init__(self, database: str = "syncdesk_demo") -> None:
        self.lock = threading.RLock()
        self.database = database
        self.tables: dict[str, dict[int, dict[str, Any]]] = {m: {} for m in ERP_MODELS}
        self.next_ids: dict[str, int] = {m: 1 for m in ERP_MODELS}
        self.indexes: dict[tuple[str, str], dict[Any, set[int]]] = {
            (m, f): defaultdict(set) for m, fs in self.INDEXED.items() for f in fs
        }
        #: login -> password (plain text: this is a demo server; never logged)
        self.passwords: dict[str, str] = {}
        #: per-model change counter, bumped by insert/update/delete (servers cache derived indexes on it)
        self.versions: dict[str, int] = {m: 0 for m in ERP_MODELS}

    def insert(self, model: str, values: dict[str, Any]) -> int:
        self.versions[model] += 1
        rid = self.next_ids[model]
        self.next_ids[model] = rid + 1
        rec = dict(values)
        rec["id"] = rid
        rec.setdefault("write_date", None)
        self.tables[model][rid] = rec
        for f in self.INDEXED.get(model, ()):
            self.indexes[(model, f)][rec.get(f)].add(rid)
        return rid

    def update(self, model: str, rid: int, values: dict[str, Any]) -> None:
        self.versions[model] += 1
        rec = self.tables[model][rid]
        for f in self.INDEXED.get(model, ()):
            if f in values and values[f] != rec.get(f):
                self.indexes[(model, f)][rec.get(f)].discard(rid)
                self.indexes[(model, f)][values[f]].add(rid)
        rec.update(values)

    def delete(self, model: str, rid: int) -> None:
        self.versions[model] += 1
        rec = self.tables[model].pop(rid)
        for f in self.INDEXED.get(model, ()):
            self.indexes[(model, f)][rec.get(f)].discard(rid)

    def lookup(self, model: str, field_name: str, value: Any) -> set[int]:
        return self.indexes[(model, field_name)].get(value, set())

    def rebuild_indexes(self) -> None:
        """The lookup indexes again from the tables: after the records were loaded from a saved
        world (ids, ``next_ids`` and ``versions`` are loaded as they were)."""
        self.indexes = {(m, f): defaultdict(set) for m, fs in self.INDEXED.items() for f in fs}
        for (model, f), index in self.indexes.items():
            for rid, rec in self.tables[model].items():
                index[rec.get(f)].add(rid)


# --------------------------------------------------------------------------------------
# Support (Zendesk-compatible)
# --------------------------------------------------------------------------------------

#: Custom organization fields the demo support desk defines (GET /api/v2/organization_fields).
SUPPORT_ORG_FIELDS: list[dict[str, Any]] = [
    {"key": "support_tier", "type": "dropdown", "title": "Support tier",
     "options": ["standard", "premium", "enterprise"]},
    {"key": "sla_policy", "type": "text", "title": "SLA policy"},
    {"key": "entitlement_end", "type": "date", "title": "Entitlement end date"},
]


class SupportStore:
    """Zendesk records as dicts in Zendesk's own field names (ids are ints; times are aware
    UTC datetimes, rendered as ISO-8601 ``...Z`` strings). Organizations hold
    ``organization_fields`` = {"support_tier": str|None, "sla_policy": str|None,
    "entitlement_end": "YYYY-MM-DD"|None}."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.subdomain = "syncdesk-demo"
        self.organizations: dict[int, dict[str, Any]] = {}
        self.users: dict[int, dict[str, Any]] = {}
        self.tickets: dict[int, dict[str, Any]] = {}
        self.organization_fields: list[dict[str, Any]] = [dict(f) for f in SUPPORT_ORG_FIELDS]
        self.next_ids: dict[str, int] = {"organization": 360000001, "user": 370000001, "ticket": 1,
                                         "organization_field": 380000001}
        self.orgs_by_external_id: dict[str, int] = {}
        #: credentials: agent email -> api token (demo only; never logged)
        self.tokens: dict[str, str] = {}

    def new_id(self, kind: str) -> int:
        rid = self.next_ids[kind]
        self.next_ids[kind] = rid + 1
        return rid

    def add_organization(self, org: dict[str, Any]) -> None:
        self.organizations[org["id"]] = org
        if org.get("external_id"):
            self.orgs_by_external_id[org["external_id"]] = org["id"]

    def rebuild_indexes(self) -> None:
        """``orgs_by_external_id`` again from the organizations (in creation order, as
        :meth:`add_organization` builds it): after they were loaded from a saved world."""
        self.orgs_by_external_id = {}
        for org in self.organizations.values():
            if org.get("external_id"):
                self.orgs_by_external_id[org["external_id"]] = org["id"]


@dataclass(slots=True)
class ManifestEntry:
    """One planted mismatch: the ground truth reconciliation must find."""

    rule: str
    customer: str | None
    object: str
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "customer": self.customer, "object": self.object, "detail": self.detail}


@dataclass(slots=True)
class DemoCredentials:
    stripe_api_key: str = "sk_test_syncdesk_demo_4eC39HqLyjWDarjtT1zdp7dc"
    tryton_login: str = "admin"
    tryton_password: str = "demo-admin-password"
    tryton_database: str = "syncdesk_demo"
    zendesk_email: str = "agent@syncdesk-demo.example"
    zendesk_token: str = "demo-zendesk-api-token-6wiIBWbGkBMo1mRDMuVwkw1E"


@dataclass
class DemoDataset:
    customers: int
    seed: int
    anchor: int  # unix seconds: "now" of the dataset; every timestamp is <= anchor
    billing: BillingStore
    erp: ErpStore
    support: SupportStore
    manifest: list[ManifestEntry]
    credentials: DemoCredentials = field(default_factory=DemoCredentials)
