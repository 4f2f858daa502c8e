"""Invoice taxes as trytond 8.2 computes them.

:func:`compute_taxes` follows ``TaxableMixin._get_taxes`` of trytond's account module: the
taxable lines of an invoice (its ``line`` lines: taxes, unit price, quantity, tax date) are
grouped by (taxes, sign of the base); each line's taxes are computed by ``Tax.compute``
(sorted by sequence, percentage taxes ``price * rate``, fixed taxes ``amount``, children after
their parent, ``update_unit_price`` feeding the next sequence group, dates honoured), times the
quantity; each tax line's base is rounded by the currency, and its amount is rounded per line
or per document as the company's ``tax_rounding`` says (``_round_taxes``: each amount rounded
half-even, the accumulated rounding difference given back one rounding unit at a time).

:func:`update_taxes` is ``Invoice.update_taxes``: the invoice's ``account.invoice.tax`` records
(one per key ``(account, tax, base >= 0)``) are created, rewritten when their base moved, or
deleted; the manual ones are kept. trytond runs it when a draft invoice is created or written
and, with ``exception=True``, when it posts one (taxes that would change refuse the posting).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from itertools import cycle, groupby
from typing import TYPE_CHECKING, Any

from services.demo.store import ErpStore
from services.demo.tryton.errors import UserError
from services.demo.tryton.schema import Record

if TYPE_CHECKING:
    from services.demo.tryton.model_call import ModelCall

#: trytond's default ``account.configuration`` ``tax_rounding`` ("document" or "line")
DEFAULT_TAX_ROUNDING = "document"
TaxKey = tuple[Any, Any, bool]


@dataclass(slots=True)
class TaxLine:
    """trytond's ``_TaxLine``: one computed tax of an invoice (or of one line)."""

    base: Decimal
    amount: Decimal
    tax: int
    account: int | None

    @property
    def key(self) -> TaxKey:
        return (self.account, self.tax, self.base >= 0)


def rounding_of(store: ErpStore, currency: int | None) -> Decimal:
    """The currency's rounding factor (``rounding``, else 10 ** -digits, else 0.01)."""
    rec = store.tables["currency.currency"].get(currency) if currency is not None else None
    if rec is None:
        return Decimal("0.01")
    if isinstance(rec.get("rounding"), Decimal):
        return rec["rounding"]
    digits = rec.get("digits")
    return Decimal(1).scaleb(-(digits if isinstance(digits, int) else 2))


def currency_round(amount: Decimal, factor: Decimal) -> Decimal:
    """``Currency._round`` with half-even rounding (its own opposite)."""
    if not factor:
        return amount
    with localcontext() as ctx:
        ctx.prec = max(ctx.prec, (amount / factor).adjusted() + 1)
        result = (amount / factor).quantize(Decimal("1."), rounding=ROUND_HALF_EVEN) * factor
    return Decimal(result)


def _round_taxes(taxes: dict[TaxKey, TaxLine], factor: Decimal) -> None:
    """``TaxableMixin._round_taxes``."""
    remainder = Decimal(0)
    for line in taxes.values():
        rounded = currency_round(line.amount, factor)
        remainder += rounded - line.amount
        line.amount = rounded
    remainder = currency_round(remainder, factor)
    if abs(remainder) >= factor:
        offset = factor.copy_sign(remainder)
        for line in cycle(taxes.values()):
            if line.amount:
                line.amount -= offset
                remainder -= offset
                if abs(remainder) < factor:
                    break


