"""The served models' fields: types, labels, defaults, required fields and selections.

:class:`Schema` parses ``ERP_MODELS`` (:mod:`services.demo.store`) plus the base fields every
trytond model has into :class:`FieldDef` objects; the tables beside it say what trytond's
field definitions say (computed, defaults, required, selection options, labels). The records
of models the demo does not serve but invoices reference (accounts, journal, payment term,
unit) are here too, with the names they read as.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from services.demo.store import ERP_MODELS
from services.demo.tryton.trytond_fields import TRYTOND_FIELDS, TYPE_OVERRIDES, X

# Records of models the demo does not serve, referenced by invoices and lines.
RECEIVABLE_ACCOUNT = 1
REVENUE_ACCOUNT = 2
TAX_ACCOUNT = 3
#: the demo company's ``account.configuration`` ``tax_rounding`` (trytond's default is "document"):
#: per line, as the billing platform rounds each line's tax (the sandbox seed configures the same)
TAX_ROUNDING = "line"
REVENUE_JOURNAL = 1
PAYMENT_TERM = 1
UNIT = 1
UNIT_CATEGORY = 1
STATIC_NAMES: dict[str, dict[int, str]] = {
    "account.account": {RECEIVABLE_ACCOUNT: "Main Receivable", REVENUE_ACCOUNT: "Main Revenue",
                        TAX_ACCOUNT: "Main Tax"},
    "account.journal": {REVENUE_JOURNAL: "Revenue"},
    "account.invoice.payment_term": {PAYMENT_TERM: "Term 30 days"},
    "product.uom": {UNIT: "Unit"},
    "product.uom.category": {UNIT_CATEGORY: "Units"},
}

Record = dict[str, Any]
Getter = Callable[[Record], Any]

MODEL_LABELS: dict[str, str] = {
    "res.user": "User", "res.user.warning": "Warning", "company.company": "Company",
    "currency.currency": "Currency", "country.country": "Country", "party.party": "Party",
    "party.identifier": "Party Identifier", "party.address": "Address",
    "party.contact_mechanism": "Contact Mechanism", "product.template": "Product Template",
    "product.product": "Variant", "account.invoice": "Invoice", "account.invoice.line": "Invoice Line",
    "sale.subscription.service": "Subscription Service", "sale.subscription": "Subscription",
    "sale.subscription.line": "Subscription Line", "account.tax": "Tax", "account.tax.group": "Tax Group",
    "account.invoice.tax": "Invoice Tax", "currency.currency.rate": "Rate", "account.tax.rule": "Tax Rule",
    "account.tax.rule.line": "Tax Rule Line",
}

BASE_FIELDS: dict[str, str] = {
    "id": "integer", "create_date": "datetime", "write_date": "datetime",
    "create_uid": "many2one:res.user", "write_uid": "many2one:res.user", "rec_name": "char",
}
#: fields trytond has beyond ``ERP_MODELS`` that clients must be able to send: an invoice line
#: carries its own company and currency (default: the company's), which must be the invoice's
EXTRA_FIELDS: dict[str, dict[str, str]] = {
    "account.invoice.line": {"company": "many2one:company.company", "currency": "many2one:currency.currency"},
}
#: fields the server computes on read (Function fields without setter: ignored on write)
COMPUTED: set[tuple[str, str]] = {
    ("party.party", "email"), ("party.party", "tax_identifier"), ("product.product", "name"),
    ("account.invoice", "untaxed_amount"), ("account.invoice", "tax_amount"),
    ("account.invoice", "total_amount"), ("account.invoice", "amount_to_pay"),
    ("account.invoice", "origin_invoices"), ("account.invoice.line", "amount"),
}
SELECTIONS: dict[tuple[str, str], tuple[str | None, ...]] = {
    ("account.invoice", "type"): ("out", "in"),
    ("account.invoice", "state"): ("draft", "validated", "posted", "paid", "cancelled"),
    ("account.invoice", "sequence_type_cache"): (None, "invoice", "credit_note"),
    ("account.invoice.line", "type"): ("line", "subtotal", "title", "comment"),
    ("sale.subscription", "state"): ("draft", "quotation", "running", "closed", "cancelled"),
    ("product.template", "type"): ("goods", "assets", "service"),
    ("account.tax", "type"): ("percentage", "fixed", "none"),
    ("account.tax.group", "kind"): ("sale", "purchase", "both"),
    ("account.tax.rule", "kind"): ("sale", "purchase", "both"),
    ("party.contact_mechanism", "type"): ("phone", "mobile", "fax", "email", "website", "skype",
                                          "sip", "irc", "jabber", "other"),
}
DEFAULTS: dict[str, dict[str, Any]] = {
    "res.user": {"active": True, "language": "en"},
    "res.user.warning": {"always": False},
    "party.party": {"active": True},
    "party.contact_mechanism": {"type": "other"},
    "currency.currency": {"digits": 2},
    "product.template": {"type": "goods"},
    "product.product": {"active": True},
    "account.invoice": {"type": "out", "state": "draft"},
    "account.invoice.line": {"type": "line"},
    "sale.subscription": {"state": "draft"},
    "sale.subscription.line": {"quantity": 1.0},
    "account.tax": {"active": True, "type": "percentage", "update_unit_price": False},
    "account.tax.group": {"kind": "both"},
    "account.tax.rule": {"kind": "both"},
    "account.tax.rule.line": {"keep_origin": False},
    "account.invoice.tax": {"base": Decimal(0), "amount": Decimal(0), "manual": True},
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "res.user": ("login", "name"),
    "res.user.warning": ("user", "name"),
    "company.company": ("party", "currency"),
    "currency.currency": ("name", "code"),
    "country.country": ("name",),
    "party.identifier": ("party", "code"),
    "party.address": ("party",),
    "party.contact_mechanism": ("party", "type", "value"),
    "product.template": ("name", "type"),
    "product.product": ("template",),
    "account.invoice": ("type", "party", "company", "currency", "invoice_address"),
    "sale.subscription.service": ("product",),
    "sale.subscription": ("party", "company", "currency", "start_date"),
    "sale.subscription.line": ("subscription", "service", "quantity", "unit_price"),
    "account.tax": ("name", "description", "type", "company"),
    "account.tax.group": ("name", "code", "kind"),
    "account.invoice.tax": ("invoice", "description", "account", "base", "amount"),
    "currency.currency.rate": ("currency", "date", "rate"),
    "account.tax.rule": ("name", "kind", "company"),
    "account.tax.rule.line": ("rule",),
}
FIELD_LABELS: dict[str, str] = {
    "unit_price": "Unit Price", "quantity": "Quantity", "company": "Company", "currency": "Currency",
    "party": "Party", "start_date": "Start Date", "type": "Type", "name": "Name", "code": "Code",
    "template": "Product Template", "product": "Product", "service": "Service", "user": "User",
    "login": "Login", "value": "Value", "subscription": "Subscription", "state": "State",
}


@dataclass(frozen=True, slots=True)
class FieldDef:
    name: str
    #: char boolean selection numeric float integer date datetime reference many2one one2many
    #: many2many (computed only)
    kind: str
    relation: str | None = None
    reverse: str | None = None  # one2many: the target's many2one back to us
    computed: bool = False
    readonly: bool = False
    #: a field trytond defines beyond ``ERP_MODELS`` (:mod:`~services.demo.tryton.trytond_fields`):
    #: its definition there; ``None`` for the fields the demo's data holds
    trytond: X | None = None


def _type(model: str, name: str, typ: str) -> str:
    return TYPE_OVERRIDES.get((model, name)) or TYPE_OVERRIDES.get(("*", name)) or typ


class Schema:
    """Field definitions of every served model: ``ERP_MODELS`` plus the base fields, and the
    fields trytond 8.2 defines beyond them (``TRYTOND_FIELDS``)."""

    def __init__(self) -> None:
        self.models: dict[str, dict[str, FieldDef]] = {}
        #: (child model, many2one) -> [(parent model, one2many)]
        self.parents: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for model, spec in ERP_MODELS.items():
            fields: dict[str, FieldDef] = {}
            for name, typ in {**BASE_FIELDS, **spec, **EXTRA_FIELDS.get(model, {})}.items():
                fields[name] = self._parse(model, name, _type(model, name, typ))
            for name, x in TRYTOND_FIELDS.get(model, {}).items():
                fields.setdefault(name, self._trytond(name, x))
            self.models[model] = fields
        # trytond's ``ir.date``: a plain Model (no table, no field) serving only ``today`` over RPC
        self.models["ir.date"] = {}
        for model, fields in self.models.items():
            for fd in fields.values():
                # trytond's other one2many fields are read-only views here: no cascades
                if fd.kind == "one2many" and fd.relation and fd.reverse and fd.trytond is None:
                    self.parents.setdefault((fd.relation, fd.reverse), []).append((model, fd.name))

    @staticmethod
    def _parse(model: str, name: str, typ: str) -> FieldDef:
        kind, _, target = typ.partition(":")
        computed = (model, name) in COMPUTED or name == "rec_name"
        readonly = computed or name in BASE_FIELDS
        if kind in ("many2one", "many2many"):
            return FieldDef(name, kind, relation=target, computed=computed, readonly=readonly)
        if kind == "one2many":
            relation, _, reverse = target.rpartition(".")
            return FieldDef(name, kind, relation=relation, reverse=reverse, readonly=readonly)
        return FieldDef(name, kind, computed=computed, readonly=readonly)

    @staticmethod
    def _trytond(name: str, x: X) -> FieldDef:
        kind, _, relation = x.spec.partition(":")
        return FieldDef(name, kind, relation=relation or None, reverse=x.reverse, computed=x.readonly,
                        readonly=x.readonly, trytond=x)

    def fields(self, model: str) -> dict[str, FieldDef]:
        return self.models[model]

    def field(self, model: str, name: str) -> FieldDef:
        """The field; ``KeyError(name)`` (trytond's terse ``'no_such_field'``) when unknown."""
        try:
            return self.models[model][name]
        except KeyError:
            raise KeyError(name) from None


def model_label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


def field_label(name: str) -> str:
    return FIELD_LABELS.get(name, name.replace("_", " ").title())
