"""Tryton's payloads: the records SyncDesk reads from trytond (pydantic models, validated
strictly: Decimal stays Decimal), the fields it reads of each model, and their mapping onto
the canonical model (``services/io/connectors/base.py`` and ``services/core/reconcile.py``):

- ``party.party`` -> :class:`Customer` keyed by the party id; ``customer_id`` = the party code
  (an empty code = unlinked = ``None``); e-mail = the first e-mail contact mechanism, tax id =
  the first identifier, country = the first address's country (first in the party's own
  order of its one2many lists). Parties of ``company.company`` (the company itself) are left
  out, inactive parties are deletions;
- ``product.product`` with a code -> :class:`Plan` (key = the code);
- ``account.invoice`` of type ``out`` -> :class:`Invoice` (``billing_invoice_id`` = reference,
  total = ``total_amount`` in the invoice currency; the time of its current state from its own
  history, :func:`state_times`: posted / paid / cancelled at its last write, an earlier state's
  time unknown).
  A *credit note* (Tryton's ``sequence_type_cache`` = ``credit_note``, or not numbered yet with
  a negative total) is never a billing invoice's copy: its ``billing_invoice_id`` is ``None``
  whatever its reference says (Tryton's credit copies none), so the reference-based rules never
  count it. A *credited* invoice is ``cancelled`` (its state after a credit with refund), which
  the rules already leave out ("live" = not cancelled). Net = ``untaxed_amount``, tax =
  ``tax_amount``, tax per rate = the invoice's ``account.invoice.tax`` records summed per tax
  (``tax.rate`` as a percentage; reverse charge = a 0 % tax with a legal notice);
- a credit note is also a :class:`CreditNote` (amounts positive: what it credits) whose
  ``invoice_id`` is the invoice its lines' ``origin`` (``account.invoice.line,<id>``, set by
  Tryton's credit) belongs to;
- ``sale.subscription`` -> :class:`Subscription` (plan = the product code of the first line's
  service, ``current_period_end`` = ``next_invoice_date`` at midnight UTC,
  ``billing_subscription_id`` = reference).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr

from services.core.domain import (
    CreditNote,
    Customer,
    ExternalRef,
    Invoice,
    InvoiceStatus,
    Money,
    Plan,
    Subscription,
    SubscriptionStatus,
    System,
    TaxAmount,
)
from services.core.errors import ProtocolError

# the trytond models SyncDesk reads, the fields it reads of each and the progress phase naming each
PARTY = "party.party"
IDENTIFIER = "party.identifier"
ADDRESS = "party.address"
CONTACT = "party.contact_mechanism"
PRODUCT = "product.product"
INVOICE = "account.invoice"
SUBSCRIPTION = "sale.subscription"
SUB_LINE = "sale.subscription.line"
SERVICE = "sale.subscription.service"
COMPANY = "company.company"
INVOICE_TAX = "account.invoice.tax"
INVOICE_LINE = "account.invoice.line"

STAMPS = ("create_date", "write_date")
FIELDS: dict[str, list[str]] = {
    PARTY: ["name", "code", "active", "identifiers", "addresses", "contact_mechanisms", *STAMPS],
    IDENTIFIER: ["party", "type", "code", *STAMPS],
    ADDRESS: ["party", "country", "country.code", *STAMPS],
    CONTACT: ["party", "type", "value", *STAMPS],
    PRODUCT: ["code", "name", "active", *STAMPS],
    INVOICE: ["type", "number", "reference", "party", "party.code", "state", "currency", "currency.code",
              "total_amount", "untaxed_amount", "tax_amount", "invoice_date", "sequence_type_cache", *STAMPS],
    SUBSCRIPTION: ["number", "reference", "party", "party.code", "state", "start_date", "end_date",
                   "next_invoice_date", "lines", *STAMPS],
    SUB_LINE: ["subscription", "service", "quantity", *STAMPS],
    SERVICE: ["product", "product.code", *STAMPS],
    COMPANY: ["party", "currency", "currency.code"],
    INVOICE_TAX: ["invoice", "tax", "tax.rate", "tax.type", "tax.name", "base", "amount", "legal_notice", *STAMPS],
    INVOICE_LINE: ["invoice", "origin", *STAMPS],
}
PHASES: dict[str, str] = {
    PARTY: "parties", IDENTIFIER: "identifiers", ADDRESS: "addresses", CONTACT: "contact mechanisms",
    PRODUCT: "products", INVOICE: "invoices", SUBSCRIPTION: "subscriptions", SUB_LINE: "subscription lines",
    SERVICE: "subscription services", COMPANY: "companies", INVOICE_TAX: "invoice taxes",
    INVOICE_LINE: "invoice lines",
}
SUBSCRIPTION_STATUS: dict[str, SubscriptionStatus] = {
    "running": SubscriptionStatus.ACTIVE,
    "closed": SubscriptionStatus.CANCELED,
    "cancelled": SubscriptionStatus.CANCELED,
    "draft": SubscriptionStatus.INCOMPLETE,
    "quotation": SubscriptionStatus.INCOMPLETE,
}
INVOICE_STATUS: dict[str, InvoiceStatus] = {
    "draft": InvoiceStatus.DRAFT,
    "validated": InvoiceStatus.VALIDATED,
    "posted": InvoiceStatus.POSTED,
    "paid": InvoiceStatus.PAID,
    "cancelled": InvoiceStatus.CANCELLED,
}


# --------------------------------------------------------------------------------------
# Vendor payloads: every record read is validated (types strict: Decimal stays Decimal)
# --------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True)


class _Ref(_Model):
    """A dotted many2one read: ``"party.": {"id": 2, "code": "cus_X"}``."""

    id: StrictInt
    code: StrictStr | None = None


class _Record(_Model):
    id: StrictInt
    create_date: datetime
    write_date: datetime | None = None

    @property
    def stamp(self) -> datetime:
        return max(self.create_date, self.write_date) if self.write_date else self.create_date


def _flag(value: object) -> bool:
    """Tryton booleans: ``true``/``false`` on PostgreSQL, ``1``/``0`` on SQLite."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"not a boolean: {value!r}")