class TaxEngine:
    """``Tax.compute`` and the invoice's ``_get_taxes`` over the demo store."""

    def __init__(self, store: ErpStore, tax_rounding: str = DEFAULT_TAX_ROUNDING) -> None:
        self.store = store
        self.tax_rounding = tax_rounding

    def _tax(self, tid: int) -> Record:
        return self.store.tables["account.tax"].get(tid) or {"id": tid}

    def _children(self, tid: int) -> list[Record]:
        return [t for _, t in sorted(self.store.tables["account.tax"].items()) if t.get("parent") == tid]

    @staticmethod
    def _sort(taxes: Iterable[Record]) -> list[Record]:
        """``Tax.sort_taxes``: no sequence first, then by sequence, then by id."""
        return sorted(taxes, key=lambda t: (0 if t.get("sequence") is None else 1, t.get("sequence") or 0, t["id"]))

    def _unit_compute(self, taxes: list[Record], price_unit: Decimal, day: date) -> list[dict[str, Any]]:
        res: list[dict[str, Any]] = []
        for _, group in groupby(taxes, key=lambda t: (t.get("sequence"),)):
            variation = Decimal(0)
            for tax in group:
                if not ((tax.get("start_date") or date.min) <= day <= (tax.get("end_date") or date.max)):
                    continue
                values: list[dict[str, Any]] = []
                kind = tax.get("type") or "percentage"
                if kind == "percentage":
                    values.append({"base": price_unit, "amount": price_unit * (tax.get("rate") or Decimal(0)),
                                   "tax": tax["id"]})
                elif kind == "fixed":
                    values.append({"base": price_unit, "amount": tax.get("amount") or Decimal(0), "tax": tax["id"]})
                children = self._children(tax["id"])
                if children:
                    values.extend(self._unit_compute(children, price_unit, day))
                if tax.get("update_unit_price"):
                    for value in values:
                        variation += value["amount"]
                res.extend(values)
            price_unit += variation
        return res

    def compute(self, tax_ids: list[int], price_unit: Decimal, quantity: float, day: date) -> list[dict[str, Any]]:
        """``Tax.compute``: base and amount of each tax (and child) for ``quantity`` units."""
        rows = self._unit_compute(self._sort(self._tax(t) for t in tax_ids), price_unit, day)
        qty = Decimal(str(quantity or 0))
        for row in rows:
            row["base"] *= qty
            row["amount"] *= qty
        return rows

    def tax_line(self, base: Decimal, amount: Decimal, tax: int, factor: Decimal) -> TaxLine:
        """``_compute_tax_line``: the base rounded per line; the invoice or credit-note account."""
        rec = self._tax(tax)
        account = rec.get("invoice_account") if base >= 0 else rec.get("credit_note_account")
        return TaxLine(currency_round(base, factor), amount, tax, account)

    def taxable_lines(self, invoice: Record) -> list[tuple[list[int], Decimal, float, date | None]]:
        """The invoice's ``taxable_lines`` (its ``line`` lines, in trytond's line order)."""
        table = self.store.tables["account.invoice.line"]
        lines = [table[i] for i in self.store.lookup("account.invoice.line", "invoice", invoice["id"]) if i in table]
        lines.sort(key=lambda ln: (ln.get("sequence") is None, ln.get("sequence") or 0, ln["id"]))
        out: list[tuple[list[int], Decimal, float, date | None]] = []
        for ln in lines:
            if (ln.get("type") or "line") != "line":
                continue
            rate = Decimal(1)
            if invoice.get("type") == "in":  # a supplier invoice: only the deductible part
                stored = ln.get("taxes_deductible_rate")
                rate = Decimal(1) if stored is None else Decimal(str(stored))
                if not rate:
                    continue
            out.append((list(ln.get("taxes") or []), (ln.get("unit_price") or Decimal(0)) * rate,
                        ln.get("quantity") or 0, ln.get("taxes_date")))
        return out

    def tax_date(self, invoice: Record, today: date) -> date:
        return invoice.get("accounting_date") or invoice.get("invoice_date") or today

    def invoice_taxes(self, invoice: Record, today: date) -> dict[TaxKey, TaxLine]:
        """``Invoice._get_taxes``."""
        factor = rounding_of(self.store, invoice.get("currency"))
        default_day = self.tax_date(invoice, today)
        grouped: dict[tuple[tuple[int, ...], bool], list[tuple[list[int], Decimal, float, date | None]]] = {}
        for params in self.taxable_lines(invoice):
            taxes, unit_price, quantity, _ = params
            base = unit_price * Decimal(str(quantity or 0))
            grouped.setdefault((tuple(taxes), base >= 0), []).append(params)
        all_taxes: dict[TaxKey, TaxLine] = {}
        for group in grouped.values():
            taxes_: dict[TaxKey, TaxLine] = {}
            for tax_ids, unit_price, quantity, day in group:
                current: dict[TaxKey, TaxLine] = {}
                for row in self.compute(tax_ids, unit_price, quantity, day or default_day):
                    line = self.tax_line(row["base"], row["amount"], row["tax"], factor)
                    current[line.key] = line  # as trytond: a later same-key tax of one line replaces it
                if self.tax_rounding == "line":
                    _round_taxes(current, factor)
                for key, line in current.items():
                    if key in taxes_:
                        taxes_[key].base += line.base
                        taxes_[key].amount += line.amount
                    else:
                        taxes_[key] = line
            if self.tax_rounding == "document":
                _round_taxes(taxes_, factor)
            for key, line in taxes_.items():
                if key in all_taxes:
                    all_taxes[key].base += line.base
                    all_taxes[key].amount += line.amount
                else:
                    all_taxes[key] = line
        return all_taxes

    def stored_taxes(self, invoice_id: int) -> list[Record]:
        """The invoice's ``account.invoice.tax`` records in trytond's order (sequence, id)."""
        table = self.store.tables["account.invoice.tax"]
        recs = [table[i] for i in self.store.lookup("account.invoice.tax", "invoice", invoice_id) if i in table]
        return sorted(recs, key=lambda r: (r.get("sequence") is None, r.get("sequence") or 0, r["id"]))


