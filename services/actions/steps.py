"""The action steps: what an action writes, one frozen dataclass per kind, and their stored form.

A plan (:mod:`services.actions.plan`) builds typed steps; the outbox
(:mod:`services.actions.outbox`) stores them as JSON (:meth:`Step.to_json`, the dict format of
every earlier version, read back by :func:`step_from_json`), and
:mod:`services.actions.execute` runs them in order, each through its handler
(:data:`services.actions.step_handlers.HANDLERS`).

The local steps (:class:`AcceptDifference`, :class:`FlagForReview`) send nothing: the service
records them when it finishes the action.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Self, TypeAlias

from services.core.domain import System
from services.core.errors import SyncDeskError

#: a JSON value as the outbox stores it
Json: TypeAlias = str | int | float | bool | list["Json"] | dict[str, "Json"] | None
JsonObject: TypeAlias = dict[str, Json]
#: an invoice line as a step carries it: (ERP product code, quantity, unit price, description), as text
StepLine: TypeAlias = tuple[str, str, str, str]
#: the ERP taxes (``account.tax`` ids) of each line of a step, in the lines' order
StepLineTaxes: TypeAlias = tuple[tuple[int, ...], ...]
#: a credit note line as a step carries it: (position of the credited line among the invoice's
#: lines, that line's description, quantity credited, unit price, description); numbers as text
StepCreditLine: TypeAlias = tuple[int, str, str, str, str]


@dataclass(frozen=True)
class ExpectedTotals:
    """What the ERP invoice must total before it is posted: billing's untaxed amount, tax and
    total, as text in the currency's minor unit (``"98.00"``)."""

    untaxed: str
    tax: str
    total: str

    def to_json(self) -> JsonObject:
        return {"untaxed": self.untaxed, "tax": self.tax, "total": self.total}


class StepFormatError(SyncDeskError):
    """A stored step that cannot be read: an unknown ``op`` or a missing / mistyped field."""


class Keep(enum.Enum):
    KEEP = "keep"


#: :class:`WriteSubscription`: the field is left as the ERP has it (absent from the JSON)
KEEP = Keep.KEEP


