"""Planning the invoice fixes (the ERP holds the invoice; billing owns its content).

- ``invoice.missing_in_erp`` → RETRY: create + post the ERP invoice from the billing invoice
  (party by code, currency, lines = plan key → ERP product code, quantity, unit price, net of
  the line's discount; a line whose net is not quantity × a unit price in the currency's
  precision is sent as 1 × the net; each line with the ERP tax of its billing tax rate, mapped
  by the profile's ``tax_map`` — a rate without a mapping is refused in preflight, naming it,
  never matched by percentage: :meth:`_InvoicePlans.posting`). Before posting, the draft's
  untaxed amount, tax and total are compared with billing's to the minor unit (a half-even
  rounding cent per taxed line kept as billed by a manual invoice tax, anything else: the draft
  is deleted and nothing posted; :meth:`TrytonConnector.ensure_invoice_posted`); REPOST and
  CREDIT_REPOST post the same way. The preview notes list each line, its tax and the totals.
  The invoice date is the billing finalization date, unless the ERP's strict invoice
  sequence already holds a later posted invoice (Tryton refuses to number an invoice dated
  before the latest one): then the late posting is dated today and the preview says so. Today
  is the ERP's today (``ir.date.today``, its company's timezone) when it is before the engine's
  UTC date, and no date a fix picks is after it: Tryton stops a customer invoice dated after
  its today on its ``invoice_date_future`` warning. The operator may choose the date
  (``value={"invoice_date": "YYYY-MM-DD"}``; refused when after the ERP's today). A Tryton warning
  (e.g. due date in the past) is never acknowledged silently (the one exception, previewed: the
  warning that a line's taxes are not its product's defaults, which billing's mapped taxes are):
  the action fails with the warning's text and name; re-running with ``value={"acknowledge_warning": name}``
  acknowledges it (audited) and posts the draft left by the first attempt.
- ``invoice.amount_mismatch``, ``invoice.tax_mismatch``, ``invoice.currency_mismatch`` and
  ``subscription.proration_mismatch`` (the ERP copy's content differs from billing's: its total,
  its tax per rate, its currency, its proration lines) → CORRECT a *draft* ERP invoice: its
  currency and lines are replaced by billing's, every line with its rate's mapped ERP tax as for
  RETRY, and its manual invoice taxes removed; the corrected draft's untaxed amount, tax and total
  are compared with billing's to the minor unit before it is kept (a half-even rounding cent per
  taxed line kept as billed; anything else puts the draft's previous currency, lines and manual
  taxes back and refuses: :meth:`TrytonConnector.replace_draft_invoice_lines`). Operator-chosen
  ``value={"currency": …, "lines": [...]}`` are written as given, with the ERP's taxes. A posted invoice is
  never edited in place (CORRECT is refused): CREDIT_REPOST it (finance role only; a reason is
  required) — the ERP credits it with refund through Tryton's *Credit* wizard (a credit note
  copying it with negated lines is posted and reconciled, the invoice ends ``cancelled``), then a
  corrected copy with billing's lines and currency and the billing invoice id as reference is
  created and posted (:meth:`TrytonConnector.credit_and_repost`). Both are dated today, or the
  latest posted invoice's date when the ERP's strict sequence is already later
  (``value={"invoice_date": …}`` chooses); a warning is handled as for RETRY. Idempotent end to
  end: the credit note is looked up by its origin and the copy by reference before each create,
  and again when an answer is lost, so a repeat, a lost answer or a crash between the steps
  never credits or posts twice. Verify re-reads the three invoices: the credited one (cancelled)
  and the credit note (no billing copy: the connector maps it without reference) drop out of the
  invoice rules, and the exception closes only when the corrected copy agrees with billing.
  A *paid* ERP invoice is credited the only way Tryton credits one: the Credit wizard without
  refund (Tryton refunds only an unpaid posted invoice) gives a draft credit note with the
  negated lines, which is posted; the paid invoice stays paid and its reference becomes
  ``credited: <billing id> by <credit note number>`` (Tryton lets a posted invoice's reference
  change), so the corrected copy is the one live ERP invoice carrying the billing id; the
  customer's payment is then applied in the ERP (``invoice.payment_state`` shows it until then).
  Refused in preflight: a draft (correct it), a voided billing invoice, a duplicate. FLAG for
  review and ACCEPT stay available. For ``invoice.currency_mismatch`` the credit note is in the
  ERP copy's currency (Tryton's credit copies the invoice) and the corrected copy in billing's:
  the preflight checks that the ERP has billing's currency, not that the two agree.
- ``invoice.not_posted_in_erp`` → POST the ERP's draft (or validated) copy as it is, dated as
  for RETRY (its own date, else today when the ERP's strict sequence is already later; the date
  is written on the draft first), a warning handled as for RETRY; or REPOST it (a reason is
  required): the draft is deleted (Tryton deletes an unnumbered draft; a validated one is put
  back to draft first) and the invoice is created and posted again from billing's lines, as
  RETRY does. Both idempotent: a draft already posted is not posted again, one already deleted
  is not looked for again, and the new copy is looked up by reference before it is created.
- ``invoice.duplicate_in_erp`` → CANCEL the extra draft copies (the ``cancel`` button; one
  copy is kept: the posted one, else the oldest; ``value={"invoice": id}`` picks the copy to
  cancel). When every extra copy is posted: refused, FLAG it.
- ``invoice.payment_state``, ``invoice.orphan_in_erp`` → FLAG for review or ACCEPT
  (:mod:`services.actions.plan`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date
from decimal import Decimal, InvalidOperation
from typing import Any

from services.actions.model import Role
from services.actions.plan_builder import _PlanBuilderCore, _ref_id, _Refuse
from services.actions.roles import _credit_refusal, _posted_explanation
from services.actions.steps import (
    CancelInvoice,
    CreditRepost,
    ExpectedTotals,
    PostDraft,
    PostInvoice,
    ReplaceLines,
    RepostInvoice,
    StepLine,
    StepLineTaxes,
)
from services.core.currency import format_money
from services.core.domain import Invoice, InvoiceLine, InvoiceStatus, System
from services.io.connectors.stripe_payloads import currency_exponent
from services.io.connectors.tryton import TrytonConnector
from services.io.connectors.tryton_writes import ROUNDING_AS_BILLED, credited_reference_prefix


def money_text(inv: Invoice) -> str:
    return format_money(inv.total.amount, inv.total.currency)


def mapped_taxes(line: InvoiceLine, mapping: dict[str, int], currency: str, by_hand: str) -> list[int]:
    """The ERP taxes of a billing line, each billing tax rate mapped by the profile's tax map; a
    rate with no mapping, or tax at no named rate, is refused (``by_hand``: what the operator
    does then) — never a tax guessed by its percentage."""
    ids: list[int] = []
    for t in line.taxes:
        rate = t.rate_id or "(a rate billing did not name)"
        if t.rate_id is None or t.rate_id not in mapping:
            pct = f" {percent_text(t.percentage)} %" if t.percentage is not None else ""
            rc = " reverse charge" if t.reverse_charge else ""
            raise _Refuse("tax", f"billing tax rate {rate} ({t.name or 'tax'}{pct}{rc}) of line "
                                 f"{line.description!r} has no ERP tax: map it in the profile "
                                 f"([profiles.NAME.erp.tax_map] \"{rate}\" = <ERP tax id>); nothing is "
                                 "posted with a guessed tax")
        ids.append(mapping[t.rate_id])
    tax = line.tax.amount if line.tax is not None else Decimal(0)
    if tax and not line.taxes:
        raise _Refuse("tax", f"line {line.description!r} is taxed {format_money(tax, currency)} at no named "
                             f"rate: {by_hand}")
    return ids


def percent_text(pct: Decimal | None) -> str:
    """A tax rate's percentage as written (``20``, ``19.6``; never ``2E+1``), ``?`` when unknown."""
    return "?" if pct is None else format(pct.normalize(), "f")


