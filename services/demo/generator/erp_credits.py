"""Phase 4, the ERP's credit notes: what the integration books for billing's credit notes and
full refunds, and the two credit plants.

A Stripe credit note is a document (it lowers what an invoice is worth); a refund is a money
movement on a charge. The integration books, a few minutes after it happened:

- for each billing credit note (``issued``, total > 0) on an invoice whose ERP copy is posted
  or paid in the same currency: an ERP credit note (Tryton's credit: an ``out`` invoice whose
  lines credit the copy's lines, ``origin`` = ``account.invoice.line,<id>``, quantities negated),
  each line net of its discount with the ERP tax of its billing tax rate and the billed tax kept
  to the cent (a manual tax when trytond's rounding differs), numbered in the ERP's invoice
  sequence by date;
- for each refund that gives back a paid invoice's whole charge without a credit note (a
  dashboard refund: money goes back, no document): an ERP credit note of the whole copy, since
  the revenue is reversed. The copy stays ``paid`` (its payment happened); the ERP credit note
  stays ``posted`` (the refund's payment is not reconciled in the demo ERP).

The plants, chosen after the money is settled and without the random stream (switching the
money off leaves every other plant as it is), each on a customer with no other plant:

- ``credit_note.missing_in_erp``: a billing credit note the integration never booked;
- ``credit_note.amount_mismatch``: a billing credit note (the only one of its invoice) the
  integration booked for another amount — its first line credited a tenth more, the tax as
  trytond computes it (``amount``) — or with another tax — part of the billed tax booked on the
  first taxed line as revenue, the same total (``tax``);
- ``invoice.refund_not_reflected``: a full refund without credit note the ERP never booked: its
  copy still ``paid``, no ERP credit note.

The lags come from a stream of their own (``random.Random(f"erp-credits-{seed}")``)."""

from __future__ import annotations

import random

from services.core.currency import amount_text, from_minor
from services.demo.generator.state import _ErpInv, _Gen
from services.demo.store import BCreditNote, BInvoice, BRefund, ManifestEntry

#: a plant is picked among documents at least this old (surely past every grace)
PLANT_AGE = 7200
#: the integration's lag, in seconds (below the invoice grace of the rules)
LAG = (60, 600)


def _live_copies(specs: list[_ErpInv]) -> dict[str, _ErpInv]:
    """Billing invoice id -> its first (by creation) posted or paid ERP copy."""
    out: dict[str, _ErpInv] = {}
    for s in sorted(specs, key=lambda x: x.create):
        if s.binv is not None and s.credits is None and s.state in ("posted", "paid"):
            out.setdefault(s.binv.id, s)
    return out


def _full_refunds(g: _Gen) -> list[tuple[BRefund, BInvoice]]:
    """Refunds without credit note that give back the whole charge of a paid invoice that has no
    credit note, in creation order."""
    b = g.billing
    noted = {cn.invoice for cn in b.credit_notes.values()}
    out = []
    for r in b.refunds.values():
        ch = b.charges.get(r.charge)
        if (r.credit_note is not None or r.status != "succeeded" or ch is None or ch.amount <= 0
                or ch.amount_refunded != ch.amount or r.amount != ch.amount or ch.invoice in noted):
            continue
        inv = b.invoices.get(ch.invoice)
        if inv is not None and inv.status == "paid" and inv.total == ch.amount:
            out.append((r, inv))
    return out


def _want(g: _Gen, rule: str) -> int:
    rate = g.p.mismatch_rate(rule) if g.mismatch_rate is None else g.mismatch_rate
    if rate <= 0:
        return 0
    return max(2 if g.n >= 50 else 0, round(rate * g.n))


def _choose_credit_plants(g: _Gen, copies: dict[str, _ErpInv], refunds: list[tuple[BRefund, BInvoice]]
                          ) -> tuple[set[str], set[str], dict[str, str]]:
    """The billing credit notes and the refunds the integration never booked (their ids), and the
    billing credit notes it booked for another amount or tax (id -> variant), each on a customer
    of its own with no other plant; picked in id order (the ids are random)."""
    limit = g.A - PLANT_AGE
    used = set(g.plants)
    notes: set[str] = set()
    want = _want(g, "credit_note.missing_in_erp")
    for cn in sorted(g.billing.credit_notes.values(), key=lambda c: c.id):
        if len(notes) >= want:
            break
        copy = copies.get(cn.invoice)
        if (cn.customer in used or cn.created > limit or not _bookable(cn, copy)):
            continue
        assert copy is not None and copy.binv is not None
        used.add(cn.customer)
        notes.add(cn.id)
        total = f"{amount_text(from_minor(cn.total, cn.currency), cn.currency)} {cn.currency.upper()}"
        g.manifest.append(ManifestEntry("credit_note.missing_in_erp", cn.customer, cn.id,
                                        f"billing credit note {cn.number} ({total}) on {copy.binv.number}"
                                        " was never booked in the ERP"))
    mismatched = _choose_amount_plants(g, copies, used)
    kept: set[str] = set()
    want = _want(g, "invoice.refund_not_reflected")
    for r, inv in sorted(refunds, key=lambda x: x[0].id):
        if len(kept) >= want:
            break
        copy = copies.get(inv.id)
        if (inv.customer in used or r.created > limit or copy is None or copy.state != "paid"
                or copy.currency != inv.currency):
            continue
        used.add(inv.customer)
        kept.add(r.id)
        total = f"{amount_text(from_minor(r.amount, r.currency), r.currency)} {r.currency.upper()}"
        g.manifest.append(ManifestEntry("invoice.refund_not_reflected", inv.customer, inv.id,
                                        f"billing {inv.number} refunded in full ({total}), the ERP copy still paid"))
    return notes, kept, mismatched


