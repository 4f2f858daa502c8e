"""Prorations and taxes on a customer's lifecycle timeline (services.core.timeline).

- **Proration**: a mid-cycle plan change, as billing prorates it: one entry "Mid-cycle change
  prorated on ACME-3 …" at the change's own time (the start of the proration lines' period, a
  real time: Stripe dates it to the second), naming the charge for the remaining time and the
  credit for the unused time with their periods, in the invoice's ``invoice:in_X`` group. The
  invoice that bills it (the next one, or at once) is downstream of it: its "finalized" entry
  carries its lag from the change ("… after the mid-cycle change"). A proration line whose
  period billing did not report is not placed at an invented time: the invoice's entry says so.
- **Tax**: an invoice's or a credit note's tax per rate, on the entry that states its total —
  billing's "finalized" and "issued", the ERP's "created" — as "…: 184,800 JPY, of which tax
  10 %: 16,800 JPY" (each rate with its own amount, a reverse charge named as one), so an
  ``invoice.tax_mismatch`` reads on the timeline as two entries of the same total with
  different tax. A record whose tax was not reported, or that is untaxed, says nothing more.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from services.core.domain import EventKind, Invoice, InvoiceLine, Money, System, TaxAmount

if TYPE_CHECKING:
    from services.core.timeline import _Build, _Draft


def _rate_text(tax: TaxAmount) -> str:
    pct = "?" if tax.percentage is None else f"{tax.percentage.normalize():f}"
    return f"{pct} %" + (" reverse charge" if tax.reverse_charge else "")


def tax_text(taxes: Sequence[TaxAmount] | None) -> str:
    """", of which tax 10 %: 16,800 JPY" (rates in the order given; one amount per rate, the
    amounts of a rate given twice added up); "" when the tax was not reported or is none (no
    rate, or only nothing at a rate that is not a reverse charge: a trial's 0.00 invoice)."""
    if not taxes or not any(tax.amount.amount or tax.reverse_charge for tax in taxes):
        return ""
    by_rate: dict[tuple[str, str], Decimal] = {}
    for tax in taxes:
        key = (_rate_text(tax), tax.amount.currency)
        by_rate[key] = by_rate.get(key, Decimal(0)) + tax.amount.amount
    parts = [f"{rate}: {Money(amount, currency)}" for (rate, currency), amount in by_rate.items()]
    return ", of which tax " + "; ".join(parts)


def _stamp(value: datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M}"


def _period(lines: Sequence[InvoiceLine]) -> str:
    starts = [ln.period_start for ln in lines if ln.period_start is not None]
    ends = [ln.period_end for ln in lines if ln.period_end is not None]
    if not starts or not ends:
        return "period not reported"
    return f"{_stamp(min(starts))} – {_stamp(max(ends))}"


def _sum(lines: Sequence[InvoiceLine], currency: str) -> Money:
    """The lines' amounts added up, as a positive amount (a credit is said as one)."""
    return Money(abs(sum((ln.amount.amount for ln in lines), Decimal(0))), currency)


def proration(build: _Build, inv: Invoice, label: str, fin: _Draft | None) -> None:
    """The mid-cycle change that ``inv``'s proration lines bill, at the change's time, with the
    invoice's finalization downstream of it."""
    lines = [ln for ln in inv.lines if ln.proration]
    if not lines:
        return
    starts = [ln.period_start for ln in lines if ln.period_start is not None]
    if not starts:  # no time for the change: said on the invoice, never invented
        if fin is not None:
            fin.notes.append(f"carries {len(lines)} proration line(s) whose period billing did not report")
        return
    charged = [ln for ln in lines if ln.amount.amount > 0]
    credited = [ln for ln in lines if ln.amount.amount < 0]
    cur = inv.currency
    parts: list[str] = []
    if charged:
        parts.append(f"charge {_sum(charged, cur)} for the remaining time ({_period(charged)})")
    if credited:
        parts.append(f"credit {_sum(credited, cur)} for unused time ({_period(credited)})")
    if not parts:
        parts.append("nothing to charge or credit")
    iid = inv.ref.id
    objects = [iid] + ([inv.subscription_id] if inv.subscription_id else [])
    change = build.add(min(starts), System.BILLING, EventKind.INVOICE_PRORATION, inv.ref,
                       f"Mid-cycle change prorated on {label}: {'; '.join(parts)}", group=f"invoice:{iid}",
                       objects=objects)
    if change is not None:
        change.notes.extend(ln.description for ln in lines if ln.description)
    build.downstream(fin, change, None, "the mid-cycle change")
