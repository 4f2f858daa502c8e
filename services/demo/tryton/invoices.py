"""The invoice workflow: the strict invoice sequence, the buttons (validate, draft, cancel,
post with its warnings: taxes other than the products', a customer invoice dated after the
ERP's today, a payment date in the past) and ``Invoice.credit``; ``ir.date.today`` (the ERP's
today: the demo's clock in the company's timezone)."""

from __future__ import annotations

import hashlib
import re
import zoneinfo
from collections.abc import Callable
from datetime import UTC, date, timedelta
from typing import Any

from services.demo.store import ErpStore
from services.demo.tryton.errors import TrytonUserWarning, UserError
from services.demo.tryton.model_call import ModelCall, ids_list
from services.demo.tryton.schema import PAYMENT_TERM, RECEIVABLE_ACCOUNT, REVENUE_ACCOUNT, REVENUE_JOURNAL, UNIT, Record
from services.demo.tryton.taxes import default_taxes, update_taxes

PAYMENT_TERM_DAYS = 30


class InvoiceSequence:
    """Next invoice number and latest posted invoice date per type, scanned incrementally."""

    def __init__(self, store: ErpStore) -> None:
        self.store = store
        self.prefix = "INV-"
        self.width = 6
        self.last = 0
        self.latest: dict[str, date] = {}
        self._scanned_to = 1

    def refresh(self) -> None:
        table = self.store.tables["account.invoice"]
        end = self.store.next_ids["account.invoice"]
        for rid in range(self._scanned_to, end):
            rec = table.get(rid)
            if rec is not None:
                self.note(rec.get("type") or "out", rec.get("number"), rec.get("invoice_date"))
        self._scanned_to = max(self._scanned_to, end)

    def note(self, type_: str, number: Any, invoice_date: Any) -> None:
        if not isinstance(number, str) or not number:
            return
        match = re.search(r"(\d+)$", number)
        if match and int(match.group(1)) > self.last:
            self.last = int(match.group(1))
            self.prefix = number[: match.start()]
            self.width = len(match.group(1))
        if isinstance(invoice_date, date) and (type_ not in self.latest or invoice_date > self.latest[type_]):
            self.latest[type_] = invoice_date

    def next_number(self) -> str:
        return f"{self.prefix}{self.last + 1:0{self.width}d}"

    def snapshot(self) -> Callable[[], None]:
        state = (self.prefix, self.width, self.last, dict(self.latest))

        def restore() -> None:
            self.prefix, self.width, self.last, latest = state
            self.latest = latest
        return restore


def _warning_name(call: ModelCall, name: str, model: str, ids: list[int]) -> str:
    """As trytond's ``res.user.warning.format(name, records)``: the md5 of the records
    (``model,id`` joined by ``|``), then ``.name``. A record created in the same call is
    ``model,-rank`` (its rank among the call's created records of ``model``, from 1), as trytond
    names it: the name of a warning about a record that the call creates (the credit note the
    Credit wizard posts) is the same on every attempt, so an acknowledgement applies to the next."""
    created = call.tx.created.get(model, [])
    key = "|".join(f"{model},{-(created.index(rid) + 1) if rid in created else rid}" for rid in ids)
    return f"{hashlib.md5(key.encode()).hexdigest()}.{name}"


def invoice_records(call: ModelCall, ids: Any) -> list[Record]:
    """The invoices ``ids`` (ascending, each once); a ``UserError`` when one does not exist."""
    ids = ids_list(ids)
    table = call.store.tables["account.invoice"]
    missing = [i for i in ids if i not in table]
    if missing:
        raise UserError(f'You are trying to read records "{", ".join(map(str, missing[:5]))}" of '
                        f'"Invoice" that don\'t exist anymore.')
    return [table[i] for i in sorted(set(ids))]


def _transition(call: ModelCall, ids: Any, sources: tuple[str, ...], target: str) -> None:
    todo = [rec["id"] for rec in invoice_records(call, ids) if rec.get("state") in sources]
    if todo:
        call.write_records("account.invoice", todo, {"state": target}, check=False)


