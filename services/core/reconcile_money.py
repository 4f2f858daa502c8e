"""The reconciliation rules on credits and prorations, and the tax comparison the money rules
share; :class:`services.core.reconcile._Run` calls them (same snapshot, same indexes).

- ``credit_note.missing_in_erp`` / ``credit_note.amount_mismatch`` (:func:`rule_credit_notes`):
  each issued billing credit note (total > 0) on an invoice whose live ERP copy is posted or paid
  in the credit note's currency is paired with an ERP credit note (not cancelled) crediting a
  copy of that invoice (live or cancelled): first one of the same total (oldest first, one ERP
  credit note answers one billing credit note), then — for a billing credit note older than the
  invoice grace — the oldest one left in its currency. A paired one whose total, net or tax per
  rate differs by a minor unit or more (the currency's exponent; rates matched by percentage) is
  ``credit_note.amount_mismatch``; one left without a pair past the grace is
  ``credit_note.missing_in_erp``. The ERP keeps no billing id on a credit note (Tryton's credit
  copies no reference): the credited invoice and the order are all that pair them.
- ``invoice.refund_not_reflected`` (:func:`rule_refunds`): a paid billing invoice without credit
  note whose succeeded refunds (in its currency) give back its whole total, the last older than
  the invoice grace, whose one live ERP copy is still ``paid`` with no ERP credit note crediting
  a copy.
- ``subscription.proration_mismatch`` (:func:`proration_mismatch`): a billing invoice with
  proration lines (a mid-period change) whose live ERP copy, in the same currency, differs in
  amount by exactly some of those lines — its net is billing's without them (all of them: the
  change posted as a full period). The ERP copy's lines are not read, so the lines it lacks are
  found from its net; any other difference stays ``invoice.amount_mismatch``. It replaces
  ``invoice.amount_mismatch`` and ``invoice.tax_mismatch`` on that invoice (one root cause, one
  exception).

Customers the ERP does not know are left to ``customer.unmapped_erp``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from itertools import combinations
from typing import TYPE_CHECKING

from services.core.currency import amount_text, format_money, same_amount
from services.core.domain import CreditNote, Invoice, InvoiceLine, InvoiceStatus, Side, System, TaxAmount

if TYPE_CHECKING:
    from services.core.reconcile import _Run

#: at most this many proration lines are searched for the ones an ERP copy lacks (2^n subsets)
MAX_PRORATION_LINES = 8


def rate_label(tax: TaxAmount) -> str:
    """"20 %", "0 % reverse charge", or the rate's name / id when its percentage is unknown."""
    if tax.percentage is None:
        return tax.name or tax.rate_id or "an unknown rate"
    pct = tax.percentage.normalize()
    text = f"{pct:f} %"
    return f"{text} reverse charge" if tax.reverse_charge else text


def tax_differences(billing: tuple[TaxAmount, ...], erp: tuple[TaxAmount, ...],
                    currency: str) -> list[tuple[str, Decimal, Decimal]]:
    """``[(rate, billing tax, ERP tax)]`` for each rate whose tax differs by a minor unit or more
    (compared with the currency's exponent, never as floats), rates matched by percentage; a rate
    one side lacks counts as 0 there. In billing's order, then the ERP's own rates."""
    sums: dict[object, list[Decimal]] = {}
    labels: dict[object, str] = {}
    for col, taxes in ((0, billing), (1, erp)):
        for t in taxes:
            key = t.rate_key[0] if t.percentage is not None else ("?", t.rate_id)
            acc = sums.setdefault(key, [Decimal(0), Decimal(0)])
            acc[col] += t.amount.amount
            if key not in labels or (t.reverse_charge and col == 0):
                labels[key] = rate_label(t)
    return [(labels[k], b, x) for k, (b, x) in sums.items() if not same_amount(b, currency, x, currency)]


