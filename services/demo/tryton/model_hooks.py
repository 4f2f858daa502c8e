"""Per-model checks the generic operations run (invoices and their lines, parties), and the
``on_change`` answers."""

from __future__ import annotations

from typing import Any

from services.demo.tryton.errors import UserError
from services.demo.tryton.model_call import ModelCall
from services.demo.tryton.schema import (
    PAYMENT_TERM,
    RECEIVABLE_ACCOUNT,
    REVENUE_ACCOUNT,
    REVENUE_JOURNAL,
    UNIT,
    Record,
    field_label,
    model_label,
)
from services.demo.tryton.taxes import default_taxes, update_taxes

#: the invoice fields trytond lets change on a posted, paid or cancelled invoice (the plain ones of
#: ``Invoice._check_modify_exclude`` that the demo serves)
INVOICE_MODIFY_EXCLUDE = frozenset({"reference", "description", "comment"})
#: ... and the invoice tax fields (``InvoiceTax._check_modify_exclude``)
INVOICE_TAX_MODIFY_EXCLUDE = frozenset({"description", "legal_notice"})


class ModelHooks:
    """Per-model checks run by the generic operations, plus the on_change answers."""

    def before_create(self, call: ModelCall, model: str, record: Record) -> None:
        if model == "account.invoice.line" and record.get("invoice") is not None:
            self._check_invoices_modifiable(call, [record["invoice"]], line=True)
            self._check_line_currency(call, record)
        elif model == "account.invoice.tax" and record.get("invoice") is not None:
            self._check_invoices_modifiable(call, [record["invoice"]])
        elif model == "party.party" and not record.get("code"):
            # the code is required: trytond takes the next number of the party sequence
            record["code"] = self._next_party_code(call)

    @staticmethod
    def _next_party_code(call: ModelCall) -> str:
        numbers = [int(p["code"]) for p in call.store.tables["party.party"].values()
                   if isinstance(p.get("code"), str) and p["code"].isdigit()]
        return str(max(numbers, default=0) + 1)

    @staticmethod
    def _check_line_currency(call: ModelCall, line: Record) -> None:
        """The invoice's ``lines`` domain: a line's company and currency are the invoice's."""
        invoice = call.store.tables["account.invoice"].get(line["invoice"])
        if invoice is None:
            return
        if line.get("currency") != invoice.get("currency") or line.get("company") != invoice.get("company"):
            product = call.values.rec_name("product.product", line.get("product"))
            qty = line.get("quantity")
            value = f"{qty:g}\xa0u {product} @ [{invoice.get('reference') or ''}]" if qty is not None else product
            raise UserError(f'The value "{value}" for field "Lines" in record '
                            f'"{call.values.rec_name("account.invoice", invoice["id"])}" of "Account Invoice" '
                            f'is not valid according to its domain.')

    def before_write(self, call: ModelCall, model: str, ids: list[int], values: Record) -> None:
        if model == "account.invoice":
            # trytond's Invoice._check_modify_exclude: these stay writable on a posted or paid invoice
            if not set(values) <= INVOICE_MODIFY_EXCLUDE:
                self._check_invoices_modifiable(call, ids)
        elif model == "account.invoice.line":
            lines = call.store.tables[model]
            invoices = [lines[i].get("invoice") for i in ids]
            self._check_invoices_modifiable(call, [i for i in invoices if i is not None], line=True)
            if values.get("invoice") is not None:
                self._check_invoices_modifiable(call, [values["invoice"]], line=True)
        elif model == "account.invoice.tax" and not set(values) <= INVOICE_TAX_MODIFY_EXCLUDE:
            taxes = call.store.tables[model]
            self._check_invoices_modifiable(call, [i for i in (taxes[t].get("invoice") for t in ids)
                                                   if i is not None])

    def before_delete(self, call: ModelCall, model: str, ids: list[int]) -> None:
        if model == "account.invoice":
            table = call.store.tables[model]
            for rid in ids:
                rec = table[rid]
                if rec.get("state") not in ("draft", "cancelled"):
                    raise UserError(f'To delete invoice "{call.values.rec_name(model, rid)}" you must '
                                    f'cancel it.')
                if rec.get("number"):
                    raise UserError(f'You cannot delete invoice "{call.values.rec_name(model, rid)}" '
                                    f'because it has a number.')
        elif model in ("account.invoice.line", "account.invoice.tax"):
            self.before_write(call, model, ids, {"invoice": None})

    def after_modify(self, call: ModelCall, model: str, ids: list[int]) -> None:
        """trytond's ``Invoice.on_modification``: the taxes of a draft invoice created or written
        are updated (``Invoice.update_taxes``)."""
        if model == "account.invoice":
            table = call.store.tables[model]
            update_taxes(call, [i for i in ids if (table.get(i) or {}).get("state") == "draft"])

    def validate(self, call: ModelCall, model: str, rec: Record) -> None:
        if model == "account.invoice.line" and rec.get("type", "line") == "line":
            for name in ("quantity", "unit_price"):
                if rec.get(name) is None:
                    raise UserError(f'A value is required for field "{field_label(name)}" in '
                                    f'"{model_label(model)}".')

    @staticmethod
    def _check_invoices_modifiable(call: ModelCall, invoice_ids: list[int], line: bool = False) -> None:
        table = call.store.tables["account.invoice"]
        for iid in invoice_ids:
            inv = table.get(iid)
            if inv is None:
                continue
            locked = inv.get("state") in ("posted", "paid") or (
                inv.get("state") == "cancelled" and inv.get("number"))
            if locked:
                name = call.values.rec_name("account.invoice", iid)
                if line:
                    raise UserError(f'You cannot modify the lines of invoice "{name}" because it is '
                                    f'posted, paid or cancelled.')
                raise UserError(f'You cannot modify invoice "{name}" because it is posted, paid or '
                                f'cancelled.')

    def on_change(self, call: ModelCall, model: str, values: dict[str, Any],
                  fieldnames: list[str]) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        for name in fieldnames:
            call.schema.field(model, name)
        if model == "account.invoice":
            if "type" in fieldnames:
                self._m2o(call, changes, "journal", "account.journal", REVENUE_JOURNAL)
            if "party" in fieldnames:
                party = values.get("party")
                address = None
                if isinstance(party, int) and not isinstance(party, bool):
                    ids = call.store.lookup("party.address", "party", party)
                    address = min(ids) if ids else None
                self._m2o(call, changes, "invoice_address", "party.address", address)
                self._m2o(call, changes, "account", "account.account",
                          RECEIVABLE_ACCOUNT if party is not None else None)
                self._m2o(call, changes, "payment_term", "account.invoice.payment_term",
                          PAYMENT_TERM if party is not None else None)
        elif model == "account.invoice.line" and "product" in fieldnames:
            product = values.get("product")
            self._m2o(call, changes, "unit", "product.uom", UNIT if product is not None else None)
            self._m2o(call, changes, "account", "account.account",
                      REVENUE_ACCOUNT if product is not None else None)
            changes["taxes"] = self._default_taxes(call, values) if product is not None else []
        return changes

    @staticmethod
    def _default_taxes(call: ModelCall, values: dict[str, Any]) -> list[int]:
        """``InvoiceLine.on_change_product``'s taxes: the party's customer tax rule applied (the
        party and date of the line's invoice, else the line's ``party`` and today)."""
        invoice = values.get("invoice")
        rec = call.store.tables["account.invoice"].get(invoice) if isinstance(invoice, int) else None
        party = (rec or {}).get("party", values.get("party"))
        day = (rec or {}).get("accounting_date") or (rec or {}).get("invoice_date") or call.tx.now.date()
        if (rec or {}).get("type", values.get("invoice_type")) == "in":
            return []  # supplier taxes: the demo's products have none and its parties no supplier rule
        return default_taxes(call.store, party, day)

    @staticmethod
    def _m2o(call: ModelCall, changes: dict[str, Any], name: str, model: str, rid: int | None) -> None:
        changes[name] = rid
        if rid is not None:
            changes[name + "."] = {"rec_name": call.values.rec_name(model, rid)}