TrytonBool = Annotated[bool, BeforeValidator(_flag)]


class TParty(_Record):
    name: StrictStr
    code: StrictStr | None = None
    active: TrytonBool = True
    identifiers: list[StrictInt] = []
    addresses: list[StrictInt] = []
    contact_mechanisms: list[StrictInt] = []


class TIdentifier(_Record):
    party: StrictInt
    type: StrictStr | None = None
    code: StrictStr | None = None


class TAddress(_Record):
    party: StrictInt
    country: StrictInt | None = None
    country_: _Ref | None = Field(default=None, alias="country.")


class TContact(_Record):
    party: StrictInt
    type: StrictStr
    value: StrictStr | None = None


class TProduct(_Record):
    code: StrictStr | None = None
    name: StrictStr | None = None
    active: TrytonBool = True


class TInvoice(_Record):
    type: StrictStr
    number: StrictStr | None = None
    reference: StrictStr | None = None
    party: StrictInt
    party_: _Ref | None = Field(default=None, alias="party.")
    state: StrictStr
    currency: StrictInt
    currency_: _Ref = Field(alias="currency.")
    total_amount: Decimal
    untaxed_amount: Decimal | None = None
    tax_amount: Decimal | None = None
    invoice_date: date | None = None
    #: set by Tryton when it numbers the invoice: ``invoice`` or ``credit_note``
    sequence_type_cache: StrictStr | None = None

    @property
    def is_credit_note(self) -> bool:
        """Tryton's own test (``Invoice._sequence_type``): numbered as a credit note, or, not
        numbered yet, a negative total."""
        if self.sequence_type_cache is not None:
            return self.sequence_type_cache == "credit_note"
        return self.total_amount < 0


class _TaxRef(_Model):
    """``"tax.": {"id": 3, "rate": Decimal("0.2"), "type": "percentage", "name": ...}``."""

    id: StrictInt
    rate: Decimal | None = None
    type: StrictStr | None = None
    name: StrictStr | None = None


class TInvoiceTax(_Record):
    invoice: StrictInt
    tax: StrictInt | None = None
    tax_: _TaxRef | None = Field(default=None, alias="tax.")
    base: Decimal
    amount: Decimal
    legal_notice: StrictStr | None = None


class TInvoiceLine(_Record):
    invoice: StrictInt | None = None
    #: a reference field: ``"account.invoice.line,12"`` (what a credit note line credits) or None
    origin: StrictStr | None = None

    @property
    def credited_line(self) -> int | None:
        model, _, rid = (self.origin or "").partition(",")
        return int(rid) if model == INVOICE_LINE and rid.isdigit() else None