# -- credit notes ------------------------------------------------------------------------------
def note_differences(billing: CreditNote, erp: CreditNote) -> list[tuple[str, Decimal, Decimal]]:
    """``[(what, billing amount, ERP amount)]`` where two credit notes in one currency differ by
    a minor unit or more: ``total``, ``net`` (when both report it), the tax per rate (``tax at
    20 %``; when a side's rates are not known but its tax is, the tax in total)."""
    cur = billing.total.currency
    out: list[tuple[str, Decimal, Decimal]] = []
    pairs = [("total", billing.total.amount, erp.total.amount)]
    if billing.net is not None and erp.net is not None:
        pairs.append(("net", billing.net.amount, erp.net.amount))
    for what, b, e in pairs:
        if not same_amount(b, cur, e, cur):
            out.append((what, b, e))
    if billing.tax is None or erp.tax is None:
        return out
    bt, et = billing.tax.amount, erp.tax.amount
    # the rates are known when listed, or when there is no tax at all
    if (billing.taxes or bt == 0) and (erp.taxes or et == 0):
        out.extend((f"tax at {rate}", b, e) for rate, b, e in tax_differences(billing.taxes, erp.taxes, cur))
    elif not same_amount(bt, cur, et, cur):
        out.append(("tax", bt, et))
    return out


def _note_side(system: System, note: CreditNote, invoice: str | None,
               diffs: list[tuple[str, Decimal, Decimal]], erp: bool) -> Side:
    cur = note.total.currency
    values: dict[str, object] = {"number": note.number, "invoice": invoice,
                                 "status" if system is System.BILLING else "state": note.status,
                                 "total": format_money(note.total.amount, cur)}
    if note.net is not None:
        values["net"] = format_money(note.net.amount, cur)
    if note.tax is not None:
        values["tax"] = format_money(note.tax.amount, cur)
    for what, b, e in diffs:
        values[what] = format_money(e if erp else b, cur)
    return Side(system, note.ref, values)


def rule_credit_notes(run: _Run) -> set[str]:
    """``credit_note.missing_in_erp`` and ``credit_note.amount_mismatch`` (module docstring).
    Answers the billing invoices that carry a credit note (not void), which
    ``invoice.refund_not_reflected`` leaves to these rules."""
    b, now, grace = run.b, run.now, run.config.invoice_grace
    posted, paid = InvoiceStatus.POSTED, InvoiceStatus.PAID
    erp_notes: dict[str, list[CreditNote]] = {}
    for note in run.e.credit_notes.values():
        if note.invoice_id is not None and note.status != "cancelled":
            erp_notes.setdefault(note.invoice_id, []).append(note)
    noted: set[str] = set()
    #: billing invoice -> its billing credit notes to pair (oldest first) with the live copies
    todo: dict[str, list[tuple[str, CreditNote, list[Invoice]]]] = {}
    for cid, cn in sorted(b.credit_notes.items(), key=lambda kv: (kv[1].created or now, kv[0])):
        if cn.is_void or cn.invoice_id is None:
            continue
        noted.add(cn.invoice_id)
        cur = cn.total.currency
        if cn.total.amount <= 0 or not run.erp_mapped(cn.customer_id):
            continue
        live = [c for c in run.erp_invoices(cn.invoice_id)
                if (c.status is posted or c.status is paid) and c.total.currency == cur]
        if live:  # else no copy to credit: the invoice rules say why
            todo.setdefault(cn.invoice_id, []).append((cid, cn, live))
    if not todo:
        return noted
    oldest = datetime.min.replace(tzinfo=now.tzinfo)
    for iid, notes in todo.items():
        copies = [*run.erp_invoices(iid), *run.erp_cancelled.get(iid, ())]
        candidates = sorted((n for c in copies for n in erp_notes.get(c.ref.id, ())),
                            key=lambda n: (n.created or oldest, n.ref.id))
        used: set[str] = set()
        pair: dict[str, CreditNote] = {}
        for cid, cn, _ in notes:  # the same total first
            cur = cn.total.currency
            match = next((n for n in candidates if n.ref.id not in used and n.total.currency == cur
                          and same_amount(n.total.amount, cur, cn.total.amount, cur)), None)
            if match is not None:
                used.add(match.ref.id)
                pair[cid] = match
        for cid, cn, _ in notes:  # then, past the grace, what is left in the currency
            if cid in pair or cn.created is None or now - cn.created <= grace:
                continue
            match = next((n for n in candidates if n.ref.id not in used
                          and n.total.currency == cn.total.currency), None)
            if match is not None:
                used.add(match.ref.id)
                pair[cid] = match
        inv = b.invoices.get(iid)
        name = inv.number if inv is not None and inv.number else iid
        for cid, cn, live in notes:
            cur = cn.total.currency
            match = pair.get(cid)
            if match is None:
                if cn.created is None or now - cn.created <= grace:
                    continue
                run.add("credit_note.missing_in_erp", cn.customer_id, cid,
                        f"credit note {cn.number or cid} ({format_money(cn.total.amount, cur)}) on {name}, issued "
                        f"{cn.created:%Y-%m-%d %H:%M} UTC, has no ERP credit note",
                        [Side(System.BILLING, cn.ref, {"number": cn.number, "invoice": name, "status": cn.status,
                                                       "total": amount_text(cn.total.amount, cur), "currency": cur}),
                         Side(System.ERP, live[0].ref, {"invoice": live[0].number, "state": live[0].status.value,
                                                        "credit note": None})])
                continue
            diffs = note_differences(cn, match)
            if not diffs:
                continue
            parts = "; ".join(f"{what} billing {format_money(bv, cur)}, ERP {format_money(ev, cur)}"
                              for what, bv, ev in diffs)
            credited = next((c for c in copies if c.ref.id == match.invoice_id), None)
            erp_name = credited.number if credited is not None and credited.number else name
            run.add("credit_note.amount_mismatch", cn.customer_id, cid,
                    f"credit note {cn.number or cid} on {name}: {parts} (ERP credit note "
                    f"{match.number or match.ref.id}, {match.status})",
                    [_note_side(System.BILLING, cn, name, diffs, False),
                     _note_side(System.ERP, match, erp_name, diffs, True)])
    return noted


