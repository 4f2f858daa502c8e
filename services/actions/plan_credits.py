"""Planning the credit fixes (billing owns what was credited; the ERP books it as Tryton does).

- ``credit_note.missing_in_erp`` → CREDIT: post the billing credit note as the ERP credit note of
  the ERP invoice it credits, in the shape of Tryton's credit (``Invoice._credit``, what the
  integration books and the real trytond is seeded with): an ``out`` invoice copying the credited
  invoice's party, currency, journal, accounts and payment term, each line crediting a line of it
  (``origin`` = ``account.invoice.line,<id>``, its product, account and unit, the quantity
  negated), the line's amount net of billing's discount, the ERP tax of its billing tax rate
  (the profile's ``tax_map``; a rate without one is refused in preflight, naming it), the billing
  credit note id as reference. A full credit note credits every line; a partial one only the
  lines (or the part of a line) billing credited. Before posting, the draft's untaxed amount,
  tax and total are compared with billing's (negated) to the minor unit, as a taxed invoice
  posting does (:meth:`TrytonConnector.ensure_credit_note_posted`): a half-even rounding cent
  is kept as billed, anything else deletes the draft and posts nothing. Tryton's *Credit* wizard
  is not used: it copies the ERP invoice's own lines and taxes in full (billing's credit note
  may credit part of them, with billing's tax), and with refund it cancels the invoice.
  Preflight (nothing is written when one fails): the finance role; the billing credit note
  issued, with its lines in the snapshot; the credited ERP invoice present, posted or paid, the
  one live copy of the billing invoice; the same currency; each credited line found on the
  billing invoice; every tax rate mapped; the lines adding up to billing's totals. Dated the
  day billing issued it, unless the ERP's strict invoice sequence already holds a later posted
  invoice (then today; ``value={"invoice_date": …}`` chooses). Idempotent: the ERP credit note is
  looked up by the billing credit note id (its reference) first and again when the create's
  answer is lost, so a replay never posts twice. Verify reads the credit note back (as the
  credit note of the invoice its lines credit): the exception closes when it answers billing's.
- ``credit_note.amount_mismatch`` → CORRECT a *draft* (or validated) ERP credit note: its lines
  are replaced by billing's credit note's, in the same shape as CREDIT posts them (each crediting
  a line of the ERP invoice by ``origin``, the quantity negated, billing's tax mapped), its manual
  invoice taxes removed, and its untaxed amount, tax and total compared with billing's (negated)
  to the minor unit before the correction is kept (a rounding cent kept as billed; anything else
  puts its previous lines back and refuses:
  :meth:`TrytonConnector.replace_draft_credit_note_lines`). It stays a draft (posted in the ERP).
  Refused: a posted credit note (never edited in place: FLAG it), one crediting another ERP
  invoice than the billing invoice's one live copy, another currency than billing's.
- ``invoice.refund_not_reflected`` → CREDIT: billing refunded the whole invoice (no billing
  credit note): the ERP copy is credited in full the same way (every line, billing's taxes, the
  invoice's totals negated), referenced by the refund id; the copy stays paid (its payment
  happened; the refund's payment is the ERP's to reconcile). A refund that a billing credit note
  covers is refused, naming that credit note (post it: ``credit_note.missing_in_erp``); a
  partial refund is refused (which lines it gives back is billing's to say with a credit note).
"""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal, InvalidOperation

from services.actions.model import Role
from services.actions.plan_builder import _Refuse
from services.actions.plan_invoices import _InvoicePlans, mapped_taxes, money_text, percent_text
from services.actions.roles import _credit_note_posted
from services.actions.steps import ExpectedTotals, PostCreditNote, ReplaceCreditLines, StepCreditLine
from services.core.currency import format_money
from services.core.domain import CreditNote, Invoice, InvoiceLine, InvoiceStatus, System
from services.io.connectors.stripe_payloads import currency_exponent
from services.io.connectors.tryton_writes import ROUNDING_AS_BILLED