class TSubscription(_Record):
    number: StrictStr | None = None
    reference: StrictStr | None = None
    party: StrictInt
    party_: _Ref | None = Field(default=None, alias="party.")
    state: StrictStr
    start_date: date | None = None
    end_date: date | None = None
    next_invoice_date: date | None = None
    lines: list[StrictInt] = []


class TSubLine(_Record):
    subscription: StrictInt
    service: StrictInt
    quantity: float


class TService(_Record):
    product: StrictInt
    product_: _Ref | None = Field(default=None, alias="product.")


class _State(_Model):
    id: StrictInt
    state: StrictStr


class _StateParty(_State):
    party: StrictInt


class _InvoiceHead(_StateParty):
    type: StrictStr
    number: StrictStr | None = None
    reference: StrictStr | None = None


class TCompany(_Model):
    id: StrictInt
    party: StrictInt
    currency: StrictInt | None = None


SCHEMAS: dict[str, type[_Model]] = {
    PARTY: TParty, IDENTIFIER: TIdentifier, ADDRESS: TAddress, CONTACT: TContact, PRODUCT: TProduct,
    INVOICE: TInvoice, SUBSCRIPTION: TSubscription, SUB_LINE: TSubLine, SERVICE: TService, COMPANY: TCompany,
    INVOICE_TAX: TInvoiceTax, INVOICE_LINE: TInvoiceLine,
}


# --------------------------------------------------------------------------------------
# Mapping onto the canonical model
# --------------------------------------------------------------------------------------


def aware(value: datetime) -> datetime:
    """Tryton's naive UTC datetime as an aware one."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def midnight(value: date | None) -> datetime | None:
    return None if value is None else datetime.combine(value, time(), UTC)


def _code(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


#: A party code links the party to a billing customer only when it is a billing id: a real
#: Tryton numbers every party ("1", "2", …), so an unlinked party never has an empty code.
CUSTOMER_CODE = re.compile(r"^cus_[A-Za-z0-9]+$")


def _customer_id(code: str | None) -> str | None:
    value = _code(code)
    return value if value is not None and CUSTOMER_CODE.match(value) else None


def map_party(party: TParty, identifiers: dict[int, TIdentifier], addresses: dict[int, TAddress],
              emails: dict[int, TContact]) -> Customer:
    tax_id = next((_code(identifiers[i].code) for i in party.identifiers
                   if i in identifiers and _code(identifiers[i].code)), None)
    country = None
    for aid in party.addresses:
        addr = addresses.get(aid)
        if addr is not None:
            country = _code(addr.country_.code) if addr.country_ else None
            break
    email = next((_code(emails[c].value) for c in party.contact_mechanisms
                  if c in emails and emails[c].type == "email" and _code(emails[c].value)), None)
    return Customer(ref=ExternalRef(System.ERP, PARTY, str(party.id)), customer_id=_customer_id(party.code),
                    name=party.name, email=email, tax_id=tax_id, country=country,
                    created=aware(party.create_date), updated=aware(party.stamp))


def map_product(product: TProduct) -> Plan | None:
    key = _code(product.code)
    if key is None:
        return None  # no code: nothing in billing can refer to it
    return Plan(ref=ExternalRef(System.ERP, PRODUCT, str(product.id)), key=key, name=product.name or key)


def invoice_taxes(taxes: list[TInvoiceTax], currency: str) -> tuple[TaxAmount, ...]:
    """An invoice's ``account.invoice.tax`` records summed per tax (a manual adjustment of the
    same tax adds to it), in tax id order."""
    sums: dict[int | None, list[Any]] = {}
    for t in sorted(taxes, key=lambda t: (t.tax or 0, t.id)):
        ref = t.tax_
        pct = ((ref.rate * 100).normalize() if ref is not None and ref.rate is not None
               and ref.type in (None, "percentage") else None)
        reverse = pct is not None and pct == 0 and bool(_code(t.legal_notice))
        acc = sums.setdefault(t.tax, [Decimal(0), pct, False, ref.name if ref is not None else None])
        acc[0] += t.amount
        acc[2] = acc[2] or reverse
    return tuple(TaxAmount(str(tid) if tid is not None else None, pct, reverse, Money(total, currency), name)
                 for tid, (total, pct, reverse, name) in sums.items())


def map_invoice(inv: TInvoice, taxes: list[TInvoiceTax] | None = None) -> Invoice:
    """``taxes``: the invoice's ``account.invoice.tax`` records (``None``: not read)."""
    what = f"{INVOICE} {inv.id}"
    status = INVOICE_STATUS.get(inv.state)
    if status is None:
        raise ProtocolError(System.ERP, f"read {INVOICE}", f"{what}: unknown state {inv.state!r}")
    try:
        total = Money(inv.total_amount, inv.currency_.code or "")
    except (TypeError, ValueError) as exc:
        raise ProtocolError(System.ERP, f"read {INVOICE}", f"{what}: {exc}") from None
    # a credit note is never a billing invoice's copy, whatever its reference says
    reference = None if inv.is_credit_note else _code(inv.reference)
    posted_at, paid_at, cancelled_at = state_times(inv, status)
    return Invoice(ref=ExternalRef(System.ERP, INVOICE, str(inv.id)),
                   customer_id=_customer_id(inv.party_.code) if inv.party_ else None, status=status, total=total,
                   number=_code(inv.number), billing_invoice_id=reference,
                   created=aware(inv.create_date), posted_at=posted_at, paid_at=paid_at, voided_at=cancelled_at,
                   invoice_date=inv.invoice_date,
                   net=Money(inv.untaxed_amount, total.currency) if inv.untaxed_amount is not None else None,
                   tax=Money(inv.tax_amount, total.currency) if inv.tax_amount is not None else None,
                   taxes=invoice_taxes(taxes, total.currency) if taxes is not None else None)