def rule_refunds(run: _Run, noted: set[str]) -> None:
    """``invoice.refund_not_reflected`` (module docstring); ``noted``: the billing invoices with
    a credit note (:func:`rule_credit_notes`), left to the credit-note rules."""
    b, now, grace = run.b, run.now, run.config.invoice_grace
    paid = InvoiceStatus.PAID
    crediting: set[str] = {n.invoice_id for n in run.e.credit_notes.values()
                           if n.invoice_id is not None and n.status != "cancelled"}
    refunded: dict[str, tuple[Decimal, datetime | None]] = {}
    for r in b.refunds.values():
        if r.succeeded and r.invoice_id is not None:
            amount, last = refunded.get(r.invoice_id, (Decimal(0), None))
            inv = b.invoices.get(r.invoice_id)
            if inv is None or r.amount.currency != inv.total.currency:
                continue
            when = r.created if last is None or (r.created is not None and r.created > last) else last
            refunded[r.invoice_id] = (amount + r.amount.amount, when)
    for iid, (amount, last) in refunded.items():
        inv = b.invoices[iid]
        if (inv.status is not paid or iid in noted or inv.total.amount <= 0 or amount < inv.total.amount
                or last is None or now - last <= grace or not run.erp_mapped(inv.customer_id)):
            continue
        copies = run.erp_invoices(iid)
        if len(copies) != 1 or copies[0].status is not paid:
            continue
        if any(c.ref.id in crediting for c in (*copies, *run.erp_cancelled.get(iid, ()))):
            continue
        e, cur = copies[0], inv.total.currency
        run.add("invoice.refund_not_reflected", inv.customer_id, iid,
                f"{inv.number or iid}: refunded in full in billing ({format_money(amount, cur)}, "
                f"{last:%Y-%m-%d %H:%M} UTC) but still paid in the ERP with no credit note",
                [Side(System.BILLING, inv.ref, {"status": inv.status.value, "number": inv.number,
                                                "total": amount_text(inv.total.amount, cur),
                                                "refunded": amount_text(amount, cur), "currency": cur}),
                 Side(System.ERP, e.ref, {"state": e.status.value, "number": e.number,
                                          "total": amount_text(e.total.amount, e.total.currency),
                                          "credit note": None})])