def invoice_validate(call: ModelCall, ids: Any) -> None:
    _check_taxes(call, [r for r in invoice_records(call, ids) if r.get("state") == "draft"])
    _transition(call, ids, ("draft",), "validated")


def _check_taxes(call: ModelCall, invoices: list[Record]) -> None:
    """trytond's ``Invoice._check_taxes``: a warning (``invoice_taxes``) for an invoice whose
    lines do not carry the taxes the ``on_change`` of their product proposes (the party's
    customer tax rule applied: ``taxes.default_taxes``)."""
    lines = call.store.tables["account.invoice.line"]
    for rec in invoices:
        day = rec.get("accounting_date") or rec.get("invoice_date") or call.tx.now.date()
        expected = set(default_taxes(call.store, rec.get("party"), day))
        different = [lines[lid] for lid in sorted(call.store.lookup("account.invoice.line", "invoice", rec["id"]))
                     if lid in lines and (lines[lid].get("type") or "line") == "line"
                     and lines[lid].get("product") is not None and set(lines[lid].get("taxes") or []) != expected]
        if not different:
            continue
        warning = _warning_name(call, "invoice_taxes", "account.invoice", [rec["id"]])
        if _check_warning(call, warning):
            invoice_name = call.values.rec_name("account.invoice", rec["id"])
            names = ", ".join(_line_name(call, line, invoice_name) for line in different[:5])
            if len(different) > 5:
                names += "..."
            raise TrytonUserWarning(warning, f'The invoice "{invoice_name}" does not have the default taxes '
                                             f'for {names}.')


def _line_name(call: ModelCall, line: Record, invoice_name: str) -> str:
    """``InvoiceLine.get_rec_name`` of a ``line`` line: quantity and unit, product, invoice."""
    product = call.values.rec_name("product.product", line.get("product")) or line.get("description") or ""
    return f"{line.get('quantity') or 0:g}\xa0u {product} @ {invoice_name}"


def invoice_draft(call: ModelCall, ids: Any) -> None:
    recs = invoice_records(call, ids)
    todo = [r["id"] for r in recs if r.get("state") == "validated"
            or (r.get("state") == "cancelled" and not r.get("number"))]
    if todo:
        call.write_records("account.invoice", todo, {"state": "draft"}, check=False)


def invoice_cancel(call: ModelCall, ids: Any) -> None:
    for rec in invoice_records(call, ids):
        if rec.get("state") in ("posted", "paid"):
            name = call.values.rec_name("account.invoice", rec["id"])
            raise UserError(f'You cannot cancel customer invoice "{name}" because it is posted and the '
                            f'accounting does not allow it.')
    _transition(call, ids, ("draft", "validated"), "cancelled")


def _check_warning(call: ModelCall, name: str) -> bool:
    """trytond's ``res.user.warning.check``: True when the warning must be raised; an
    acknowledgement that is not ``always`` is consumed (when the call commits: a failing call
    rolls the deletion back)."""
    table = call.store.tables["res.user.warning"]
    found = [rid for rid, w in table.items() if w.get("user") == call.tx.user and w.get("name") == name]
    if not found:
        return True
    consumed = [rid for rid in found if not table[rid].get("always")]
    if consumed:
        call.delete_records("res.user.warning", consumed, check=False)
    return False


def erp_today(call: ModelCall, company: Any) -> date:
    """trytond's ``ir.date.today`` with the company module: the date now (the demo's clock) in
    the timezone of ``company`` (``company.company`` ``timezone``), else the server's (UTC)."""
    now = call.tx.now if call.tx.now.tzinfo is not None else call.tx.now.replace(tzinfo=UTC)
    rec = call.store.tables["company.company"].get(company) if isinstance(company, int) else None
    name = (rec or {}).get("timezone")
    if isinstance(name, str) and name:
        try:
            return now.astimezone(zoneinfo.ZoneInfo(name)).date()
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            pass
    return now.astimezone(UTC).date()