def default_taxes(store: ErpStore, party: int | None, day: date) -> list[int]:
    """The taxes ``on_change`` of a customer invoice line's product proposes: the product's
    customer taxes (none in the demo) through the party's customer tax rule, whose first
    matching line (by sequence; its group, origin tax and dates) adds its tax
    (``TaxRule.apply(None, pattern)``)."""
    rec = store.tables["party.party"].get(party) if isinstance(party, int) else None
    rule = (rec or {}).get("customer_tax_rule")
    if not isinstance(rule, int) or rule not in store.tables["account.tax.rule"]:
        return []
    table = store.tables["account.tax.rule.line"]
    lines = sorted((table[i] for i in store.lookup("account.tax.rule.line", "rule", rule) if i in table),
                   key=lambda ln: (ln.get("sequence") is None, ln.get("sequence") or 0, ln["id"]))
    for line in lines:
        if line.get("group") is not None or line.get("origin_tax") is not None:
            continue  # matches a product tax (or its group): the demo's products have none
        if (line.get("start_date") and day < line["start_date"]) or (line.get("end_date") and day > line["end_date"]):
            continue
        return [line["tax"]] if line.get("tax") is not None else []
    return []


def tax_key(rec: Record) -> TaxKey:
    """``InvoiceTax._key``."""
    return (rec.get("account"), rec.get("tax"), (rec.get("base") or Decimal(0)) >= 0)


def update_taxes(call: ModelCall, invoice_ids: Iterable[int], exception: bool = False) -> None:
    """``Invoice.update_taxes``: the invoices' computed taxes stored as ``account.invoice.tax``
    (posted, paid and cancelled invoices are left alone). With ``exception`` a change refuses
    (trytond's ``msg_invoice_tax_invalid``)."""
    engine: TaxEngine = call.service.taxes
    invoices = call.store.tables["account.invoice"]
    today = call.tx.now.date()
    for iid in invoice_ids:
        invoice = invoices.get(iid)
        if invoice is None or invoice.get("state") in ("posted", "paid", "cancelled"):
            continue
        computed = engine.invoice_taxes(invoice, today)
        factor = rounding_of(call.store, invoice.get("currency"))
        create: list[TaxLine] = []
        delete: list[int] = []
        write: list[tuple[int, TaxLine]] = []
        seen: set[TaxKey] = set()
        for rec in engine.stored_taxes(iid):
            if rec.get("manual"):
                continue
            key = tax_key(rec)
            if key not in computed or key in seen:
                delete.append(rec["id"])
                continue
            seen.add(key)
            if currency_round(computed[key].base - (rec.get("base") or Decimal(0)), factor) != 0:
                write.append((rec["id"], computed[key]))
        create = [line for key, line in computed.items() if key not in seen]
        if exception and (create or delete or write):
            name = call.values.rec_name("account.invoice", iid)
            raise UserError(f'The taxes on invoice "{name}" are not valid, you must save it again to force '
                            f'them to be recalculated.')
        if delete:
            call.delete_records("account.invoice.tax", delete, check=False)
        for rid, line in write:
            call.write_records("account.invoice.tax", [rid], {
                "base": line.base, "amount": line.amount, "tax": line.tax, "account": line.account}, check=False)
        for line in create:
            tax = engine._tax(line.tax)
            call.create_record("account.invoice.tax", {
                "invoice": iid, "base": line.base, "amount": line.amount, "tax": line.tax,
                "account": line.account, "manual": False, "description": tax.get("description"),
                "legal_notice": tax.get("legal_notice")})