@dataclass(frozen=True)
class Posting:
    """What a fix posts for a billing invoice: the ERP lines (net of billing's discount), each
    line's ERP taxes (billing's rates mapped by the profile's ``tax_map``; ``None``: an invoice
    whose snapshot reports no taxes, posted as before with the taxes the ERP proposes) and
    billing's totals, which the ERP draft must equal before it is posted (``None`` as well)."""

    lines: tuple[StepLine, ...]
    line_taxes: StepLineTaxes | None
    expected: ExpectedTotals | None


class _InvoicePlans(_PlanBuilderCore):
    """RETRY, CORRECT, CREDIT_REPOST and CANCEL of invoices."""

    def rates_mapped(self, lines: list[InvoiceLine], mapping: dict[str, int]) -> list[str]:
        """The "tax" check: which billing tax rates the lines use, each with its ERP tax (the
        lines' taxes were mapped by :func:`mapped_taxes`); the rates, sorted."""
        used = sorted({t.rate_id for ln in lines for t in ln.taxes if t.rate_id is not None})
        self.ok("tax", f"every tax rate maps to one ERP tax ({', '.join(f'{r} -> {mapping[r]}' for r in used)})"
                if used else "untaxed: no line carries a tax rate")
        return used

    def acknowledge_warning(self) -> str | None:
        """``value={"acknowledge_warning": name}``: the step acknowledges that ERP warning once
        (audited, previewed as its own call); the name for the step's ``acknowledge``."""
        ack = self.value.get("acknowledge_warning")
        if not ack:
            return None
        self.notes.append(f"acknowledges the ERP warning {ack} once (audited)")
        self.rpc_call("model.res.user.warning.create", [[{"name": str(ack), "always": False}]],
                      "acknowledge the ERP's warning once")
        return str(ack)

    def latest_posted_date(self) -> date | None:
        """The newest invoice date among the ERP's posted or paid invoices: its strict invoice
        sequence refuses anything dated earlier."""
        return max((i.invoice_date for i in self.e.invoices.values()
                    if i.invoice_date and i.status in (InvoiceStatus.POSTED, InvoiceStatus.PAID)), default=None)

    def chosen_invoice_date(self) -> date | None:
        """The operator's ``value={"invoice_date": "YYYY-MM-DD"}``, if given."""
        if not self.value.get("invoice_date"):
            return None
        try:
            return date.fromisoformat(str(self.value["invoice_date"]))
        except ValueError:
            raise _Refuse("date", f"invoice_date {self.value['invoice_date']!r} is not a date") from None

    def posting_date(self, wanted: date, why: str) -> date:
        """The date an invoice is posted with: the operator's (``value={"invoice_date": …}``), else
        ``wanted`` (``why``: where it comes from), unless the ERP's strict invoice sequence already
        holds a later posted invoice — then the late posting is dated today (the preview says so).
        "Today" is the engine's UTC date or the ERP's today when that is earlier, and a date the
        fix picks is never after the ERP's today (nor before the latest posted invoice date); an
        operator's date after the ERP's today is refused (:meth:`refuse_after_erp_today`).
        A passed ``date`` check."""
        latest = self.latest_posted_date()
        chosen = self.chosen_invoice_date()
        if chosen is not None:
            self.refuse_after_erp_today(chosen)
            inv_date = chosen
            self.notes.append(f"invoice date chosen by the operator: {inv_date}")
        else:
            inv_date = wanted
            if latest is not None and inv_date < latest:
                inv_date = max(self.fix_today(), latest)
                self.notes.append(f"{why} {wanted}, but the ERP's strict invoice sequence already has a posted "
                                  f"invoice dated {latest}: the late posting is dated {inv_date}")
            inv_date = self.not_after_erp_today(inv_date, latest)
        self.ok("date", f"invoice date {inv_date}" + (f" (the ERP's today: {self.erp_today})"
                                                       if self.erp_today is not None else ""))
        return inv_date

    def billing_lines(self, inv: Any) -> list[StepLine]:
        exp = currency_exponent(inv.total.currency.lower())
        quantum = Decimal(1).scaleb(-exp)
        lines: list[StepLine] = []
        total = Decimal(0)
        erp_keys = {p.key for p in self.e.plans.values()}
        for line in inv.lines:
            if not line.plan_key:
                raise _Refuse("product", f"line {line.description!r} has no plan: it cannot map to an ERP product")
            if erp_keys and line.plan_key not in erp_keys:
                raise _Refuse("product", f"plan {line.plan_key!r} has no ERP product with that code")
            amount = line.amount.amount
            total += amount
            qty = line.quantity
            try:
                unit = (amount / qty).quantize(quantum) if qty else None
            except (InvalidOperation, ZeroDivisionError):
                unit = None
            if unit is not None and unit * qty == amount:
                lines.append((line.plan_key, str(qty), str(unit), line.description))
            else:
                lines.append((line.plan_key, "1", str(amount), line.description))
        if not erp_keys:
            self.notes.append("the ERP's products are not in the snapshot: plan keys are checked by the ERP")
        if total != inv.total.amount:
            raise _Refuse("lines", f"billing's lines add up to {format_money(total, inv.total.currency)} but the "
                                   f"invoice total is {money_text(inv)}: post it by hand")
        self.ok("product", f"{len(lines)} line(s); every plan maps to an ERP product")
        return lines

    def tax_map(self) -> dict[str, int]:
        """The profile's billing tax rate -> ERP tax mapping (``[profiles.NAME.erp.tax_map]``)."""
        erp = self.engine.connectors.get(System.ERP)
        return dict(erp.conn.tax_map) if isinstance(erp, TrytonConnector) else {}

    def posting(self, inv: Invoice) -> Posting:
        """The lines, taxes and totals a fix posts for billing invoice ``inv`` (:class:`Posting`),
        checked: each line maps to an ERP product, each tax rate to exactly one ERP tax (the
        profile's ``tax_map``; a rate without one is refused, naming it: a wrong tax is worse than
        no posting, so a rate is never matched by its percentage), and the lines net of their
        discounts add up to billing's untaxed amount, their taxes to its tax, both to its total.
        The preview notes list each line with its tax and the totals."""
        if inv.net is None or inv.tax is None or any(ln.net is None or ln.tax is None for ln in inv.lines):
            return Posting(tuple(self.billing_lines(inv)), None, None)  # a snapshot without taxes
        cur = inv.total.currency
        exp = currency_exponent(cur.lower())
        quantum = Decimal(1).scaleb(-exp)
        erp_keys = {p.key for p in self.e.plans.values()}
        mapping = self.tax_map()
        lines: list[StepLine] = []
        taxes: list[tuple[int, ...]] = []
        net_sum = tax_sum = Decimal(0)
        for n, line in enumerate(inv.lines, 1):
            if not line.plan_key:
                raise _Refuse("product", f"line {line.description!r} has no plan: it cannot map to an ERP product")
            if erp_keys and line.plan_key not in erp_keys:
                raise _Refuse("product", f"plan {line.plan_key!r} has no ERP product with that code")
            net = line.net.amount if line.net is not None else line.amount.amount
            line_tax = line.tax.amount if line.tax is not None else Decimal(0)
            ids = mapped_taxes(line, mapping, cur, "post it by hand")
            qty = line.quantity
            try:
                unit = (net / qty).quantize(quantum) if qty else None
            except (InvalidOperation, ZeroDivisionError):
                unit = None
            row = ((line.plan_key, str(qty), str(unit), line.description) if unit is not None and unit * qty == net
                   else (line.plan_key, "1", str(net), line.description))
            lines.append(row)
            taxes.append(tuple(ids))
            net_sum += net
            tax_sum += line_tax
            rates = ", ".join(f"ERP tax {mapping[t.rate_id]} for {t.rate_id} ({t.name or 'tax'} "
                              f"{percent_text(t.percentage)} %"
                              f"{', reverse charge' if t.reverse_charge else ''})"
                              for t in line.taxes if t.rate_id is not None)
            discount = (f" (billed {format_money(line.amount.amount, cur)} less discount "
                        f"{format_money(line.amount.amount - net, cur)})" if net != line.amount.amount else "")
            self.notes.append(f"line {n}: {row[0]} {row[1]} × {row[2]} = {format_money(net, cur)} net{discount}; "
                              f"{rates or 'no tax'}; tax {format_money(line_tax, cur)}")
        if not erp_keys:
            self.notes.append("the ERP's products are not in the snapshot: plan keys are checked by the ERP")
        net_total, tax_total = inv.net.amount, inv.tax.amount
        if net_sum != net_total or tax_sum != tax_total or net_total + tax_total != inv.total.amount:
            raise _Refuse("lines", f"billing's lines add up to {format_money(net_sum, cur)} net and "
                                   f"{format_money(tax_sum, cur)} tax, but the invoice says "
                                   f"{format_money(net_total, cur)} net, {format_money(tax_total, cur)} tax, total "
                                   f"{money_text(inv)}: post it by hand")
        self.ok("product", f"{len(lines)} line(s); every plan maps to an ERP product")
        if self.rates_mapped(inv.lines, mapping):
            self.notes.append("each line carries its billing rate's ERP tax: the ERP's warning that these are not "
                              "the product's default taxes (a customer without a tax rule) is acknowledged for this "
                              "invoice; any other warning stops the posting")
        self.notes.append(f"totals: untaxed {format_money(net_total, cur)}, tax {format_money(tax_total, cur)}, "
                          f"total {money_text(inv)}: the ERP draft's are compared to the minor unit before it is "
                          "posted; a difference of the ERP's half-even rounding (one minor unit per taxed line at "
                          f"most) is kept as billed as a manual invoice tax '...{ROUNDING_AS_BILLED}', anything "
                          "else deletes the draft and posts nothing")
        q = quantum
        return Posting(tuple(lines), tuple(taxes), ExpectedTotals(str(net_total.quantize(q)),
                                                                  str(tax_total.quantize(q)),
                                                                  str(inv.total.amount.quantize(q))))

    def check_currency(self, currency: str) -> None:
        known = {i.total.currency for i in self.e.invoices.values()}
        if known and currency not in known:
            raise _Refuse("currency", f"the ERP holds no invoice in {currency}: the currency may not be set up")
        self.ok("currency", f"{currency} is known to the ERP")

    def retry_invoice(self) -> None:
        iid = self.exc.object_id
        inv = self.b.invoices.get(iid)
        if inv is None:
            raise _Refuse("source", f"billing invoice {iid} is not in the snapshot: refresh first")
        party = self.party(inv.customer_id)
        if self.idx.erp_invoices(iid):
            raise _Refuse("target", f"the ERP already holds an invoice for {iid}: refresh")
        currency = inv.total.currency
        self.check_currency(currency)
        post = self.posting(inv)
        finalized = (inv.finalized_at or inv.created)
        inv_date = self.posting_date(finalized.astimezone(UTC).date() if finalized else self.clock().date(),
                                     "billing finalized it on")
        ack = self.acknowledge_warning()
        self.steps = [PostInvoice(iid, int(party.ref.id), currency, inv_date.isoformat(), post.lines, ack,
                                  post.line_taxes, post.expected)]
        self.post_calls(iid, int(party.ref.id), currency, inv_date, post)
        self.before = {"billing": {"invoice": iid, "number": inv.number, "total": str(inv.total.amount),
                                   "currency": currency, "status": inv.status.value}, "erp": None}
        self.expected_after = {"erp": {"reference": iid, "state": "posted", "total": str(inv.total.amount),
                                       "currency": currency, "invoice_date": inv_date.isoformat()}}

    def post_calls(self, iid: str, party_id: int, currency: str, inv_date: date, post: Posting) -> None:
        """The calls of :meth:`TrytonConnector.ensure_invoice_posted`."""
        line_values: list[dict[str, Any]] = []
        for n, (code, qty, unit, desc) in enumerate(post.lines):
            value: dict[str, Any] = {"product": code, "quantity": qty, "unit_price": unit, "description": desc}
            if post.line_taxes is not None:
                value["taxes"] = [["add", list(post.line_taxes[n])]]
            line_values.append(value)
        self.rpc_call("model.account.invoice.search_read", [[["reference", "=", iid], ["type", "=", "out"],
                                                             ["state", "!=", "cancelled"]]],
                      "look the invoice up by reference first (idempotency): an existing one is posted, not "
                      "created again")
        self.rpc_call("model.account.invoice.create", [[{
            "type": "out", "party": party_id, "reference": iid, "currency": currency,
            "invoice_date": inv_date.isoformat(),
            "lines": [["create", line_values]]}]],
            "create the draft (journal, receivable account, payment term and units as the ERP's on_change "
            "proposes them; " + ("each line's taxes: billing's rates, mapped)" if post.line_taxes is not None
                                 else "taxes as the ERP proposes them)"))
        if post.expected is not None:
            exp = post.expected
            self.rpc_call("model.account.invoice.read", [["<new invoice id>"], ["untaxed_amount", "tax_amount",
                                                                               "total_amount", "taxes"]],
                          f"compare the draft with billing to the minor unit: untaxed {exp.untaxed}, tax {exp.tax}, "
                          f"total {exp.total} {currency} (a rounding difference: a manual invoice tax "
                          f"'{ROUNDING_AS_BILLED.strip()}'; anything else: the draft is deleted, nothing posted)")
        self.rpc_call("model.account.invoice.post", [["<new invoice id>"]], "post (numbers the invoice)")

    def draft_copy(self) -> tuple[Invoice, Invoice]:
        """invoice.not_posted_in_erp: (billing invoice, the ERP's one draft copy), checked."""
        iid = self.exc.object_id
        binv = self.b.invoices.get(iid)
        if binv is None:
            raise _Refuse("source", f"billing invoice {iid} is not in the snapshot: refresh first")
        _, draft = self.erp_invoice_side()
        if draft.status not in (InvoiceStatus.DRAFT, InvoiceStatus.VALIDATED):
            raise _Refuse("target", f"ERP invoice {draft.number or draft.ref.id} is {draft.status.value}, not a draft: "
                                    "refresh")
        live = [i.ref.id for i in self.idx.erp_invoices(iid)]
        if live != [draft.ref.id]:
            raise _Refuse("target", f"{len(live)} live ERP invoices carry {iid}: refresh, or resolve the duplicate "
                                    "first")
        self.ok("target", f"ERP invoice {draft.ref.id} is the one {draft.status.value} copy of {iid}")
        return binv, draft

    def post_draft(self) -> None:
        """invoice.not_posted_in_erp POST: post the ERP's draft copy as it is (its lines agree
        with billing's: a copy that differs is an amount mismatch, corrected first)."""
        binv, draft = self.draft_copy()
        iid = binv.ref.id
        if draft.total.amount != binv.total.amount or draft.total.currency != binv.total.currency:
            raise _Refuse("content", f"the draft totals {money_text(draft)}, billing {money_text(binv)}: delete and "
                                     "re-post it from billing instead")
        self.ok("content", f"the draft agrees with billing ({money_text(binv)})")
        own = draft.invoice_date
        finalized = binv.finalized_at or binv.created
        wanted = own or (finalized.astimezone(UTC).date() if finalized else self.clock().date())
        inv_date = self.posting_date(wanted, "the draft is dated" if own else "billing finalized it on")
        write_date = None if inv_date == own else inv_date.isoformat()
        ack = self.acknowledge_warning()
        invoice_id = int(draft.ref.id)
        self.steps = [PostDraft(invoice_id, iid, write_date, ack)]
        self.rpc_call("model.account.invoice.search_read", [[["id", "=", invoice_id]], 0, None, [["id", "ASC"]],
                                                            ["state", "party", "type", "number", "reference"]],
                      f"read the draft: still a draft carrying {iid} (posted already: nothing to do)")
        if write_date is not None:
            self.rpc_call("model.account.invoice.write", [[invoice_id], {"invoice_date": write_date}],
                          "date the draft for the ERP's strict invoice sequence")
        self.rpc_call("model.account.invoice.post", [[invoice_id]], "post (numbers the invoice)")
        self.before = {"billing": {"invoice": iid, "number": binv.number, "total": str(binv.total.amount),
                                   "currency": binv.total.currency, "status": binv.status.value},
                       "erp": {"invoice": draft.ref.id, "state": draft.status.value,
                               "invoice_date": own.isoformat() if own else None}}
        self.expected_after = {"erp": {"invoice": draft.ref.id, "reference": iid, "state": "posted",
                                       "invoice_date": inv_date.isoformat()}}

    def repost(self) -> None:
        """invoice.not_posted_in_erp REPOST: delete the draft, create + post it from billing."""
        self.need_reason("deleting an ERP draft and posting it again")
        binv, draft = self.draft_copy()
        iid = binv.ref.id
        if draft.number:
            raise _Refuse("numbered", f"ERP invoice {draft.number} has a number: the ERP never deletes a numbered "
                                      "invoice; post it")
        party = self.party(binv.customer_id)
        currency = binv.total.currency
        self.check_currency(currency)
        post = self.posting(binv)
        finalized = binv.finalized_at or binv.created
        inv_date = self.posting_date(finalized.astimezone(UTC).date() if finalized else self.clock().date(),
                                     "billing finalized it on")
        ack = self.acknowledge_warning()
        invoice_id, party_id = int(draft.ref.id), int(party.ref.id)
        self.steps = [RepostInvoice(invoice_id, iid, party_id, currency, inv_date.isoformat(), post.lines, ack,
                                    post.line_taxes, post.expected)]
        self.rpc_call("model.account.invoice.search_read", [[["id", "=", invoice_id]], 0, None, [["id", "ASC"]],
                                                            ["state", "party", "type", "number", "reference"]],
                      f"read the draft: still an unnumbered draft carrying {iid} (gone already: not deleted again)")
        if draft.status is InvoiceStatus.VALIDATED:
            self.rpc_call("model.account.invoice.draft", [[invoice_id]], "back to draft (the ERP deletes only a draft)")
        self.rpc_call("model.account.invoice.delete", [[invoice_id]], f"delete draft {invoice_id}")
        self.post_calls(iid, party_id, currency, inv_date, post)
        self.before = {"billing": {"invoice": iid, "number": binv.number, "total": str(binv.total.amount),
                                   "currency": currency, "status": binv.status.value},
                       "erp": {"invoice": draft.ref.id, "state": draft.status.value,
                               "total": str(draft.total.amount), "currency": draft.total.currency}}
        self.expected_after = {"erp": {"deleted": draft.ref.id, "reference": iid, "state": "posted",
                                       "total": str(binv.total.amount), "currency": currency,
                                       "invoice_date": inv_date.isoformat()}}

    def erp_invoice_side(self) -> tuple[Any, Any]:
        side = next((s for s in self.exc.sides if s.system is System.ERP and s.ref is not None), None)
        if side is None or side.ref is None:
            raise _Refuse("target", "the exception names no ERP invoice")
        inv = self.e.invoices.get(side.ref.id)
        if inv is None:
            raise _Refuse("target", f"ERP invoice {side.ref.id} is not in the snapshot: refresh first")
        return side, inv

    def correct_invoice(self) -> None:
        """CORRECT a draft ERP copy (module docstring): its currency and lines replaced by
        billing's, each line with its rate's mapped ERP tax and the totals compared to the minor
        unit before the correction is kept (operator-chosen lines: as given, the ERP's taxes)."""
        self.need_reason("a correction")
        _, erp_inv = self.erp_invoice_side()
        if erp_inv.status not in (InvoiceStatus.DRAFT, InvoiceStatus.VALIDATED):
            raise _Refuse("posted", _posted_explanation(erp_inv.number or erp_inv.ref.id, erp_inv.status.value))
        self.ok("posted", f"ERP invoice {erp_inv.ref.id} is {erp_inv.status.value}: it may be corrected")
        binv = self.b.invoices.get(self.exc.object_id)
        if binv is None:
            raise _Refuse("source", f"billing invoice {self.exc.object_id} is not in the snapshot")
        currency = str(self.value.get("currency") or binv.total.currency).upper()
        self.check_currency(currency)
        post: Posting | None = None
        if self.value.get("lines"):
            lines = [(str(ln["plan_key"]), str(ln["quantity"]), str(ln["unit_price"]),
                      str(ln.get("description") or ln["plan_key"])) for ln in self.value["lines"]]
            self.notes.append("lines chosen by the operator")
        else:
            post = self.posting(binv)
            lines = list(post.lines)
        line_taxes = post.line_taxes if post is not None and currency == binv.total.currency.upper() else None
        expected = post.expected if line_taxes is not None and post is not None else None
        self.steps = [ReplaceLines(int(erp_inv.ref.id), currency, tuple(lines), line_taxes, expected)]
        created: list[dict[str, Any]] = []
        for n, (c, q, u, d) in enumerate(lines):
            value: dict[str, Any] = {"product": c, "quantity": q, "unit_price": u, "description": d}
            if line_taxes is not None:
                value["taxes"] = [["add", list(line_taxes[n])]]
            created.append(value)
        write: dict[str, Any] = {"currency": currency, "lines": [["delete", ["<current lines>"]], ["create", created]]}
        if expected is not None:
            write["taxes"] = [["delete", ["<manual invoice taxes>"]]]
        self.rpc_call("model.account.invoice.write", [[int(erp_inv.ref.id)], write],
                      "replace the draft's lines with billing's (the owner of the invoice's content)"
                      + (", each with its rate's ERP tax; its manual taxes are removed" if expected else ""))
        if expected is not None:
            self.rpc_call("model.account.invoice.read", [[int(erp_inv.ref.id)], ["untaxed_amount", "tax_amount",
                                                                                 "total_amount", "taxes"]],
                          f"compare the draft with billing to the minor unit: untaxed {expected.untaxed}, tax "
                          f"{expected.tax}, total {expected.total} {currency} (a rounding difference: a manual "
                          f"invoice tax '{ROUNDING_AS_BILLED.strip()}'; anything else: the draft's previous lines, "
                          "currency and manual taxes are put back, nothing is kept)")
            total = Decimal(expected.total)
        else:
            total = sum((Decimal(q) * Decimal(u) for _, q, u, _ in lines), Decimal(0))
        self.before = {"erp": {"invoice": erp_inv.ref.id, "state": erp_inv.status.value,
                               "total": str(erp_inv.total.amount), "currency": erp_inv.total.currency}}
        if erp_inv.tax is not None:
            self.before["erp"]["tax"] = str(erp_inv.tax.amount)
        self.expected_after = {"erp": {"invoice": erp_inv.ref.id, "total": str(total), "currency": currency}}
        if expected is not None:
            self.expected_after["erp"] |= {"untaxed": expected.untaxed, "tax": expected.tax}

    def credit_repost(self) -> None:
        """Credit a posted ERP invoice with refund and post a corrected copy (module docstring)."""
        self.need_reason("a credit + repost")
        if self.operator.role is not Role.FINANCE:
            raise _Refuse("role", "a credit + repost of a posted invoice is for the finance role only")
        _, erp_inv = self.erp_invoice_side()
        number = erp_inv.number or erp_inv.ref.id
        refusal = _credit_refusal(number, erp_inv.status.value)
        if refusal is not None:
            raise _Refuse("posted", refusal)
        paid = erp_inv.status is InvoiceStatus.PAID
        if paid:
            self.ok("posted", f"ERP invoice {number} is paid: the ERP refunds only an unpaid invoice, so a credit note "
                              "without refund is posted against it (it stays paid, its reference becomes "
                              f"'{credited_reference_prefix(self.exc.object_id)}<credit note>'), then a corrected copy")
        else:
            self.ok("posted", f"ERP invoice {number} is posted: it is credited with refund (a credit note cancels "
                              "it), then a corrected copy is posted")
        iid = self.exc.object_id
        live = [i.ref.id for i in self.idx.erp_invoices(iid)]
        if live != [erp_inv.ref.id]:
            raise _Refuse("target", f"{len(live)} live ERP invoices carry {iid}: refresh, or resolve the duplicate "
                                    "first")
        binv = self.b.invoices.get(iid)
        if binv is None:
            raise _Refuse("source", f"billing invoice {iid} is not in the snapshot: refresh first")
        if binv.status is InvoiceStatus.VOID:
            raise _Refuse("source", f"billing voided {iid}: there is nothing to repost — flag it for review")
        party = self.party(binv.customer_id)
        currency = binv.total.currency
        self.check_currency(currency)
        post = self.posting(binv)
        today = self.fix_today()
        latest = self.latest_posted_date()
        chosen = self.chosen_invoice_date()
        if chosen is not None:
            self.refuse_after_erp_today(chosen)
            inv_date = chosen
            if latest is not None and inv_date < latest:
                raise _Refuse("date", f"the ERP's strict invoice sequence already has a posted invoice dated {latest}: "
                                      f"the credit note and the copy cannot be dated {inv_date}")
            self.notes.append(f"date chosen by the operator: {inv_date}")
        else:
            inv_date = max(today, latest) if latest is not None else today
            if inv_date != today:
                self.notes.append(f"the ERP's strict invoice sequence already has a posted invoice dated {latest}: "
                                  f"dated {inv_date}, not today")
        self.ok("date", f"the credit note and the corrected copy are dated {inv_date}"
                + (f" (the ERP's today: {self.erp_today})" if self.erp_today is not None else ""))
        invoice_id, party_id = int(erp_inv.ref.id), int(party.ref.id)
        ack = self.acknowledge_warning()
        self.steps = [CreditRepost(invoice_id, iid, party_id, currency, inv_date.isoformat(), post.lines, ack,
                                   post.line_taxes, post.expected)]
        active = {"active_model": "account.invoice", "active_id": invoice_id, "active_ids": [invoice_id]}
        self.rpc_call("model.account.invoice.search_read", [[["id", "=", invoice_id]], 0, None, [["id", "ASC"]],
                                                            ["state", "party", "type", "number", "reference"]],
                      f"read the invoice: still posted and carrying {iid} (a credited invoice is cancelled: it is "
                      "not credited again)")
        self.rpc_call("model.account.invoice.search", [[["reference", "=", iid], ["type", "=", "out"],
                                                        ["state", "!=", "cancelled"]]],
                      f"no other live invoice carries {iid} (a duplicate is refused)")
        lookup = [["origin_invoices", "=", invoice_id], ["type", "=", "out"], ["state", "!=", "cancelled"],
                  ["party", "=", "<its party>"]]
        self.rpc_call("model.account.invoice.search_read", [lookup, 0, None, [["id", "ASC"]], ["state"]],
                      "look for a credit note of it first (idempotency): its lines' origins are the invoice's lines")
        self.rpc_call("wizard.account.invoice.credit.create", [active], "open the ERP's Credit wizard on the invoice")
        if paid:
            self.rpc_call("wizard.account.invoice.credit.execute",
                          ["<wizard session>", {"start": {"with_refund": False, "invoice_date": inv_date.isoformat()}},
                           "credit", active],
                          "credit without refund (the ERP's only credit of a paid invoice): a draft credit note "
                          "copying the invoice with negated lines (a lost answer: looked up by its origin)")
            self.rpc_call("wizard.account.invoice.credit.delete", ["<wizard session>", active],
                          "close the wizard session")
            self.rpc_call("model.account.invoice.post", [["<credit note id>"]], "post the credit note")
            self.rpc_call("model.account.invoice.write", [[invoice_id], {
                "reference": f"{credited_reference_prefix(iid)}<credit note number>"}],
                "the paid invoice no longer carries the billing id (the corrected copy does) and names its credit "
                "note (the ERP allows a posted invoice's reference to change)")
        else:
            self.rpc_call("wizard.account.invoice.credit.execute",
                          ["<wizard session>", {"start": {"with_refund": True, "invoice_date": inv_date.isoformat()}},
                           "credit", active],
                          "credit with refund: a credit note copying the invoice with negated lines is posted and "
                          "reconciled with it; the invoice ends cancelled (a lost answer: the invoice is read again)")
            self.rpc_call("wizard.account.invoice.credit.delete", ["<wizard session>", active],
                          "close the wizard session")
        self.post_calls(iid, party_id, currency, inv_date, post)
        if paid:
            self.notes.append("the customer's payment stays on the credited invoice: apply the credit note to the "
                              "corrected copy in the ERP (until then invoice.payment_state shows it unpaid there)")
        self.notes.append("the credit note carries the credited invoice's own taxes (Tryton's credit copies them): "
                          "the ERP's warning that they are not the products' default taxes is acknowledged for the "
                          "credit note; any other warning stops the credit")
        if erp_inv.total.currency != currency:
            self.notes.append(f"the credit note is in the ERP copy's currency ({erp_inv.total.currency}, as Tryton's "
                              f"credit copies the invoice), the corrected copy in billing's ({currency})")
        self.notes.append("the corrected copy carries billing's lines and currency (billing owns the invoice's "
                          "content) and the billing invoice id as reference")
        self.before = {"billing": {"invoice": iid, "number": binv.number, "total": str(binv.total.amount),
                                   "currency": currency, "status": binv.status.value},
                       "erp": {"invoice": erp_inv.ref.id, "number": erp_inv.number, "state": erp_inv.status.value,
                               "total": str(erp_inv.total.amount), "currency": erp_inv.total.currency}}
        self.expected_after = {"erp": {
            "credited": {"invoice": erp_inv.ref.id, "state": "paid" if paid else "cancelled"},
            "credit_note": {"total": str(-erp_inv.total.amount), "currency": erp_inv.total.currency,
                            "invoice_date": inv_date.isoformat()},
            "corrected": {"reference": iid, "state": "posted", "total": str(binv.total.amount), "currency": currency,
                          "invoice_date": inv_date.isoformat()}}}

    def cancel_duplicate(self) -> None:
        copies: list[tuple[Any, Invoice]] = []
        for side in self.exc.sides:
            found = self.e.invoices.get(side.ref.id) if side.system is System.ERP and side.ref is not None else None
            if found is not None:
                copies.append((side, found))
        if len(copies) < 2:
            raise _Refuse("target", "fewer than two ERP copies in the snapshot: refresh first")
        if self.value.get("invoice"):
            wanted = _ref_id(self.value["invoice"])
            chosen = [i for _, i in copies if i.ref.id == wanted]
            if not chosen:
                raise _Refuse("target", f"ERP invoice {wanted} is not one of the copies")
        else:
            posted = [i for _, i in copies if i.status in (InvoiceStatus.POSTED, InvoiceStatus.PAID)]
            keep = posted[0] if posted else min((i for _, i in copies), key=lambda i: int(i.ref.id))
            chosen = [i for _, i in copies if i is not keep]
        posted_chosen = [i for i in chosen if i.status not in (InvoiceStatus.DRAFT, InvoiceStatus.VALIDATED)]
        if posted_chosen:
            raise _Refuse("posted", f"ERP invoice {posted_chosen[0].number or posted_chosen[0].ref.id} is "
                                    f"{posted_chosen[0].status.value}: a posted invoice is never cancelled in place; "
                                    "flag it for review")
        self.ok("posted", f"cancelling {len(chosen)} draft cop{'y' if len(chosen) == 1 else 'ies'}")
        for inv in chosen:
            self.steps.append(CancelInvoice(int(inv.ref.id)))
            self.rpc_call("model.account.invoice.cancel", [[int(inv.ref.id)]], f"cancel draft copy {inv.ref.id}")
        self.before = {"erp": [{"invoice": i.ref.id, "state": i.status.value, "number": i.number}
                               for _, i in copies]}
        self.expected_after = {"erp": [{"invoice": i.ref.id, "state": "cancelled"} for i in chosen]}

