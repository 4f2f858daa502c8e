"""Canonical domain model: what SyncDesk knows about a customer, independent of any vendor.

Connectors map vendor payloads (Stripe, Tryton, Zendesk) onto these types; reconciliation,
the timeline and actions work only with them. Money is always ``Decimal`` in major units
with an upper-case ISO currency code (its minor units and display: ``services.core.currency``);
times are timezone-aware UTC ``datetime``.

The cross-system key is the billing customer id (``cus_...``): the ERP party carries it in
its ``code``, the support organization in its ``external_id``.
"""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import ClassVar

from services.core import currency as _currency


class System(enum.StrEnum):
    BILLING = "billing"
    ERP = "erp"
    SUPPORT = "support"


class Team(enum.StrEnum):
    FINANCE = "finance"
    SUPPORT = "support"


class Severity(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class SubscriptionStatus(enum.StrEnum):
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    UNPAID = "unpaid"
    PAUSED = "paused"
    INCOMPLETE = "incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired"
    CANCELED = "canceled"

    @property
    def is_active(self) -> bool:
        """Active for entitlement purposes: the customer is (still) being served."""
        return self in (SubscriptionStatus.TRIALING, SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)


class InvoiceStatus(enum.StrEnum):
    """Canonical invoice state; billing uses draft/open/paid/void/uncollectible, the ERP
    draft/validated/posted/paid/cancelled."""

    DRAFT = "draft"
    OPEN = "open"
    VALIDATED = "validated"
    POSTED = "posted"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"
    CANCELLED = "cancelled"


class Tier(enum.StrEnum):
    STANDARD = "standard"
    PREMIUM = "premium"
    ENTERPRISE = "enterprise"


@dataclass(frozen=True, slots=True)
class ExternalRef:
    """One record in one system: e.g. ``ExternalRef(System.ERP, "party.party", "42")``."""

    system: System
    kind: str
    id: str

    def __str__(self) -> str:
        return f"{self.system.value}:{self.kind}:{self.id}"


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in a currency. Immutable and shared: the snapshot decodes each distinct value
    once (see ``services.store.codec``), so equal amounts are often the same object.

    Stored (and encoded) as ``amount`` (Decimal, major units) and ``currency``; :attr:`minor` and
    :attr:`exponent` are derived from them with the currency's ISO 4217 exponent, and ``str()``
    shows the amount with that exponent ("1,500 JPY", "12.345 KWD", "1,234.50 EUR")."""

    __codec_shared__: ClassVar[bool] = True

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise TypeError(f"Money.amount must be Decimal, got {type(self.amount).__name__}")
        if len(self.currency) != 3 or not self.currency.isalpha():
            raise ValueError(f"not an ISO currency code: {self.currency!r}")
        object.__setattr__(self, "currency", sys.intern(self.currency.upper()))

    @property
    def exponent(self) -> int:
        """The currency's minor-unit exponent (JPY 0, EUR 2, KWD 3)."""
        return _currency.exponent(self.currency)

    @property
    def minor(self) -> int:
        """The amount in whole minor units (12.345 KWD -> 12345); a
        :class:`~services.core.currency.MinorUnitError` when it is finer than the minor unit."""
        return _currency.to_minor(self.amount, self.currency)

    def __str__(self) -> str:
        return _currency.format_money(self.amount, self.currency)


@dataclass(slots=True)
class Customer:
    """One customer as one system sees it. ``customer_id`` is the billing customer id when
    the record is linked (``None`` for an unlinked ERP party or support organization)."""

    ref: ExternalRef
    customer_id: str | None
    name: str
    email: str | None = None
    tax_id: str | None = None
    country: str | None = None
    created: datetime | None = None
    updated: datetime | None = None


@dataclass(slots=True)
class Plan:
    """A sellable recurring price (billing price / ERP product)."""

    ref: ExternalRef
    key: str  # lookup key shared by billing and ERP (e.g. "pro_monthly")
    name: str
    unit_price: Money | None = None
    interval: str | None = None  # "month" / "year"
    tier: Tier | None = None


@dataclass(slots=True)
class Subscription:
    ref: ExternalRef
    customer_id: str | None
    status: SubscriptionStatus
    plan_key: str | None
    quantity: int
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    created: datetime | None = None
    canceled_at: datetime | None = None
    trial_end: datetime | None = None
    billing_subscription_id: str | None = None  # on the ERP copy: its reference


@dataclass(frozen=True, slots=True)
class TaxAmount:
    """The tax one rate adds to an invoice (or a line, or a credit note): ``rate_id`` is the rate
    in its system (a billing ``txr_...``, an ERP ``account.tax`` id), ``percentage`` its rate in
    percent (20 for 20 %; ``None`` when the system did not say), ``reverse_charge`` a 0 % rate
    the customer self-assesses (EU B2B with a VAT id), ``amount`` the tax in the invoice's
    currency. Immutable and shared like :class:`Money`."""

    __codec_shared__: ClassVar[bool] = True

    rate_id: str | None
    percentage: Decimal | None
    reverse_charge: bool
    amount: Money
    name: str | None = None

    @property
    def rate_key(self) -> tuple[Decimal | None, bool]:
        """What identifies a rate across systems (their ids differ): percentage and reverse charge."""
        return (self.percentage.normalize() if self.percentage is not None else None), self.reverse_charge


@dataclass(slots=True)
class InvoiceLine:
    """One invoice line. ``amount`` is the line's amount as the system states it (billing:
    excluding tax, before discounts; the ERP: untaxed); ``net``, ``tax`` and ``discount`` are
    ``None`` when the system did not report them (snapshots written before they were read)."""

    description: str
    plan_key: str | None
    quantity: Decimal
    amount: Money
    net: Money | None = None
    tax: Money | None = None
    discount: Money | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    proration: bool = False
    taxes: tuple[TaxAmount, ...] = ()


@dataclass(slots=True)
class Invoice:
    ref: ExternalRef
    customer_id: str | None
    status: InvoiceStatus
    total: Money
    number: str | None = None
    billing_invoice_id: str | None = None  # the ERP copy's reference; equals ref.id in billing
    subscription_id: str | None = None
    created: datetime | None = None
    finalized_at: datetime | None = None
    posted_at: datetime | None = None
    paid_at: datetime | None = None
    voided_at: datetime | None = None  # billing: voided; the ERP: cancelled (its write time)
    invoice_date: date | None = None
    lines: list[InvoiceLine] = field(default_factory=list)
    #: excluding tax, after discounts (billing ``total_excluding_tax``, the ERP ``untaxed_amount``);
    #: ``None`` when not reported (a snapshot written before it was read)
    net: Money | None = None
    #: the tax in total (billing ``tax``, the ERP ``tax_amount``); ``None`` when not reported
    tax: Money | None = None
    #: the tax per rate (billing ``total_tax_amounts``, the ERP's ``account.invoice.tax``);
    #: ``None`` when not reported, ``()`` when reported untaxed
    taxes: tuple[TaxAmount, ...] | None = None
    #: the discounts in total (billing ``total_discount_amounts``); ``None`` when not reported
    discount: Money | None = None

    @property
    def currency(self) -> str:
        return self.total.currency


@dataclass(slots=True)
class CreditNote:
    """A credit note: billing's ``cn_...`` or the ERP's credit note (an ``out`` invoice numbered
    as a credit note). ``invoice_id`` is the credited invoice *in the same system* (billing
    ``in_...``, an ERP invoice id); amounts are positive (what is credited), ``total`` includes
    tax. ``status``: billing ``issued``/``void``, the ERP the invoice state of the credit note."""

    ref: ExternalRef
    customer_id: str | None
    invoice_id: str | None
    status: str
    total: Money
    net: Money | None = None
    tax: Money | None = None
    taxes: tuple[TaxAmount, ...] = ()
    number: str | None = None
    lines: list[InvoiceLine] = field(default_factory=list)
    created: datetime | None = None
    voided_at: datetime | None = None

    @property
    def is_void(self) -> bool:
        return self.status in ("void", "cancelled")


@dataclass(slots=True)
class Refund:
    """Money given back on a charge (billing's ``re_...``): ``invoice_id`` is the invoice the
    charge paid (``None`` for a charge of no invoice). ``status`` is Stripe's (``succeeded``,
    ``pending``, ``failed``, ``canceled``, ``requires_action``)."""

    ref: ExternalRef
    customer_id: str | None
    invoice_id: str | None
    charge_id: str | None
    amount: Money
    status: str
    created: datetime | None = None
    credit_note_id: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


@dataclass(slots=True)
class Payment:
    """Settlement of an invoice, as billing reports it and as the ERP records it."""

    ref: ExternalRef
    invoice_id: str
    amount: Money
    paid_at: datetime


@dataclass(slots=True)
class Entitlement:
    """The support organization's view of what the customer is entitled to."""

    ref: ExternalRef
    customer_id: str | None
    tier: Tier | None
    sla_policy: str | None = None
    ends_on: date | None = None
    updated: datetime | None = None


@dataclass(slots=True)
class SupportCase:
    ref: ExternalRef
    customer_id: str | None
    subject: str
    status: str
    priority: str | None = None
    created: datetime | None = None
    updated: datetime | None = None
    solved_at: datetime | None = None


class EventKind(enum.StrEnum):
    CUSTOMER_CREATED = "customer.created"
    SUBSCRIPTION_CREATED = "subscription.created"
    SUBSCRIPTION_UPDATED = "subscription.updated"
    SUBSCRIPTION_CANCELED = "subscription.canceled"
    INVOICE_FINALIZED = "invoice.finalized"
    INVOICE_PAID = "invoice.paid"
    INVOICE_PAYMENT_FAILED = "invoice.payment_failed"
    INVOICE_VOIDED = "invoice.voided"
    INVOICE_PRORATION = "invoice.proration"  # a mid-cycle change prorated (at the change's time)
    PARTY_CREATED = "party.created"
    ERP_INVOICE_CREATED = "erp_invoice.created"
    ERP_INVOICE_POSTED = "erp_invoice.posted"
    ERP_INVOICE_PAID = "erp_invoice.paid"
    ERP_INVOICE_CANCELLED = "erp_invoice.cancelled"
    CREDIT_NOTE_ISSUED = "credit_note.issued"
    CREDIT_NOTE_VOIDED = "credit_note.voided"
    REFUND_CREATED = "refund.created"
    ERP_CREDIT_NOTE_CREATED = "erp_credit_note.created"
    ERP_SUBSCRIPTION_CHANGED = "erp_subscription.changed"
    ORGANIZATION_CREATED = "organization.created"
    TIER_CHANGED = "organization.tier_changed"
    TICKET_OPENED = "ticket.opened"
    TICKET_SOLVED = "ticket.solved"


@dataclass(slots=True)
class LifecycleEvent:
    """One fact on a customer's timeline."""

    at: datetime
    system: System
    kind: EventKind
    customer_id: str | None
    ref: ExternalRef
    summary: str
    correlation_key: str | None = None  # events with the same key belong together (e.g. "invoice:in_X")
    exception_ids: tuple[str, ...] = ()


@dataclass(slots=True)
class Side:
    """The value(s) one system holds for a disagreement."""

    system: System
    ref: ExternalRef | None
    values: dict[str, object]


@dataclass(frozen=True, slots=True)
class ExceptionMark:
    """Something an operator did about an exception that stays visible with it: a fix that
    failed (``text`` = why) or a flag for review (``text`` = the reason given). ``rule`` is the
    rule of the exception the action was taken on, when it differs from the one shown (a failed
    retry of ``invoice.missing_in_erp`` shown on the ``invoice.not_posted_in_erp`` it left)."""

    at: datetime
    actor: str
    role: str
    action: str  # the action kind ("retry", "flag", ...)
    action_id: str
    text: str
    rule: str | None = None


@dataclass(slots=True)
class SyncException:
    """One disagreement between systems, with an owner and the fixes it allows.

    ``id`` is stable across refreshes: ``"<rule>:<key>"`` where the key names the objects
    involved, so the same disagreement keeps its id, first-seen time and history.
    """

    id: str
    rule: str
    severity: Severity
    owner: Team
    customer_id: str | None
    object_id: str
    summary: str
    sides: list[Side]
    first_seen: datetime
    last_seen: datetime
    fix_actions: tuple[str, ...] = ()
    closed_at: datetime | None = None
    #: the last attempt to fix it, when it failed (kept with the exception history)
    last_failure: ExceptionMark | None = None
    #: flagged for review: by whom, when, why (kept with the exception history)
    flagged: ExceptionMark | None = None

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    def age(self, now: datetime) -> float:
        """Age in seconds at ``now``."""
        return max(0.0, (now - self.first_seen).total_seconds())


#: Rule catalogue (DESIGN.md "Mismatch rules"): rule id -> (owner team, fix actions). The fix
#: actions are exactly those the action service offers, in its order (services.actions.model
#: RULE_ACTIONS; tests/services/test_rule_catalogue.py holds the two equal): what `reconcile
#: --format json` and the exception card list is what a user can do.
RULES: dict[str, tuple[Team, tuple[str, ...]]] = {
    "customer.unmapped_erp": (Team.FINANCE, ("create", "link", "accept")),
    "customer.unmapped_support": (Team.SUPPORT, ("create", "link", "accept")),
    "customer.master_drift": (Team.FINANCE, ("push", "correct", "accept")),
    "invoice.missing_in_erp": (Team.FINANCE, ("retry", "accept")),
    "invoice.not_posted_in_erp": (Team.FINANCE, ("post", "repost", "accept")),
    "invoice.amount_mismatch": (Team.FINANCE, ("correct", "credit_repost", "flag", "accept")),
    # the ERP copy in another currency: a draft is corrected into billing's currency, a posted one
    # credited (its credit note in its own currency) and reposted in billing's (services/actions)
    "invoice.currency_mismatch": (Team.FINANCE, ("correct", "credit_repost", "flag", "accept")),
    # the tax per rate differs: a draft is corrected, a posted one credited and reposted, with
    # billing's lines and each rate's ERP tax (the profile's tax_map; an unmapped rate is refused)
    "invoice.tax_mismatch": (Team.FINANCE, ("correct", "credit_repost", "flag", "accept")),
    "invoice.duplicate_in_erp": (Team.FINANCE, ("cancel", "flag", "accept")),
    "invoice.payment_state": (Team.FINANCE, ("flag", "accept")),
    "invoice.orphan_in_erp": (Team.FINANCE, ("flag", "accept")),
    # the missing ERP credit note (of a billing credit note, or of a full refund) is posted as
    # Tryton's credit makes one, against the credited ERP invoice (services/actions/plan_credits.py)
    "credit_note.missing_in_erp": (Team.FINANCE, ("credit", "flag", "accept")),
    "invoice.refund_not_reflected": (Team.FINANCE, ("credit", "flag", "accept")),
    # an ERP credit note whose amount or tax differs: a draft one is corrected with billing's lines
    # and mapped taxes; a posted one is never edited in place (flag it for review)
    "credit_note.amount_mismatch": (Team.FINANCE, ("correct", "flag", "accept")),
    "subscription.terms_mismatch": (Team.FINANCE, ("push", "accept")),
    # an ERP copy booked without its proration lines: a draft is corrected, a posted one credited and
    # reposted, with every billing line (the proration lines included) and its mapped taxes
    "subscription.proration_mismatch": (Team.FINANCE, ("correct", "credit_repost", "flag", "accept")),
    "entitlement.missing": (Team.SUPPORT, ("push", "accept")),
    "entitlement.tier_mismatch": (Team.SUPPORT, ("push", "accept")),
    "entitlement.orphan": (Team.SUPPORT, ("revoke", "accept")),
}