def date_today(call: ModelCall, timezone: Any = None) -> date:
    """``model.ir.date.today``: the ERP's today for the context's company."""
    return erp_today(call, call.tx.context.get("company"))


def _check_future(call: ModelCall, invoices: list[Record]) -> None:
    """trytond's ``Invoice.post``: a warning (``invoice_date_future``) for the customer invoices
    dated after the ERP's today (per company, in its timezone), named after all of them."""
    by_company: dict[Any, list[Record]] = {}
    for rec in invoices:
        by_company.setdefault(rec.get("company"), []).append(rec)
    for company, recs in by_company.items():
        today = erp_today(call, company)
        future = [r for r in recs if (r.get("type") or "out") == "out"
                  and isinstance(r.get("invoice_date"), date) and r["invoice_date"] > today]
        if not future:
            continue
        names = ", ".join(call.values.rec_name("account.invoice", r["id"]) for r in future[:5])
        if len(future) > 5:
            names += "..."
        warning = _warning_name(call, "invoice_date_future", "account.invoice", [r["id"] for r in future])
        if _check_warning(call, warning):
            raise TrytonUserWarning(warning, f'The invoices "{names}" have an invoice date in the future.')


def invoice_post(call: ModelCall, ids: Any) -> None:
    sequence = call.service.sequence
    sequence.refresh()
    call.tx.on_rollback(sequence.snapshot())
    # the workflow transition posts the draft and validated ones only
    _check_future(call, [r for r in invoice_records(call, ids) if r.get("state") in ("draft", "validated")])
    _check_taxes(call, [r for r in invoice_records(call, ids) if r.get("state") == "draft"])
    for rec in invoice_records(call, ids):
        if rec.get("state") not in ("draft", "validated"):
            continue
        rid = rec["id"]
        today = erp_today(call, rec.get("company"))
        name = call.values.rec_name("account.invoice", rid)
        type_ = rec.get("type") or "out"
        invoice_date = rec.get("invoice_date") or today
        latest = sequence.latest.get(type_)
        if latest is not None and invoice_date < latest:
            raise UserError(f'To number the invoice "{name}", you must set an invoice date after '
                            f'"{latest.isoformat()}" because the sequence "Customer Invoice" has already '
                            f'been used for a later invoice.')
        if rec.get("journal") is None or rec.get("account") is None:
            raise AttributeError("'NoneType' object has no attribute 'id'")  # trytond crashes likewise
        update_taxes(call, [rid], exception=True)  # Invoice.get_move: taxes that would change refuse
        due = invoice_date + timedelta(days=PAYMENT_TERM_DAYS)
        if type_ == "out" and due < today:
            # raised by the invoice's move (after numbering, in the same transaction: rolled back)
            warning = _warning_name(call, "invoice_payment_term", "account.invoice", [rid])
            if _check_warning(call, warning):
                raise TrytonUserWarning(warning, f'The invoice "{name}" generates a payment date '
                                                 f'"{due:%m/%d/%Y}" in the past.')
        number = sequence.next_number()
        call.write_records("account.invoice", [rid], {"state": "posted", "number": number,
                                                     "invoice_date": invoice_date,
                                                     "sequence_type_cache": _sequence_type(call, rec)}, check=False)
        sequence.note(type_, number, invoice_date)


def _sequence_type(call: ModelCall, rec: Record) -> str:
    """trytond's ``Invoice._sequence_type``: a credit note when no line is positive and the
    total is negative."""
    lines = call.store.tables["account.invoice.line"]
    amounts = [call.values.getter("account.invoice.line", "amount")(lines[lid])
               for lid in call.store.lookup("account.invoice.line", "invoice", rec["id"])
               if lid in lines and lines[lid].get("type", "line") == "line"]
    total = call.values.getter("account.invoice", "total_amount")(rec)
    return "credit_note" if all(a <= 0 for a in amounts) and total < 0 else "invoice"