def map_credit_note(inv: Invoice, credited: int | None) -> CreditNote:
    """An ERP credit note (``inv``: its mapping as an invoice) as a :class:`CreditNote` of the
    invoice ``credited`` (the ERP invoice id its lines credit; ``None`` when they credit none).
    Its amounts are negated: positive, what it credits."""
    def neg(m: Money) -> Money:
        return Money(-m.amount, m.currency)

    return CreditNote(ref=inv.ref, customer_id=inv.customer_id,
                      invoice_id=str(credited) if credited is not None else None, status=inv.status.value,
                      total=neg(inv.total), net=neg(inv.net) if inv.net is not None else None,
                      tax=neg(inv.tax) if inv.tax is not None else None,
                      taxes=tuple(TaxAmount(t.rate_id, t.percentage, t.reverse_charge, neg(t.amount), t.name)
                                  for t in inv.taxes or ()),
                      number=inv.number, created=inv.created, voided_at=inv.voided_at)


def state_times(inv: TInvoice, status: InvoiceStatus) -> tuple[datetime | None, datetime | None, datetime | None]:
    """``(posted_at, paid_at, cancelled_at)`` as far as the invoice's own history tells them.

    trytond keeps no time per state: the record's last write (``write_date``) is when it reached
    the state it is in (Tryton writes ``state`` itself when it posts, pays or cancels an
    invoice; a later write of a posted invoice — e.g. its report cache — can only make the time
    later, never earlier); a record never written since its creation was created in that state.
    An earlier state's time is gone: a paid or cancelled invoice's posting time is ``None``
    (unknown), never guessed from its ``invoice_date``."""
    reached = aware(inv.write_date or inv.create_date)
    return (reached if status is InvoiceStatus.POSTED else None,
            reached if status is InvoiceStatus.PAID else None,
            reached if status is InvoiceStatus.CANCELLED else None)


def map_subscription(sub: TSubscription, lines: dict[int, TSubLine],
                     services: dict[int, TService]) -> Subscription:
    status = SUBSCRIPTION_STATUS.get(sub.state)
    if status is None:
        raise ProtocolError(System.ERP, f"read {SUBSCRIPTION}", f"{SUBSCRIPTION} {sub.id}: unknown state "
                            f"{sub.state!r}")
    first = next((lines[i] for i in sub.lines if i in lines), None)
    plan_key: str | None = None
    quantity = 0
    if first is not None:
        service = services.get(first.service)
        plan_key = _code(service.product_.code) if service and service.product_ else None
        quantity = round(first.quantity)
    canceled = status is SubscriptionStatus.CANCELED
    return Subscription(ref=ExternalRef(System.ERP, SUBSCRIPTION, str(sub.id)),
                        customer_id=_customer_id(sub.party_.code) if sub.party_ else None, status=status,
                        plan_key=plan_key, quantity=quantity,
                        current_period_end=midnight(sub.next_invoice_date), created=aware(sub.create_date),
                        canceled_at=midnight(sub.end_date) if canceled else None,
                        billing_subscription_id=_code(sub.reference))