# -- prorations ------------------------------------------------------------------------------
def _line_net(line: InvoiceLine) -> Decimal:
    return line.net.amount if line.net is not None else line.amount.amount


def _line_total(line: InvoiceLine) -> Decimal:
    return _line_net(line) + (line.tax.amount if line.tax is not None else Decimal(0))


def lacking_prorations(inv: Invoice, erp: Invoice) -> list[InvoiceLine] | None:
    """The proration lines of billing invoice ``inv`` that its ERP copy ``erp`` (same currency)
    lacks: the largest set of them (all first: the change posted as a full period) without which
    billing's net equals the copy's to the minor unit (the totals, lines with their tax, when a
    side's net is not known). ``None`` when the invoice has no proration line, the amounts agree,
    or no such set explains the difference."""
    prorations = [ln for ln in inv.lines if ln.proration]
    cur = inv.total.currency
    if not prorations or len(prorations) > MAX_PRORATION_LINES or erp.total.currency != cur:
        return None
    if inv.net is not None and erp.net is not None:
        billed, booked, value = inv.net.amount, erp.net.amount, _line_net
    else:
        billed, booked, value = inv.total.amount, erp.total.amount, _line_total
    if same_amount(billed, cur, booked, cur):
        return None
    for size in range(len(prorations), 0, -1):
        for subset in combinations(prorations, size):
            without = billed - sum((value(ln) for ln in subset), Decimal(0))
            if same_amount(without, cur, booked, cur):
                return list(subset)
    return None


def proration_mismatch(run: _Run, inv: Invoice, e: Invoice) -> bool:
    """``subscription.proration_mismatch`` on billing invoice ``inv`` and its one live ERP copy
    ``e`` (module docstring); ``True`` when raised (the caller then raises neither
    ``invoice.amount_mismatch`` nor ``invoice.tax_mismatch`` for it)."""
    lacking = lacking_prorations(inv, e)
    if lacking is None:
        return False
    cur = inv.total.currency
    prorations = [ln for ln in inv.lines if ln.proration]
    whole = len(lacking) == len(prorations)

    def listed(lines: list[InvoiceLine]) -> list[str]:
        return [f"{ln.description}: {format_money(_line_net(ln), cur)}" for ln in lines]

    kept = [ln for ln in prorations if not any(ln is x for x in lacking)]
    how = ("without its proration lines (a full period)" if whole
           else f"without {len(lacking)} of its {len(prorations)} proration lines")
    name = inv.number or inv.ref.id
    billing_values: dict[str, object] = {"status": inv.status.value, "number": name,
                                         "total": format_money(inv.total.amount, cur)}
    erp_values: dict[str, object] = {"state": e.status.value, "number": e.number,
                                     "total": format_money(e.total.amount, cur)}
    if inv.net is not None and e.net is not None:
        billing_values["net"] = format_money(inv.net.amount, cur)
        erp_values["net"] = format_money(e.net.amount, cur)
    if inv.tax is not None and e.tax is not None:
        billing_values["tax"] = format_money(inv.tax.amount, cur)
        erp_values["tax"] = format_money(e.tax.amount, cur)
    billing_values["proration lines"] = listed(prorations)
    # the ERP's lines are not read: what its amount holds, said as such
    erp_values["proration lines"] = listed(kept) if kept else "none (its amount is billing's without them)"
    periods = sorted({(ln.period_start, ln.period_end) for ln in prorations if ln.period_start and ln.period_end})
    if periods:
        start, end = periods[0]
        billing_values["prorated period"] = f"{start:%Y-%m-%d} – {end:%Y-%m-%d}"
    run.add("subscription.proration_mismatch", inv.customer_id, inv.ref.id,
            f"{name}: the ERP copy ({e.status.value}) was booked {how}: billing "
            f"{format_money(inv.total.amount, cur)}, ERP {format_money(e.total.amount, cur)}",
            [Side(System.BILLING, inv.ref, billing_values), Side(System.ERP, e.ref, erp_values)])
    return True