class _CreditPlans(_InvoicePlans):
    """CREDIT of a billing credit note or a full refund."""

    def finance_only(self, what: str) -> None:
        if self.operator.role is not Role.FINANCE:
            raise _Refuse("role", f"{what} is for the finance role only")

    def credited_copy(self, iid: str, currency: str) -> Invoice:
        """The one live ERP copy of billing invoice ``iid``, posted or paid, in ``currency``; checked."""
        live = self.idx.erp_invoices(iid)
        if not live:
            raise _Refuse("target", f"the ERP holds no invoice for {iid}: post the invoice first "
                                    "(invoice.missing_in_erp)")
        if len(live) > 1:
            raise _Refuse("target", f"{len(live)} live ERP invoices carry {iid}: resolve the duplicate first")
        copy = live[0]
        number = copy.number or copy.ref.id
        if copy.ref.id not in self.e.invoices:
            raise _Refuse("target", f"ERP invoice {number} is not in the snapshot: refresh first")
        if copy.status not in (InvoiceStatus.POSTED, InvoiceStatus.PAID):
            raise _Refuse("target", f"ERP invoice {number} is {copy.status.value}: a credit note credits a posted "
                                    "invoice (post it first)")
        self.ok("target", f"ERP invoice {number} ({copy.status.value}) is the one live copy of {iid}")
        if copy.total.currency != currency:
            raise _Refuse("currency", f"ERP invoice {number} is in {copy.total.currency}, billing's in {currency}: "
                                      "a credit note is in the credited invoice's currency (fix the currency "
                                      "mismatch first)")
        self.ok("currency", f"{currency} on both sides")
        return copy

    def credit_line(self, n: int, line: InvoiceLine, position: int, currency: str,
                    mapping: dict[str, int]) -> tuple[StepCreditLine, tuple[int, ...], Decimal, Decimal]:
        """One credit note line: (step line, its ERP taxes, net, tax), each tax rate mapped."""
        exp = currency_exponent(currency.lower())
        quantum = Decimal(1).scaleb(-exp)
        net = line.net.amount if line.net is not None else line.amount.amount
        tax = line.tax.amount if line.tax is not None else Decimal(0)
        ids = mapped_taxes(line, mapping, currency, "post the credit note by hand")
        qty = line.quantity
        try:
            unit = (net / qty).quantize(quantum) if qty > 0 else None
        except (InvalidOperation, ZeroDivisionError):
            unit = None
        if unit is None or unit * qty != net:
            qty, unit = Decimal(1), net
        rates = ", ".join(f"ERP tax {mapping[t.rate_id]} for {t.rate_id} ({t.name or 'tax'} "
                          f"{percent_text(t.percentage)} %"
                          f"{', reverse charge' if t.reverse_charge else ''})"
                          for t in line.taxes if t.rate_id is not None)
        self.notes.append(f"credit line {n}: credits line {position + 1} ({line.description}) with -{qty} × {unit} "
                          f"= {format_money(-net, currency)} net; {rates or 'no tax'}; tax "
                          f"{format_money(-tax, currency)}")
        return (position, line.description, str(qty), str(unit), line.description), tuple(ids), net, tax

    def credited_position(self, binv: Invoice, line: InvoiceLine) -> int:
        """The billing invoice line a credit note line credits (its position; the ERP copy's lines
        are billing's, in billing's order): the one line with its description (several: the one
        with the same tax rates that is large enough)."""
        same = [i for i, ln in enumerate(binv.lines) if ln.description == line.description]
        if len(same) > 1:
            rates = {t.rate_id for t in line.taxes}
            same = [i for i in same if {t.rate_id for t in binv.lines[i].taxes} == rates
                    and abs(binv.lines[i].amount.amount) >= abs(line.amount.amount)]
        if len(same) != 1:
            how = "no line" if not same else f"{len(same)} lines"
            raise _Refuse("lines", f"billing invoice {binv.number or binv.ref.id} has {how} named "
                                   f"{line.description!r}: which line is credited is unclear; post the credit note "
                                   "by hand")
        return same[0]

    def expected_credit(self, net: Decimal, tax: Decimal, total: Decimal, currency: str) -> ExpectedTotals:
        """Billing's totals as the ERP credit note must show them (negated), in minor units."""
        q = Decimal(1).scaleb(-currency_exponent(currency.lower()))
        return ExpectedTotals(*(str((Decimal(0) - x).quantize(q)) for x in (net, tax, total)))

    def credit_calls(self, reference: str, copy: Invoice, lines: list[StepCreditLine],
                     taxes: list[tuple[int, ...]], expected: ExpectedTotals, currency: str) -> None:
        """The calls of :meth:`TrytonConnector.ensure_credit_note_posted`."""
        invoice_id = int(copy.ref.id)
        number = copy.number or copy.ref.id
        self.rpc_call("model.account.invoice.search_read", [[["reference", "=", reference], ["type", "=", "out"],
                                                             ["state", "!=", "cancelled"]]],
                      f"look the credit note up by reference {reference} first (idempotency): an existing one is "
                      "posted, never created again")
        self.rpc_call("model.account.invoice.read", [[invoice_id], ["state", "type", "currency", "lines", "party",
                                                                    "journal", "account", "payment_term"]],
                      f"read ERP invoice {number}: still posted or paid, in {currency}; its lines")
        self.rpc_call("model.account.invoice.line.read", [["<its lines>"], ["description", "product", "account",
                                                                            "unit"]],
                      "the credited lines, to copy product, account and unit (their descriptions checked)")
        self.rpc_call("model.account.invoice.create", [[{
            "type": "out", "reference": reference, "party": "<the invoice's>", "currency": currency,
            "journal": "<the invoice's>", "account": "<the invoice's>", "payment_term": "<the invoice's>",
            "lines": [["create", [{"origin": f"account.invoice.line,<line {pos + 1} of {number}>",
                                   "description": desc, "quantity": f"-{qty}", "unit_price": unit,
                                   "taxes": [["add", list(ids)]]}
                                  for (pos, _, qty, unit, desc), ids in zip(lines, taxes, strict=True)]]]}]],
            "create the draft credit note as Tryton's credit makes one (each line's origin the line it credits, "
            "the quantity negated, billing's tax mapped)")
        self.rpc_call("model.account.invoice.read", [["<credit note id>"], ["untaxed_amount", "tax_amount",
                                                                           "total_amount", "taxes"]],
                      f"compare the draft with billing to the minor unit: untaxed {expected.untaxed}, tax "
                      f"{expected.tax}, total {expected.total} {currency} (a rounding difference: a manual invoice "
                      f"tax '{ROUNDING_AS_BILLED.strip()}'; anything else: the draft is deleted, nothing posted)")
        self.rpc_call("model.account.invoice.post", [["<credit note id>"]],
                      "post (numbers the credit note in the ERP's invoice sequence)")

    def totals_note(self, expected: ExpectedTotals, currency: str) -> None:
        untaxed, tax, total = (format_money(Decimal(x), currency)
                               for x in (expected.untaxed, expected.tax, expected.total))
        self.notes.append(f"credit note totals: untaxed {untaxed}, tax {tax}, total {total}: the ERP draft's are "
                          "compared to the minor unit before it is posted; a difference of the ERP's half-even "
                          "rounding (one minor unit per taxed line at most) is kept as billed as a manual invoice "
                          f"tax '...{ROUNDING_AS_BILLED}', anything else deletes the draft and posts nothing")

    def billing_credit_note(self, cid: str) -> tuple[CreditNote, Invoice]:
        """Billing credit note ``cid`` (issued, with its lines) and the billing invoice it credits; checked."""
        cn: CreditNote | None = self.b.credit_notes.get(cid)
        if cn is None:
            raise _Refuse("source", f"billing credit note {cid} is not in the snapshot: refresh first")
        name = cn.number or cid
        if cn.is_void:
            raise _Refuse("source", f"billing voided credit note {name}: there is nothing to credit")
        if cn.invoice_id is None:
            raise _Refuse("source", f"billing credit note {name} credits no invoice: post it by hand")
        binv = self.b.invoices.get(cn.invoice_id)
        if binv is None:
            raise _Refuse("source", f"billing invoice {cn.invoice_id} is not in the snapshot: refresh first")
        if not cn.lines:
            raise _Refuse("lines", f"billing credit note {name} has no lines in the snapshot: refresh first")
        return cn, binv

    def credit_note_posting(self, cn: CreditNote, binv: Invoice, copy: Invoice
                            ) -> tuple[list[StepCreditLine], list[tuple[int, ...]], ExpectedTotals]:
        """The lines (each crediting a line of ERP invoice ``copy``), their mapped taxes and the
        totals (negated) of billing credit note ``cn`` of billing invoice ``binv``, checked; the
        preview notes list them."""
        cur = cn.total.currency
        name = cn.number or cn.ref.id
        mapping = self.tax_map()
        lines: list[StepCreditLine] = []
        taxes: list[tuple[int, ...]] = []
        net_sum = tax_sum = Decimal(0)
        for n, line in enumerate(cn.lines, 1):
            row, ids, net, tax = self.credit_line(n, line, self.credited_position(binv, line), cur, mapping)
            lines.append(row)
            taxes.append(ids)
            net_sum += net
            tax_sum += tax
        net_total = cn.net.amount if cn.net is not None else net_sum
        tax_total = cn.tax.amount if cn.tax is not None else tax_sum
        if net_sum != net_total or tax_sum != tax_total or net_total + tax_total != cn.total.amount:
            raise _Refuse("lines", f"billing credit note {name}'s lines add up to {format_money(net_sum, cur)} net "
                                   f"and {format_money(tax_sum, cur)} tax, but it says {format_money(net_total, cur)} "
                                   f"net, {format_money(tax_total, cur)} tax, total "
                                   f"{format_money(cn.total.amount, cur)}: post it by hand")
        self.ok("lines", f"{len(lines)} credit line(s) crediting lines of ERP invoice {copy.number or copy.ref.id}")
        self.rates_mapped(cn.lines, mapping)
        expected = self.expected_credit(net_total, tax_total, cn.total.amount, cur)
        self.totals_note(expected, cur)
        return lines, taxes, expected

    def post_credit_note(self) -> None:
        """credit_note.missing_in_erp CREDIT (module docstring)."""
        self.finance_only("posting a credit note in the ERP")
        cid = self.exc.object_id
        cn, binv = self.billing_credit_note(cid)
        cur = cn.total.currency
        copy = self.credited_copy(cn.invoice_id or "", cur)
        lines, taxes, expected = self.credit_note_posting(cn, binv, copy)
        issued = cn.created or self.clock()
        inv_date = self.posting_date(issued.astimezone(UTC).date(), "billing issued the credit note on")
        ack = self.acknowledge_warning()
        self.steps = [PostCreditNote(cid, int(copy.ref.id), cur, inv_date.isoformat(), tuple(lines), tuple(taxes),
                                     expected, ack)]
        self.credit_calls(cid, copy, lines, taxes, expected, cur)
        self.before = {"billing": {"credit_note": cid, "number": cn.number, "invoice": cn.invoice_id,
                                   "total": str(cn.total.amount), "currency": cur, "status": cn.status},
                       "erp": {"invoice": copy.ref.id, "number": copy.number, "state": copy.status.value,
                               "credit_note": None}}
        self.expected_after = {"erp": {"credit_note": {"reference": cid, "state": "posted",
                                                       "credits": copy.ref.id, "untaxed": expected.untaxed,
                                                       "tax": expected.tax, "total": expected.total,
                                                       "currency": cur, "invoice_date": inv_date.isoformat()}}}

    def correct_credit_note(self) -> None:
        """credit_note.amount_mismatch CORRECT (module docstring): a draft ERP credit note's lines
        replaced by billing's, in Tryton's credit shape, its totals checked before it is kept."""
        self.finance_only("correcting an ERP credit note")
        self.need_reason("a correction")
        side = next((s for s in self.exc.sides if s.system is System.ERP and s.ref is not None), None)
        if side is None or side.ref is None:
            raise _Refuse("target", "the exception names no ERP credit note")
        note = self.e.credit_notes.get(side.ref.id)
        if note is None:
            raise _Refuse("target", f"ERP credit note {side.ref.id} is not in the snapshot: refresh first")
        number = note.number or note.ref.id
        if note.status not in ("draft", "validated"):
            raise _Refuse("posted", _credit_note_posted(number, note.status))
        self.ok("posted", f"ERP credit note {number} is {note.status}: it may be corrected")
        cid = self.exc.object_id
        cn, binv = self.billing_credit_note(cid)
        cur = cn.total.currency
        asked = str(self.value.get("currency") or cur).upper()
        if asked != cur:
            raise _Refuse("currency", f"a credit note is in the credited invoice's currency: {cur}, not {asked}")
        copy = self.credited_copy(binv.ref.id, cur)
        if note.invoice_id != copy.ref.id:
            raise _Refuse("target", f"ERP credit note {number} credits ERP invoice {note.invoice_id}, not "
                                    f"{copy.number or copy.ref.id} (the copy of {binv.number or binv.ref.id}): "
                                    "correct it by hand")
        lines, taxes, expected = self.credit_note_posting(cn, binv, copy)
        note_id = int(note.ref.id)
        self.steps = [ReplaceCreditLines(note_id, int(copy.ref.id), cur, tuple(lines), tuple(taxes), expected)]
        number_of = copy.number or copy.ref.id
        self.rpc_call("model.account.invoice.write", [[note_id], {
            "lines": [["delete", ["<current lines>"]], ["create", [
                {"origin": f"account.invoice.line,<line {pos + 1} of {number_of}>", "description": desc,
                 "quantity": f"-{qty}", "unit_price": unit, "taxes": [["add", list(ids)]]}
                for (pos, _, qty, unit, desc), ids in zip(lines, taxes, strict=True)]]],
            "taxes": [["delete", ["<manual invoice taxes>"]]]}],
            "replace the draft credit note's lines with billing's, as Tryton's credit makes them (each line's "
            "origin the line it credits, the quantity negated, billing's tax mapped); its manual taxes are removed")
        self.rpc_call("model.account.invoice.read", [[note_id], ["untaxed_amount", "tax_amount", "total_amount",
                                                                 "taxes"]],
                      f"compare the draft with billing to the minor unit: untaxed {expected.untaxed}, tax "
                      f"{expected.tax}, total {expected.total} {cur} (a rounding difference: a manual invoice tax "
                      f"'{ROUNDING_AS_BILLED.strip()}'; anything else: its previous lines and manual taxes are put "
                      "back, nothing is kept)")
        self.notes.append(f"the credit note stays {note.status}: post it in the ERP once corrected")
        self.before = {"billing": {"credit_note": cid, "number": cn.number, "total": str(cn.total.amount),
                                   "currency": cur},
                       "erp": {"credit_note": note.ref.id, "number": note.number, "state": note.status,
                               "total": str(note.total.amount), "currency": note.total.currency}}
        self.expected_after = {"erp": {"credit_note": {"id": note.ref.id, "state": note.status,
                                                       "credits": copy.ref.id, "untaxed": expected.untaxed,
                                                       "tax": expected.tax, "total": expected.total,
                                                       "currency": cur}}}

    def credit_refund(self) -> None:
        """invoice.refund_not_reflected CREDIT (module docstring)."""
        self.finance_only("crediting a refund in the ERP")
        iid = self.exc.object_id
        binv = self.b.invoices.get(iid)
        if binv is None:
            raise _Refuse("source", f"billing invoice {iid} is not in the snapshot: refresh first")
        cur = binv.total.currency
        refunds = sorted((r for r in self.b.refunds.values() if r.invoice_id == iid and r.succeeded),
                         key=lambda r: (r.created is None, r.created, r.ref.id))
        notes = sorted({r.credit_note_id for r in refunds if r.credit_note_id}
                       | {k for k, cn in self.b.credit_notes.items() if cn.invoice_id == iid and not cn.is_void})
        if notes:
            named = ", ".join(f"{self.b.credit_notes[k].number or k}" if k in self.b.credit_notes else k
                              for k in notes)
            raise _Refuse("source", f"billing credit note {named} covers the refund of {binv.number or iid}: post "
                                    "that credit note (credit_note.missing_in_erp), not the refund")
        if not refunds:
            raise _Refuse("source", f"billing holds no succeeded refund of {iid}: refresh first")
        refunded = sum((r.amount.amount for r in refunds if r.amount.currency == cur), Decimal(0))
        if refunded != binv.total.amount:
            raise _Refuse("partial", f"billing refunded {format_money(refunded, cur)} of {money_text(binv)}: which "
                                     "lines a partial refund gives back is billing's to say with a credit note; "
                                     "issue one (then post it) or credit it by hand")
        self.ok("source", f"billing refunded the whole of {binv.number or iid} ({money_text(binv)}) with no "
                          "credit note")
        copy = self.credited_copy(iid, cur)
        kept = len(self.notes)
        post = self.posting(binv)
        # the invoice's lines and taxes as posting lists them; its totals are the credit note's, negated (below)
        self.notes[kept:] = [n for n in self.notes[kept:] if not n.startswith("totals: ")]
        if post.line_taxes is None or post.expected is None or binv.net is None or binv.tax is None:
            raise _Refuse("tax", f"billing's taxes of {iid} are not in the snapshot: refresh first")
        lines: list[StepCreditLine] = [(i, ln.description, qty, unit, desc)
                                       for i, (ln, (_, qty, unit, desc)) in enumerate(zip(binv.lines, post.lines,
                                                                                          strict=True))]
        taxes = list(post.line_taxes)
        self.notes.append(f"a full credit of ERP invoice {copy.number or copy.ref.id}: every line above, negated")
        expected = self.expected_credit(binv.net.amount, binv.tax.amount, binv.total.amount, cur)
        self.totals_note(expected, cur)
        last = refunds[-1]
        reference = last.ref.id
        refunded_at = last.created or self.clock()
        inv_date = self.posting_date(refunded_at.astimezone(UTC).date(), "billing refunded it on")
        ack = self.acknowledge_warning()
        self.steps = [PostCreditNote(reference, int(copy.ref.id), cur, inv_date.isoformat(), tuple(lines),
                                     tuple(taxes), expected, ack)]
        self.credit_calls(reference, copy, lines, taxes, expected, cur)
        self.notes.append(f"the ERP copy stays {copy.status.value}: its payment happened; the refund's payment "
                          "is reconciled with the credit note in the ERP")
        self.before = {"billing": {"invoice": iid, "number": binv.number, "total": str(binv.total.amount),
                                   "refunded": str(refunded), "refunds": [r.ref.id for r in refunds], "currency": cur},
                       "erp": {"invoice": copy.ref.id, "number": copy.number, "state": copy.status.value,
                               "credit_note": None}}
        self.expected_after = {"erp": {"credit_note": {"reference": reference, "state": "posted",
                                                       "credits": copy.ref.id, "untaxed": expected.untaxed,
                                                       "tax": expected.tax, "total": expected.total,
                                                       "currency": cur, "invoice_date": inv_date.isoformat()}}}

