"""Credit notes and refunds on a customer's lifecycle timeline (services.core.timeline).

- billing's credit notes: "Credit note CN-1 issued on ACME-1: 50.00 EUR" (and "… voided"), in
  the credited invoice's ``credit:in_X`` group, with their lag from the invoice's finalization;
- the ERP's credit notes: "ERP credit note … created on INV-…", in the ``credit:`` group of the
  billing invoice the credited ERP invoice carries, downstream of billing's credit note of the
  same invoice and amount (``"late"`` past the invoice grace); one that billing never issued
  says so;
- billing's refunds: "Refund re_X of 50.00 EUR on ACME-1 (succeeded)", in the invoice's
  ``payment:in_X`` group, with their lag from the payment.

Called once per timeline build, after the invoices (whose finalized and paid entries are the
upstream of these).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from services.core.domain import CreditNote, EventKind, Refund, System
from services.core.timeline_money import tax_text

if TYPE_CHECKING:
    from services.core.timeline import _Build, _Draft


def _ref_order(record: CreditNote | Refund) -> tuple[int, str]:
    ident = record.ref.id
    return (0, ident.zfill(20)) if ident.isdigit() else (1, ident)


def credits_and_refunds(build: _Build) -> None:
    """Add the customer's credit notes (billing's, then the ERP's) and refunds to ``build``."""
    ix = build.ix
    issued_by_invoice: dict[str, list[tuple[CreditNote, _Draft]]] = defaultdict(list)
    for cn in sorted(ix.b_credits.get(build.cid, []), key=_ref_order):
        iid = cn.invoice_id
        label, fin, _ = build.billed.get(iid or "", (iid or "no invoice", None, None))
        group = f"credit:{iid}" if iid else None
        objects = [x for x in (iid, cn.ref.id) if x]
        name = cn.number or cn.ref.id
        issued = build.add(cn.created, System.BILLING, EventKind.CREDIT_NOTE_ISSUED, cn.ref,
                           f"Credit note {name} issued on {label}: {cn.total}{tax_text(cn.taxes)}", group=group,
                           objects=objects)
        build.downstream(issued, fin, None, "the invoice was finalized")
        if issued is not None and not cn.is_void and iid:
            issued_by_invoice[iid].append((cn, issued))
        build.add(cn.voided_at, System.BILLING, EventKind.CREDIT_NOTE_VOIDED, cn.ref,
                  f"Credit note {name} voided", group=group, objects=objects)
    matched: set[int] = set()
    for cn in sorted(ix.e_credits.get(build.cid, []), key=_ref_order):
        _erp_credit_note(build, cn, issued_by_invoice, matched)
    for refund in sorted(ix.b_refunds.get(build.cid, []), key=_ref_order):
        _refund(build, refund)


def _erp_credit_note(build: _Build, cn: CreditNote, issued_by_invoice: dict[str, list[tuple[CreditNote, _Draft]]],
                     matched: set[int]) -> None:
    credited = build.ix.e_invoices_by_id.get(cn.invoice_id or "")
    bid = credited.billing_invoice_id if credited is not None else None
    name = cn.number or cn.ref.id
    what = (credited.number or credited.ref.id) if credited is not None else (cn.invoice_id or "no invoice")
    made = build.add(cn.created, System.ERP, EventKind.ERP_CREDIT_NOTE_CREATED, cn.ref,
                     f"ERP credit note {name} created on {what}: {cn.total}{tax_text(cn.taxes)}",
                     group=f"credit:{bid}" if bid else None, objects=[x for x in (bid, cn.ref.id) if x])
    if made is None:
        return
    as_invoice = build.ix.e_invoices_by_id.get(cn.ref.id)
    if as_invoice is not None and as_invoice.ref == cn.ref:  # its posting, payment, cancellation
        build.erp_invoice(as_invoice, what, None, None, [], credit=made)
    candidates = [(b, d) for b, d in issued_by_invoice.get(bid or "", []) if id(d) not in matched]
    upstream = next((d for b, d in candidates if b.total == cn.total), None)
    if upstream is None:
        made.notes.append(f"no billing credit note of {cn.total} on {bid}" if bid
                          else "credits no invoice billing knows")
        return
    matched.add(id(upstream))
    build.downstream(made, upstream, build.cfg.invoice_grace, "billing issued its credit note")


def _refund(build: _Build, refund: Refund) -> None:
    iid = refund.invoice_id
    label, _, paid = build.billed.get(iid or "", (iid or "", None, None))
    on = f" on {label}" if label else ""
    draft = build.add(refund.created, System.BILLING, EventKind.REFUND_CREATED, refund.ref,
                      f"Refund {refund.ref.id} of {refund.amount}{on} ({refund.status})",
                      group=f"payment:{iid}" if iid else None, objects=[iid or refund.ref.id])
    build.downstream(draft, paid, None, "the invoice was paid")
    if draft is not None and refund.credit_note_id:
        draft.notes.append(f"with credit note {refund.credit_note_id}")