def _choose_amount_plants(g: _Gen, copies: dict[str, _ErpInv], used: set[str]) -> dict[str, str]:
    """``credit_note.amount_mismatch``: billing credit notes (the only one of their invoice, every
    line crediting a line of it) the integration books for another amount or tax; variants
    alternate (``tax`` only where the note is taxed, else ``amount``). Adds their customers to
    ``used``."""
    limit = g.A - PLANT_AGE
    want = _want(g, "credit_note.amount_mismatch")
    per_invoice: dict[str, int] = {}
    for cn in g.billing.credit_notes.values():
        if cn.status != "void":
            per_invoice[cn.invoice] = per_invoice.get(cn.invoice, 0) + 1
    out: dict[str, str] = {}
    for cn in sorted(g.billing.credit_notes.values(), key=lambda c: c.id):
        if len(out) >= want:
            break
        copy = copies.get(cn.invoice)
        if (cn.customer in used or cn.created > limit or not _bookable(cn, copy) or per_invoice[cn.invoice] != 1
                or not cn.lines):
            continue
        assert copy is not None and copy.binv is not None
        index = {ln.id for ln in copy.binv.lines}
        if any(ln.invoice_line_item not in index for ln in cn.lines):
            continue
        variant = ("amount", "tax")[len(out) % 2]
        if variant == "tax" and (cn.tax < 2 or not any(ln.tax_rate for ln in cn.lines)):
            variant = "amount"
        used.add(cn.customer)
        out[cn.id] = variant
    return out


def _mismatched_lines(cn: BCreditNote, variant: str, lines: list[tuple[int, str, int, int, str | None]]
                      ) -> tuple[list[tuple[int, str, int, int, str | None]], int, str]:
    """A planted booking of ``cn``: its lines, the tax it books (``-1``: as trytond computes it)
    and the manifest's detail."""
    cur = cn.currency

    def text(minor: int) -> str:
        return amount_text(from_minor(minor, cur), cur)

    out = list(lines)
    if variant == "tax":
        shift = max(1, cn.tax // 10)
        n = next(i for i, ln in enumerate(out) if ln[4] is not None)
        idx, desc, qty, amount, rate = out[n]
        out[n] = (idx, desc, qty, amount + shift, rate)
        return out, cn.tax - shift, (f"ERP credit note tax {text(cn.tax - shift)}, billing {text(cn.tax)} "
                                     f"{cur.upper()} (same total {text(cn.total)})")
    idx, desc, qty, amount, rate = out[0]
    more = max(1, amount // 10)
    out[0] = (idx, desc, qty, amount + more, rate)
    net = sum(ln[3] for ln in lines)
    return out, -1, (f"ERP credit note net {text(net + more)}, billing {text(net)} {cur.upper()} "
                     f"(billing total {text(cn.total)})")


def _bookable(cn: BCreditNote, copy: _ErpInv | None) -> bool:
    return (copy is not None and cn.status == "issued" and cn.total > 0 and copy.currency == cn.currency
            and copy.lines is None and not copy.dropped)


def _credit_note_specs(g: _Gen, specs: list[_ErpInv]) -> list[_ErpInv]:
    """The ERP credit notes the integration booked (see the module docstring), the plants left out."""
    copies = _live_copies(specs)
    refunds = _full_refunds(g)
    skip_notes, skip_refunds, mismatched = _choose_credit_plants(g, copies, refunds)
    rng = random.Random(f"erp-credits-{g.seed}")
    out: list[_ErpInv] = []

    def book(copy: _ErpInv, binv: BInvoice, at: int,
             lines: list[tuple[int, str, int, int, str | None]], tax: int) -> None:
        create = max(at + rng.randint(*LAG), copy.create + 60)
        if create > g.A:
            return  # in flight: not booked yet
        spec = _ErpInv(create, None, binv, "posted", None)
        spec.ref = None  # Tryton's credit copies no reference
        spec.currency = copy.currency
        spec.credits, spec.credit, spec.billed_tax = copy, lines, max(tax, 0)
        spec.tax_as_computed = tax < 0
        out.append(spec)

    for cn in g.billing.credit_notes.values():
        copy = copies.get(cn.invoice)
        if cn.id in skip_notes or not _bookable(cn, copy):
            continue
        assert copy is not None and copy.binv is not None
        index = {ln.id: i for i, ln in enumerate(copy.binv.lines)}
        lines = [(index[ln.invoice_line_item], ln.description, ln.quantity, ln.amount - ln.discount_amount,
                  ln.tax_rate) for ln in cn.lines if ln.invoice_line_item in index]
        if len(lines) == len(cn.lines):
            tax = cn.tax
            if cn.id in mismatched:  # booked for another amount or tax (the plant)
                lines, tax, detail = _mismatched_lines(cn, mismatched[cn.id], lines)
                g.manifest.append(ManifestEntry("credit_note.amount_mismatch", cn.customer, cn.id,
                                                f"billing credit note {cn.number} on {copy.binv.number}: {detail}"))
            book(copy, copy.binv, cn.created, lines, tax)
    for r, inv in refunds:
        copy = copies.get(inv.id)
        if (r.id in skip_refunds or copy is None or copy.currency != inv.currency or copy.lines is not None
                or copy.dropped):
            continue
        lines = [(i, ln.description, ln.quantity, ln.amount - ln.discount_amount, ln.tax_rate)
                 for i, ln in enumerate(inv.lines)]
        book(copy, inv, r.created, lines, sum(ln.tax_amount for ln in inv.lines) - copy.tax_shift)
    return out
