"""What the fields of :mod:`~services.demo.tryton.trytond_fields` read as.

Stored fields read as the value a client wrote, else their default; relations to models the demo
does not serve read as trytond reads them for a record that has none (``None``, ``[]``); a
one2many to a served model lists the records whose many2one points back (through the store's
index when there is one, else through a reverse map rebuilt when the target table changes).
The Function fields trytond computes are computed here where that is cheap, following trytond
8.2's code (the party's ``get_contact_mechanism``, ``code_alnum``/``code_digit``, the invoice's
``get_allow_cancel``, ``get_type_name``, ``get_origins``, the contact mechanism's
``on_change_with_url``, the country's flag ...); the others read as for a record without
history: balances ``0``, no account moves, no report cache.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from services.demo.tryton.schema import PAYMENT_TERM, UNIT, UNIT_CATEGORY, FieldDef, Getter, Record
from services.demo.tryton.taxes import TaxEngine, rounding_of, tax_key

if TYPE_CHECKING:
    from services.demo.tryton.values import FieldValues

_URL_PREFIX = {"email": "mailto:", "skype": "callto:", "sip": "sip:", "phone": "tel:", "mobile": "tel:",
               "fax": "fax:"}
_SEPARATORS = re.compile(r"[\s\-./]")


def _sqlite_bool(value: Any) -> Any:
    return None if value is None else int(bool(value))


def _digits_only(text: Any) -> int | None:
    digits = re.sub(r"\D", "", text or "")[-18:] if isinstance(text, str) else ""
    return int(digits) if digits else None


def _alnum(text: Any) -> str | None:
    return re.sub(r"[\W_]", "", text) if isinstance(text, str) else None


class TrytondValues:
    """Getters for the trytond fields beyond ``ERP_MODELS`` (see the module docstring)."""

    def __init__(self, values: FieldValues) -> None:
        self.values = values
        self.store = values.store
        self.schema = values.schema
        #: (model, many2one) -> (table version, parent id -> child ids): reverse maps of
        #: unindexed one2many fields
        self._reverse: dict[tuple[str, str], tuple[int, dict[Any, list[int]]]] = {}
        v = values
        zero = Decimal(0)
        self.computed: dict[tuple[str, str], Getter] = {
            # res.user
            ("res.user", "administrator"): lambda r: _sqlite_bool(r.get("administrator", r.get("login") == "admin")),
            ("res.user", "companies"): lambda r: list(r.get("companies") or
                                                      ([r["company"]] if r.get("company") else [])),
            ("res.user", "language_direction"): lambda r: "ltr",
            ("res.user", "password"): lambda r: "x" * 10,  # trytond's get_password
            ("res.user", "password_hash"): lambda r: None,
            ("res.user", "sessions"): lambda r: 0,
            ("res.user", "status_bar"): self._user_status_bar,
            # company.company: balances of a company without moves
            ("company.company", "receivable"): lambda r: zero, ("company.company", "payable"): lambda r: zero,
            ("company.company", "receivable_today"): lambda r: zero,
            ("company.company", "payable_today"): lambda r: zero,
            # currency.currency
            ("currency.currency", "rounding"): lambda r: r.get("rounding") or Decimal(1).scaleb(
                -(r["digits"] if isinstance(r.get("digits"), int) else 2)),
            ("currency.currency", "rate"): self._currency_rate,
            # country.country
            ("country.country", "flag"): self._country_flag,
            # party.party
            ("party.party", "full_name"): lambda r: r.get("name"),
            ("party.party", "code_alnum"): lambda r: _alnum(r.get("code")),
            ("party.party", "code_digit"): lambda r: _digits_only(r.get("code")),
            ("party.party", "code_readonly"): lambda r: True,
            ("party.party", "phone"): self._mechanism("phone"), ("party.party", "mobile"): self._mechanism("mobile"),
            ("party.party", "fax"): self._mechanism("fax"), ("party.party", "website"): self._mechanism("website"),
            ("party.party", "currency"): self._company_currency,
            ("party.party", "customer_payment_term"): lambda r: r.get("customer_payment_term", PAYMENT_TERM),
            ("party.party", "receivable"): lambda r: zero, ("party.party", "payable"): lambda r: zero,
            ("party.party", "receivable_today"): lambda r: zero, ("party.party", "payable_today"): lambda r: zero,
            # party.identifier
            ("party.identifier", "code_compact"): self._identifier_compact,
            # party.address
            ("party.address", "full_address"): self._full_address,
            ("party.address", "street_single_line"): lambda r: ", ".join(
                line for line in (r.get("street") or "").splitlines() if line.strip()) or None,
            ("party.address", "street_unstructured"): lambda r: r.get("street_unstructured", r.get("street")),
            # party.contact_mechanism: trytond mirrors the value into these
            **{("party.contact_mechanism", n): (lambda r: r.get("value"))
               for n in ("email", "website", "skype", "sip", "other_value", "value_compact")},
            ("party.contact_mechanism", "url"): self._mechanism_url,
            # product.template
            ("product.template", "default_uom"): lambda r: r.get("default_uom", UNIT),
            ("product.template", "sale_uom"): lambda r: r.get("sale_uom", UNIT),
            ("product.template", "default_uom_category"): lambda r: UNIT_CATEGORY,
            ("product.template", "cost_value"): lambda r: zero,
            ("product.template", "quantity"): lambda r: 0.0, ("product.template", "forecast_quantity"): lambda r: 0.0,
            # product.product: a variant reads most of its template's fields
            **{("product.product", n): self._template_field(n, default)
               for n, default in (("type", "goods"), ("default_uom", UNIT), ("sale_uom", UNIT),
                                  ("cost_price_method", "fixed"), ("account_category", None))},
            ("product.product", "salable"): lambda r: bool(self._template(r).get("salable", False)),
            ("product.product", "consumable"): lambda r: bool(self._template(r).get("consumable", False)),
            ("product.product", "categories"): lambda r: list(self._template(r).get("categories") or []),
            ("product.product", "default_uom_category"): lambda r: UNIT_CATEGORY,
            ("product.product", "prefix_code"): lambda r: self._template(r).get("code"),
            ("product.product", "suffix_code"): lambda r: r.get("suffix_code", r.get("code")),
            ("product.product", "list_price_used"): self._list_price_used,
            ("product.product", "sale_price_uom"): lambda r: self._quantize(self._list_price_used(r), 4),
            ("product.product", "cost_price_uom"): lambda r: Decimal("0.0000"),
            ("product.product", "cost_value"): lambda r: Decimal("0.0000"),
            ("product.product", "quantity"): lambda r: 0.0, ("product.product", "forecast_quantity"): lambda r: 0.0,
            # account.invoice
            ("account.invoice", "allow_cancel"): self._invoice_allow_cancel,
            ("account.invoice", "amount_to_pay_today"): lambda r: v.getter("account.invoice", "amount_to_pay")(r),
            ("account.invoice", "company_party"): lambda r: self._company(r).get("party"),
            ("account.invoice", "currency_date"): lambda r: r.get("accounting_date") or r.get("invoice_date"),
            ("account.invoice", "has_account_move"): lambda r: r.get("move") is not None,
            ("account.invoice", "line_lines"): self._invoice_line_lines,
            ("account.invoice", "number_alnum"): lambda r: _alnum(r.get("number")),
            ("account.invoice", "number_digit"): lambda r: _digits_only(r.get("number")),
            ("account.invoice", "origins"): self._invoice_origins,
            ("account.invoice", "party_lang"): lambda r: "en",
            ("account.invoice", "reconciled"): self._invoice_reconciled,
            ("account.invoice", "sale_exception_state"): lambda r: "",
            ("account.invoice", "shipments"): lambda r: "",
            ("account.invoice", "type_name"): lambda r: {"out": "Customer", "in": "Supplier"}.get(r.get("type") or ""),
            **{("account.invoice", f"{n}_cache"): self._invoice_cache(n)
               for n in ("untaxed_amount", "tax_amount", "total_amount")},
            # account.invoice.line: values of its invoice
            ("account.invoice.line", "invoice_description"): lambda r: self._invoice(r).get("description"),
            ("account.invoice.line", "invoice_party"): lambda r: self._invoice(r).get("party", r.get("party")),
            ("account.invoice.line", "invoice_state"): lambda r: self._invoice(r).get("state", "draft"),
            ("account.invoice.line", "party_lang"): lambda r: "en",
            ("account.invoice.line", "product_uom_category"): lambda r: UNIT_CATEGORY if r.get("product") else None,
            ("account.invoice.line", "shipments"): lambda r: "",
            ("account.invoice.line", "summary"): lambda r: ((r.get("description") or "").splitlines() or [""])[0],
            ("account.invoice.line", "invoice_taxes"): self._line_invoice_taxes,
            # account.invoice.tax: values of its invoice
            ("account.invoice.tax", "currency"): lambda r: self._invoice(r).get("currency"),
            ("account.invoice.tax", "invoice_state"): lambda r: self._invoice(r).get("state"),
            ("account.invoice.tax", "sequence_number"): self._invoice_tax_sequence_number,
            # account.tax: the company's currency; no tax lines in the demo (no moves)
            ("account.tax", "currency"): lambda r: self._company(r).get("currency"),
            **{("account.tax", f"{kind}_{what}_amount"): (lambda r: Decimal("0.00"))
               for kind in ("invoice", "credit") for what in ("base", "tax")},
            # sale.subscription
            ("sale.subscription", "invoice_address"): self._subscription_address,
            ("sale.subscription", "payment_term"): lambda r: r.get("payment_term", PAYMENT_TERM),
            # sale.subscription.line: values of its subscription
            ("sale.subscription.line", "company"): lambda r: self._subscription(r).get("company"),
            ("sale.subscription.line", "currency"): lambda r: self._subscription(r).get("currency"),
            ("sale.subscription.line", "subscription_start_date"): lambda r: self._subscription(r).get("start_date"),
            ("sale.subscription.line", "subscription_end_date"): lambda r: self._subscription(r).get("end_date"),
            ("sale.subscription.line", "subscription_state"): lambda r: self._subscription(r).get("state"),
            ("sale.subscription.line", "service_unit_category"): lambda r: UNIT_CATEGORY if r.get("service") else None,
            ("sale.subscription.line", "summary"): lambda r: ((r.get("description") or "").splitlines() or [""])[0],
            ("sale.subscription.line", "unit"): lambda r: r.get("unit", UNIT),
        }

    # -- the generic rule -----------------------------------------------------------------

    def getter(self, model: str, fd: FieldDef) -> Getter:
        x = fd.trytond
        assert x is not None
        name, default = fd.name, x.default
        special = self.computed.get((model, name))
        if special is not None:
            return special
        if name == "last_modified_at":  # trytond: write_date or create_date
            return lambda r: r.get("write_date") or r.get("create_date")
        if fd.kind == "one2many":
            return self._one2many(fd)
        if fd.kind == "many2many":
            return lambda r: list(r.get(name) or [])
        if fd.kind == "boolean":
            if fd.readonly and name != "eu_vat_valid":  # Function fields answer True/False
                return lambda r: bool(r.get(name, default))
            return lambda r: _sqlite_bool(r.get(name, bool(default)))  # stored: SQLite's 1 / 0
        if fd.kind == "timedelta":
            return lambda r: None if r.get(name) is None else timedelta(seconds=r[name])
        if fd.kind == "multiselection":
            return lambda r: list(r.get(name) or [])
        return lambda r: r.get(name, default)

    def _one2many(self, fd: FieldDef) -> Getter:
        relation, reverse = fd.relation, fd.reverse
        if relation not in self.store.tables or reverse is None:
            return lambda r: []
        assert relation is not None
        if (relation, reverse) in self.store.indexes:
            return lambda r: sorted(self.store.lookup(relation, reverse, r["id"]))
        return lambda r: self._reverse_map(relation, reverse).get(r["id"], [])

    def _reverse_map(self, relation: str, reverse: str) -> dict[Any, list[int]]:
        version = self.store.versions[relation]
        cached = self._reverse.get((relation, reverse))
        if cached is not None and cached[0] == version:
            return cached[1]
        children: dict[Any, list[int]] = defaultdict(list)
        for rid in sorted(self.store.tables[relation]):
            parent = self.store.tables[relation][rid].get(reverse)
            if parent is not None:
                children[parent].append(rid)
        self._reverse[(relation, reverse)] = (version, children)
        return children

    # -- helpers --------------------------------------------------------------------------

    def _record(self, model: str, rid: Any) -> Record:
        if rid is None or isinstance(rid, bool) or not isinstance(rid, int):
            return {}
        return self.store.tables[model].get(rid) or {}

    def _company(self, rec: Record) -> Record:
        return self._record("company.company", rec.get("company"))

    def _invoice(self, rec: Record) -> Record:
        return self._record("account.invoice", rec.get("invoice"))

    def _subscription(self, rec: Record) -> Record:
        return self._record("sale.subscription", rec.get("subscription"))

    def _template(self, rec: Record) -> Record:
        return self._record("product.template", rec.get("template"))

    def _template_field(self, name: str, default: Any) -> Getter:
        return lambda r: self._template(r).get(name, default)

    @staticmethod
    def _quantize(amount: Decimal | None, digits: int) -> Decimal | None:
        return None if amount is None else amount.quantize(Decimal(1).scaleb(-digits))

    # -- computed fields ------------------------------------------------------------------

    def _user_status_bar(self, rec: Record) -> str:
        status = rec.get("name") or ""
        company = self._company(rec)
        currency = self._record("currency.currency", company.get("currency"))
        return f"{status} [{currency['code']}]" if currency.get("code") else status

    @staticmethod
    def _country_flag(rec: Record) -> str | None:
        code = rec.get("code")
        return "".join(chr(127397 + ord(c)) for c in code) if isinstance(code, str) and code else None

    def _mechanism(self, kind: str) -> Getter:
        def get(rec: Record) -> str:
            table = self.store.tables["party.contact_mechanism"]
            for cid in sorted(self.store.lookup("party.contact_mechanism", "party", rec["id"])):
                mech = table.get(cid)
                if mech is not None and mech.get("type") == kind and mech.get("active", True):
                    return str(mech.get("value") or "")
            return ""
        return get

    def _company_currency(self, rec: Record) -> int | None:
        companies = self.store.tables["company.company"]
        return companies[min(companies)].get("currency") if companies else None

    @staticmethod
    def _identifier_compact(rec: Record) -> str | None:
        code = rec.get("code")
        if not isinstance(code, str):
            return None
        return _SEPARATORS.sub("", code).upper() if rec.get("type") else code

    def _full_address(self, rec: Record) -> str:
        """trytond's default address format (countries with their own format differ)."""
        country = self._record("country.country", rec.get("country"))
        city_line = " ".join(str(v) for v in (rec.get("postal_code"), rec.get("city")) if v)
        lines = [rec.get("party_name"), rec.get("attn"), rec.get("street"), city_line,
                 (country.get("name") or "").upper() or None]
        return "\n".join(str(line) for line in lines if line)

    @staticmethod
    def _mechanism_url(rec: Record) -> str | None:
        value, kind = rec.get("value"), rec.get("type")
        if kind == "website":
            return value
        prefix = _URL_PREFIX.get(kind or "")
        return None if prefix is None else f"{prefix}{value}"

    def _list_price_used(self, rec: Record) -> Decimal | None:
        price = rec.get("list_price")
        if price is None:
            price = self._template(rec).get("list_price")
        return price if isinstance(price, Decimal) else None

    def _invoice_allow_cancel(self, rec: Record) -> bool:
        state = rec.get("state")
        if state in ("draft", "validated"):
            return True
        if state == "posted":
            return rec.get("type") == "in" or bool(self._company(rec).get("cancel_invoice_out"))
        return False

    def _invoice_line_lines(self, rec: Record) -> list[int]:
        lines = self.store.tables["account.invoice.line"]
        return sorted(lid for lid in self.store.lookup("account.invoice.line", "invoice", rec["id"])
                      if (lines.get(lid) or {}).get("type", "line") == "line")

    def _invoice_origins(self, rec: Record) -> str:
        lines = self.store.tables["account.invoice.line"]
        names: list[str] = []
        for lid in self._invoice_line_lines(rec):
            origin = lines[lid].get("origin")
            model, _, rid = origin.partition(",") if isinstance(origin, str) else ("", "", "")
            if model in self.store.tables and rid.isdigit():
                name = self.values.rec_name(model, int(rid))
                if name and name not in names:
                    names.append(name)
        return ", ".join(names)

    @staticmethod
    def _invoice_reconciled(rec: Record) -> Any:
        if rec.get("state") != "paid":
            return None
        stamp = rec.get("write_date") or rec.get("create_date")
        return stamp.date() if isinstance(stamp, datetime) else rec.get("invoice_date")

    def _invoice_cache(self, name: str) -> Callable[[Record], Any]:
        def get(rec: Record) -> Any:
            if rec.get("state") not in ("posted", "paid"):
                return None  # trytond fills the caches when it posts
            return self.values.getter("account.invoice", name)(rec)
        return get

    def _currency_rate(self, rec: Record) -> Decimal | None:
        """``Currency.get_rate``: the latest rate dated today or before."""
        today = datetime.now(UTC).date()
        table = self.store.tables["currency.currency.rate"]
        rates = [table[i] for i in self.store.lookup("currency.currency.rate", "currency", rec["id"]) if i in table]
        dated = [r for r in rates if isinstance(r.get("date"), date) and r["date"] <= today]
        return max(dated, key=lambda r: (r["date"], r["id"])).get("rate") if dated else None

    def _line_invoice_taxes(self, rec: Record) -> list[int]:
        """``InvoiceLine.get_invoice_taxes``: the invoice's computed taxes this line takes part in."""
        invoice = self._invoice(rec)
        if not invoice or (rec.get("type") or "line") != "line":
            return []
        engine = TaxEngine(self.store)
        factor = rounding_of(self.store, invoice.get("currency"))
        day = rec.get("taxes_date") or engine.tax_date(invoice, datetime.now(UTC).date())
        keys = {engine.tax_line(row["base"], row["amount"], row["tax"], factor).key
                for row in engine.compute(list(rec.get("taxes") or []), rec.get("unit_price") or Decimal(0),
                                          rec.get("quantity") or 0, day)}
        return [t["id"] for t in engine.stored_taxes(invoice["id"]) if not t.get("manual") and tax_key(t) in keys]

    def _invoice_tax_sequence_number(self, rec: Record) -> int:
        invoice = rec.get("invoice")
        if not isinstance(invoice, int):
            return 0
        ids = [t["id"] for t in TaxEngine(self.store).stored_taxes(invoice)]
        return ids.index(rec["id"]) + 1 if rec["id"] in ids else 0

    def _subscription_address(self, rec: Record) -> int | None:
        if rec.get("invoice_address") is not None:
            return rec["invoice_address"]
        ids = self.store.lookup("party.address", "party", rec.get("party"))
        return min(ids) if ids else None