class _Fields:
    """Typed reads of one stored step's fields; a wrong one is a :class:`StepFormatError`."""

    def __init__(self, op: str, raw: Mapping[str, Json]) -> None:
        self.op = op
        self.raw = raw

    def _bad(self, key: str, want: str) -> StepFormatError:
        got = "missing" if key not in self.raw else f"{self.raw[key]!r}"
        return StepFormatError(f"action step {self.op}: {key} is {got}, not {want}")

    def has(self, key: str) -> bool:
        return key in self.raw

    def text(self, key: str) -> str:
        value = self.raw.get(key)
        if not isinstance(value, str):
            raise self._bad(key, "a text")
        return value

    def opt_text(self, key: str) -> str | None:
        return None if self.raw.get(key) is None else self.text(key)

    def number(self, key: str) -> int:
        """An id: an integer, or its text (``int(...)`` as the steps always read them)."""
        value = self.raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise self._bad(key, "an integer")
        try:
            return int(value)
        except ValueError:
            raise self._bad(key, "an integer") from None

    def opt_number(self, key: str) -> int | None:
        return None if self.raw.get(key) is None else self.number(key)

    def obj(self, key: str) -> JsonObject:
        value = self.raw.get(key)
        if not isinstance(value, dict):
            raise self._bad(key, "an object")
        return dict(value)

    def lines(self, key: str) -> tuple[StepLine, ...]:
        value = self.raw.get(key)
        if not isinstance(value, list):
            raise self._bad(key, "a list of lines")
        out: list[StepLine] = []
        for line in value:
            if not (isinstance(line, list) and len(line) == 4 and all(isinstance(v, str) for v in line)):
                raise self._bad(key, "a list of [product, quantity, unit price, description] texts")
            code, qty, unit, desc = (str(v) for v in line)
            out.append((code, qty, unit, desc))
        return tuple(out)


    def credit_lines(self, key: str) -> tuple[StepCreditLine, ...]:
        value = self.raw.get(key)
        if not isinstance(value, list):
            raise self._bad(key, "a list of credit note lines")
        out: list[StepCreditLine] = []
        for line in value:
            if not (isinstance(line, list) and len(line) == 5 and isinstance(line[0], int)
                    and not isinstance(line[0], bool) and all(isinstance(v, str) for v in line[1:])):
                raise self._bad(key, "a list of [credited line, its description, quantity, unit price, "
                                     "description]")
            out.append((int(line[0]), str(line[1]), str(line[2]), str(line[3]), str(line[4])))
        return tuple(out)

    def opt_line_taxes(self, key: str, count: int) -> StepLineTaxes | None:
        """Each line's ERP tax ids (``[[12], []]``); ``None`` when absent (a step stored before
        taxes were posted: the ERP proposes them)."""
        value = self.raw.get(key)
        if value is None:
            return None
        if not (isinstance(value, list) and len(value) == count and all(
                isinstance(ids, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
                for ids in value)):
            raise self._bad(key, f"a list of {count} lists of ERP tax ids")
        return tuple(tuple(int(i) for i in ids if isinstance(i, int)) for ids in value if isinstance(ids, list))

    def opt_totals(self, key: str) -> ExpectedTotals | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if not (isinstance(value, dict) and all(isinstance(value.get(k), str) for k in ("untaxed", "tax", "total"))):
            raise self._bad(key, "an object of untaxed, tax and total texts")
        return ExpectedTotals(str(value["untaxed"]), str(value["tax"]), str(value["total"]))


def _lines_json(lines: Iterable[StepLine]) -> list[Json]:
    return [list(line) for line in lines]


def _taxed_json(out: JsonObject, line_taxes: StepLineTaxes | None, expected: ExpectedTotals | None) -> None:
    """The taxed posting's fields, only when set (an untaxed step keeps its earlier stored form)."""
    if line_taxes is not None:
        out["line_taxes"] = [list(ids) for ids in line_taxes]
    if expected is not None:
        out["expected"] = expected.to_json()


# --------------------------------------------------------------------------------------
# The step kinds
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One write of an action, in the order the plan lists them."""

    #: the stored name of the kind (``"erp.post_invoice"``)
    op: ClassVar[str]
    #: the system written to (``None``: a local record, nothing is sent)
    system: ClassVar[System | None]

    def to_json(self) -> JsonObject:
        """The stored form (the outbox payload's ``steps``): ``op``, ``system`` and the fields."""
        return {"op": self.op, "system": self.system.value if self.system else None, **self._fields()}

    def _fields(self) -> JsonObject:
        return {}

    @classmethod
    def from_fields(cls, f: _Fields) -> Self:
        raise NotImplementedError


@dataclass(frozen=True)
class PostInvoice(Step):
    """invoice.missing_in_erp RETRY: create + post the ERP invoice for a billing invoice."""

    op = "erp.post_invoice"
    system = System.ERP
    billing_invoice_id: str
    party_id: int
    currency: str
    invoice_date: str | None  # ISO date; ``None``: the connector dates it
    lines: tuple[StepLine, ...]
    #: an ERP warning to acknowledge once before posting
    acknowledge: str | None = None
    #: each line's ERP taxes (``None``: the ERP proposes them, as steps stored before taxes did)
    line_taxes: StepLineTaxes | None = None
    #: billing's totals, compared with the ERP draft's to the minor unit before posting
    expected: ExpectedTotals | None = None

    def _fields(self) -> JsonObject:
        out: JsonObject = {"billing_invoice_id": self.billing_invoice_id, "party_id": self.party_id,
                           "currency": self.currency}
        if self.invoice_date is not None:
            out["invoice_date"] = self.invoice_date
        out["lines"] = _lines_json(self.lines)
        if self.acknowledge is not None:
            out["acknowledge"] = self.acknowledge
        _taxed_json(out, self.line_taxes, self.expected)
        return out

    @classmethod
    def from_fields(cls, f: _Fields) -> Self:
        lines = f.lines("lines")
        return cls(f.text("billing_invoice_id"), f.number("party_id"), f.text("currency"),
                   f.opt_text("invoice_date"), lines, f.opt_text("acknowledge"),
                   f.opt_line_taxes("line_taxes", len(lines)), f.opt_totals("expected"))


@dataclass(frozen=True)
class PostDraft(Step):
    """invoice.not_posted_in_erp POST: post the ERP's draft (or validated) copy of a billing
    invoice, dated ``invoice_date`` first when given (the ERP's strict sequence)."""

    op = "erp.post_draft"
    system = System.ERP
    invoice_id: int
    billing_invoice_id: str
    invoice_date: str | None  # ISO date written on the draft before posting; ``None``: its own
    acknowledge: str | None = None

    def _fields(self) -> JsonObject:
        out: JsonObject = {"invoice_id": self.invoice_id, "billing_invoice_id": self.billing_invoice_id,
                           "invoice_date": self.invoice_date}
        if self.acknowledge is not None:
            out["acknowledge"] = self.acknowledge
        return out

    @classmethod
    def from_fields(cls, f: _Fields) -> Self:
        return cls(f.number("invoice_id"), f.text("billing_invoice_id"), f.opt_text("invoice_date"),
                   f.opt_text("acknowledge"))


@dataclass(frozen=True)
class RepostInvoice(Step):
    """invoice.not_posted_in_erp REPOST: delete the ERP's draft copy, then create + post the
    invoice again from billing's lines (as :class:`PostInvoice`)."""

    op = "erp.repost_invoice"
    system = System.ERP
    invoice_id: int  # the draft deleted
    billing_invoice_id: str
    party_id: int
    currency: str
    invoice_date: str | None
    lines: tuple[StepLine, ...]
    acknowledge: str | None = None
    line_taxes: StepLineTaxes | None = None
    expected: ExpectedTotals | None = None

    def _fields(self) -> JsonObject:
        out: JsonObject = {"invoice_id": self.invoice_id, "billing_invoice_id": self.billing_invoice_id,
                           "party_id": self.party_id, "currency": self.currency, "invoice_date": self.invoice_date,
                           "lines": _lines_json(self.lines)}
        if self.acknowledge is not None:
            out["acknowledge"] = self.acknowledge
        _taxed_json(out, self.line_taxes, self.expected)
        return out

    @classmethod
    def from_fields(cls, f: _Fields) -> Self:
        lines = f.lines("lines")
        return cls(f.number("invoice_id"), f.text("billing_invoice_id"), f.number("party_id"), f.text("currency"),
                   f.opt_text("invoice_date"), lines, f.opt_text("acknowledge"),
                   f.opt_line_taxes("line_taxes", len(lines)), f.opt_totals("expected"))


@dataclass(frozen=True)
class EnsureParty(Step):
    """customer.unmapped_erp CREATE: the ERP party coded with the customer id (looked up first)."""

    op = "erp.ensure_party"
    system = System.ERP
    customer_id: str
    name: str
    tax_id: str | None
    country: str | None
    email: str | None

    def _fields(self) -> JsonObject:
        return {"customer_id": self.customer_id, "name": self.name, "tax_id": self.tax_id, "country": self.country,
                "email": self.email}

    @classmethod
    def from_fields(cls, f: _Fields) -> Self:
        return cls(f.text("customer_id"), f.text("name"), f.opt_text("tax_id"), f.opt_text("country"),
                   f.opt_text("email"))


@dataclass(frozen=True)
class LinkParty(Step):
    """customer.unmapped_erp LINK: an unlinked party's code becomes the customer id."""

    op = "erp.link_party"
    system = System.ERP
    party_id: int
    customer_id: str

    def _fields(self) -> JsonObject:
        return {"party_id": self.party_id, "customer_id": self.customer_id}

    @classmethod
    def from_fields(cls, f: _Fields) -> Self:
        return cls(f.number("party_id"), f.text("customer_id"))


@dataclass(frozen=True)
class ReplaceLines(Step):
    """CORRECT (invoice.amount_mismatch, invoice.tax_mismatch, invoice.currency_mismatch,
    subscription.proration_mismatch): a draft ERP invoice's currency and lines, replaced; with
    ``line_taxes`` and ``expected``, each line's mapped taxes and billing's totals, which the
    corrected draft must equal to the minor unit before it is kept."""

    op = "erp.replace_lines"
    system = System.ERP
    invoice_id: int
    currency: str
    lines: tuple[StepLine, ...]
    line_taxes: StepLineTaxes | None = None
    expected: ExpectedTotals | None = None

    def _fields(self) -> JsonObject:
        out: JsonObject = {"invoice_id": self.invoice_id, "currency": self.currency, "lines": _lines_json(self.lines)}
        _taxed_json(out, self.line_taxes, self.expected)
        return out

    @classmethod
    def from_fields(cls, f: _Fields) -> Self:
        lines = f.lines("lines")
        return cls(f.number("invoice_id"), f.text("currency"), lines, f.opt_line_taxes("line_taxes", len(lines)),
                   f.opt_totals("expected"))


@dataclass(frozen=True)
class CreditRepost(Step):
    """CREDIT_REPOST (invoice.amount_mismatch, invoice.tax_mismatch, invoice.currency_mismatch,
    subscription.proration_mismatch): credit a posted invoice with refund (a paid one: a credit
    note without refund, the billing reference moved off it), post a corrected copy."""

    op = "erp.credit_repost"
    system = System.ERP
    invoice_id: int
    billing_invoice_id: str
    party_id: int
    currency: str
    invoice_date: str  # ISO date of the credit note and the copy
    lines: tuple[StepLine, ...]
    acknowledge: str | None = None
    line_taxes: StepLineTaxes | None = None
    expected: ExpectedTotals | None = None

    def _fields(self) -> JsonObject:
        out: JsonObject = {"invoice_id": self.invoice_id, "billing_invoice_id": self.billing_invoice_id,
                           "party_id": self.party_id, "currency": self.currency, "invoice_date": self.invoice_date,
                           "lines": _lines_json(self.lines)}
        if self.acknowledge is not None:
            out["acknowledge"] = self.acknowledge
        _taxed_json(out, self.line_taxes, self.expected)
        return out

    @classmethod
    def from_fields(cls, f: _Fields) -> Self:
        lines = f.lines("lines")
        return cls(f.number("invoice_id"), f.text("billing_invoice_id"), f.number("party_id"), f.text("currency"),
                   f.text("invoice_date"), lines, f.opt_text("acknowledge"),
                   f.opt_line_taxes("line_taxes", len(lines)), f.opt_totals("expected"))


@dataclass(frozen=True)
class PostCreditNote(Step):
    """credit_note.missing_in_erp / invoice.refund_not_reflected CREDIT: post the ERP credit note
    of ERP invoice ``invoice_id`` (Tryton's credit shape: each line credits a line of it by
    ``origin``), referenced by ``reference`` (the billing credit note or refund), with billing's
    lines, each line's mapped taxes and billing's totals (negative: a credit note's)."""

    op = "erp.post_credit_note"
    system = System.ERP
    reference: str
    invoice_id: int
    currency: str
    invoice_date: str | None  # ISO date of the credit note
    lines: tuple[StepCreditLine, ...]
    line_taxes: StepLineTaxes
    expected: ExpectedTotals | None = None
    acknowledge: str | None = None

    def _fields(self) -> JsonObject:
        out: JsonObject = {"reference": self.reference, "invoice_id": self.invoice_id, "currency": self.currency,
                           "invoice_date": self.invoice_date, "lines": [list(line) for line in self.lines],
                           "line_taxes": [list(ids) for ids in self.line_taxes]}
        if self.expected is not None:
            out["expected"] = self.expected.to_json()
        if self.acknowledge is not None:
            out["acknowledge"] = self.acknowledge
        return out

    @classmethod
    def from_fields(cls, f: _Fields) -> Self:
        lines = f.credit_lines("lines")
        taxes = f.opt_line_taxes("line_taxes", len(lines))
        if taxes is None:
            raise StepFormatError(f"action step {cls.op}: line_taxes is missing, not a list of ERP tax ids per line")
        return cls(f.text("reference"), f.number("invoice_id"), f.text("currency"), f.opt_text("invoice_date"),
                   lines, taxes, f.opt_totals("expected"), f.opt_text("acknowledge"))


@dataclass(frozen=True)
class ReplaceCreditLines(Step):
    """credit_note.amount_mismatch CORRECT: a draft ERP credit note of ERP invoice ``invoice_id``,
    its lines replaced by billing's in Tryton's credit shape (each crediting a line of the invoice),
    each line's mapped taxes; billing's totals (negative) checked before the correction is kept."""

    op = "erp.replace_credit_lines"
    system = System.ERP
    note_id: int
    invoice_id: int
    currency: str
    lines: tuple[StepCreditLine, ...]
    line_taxes: StepLineTaxes
    expected: ExpectedTotals

    def _fields(self) -> JsonObject:
        return {"note_id": self.note_id, "invoice_id": self.invoice_id, "currency": self.currency,
                "lines": [list(line) for line in self.lines], "line_taxes": [list(ids) for ids in self.line_taxes],
                "expected": self.expected.to_json()}

    @classmethod
    def from_fields(cls, f: _Fields) -> Self:
        lines = f.credit_lines("lines")
        taxes = f.opt_line_taxes("line_taxes", len(lines))
        expected = f.opt_totals("expected")
        if taxes is None or expected is None:
            raise StepFormatError(f"action step {cls.op}: line_taxes and expected are required")
        return cls(f.number("note_id"), f.number("invoice_id"), f.text("currency"), lines, taxes, expected)


@dataclass(frozen=True)
class CancelInvoice(Step):
    """invoice.duplicate_in_erp CANCEL: one extra draft copy."""

    op = "erp.cancel_invoice"
    system = System.ERP
    invoice_id: int

    def _fields(self) -> JsonObject:
        return {"invoice_id": self.invoice_id}

    @classmethod
    def from_fields(cls, f: _Fields) -> Self:
        return cls(f.number("invoice_id"))


@dataclass(frozen=True)
class WriteSubscription(Step):
    """subscription.terms_mismatch PUSH: billing's plan, quantity and period end on the ERP
    subscription; only what differs is written (:data:`KEEP` / ``None``: left as it is)."""

    op = "erp.write_subscription"
    system = System.ERP
    subscription_id: int
    plan_key: str | Keep | None = KEEP
    quantity: int | None = None
    next_invoice_date: str | None = None  # ISO date

    def _fields(self) -> JsonObject:
        out: JsonObject = {"subscription_id": self.subscription_id}
        if self.plan_key is not KEEP:
            out["plan_key"] = self.plan_key
        if self.quantity is not None:
            out["quantity"] = self.quantity
        if self.next_invoice_date is not None:
            out["next_invoice_date"] = self.next_invoice_date
        return out

    @classmethod
    def from_fields(cls, f: _Fields) -> Self:
        return cls(f.number("subscription_id"), f.opt_text("plan_key") if f.has("plan_key") else KEEP,
                   f.opt_number("quantity"), f.opt_text("next_invoice_date"))


@dataclass(frozen=True)
class UpdateCustomer(Step):
    """customer.master_drift PUSH / CORRECT: fields of billing's customer (canonical names:
    ``name``, ``tax_id``, ``country``), with the action's Idempotency-Key."""

    op = "billing.update_customer"
    system = System.BILLING
    customer_id: str
    fields: JsonObject

    def _fields(self) -> JsonObject:
        return {"customer_id": self.customer_id, "fields": dict(self.fields)}

    @classmethod
    def from_fields(cls, f: _Fields) -> Self:
        return cls(f.text("customer_id"), f.obj("fields"))


@dataclass(frozen=True)
class CreateOrg(Step):
    """customer.unmapped_support CREATE: the organization (looked up by external id first)."""

    op = "support.create_org"
    system = System.SUPPORT
    name: str
    external_id: str
    #: organization fields to set (the support tier billing's plan grants), may be empty
    fields: JsonObject

    def _fields(self) -> JsonObject:
        return {"name": self.name, "external_id": self.external_id, "fields": dict(self.fields)}

    @classmethod
    def from_fields(cls, f: _Fields) -> Self:
        return cls(f.text("name"), f.text("external_id"), f.obj("fields") if f.raw.get("fields") else {})


@dataclass(frozen=True)
class LinkOrg(Step):
    """customer.unmapped_support LINK: PUT the candidate organization's external id."""

    op = "support.link_org"
    system = System.SUPPORT
    org_id: int
    external_id: str

    def _fields(self) -> JsonObject:
        return {"org_id": self.org_id, "external_id": self.external_id}

    @classmethod
    def from_fields(cls, f: _Fields) -> Self:
        return cls(f.number("org_id"), f.text("external_id"))


@dataclass(frozen=True)
class UpdateOrg(Step):
    """customer.master_drift PUSH / CORRECT: the organization's own values (its name)."""

    op = "support.update_org"
    system = System.SUPPORT
    org_id: int
    values: JsonObject

    def _fields(self) -> JsonObject:
        return {"org_id": self.org_id, "values": dict(self.values)}

    @classmethod
    def from_fields(cls, f: _Fields) -> Self:
        return cls(f.number("org_id"), f.obj("values"))


@dataclass(frozen=True)
class SetOrgFields(Step):
    """entitlement.* PUSH / REVOKE: the organization's fields (``support_tier``; ``None`` revokes)."""

    op = "support.set_fields"
    system = System.SUPPORT
    org_id: int
    fields: JsonObject

    def _fields(self) -> JsonObject:
        return {"org_id": self.org_id, "fields": dict(self.fields)}

    @classmethod
    def from_fields(cls, f: _Fields) -> Self:
        return cls(f.number("org_id"), f.obj("fields"))


@dataclass(frozen=True)
class AcceptDifference(Step):
    """ACCEPT (every rule): a local record; the service stores the acceptance when it finishes."""

    op = "local.accept"
    system = None
    #: the exception's fingerprint (:func:`services.actions.accepted.exception_fingerprint`)
    fingerprint: str
    expires_at: str  # ISO date/time

    def _fields(self) -> JsonObject:
        return {"fingerprint": self.fingerprint, "expires_at": self.expires_at}

    @classmethod
    def from_fields(cls, f: _Fields) -> Self:
        return cls(f.text("fingerprint"), f.text("expires_at"))


@dataclass(frozen=True)
class FlagForReview(Step):
    """FLAG: an audited local record for review; nothing is sent, the exception stays open."""

    op = "local.flag"
    system = None

    @classmethod
    def from_fields(cls, f: _Fields) -> Self:
        return cls()


#: every step kind by its stored ``op``
STEP_TYPES: dict[str, type[Step]] = {cls.op: cls for cls in (
    PostInvoice, PostDraft, RepostInvoice, EnsureParty, LinkParty, ReplaceLines, CreditRepost, PostCreditNote,
    ReplaceCreditLines, CancelInvoice,
    WriteSubscription, UpdateCustomer, CreateOrg, LinkOrg, UpdateOrg, SetOrgFields, AcceptDifference, FlagForReview)}


def step_from_json(raw: Mapping[str, Json]) -> Step:
    """A stored step (:meth:`Step.to_json` of this or an earlier version) as its typed kind;
    :class:`StepFormatError` for an unknown ``op`` or a missing / mistyped field."""
    op = raw.get("op")
    kind = STEP_TYPES.get(op) if isinstance(op, str) else None
    if kind is None:
        raise StepFormatError(f"unknown action step {op!r}")
    return kind.from_fields(_Fields(kind.op, raw))


def step_systems(steps: Iterable[Step]) -> list[System]:
    """The remote systems ``steps`` write to, first written first."""
    out: list[System] = []
    for step in steps:
        if step.system is not None and step.system not in out:
            out.append(step.system)
    return out