#: what ``Invoice._credit`` copies from the credited invoice (the demo's fields of them)
CREDIT_COPIED = ("company", "party", "invoice_address", "currency", "journal", "account", "payment_term",
                 "description", "type")
#: ... and from each line (``InvoiceLine._credit``; the quantity is negated, origin = the line)
CREDIT_LINE_COPIED = ("type", "currency", "company", "unit_price", "description", "unit", "product", "account",
                      "taxes_deductible_rate")
#: ... and from each manual invoice tax (``InvoiceTax._credit``; base and amount negated)
CREDIT_TAX_COPIED = ("description", "sequence", "manual", "account", "tax", "legal_notice")


def invoice_credit(call: ModelCall, ids: Any, refund: bool = False, invoice_date: date | None = None) -> list[int]:
    """trytond's ``Invoice.credit`` (not served over RPC: the ``account.invoice.credit`` wizard
    calls it): one credit note per invoice; with ``refund`` the credit notes are posted, each
    invoice must be posted, takes its credit note's move as cancel move and is cancelled, and
    both are reconciled (the credit note ends ``paid``)."""
    originals = invoice_records(call, ids)
    lines = call.store.tables["account.invoice.line"]
    credits: list[int] = []
    for rec in originals:
        values: dict[str, Any] = {k: rec.get(k) for k in CREDIT_COPIED}
        # the generated demo invoices leave journal, account and payment term implicit (a real
        # posted invoice has them): the ones on_change proposes
        for name, default in (("journal", REVENUE_JOURNAL), ("account", RECEIVABLE_ACCOUNT),
                              ("payment_term", PAYMENT_TERM)):
            values[name] = values[name] if values[name] is not None else default
        values["invoice_date"] = invoice_date
        credit_lines = []
        for lid in rec.get("lines") or []:
            line = lines.get(lid)
            if line is None:
                continue
            copied = {k: line.get(k) for k in CREDIT_LINE_COPIED}
            # a demo line may leave its currency and company (the invoice's), account and unit implicit
            copied["currency"] = copied["currency"] or rec.get("currency")
            copied["company"] = copied["company"] or rec.get("company")
            copied["account"] = copied["account"] or REVENUE_ACCOUNT
            copied["unit"] = copied["unit"] or UNIT
            quantity = line.get("quantity")
            copied["quantity"] = -quantity if quantity else quantity
            copied["origin"] = f"account.invoice.line,{lid}"
            # the credited line's taxes at the credited line's tax date
            copied["taxes"] = [["add", list(line.get("taxes") or [])]]
            copied["taxes_date"] = line.get("taxes_date") or call.service.taxes.tax_date(rec, call.tx.now.date())
            credit_lines.append(copied)
        values["lines"] = [["create", credit_lines]]
        manual = [t for t in call.service.taxes.stored_taxes(rec["id"]) if t.get("manual")]
        if manual:
            values["taxes"] = [["create", [{**{k: t.get(k) for k in CREDIT_TAX_COPIED},
                                            "base": -(t.get("base") or 0), "amount": -(t.get("amount") or 0)}
                                           for t in manual]]]
        credits.append(call.create_record("account.invoice", values))
    if refund:
        invoice_post(call, credits)
        table = call.store.tables["account.invoice"]
        for rec, credit in zip(originals, credits, strict=True):
            if rec.get("state") != "posted":
                raise UserError(f'You cannot refund invoice "{call.values.rec_name("account.invoice", rec["id"])}" '
                                f'because it is not posted.')
            call.write_records("account.invoice", [rec["id"]], {"cancel_move": table[credit].get("move"),
                                                                "state": "cancelled"}, check=False)
            # the invoice's and its cancel move's receivable lines are reconciled: both are settled
            call.write_records("account.invoice", [credit], {"state": "paid"}, check=False)
    return credits
