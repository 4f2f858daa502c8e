"""Phase 2, one billing invoice: its lines and its payment story — finalization, an immediate
charge or net-terms bank transfer, failed charges and retries, a staff void, the write-off
that ends the subscription — with the billing events each step emits. The money on a billing
invoice (lines, totals, what was paid) is made here."""

from __future__ import annotations

from services.demo.generator.billing_money import _Money
from services.demo.generator.dates import DAY
from services.demo.generator.state import _Cust, _Gen
from services.demo.store import BInvoice, BInvoiceLine, BPrice, BSubscription


def _new_line(g: _Gen, price: BPrice, qty: int, amount: int, desc: str, ps: int, pe: int,
              proration: bool = False) -> BInvoiceLine:
    return BInvoiceLine(id=g.ids.long("il_"), price=price.id, quantity=qty, amount=amount,
                        description=desc, period_start=ps, period_end=pe, proration=proration)


def _invoice(g: _Gen, cu: _Cust, sub: BSubscription, created: int, fin: int, lines: list[BInvoiceLine],
             reason: str, ps: int, pe: int, money: _Money, force: str | None = None) -> tuple[BInvoice, int | None]:
    """One subscription invoice and its payment story. Returns the invoice and, when it was
    written off (uncollectible) by the anchor, the time it happened (the subscription ends).
    Its discount and tax come from ``money`` (``billing_money``): ``total`` is what is charged."""
    A = g.A
    rng = g.rng
    r = g.r
    total = 0
    for ln in lines:
        total += ln.amount
    inv = BInvoice(id=g.ids.long("in_"), customer=cu.c.id, subscription=sub.id, status="draft",
                   number=None, currency=sub.currency, subtotal=total, total=total, amount_paid=0,
                   created=created, period_start=ps, period_end=pe, lines=lines, billing_reason=reason)
    money.price_invoice(inv)
    total = inv.total
    cu.invoices.append(inv)
    if fin > A:
        return inv, None
    inv.finalized_at = fin
    inv.status = "open"
    g.ev(fin, "invoice.finalized", "invoice", inv.id)
    if force == "fin":
        g.inflight_fin.add(inv.id)
    elif force == "post":
        g.inflight_post.add(inv.id)
    if total <= 0:
        inv.status, inv.paid_at = "paid", fin
        g.ev(fin, "invoice.paid", "invoice", inv.id)
        return inv, None
    if cu.send_invoice:  # bank transfer on net terms
        paid = fin + g.ri(2 * DAY, 25 * DAY)
        if paid <= A:
            inv.status, inv.paid_at, inv.amount_paid = "paid", paid, total
            g.ev(paid, "invoice.paid", "invoice", inv.id)
        return inv, None
    if force == "pay":  # in flight: paid 5-30 minutes ago after one failed attempt
        inv.attempt_count = 2
        g.ev(fin, "invoice.payment_failed", "invoice", inv.id)
        paid = A - g.ri(300, 1800)
        inv.status, inv.paid_at, inv.amount_paid = "paid", paid, total
        g.ev(paid, "invoice.paid", "invoice", inv.id)
        g.inflight_pay.add(inv.id)
        return inv, None
    x = rng.random()
    if x >= r.payment_failure + r.void:  # charged at once
        paid = fin + g.ri(2, 20)
        inv.attempt_count = 1
        if paid <= A:
            inv.status, inv.paid_at, inv.amount_paid = "paid", paid, total
            g.ev(paid, "invoice.paid", "invoice", inv.id)
        return inv, None
    inv.attempt_count = 1
    g.ev(fin, "invoice.payment_failed", "invoice", inv.id)
    if x < r.void:  # staff voids it after the failed charge
        voided = fin + g.ri(2 * 3600, 2 * DAY)
        if voided <= A:
            inv.status, inv.voided_at = "void", voided
            g.ev(voided, "invoice.voided", "invoice", inv.id)
        return inv, None
    for delay in (3 * DAY, 5 * DAY, 7 * DAY):
        t = fin + delay + g.ri(0, 3600)
        if t > A:
            inv.next_payment_attempt = t  # Smart Retries' next attempt, still to come
            return inv, None
        inv.attempt_count += 1
        if rng.random() < r.retry_success:
            inv.status, inv.paid_at, inv.amount_paid = "paid", t, total
            g.ev(t, "invoice.paid", "invoice", inv.id)
            return inv, None
        g.ev(t, "invoice.payment_failed", "invoice", inv.id)
    inv.status = "uncollectible"
    g.ev(t, "invoice.marked_uncollectible", "invoice", inv.id)
    return inv, t

