"""Field values of records: stored, computed (trytond's Function fields) and ``rec_name``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from services.demo.store import ErpStore
from services.demo.tryton.schema import STATIC_NAMES, Getter, Record, Schema
from services.demo.tryton.trytond_values import TrytondValues


def _sqlite_bool(value: Any) -> Any:
    return None if value is None else int(bool(value))


class FieldValues:
    """Python values of record fields, including the ones trytond computes on read."""

    def __init__(self, store: ErpStore, schema: Schema) -> None:
        self.store = store
        self.schema = schema
        self._computed: dict[tuple[str, str], Getter] = {
            ("party.party", "email"): self._party_email,
            ("party.party", "tax_identifier"): self._party_tax_identifier,
            ("product.product", "name"): self._product_name,
            ("account.invoice", "untaxed_amount"): self._invoice_untaxed,
            ("account.invoice", "tax_amount"): self._invoice_tax,
            ("account.invoice", "total_amount"): self._invoice_total,
            ("account.invoice", "amount_to_pay"): self._invoice_amount_to_pay,
            ("account.invoice", "origin_invoices"): self._invoice_origin_invoices,
            ("account.invoice.line", "amount"): self._line_amount,
            # trytond's ``ir.lang`` many2one; the demo's data keeps a language code there
            ("res.user", "language"): lambda r: r["language"] if isinstance(r.get("language"), int) else None,
        }
        #: the fields trytond defines beyond ``ERP_MODELS``
        self.trytond = TrytondValues(self)
        self._rec_names: dict[str, Getter] = {
            "party.party": lambda r: r.get("name") or f"[{r.get('code') or ''}]",
            "account.invoice": self._invoice_rec_name,
            "product.product": self._product_rec_name,
            "product.template": lambda r: r.get("name") or "",
            "company.company": lambda r: self.rec_name("party.party", r.get("party")),
            "party.identifier": lambda r: r.get("code") or "",
            "party.contact_mechanism": lambda r: r.get("value") or "",
            "party.address": lambda r: ", ".join(
                str(v) for v in (r.get("street"), r.get("postal_code"), r.get("city")) if v),
            "sale.subscription": lambda r: r.get("number") or f"({r['id']})",
            "sale.subscription.service": lambda r: self.rec_name("product.product", r.get("product")),
            "sale.subscription.line": lambda r: self.rec_name("sale.subscription.service", r.get("service")),
            "account.invoice.line": lambda r: r.get("description") or self.rec_name(
                "product.product", r.get("product")),
            "account.invoice.tax": lambda r: r.get("description") or "",
            # trytond formats the rate's date in the user's language (en: %m/%d/%Y)
            "currency.currency.rate": lambda r: r["date"].strftime("%m/%d/%Y") if r.get("date") else "",
        }

    # -- generic ------------------------------------------------------------------------

    def getter(self, model: str, name: str) -> Getter:
        """A function record -> value for field ``name`` (KeyError when unknown)."""
        fd = self.schema.field(model, name)
        if fd.trytond is not None:
            return self.trytond.getter(model, fd)
        if fd.kind == "one2many":
            return lambda rec: self.children(model, name, rec["id"])
        if name == "rec_name":
            return self._rec_name_getter(model)
        computed = self._computed.get((model, name))
        if computed is not None:
            return computed
        if fd.kind == "boolean":
            # trytond on SQLite answers stored booleans as the integers SQLite keeps (1 / 0)
            return lambda rec: _sqlite_bool(rec.get(name))
        return lambda rec: rec.get(name)

    def _rec_name_getter(self, model: str) -> Getter:
        fn = self._rec_names.get(model)
        if fn is not None:
            return fn
        return lambda r: r.get("name") or r.get("rec_name") or str(r["id"])

    def rec_name(self, model: str, rid: int | None) -> str:
        if rid is None:
            return ""
        if model in STATIC_NAMES:
            return STATIC_NAMES[model].get(rid, str(rid))
        rec = self.store.tables.get(model, {}).get(rid)
        return "" if rec is None else str(self._rec_name_getter(model)(rec))

    def children(self, model: str, name: str, parent_id: int) -> list[int]:
        """Ids of the one2many ``name`` of record ``parent_id`` (ascending)."""
        fd = self.schema.field(model, name)
        assert fd.relation is not None and fd.reverse is not None
        if (fd.relation, fd.reverse) in self.store.indexes:
            return sorted(self.store.lookup(fd.relation, fd.reverse, parent_id))
        rev = fd.reverse
        return sorted(rid for rid, r in self.store.tables[fd.relation].items() if r.get(rev) == parent_id)

    def _related(self, model: str, rid: int | None) -> Record | None:
        return None if rid is None else self.store.tables[model].get(rid)

    def _digits(self, currency: int | None) -> int:
        rec = self._related("currency.currency", currency)
        digits = rec.get("digits") if rec else None
        return digits if isinstance(digits, int) else 2

    @staticmethod
    def _round(amount: Decimal, digits: int) -> Decimal:
        return amount.quantize(Decimal(1).scaleb(-digits))

    # -- computed fields ----------------------------------------------------------------

    def _party_email(self, rec: Record) -> str | None:
        table = self.store.tables["party.contact_mechanism"]
        for cid in sorted(self.store.lookup("party.contact_mechanism", "party", rec["id"])):
            mech = table.get(cid)
            if mech is not None and mech.get("type") == "email":
                return mech.get("value")
        return None

    def _party_tax_identifier(self, rec: Record) -> int | None:
        ids = self.store.lookup("party.identifier", "party", rec["id"])
        return min(ids) if ids else None

    def _product_name(self, rec: Record) -> str | None:
        template = self._related("product.template", rec.get("template"))
        return template.get("name") if template else rec.get("name")

    def _product_rec_name(self, rec: Record) -> str:
        name = self._product_name(rec) or ""
        code = rec.get("code")
        return f"[{code}] {name}" if code else name

    @staticmethod
    def _invoice_rec_name(rec: Record) -> str:
        items = []
        if rec.get("number"):
            items.append(str(rec["number"]))
        if rec.get("reference"):
            items.append(f"[{rec['reference']}]")
        return " ".join(items) or f"({rec['id']})"

    def _line_amount(self, rec: Record) -> Decimal:
        invoice = self._related("account.invoice", rec.get("invoice"))
        digits = self._digits(invoice.get("currency") if invoice else None)
        if rec.get("type", "line") != "line":
            return self._round(Decimal(0), digits)
        quantity = rec.get("quantity") or 0
        price = rec.get("unit_price") or Decimal(0)
        return self._round(Decimal(str(quantity)) * price, digits)

    def _invoice_untaxed(self, rec: Record) -> Decimal:
        lines = self.store.tables["account.invoice.line"]
        total = Decimal(0)
        for lid in self.store.lookup("account.invoice.line", "invoice", rec["id"]):
            line = lines.get(lid)
            if line is not None and line.get("type", "line") == "line":
                total += self._line_amount(line)
        return self._round(total, self._digits(rec.get("currency")))

    def _invoice_tax(self, rec: Record) -> Decimal:
        """trytond's ``Invoice.get_amount``: the sum of the invoice's ``account.invoice.tax``
        amounts (``update_taxes`` keeps them), rounded by the currency."""
        taxes = self.store.tables["account.invoice.tax"]
        total = sum((taxes[t].get("amount") or Decimal(0)
                     for t in self.store.lookup("account.invoice.tax", "invoice", rec["id"]) if t in taxes),
                    Decimal(0))
        return self._round(total, self._digits(rec.get("currency")))

    def _invoice_total(self, rec: Record) -> Decimal:
        return self._invoice_untaxed(rec) + self._invoice_tax(rec)

    def _invoice_origin_invoices(self, rec: Record) -> list[int]:
        """The invoices whose lines are the origins of this one's lines (a credit note's)."""
        lines = self.store.tables["account.invoice.line"]
        found: set[int] = set()
        for lid in self.store.lookup("account.invoice.line", "invoice", rec["id"]):
            origin = (lines.get(lid) or {}).get("origin")
            model, _, rid = origin.partition(",") if isinstance(origin, str) else ("", "", "")
            if model == "account.invoice.line" and rid.isdigit():
                credited = lines.get(int(rid))
                if credited is not None and credited.get("invoice") is not None:
                    found.add(credited["invoice"])
        found.discard(rec["id"])
        return sorted(found)

    def _invoice_amount_to_pay(self, rec: Record) -> Decimal:
        if rec.get("state") != "posted":
            return self._round(Decimal(0), self._digits(rec.get("currency")))
        stored = rec.get("amount_to_pay")
        return stored if isinstance(stored, Decimal) else self._invoice_total(rec)
