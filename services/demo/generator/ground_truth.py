"""The vocabulary of the demo's ground truth: rule ids (in manifest order), the statuses that
make a subscription active or an invoice finalized, the grace periods and the tier order.

What they mean — the contract between the planted mismatches and the reconciliation rules —
is the docstring of ``services/demo/dataset.py``.
"""

from __future__ import annotations

RULES: tuple[str, ...] = (
    "customer.unmapped_erp",
    "customer.unmapped_support",
    "customer.master_drift",
    "invoice.missing_in_erp",
    "invoice.not_posted_in_erp",
    "invoice.amount_mismatch",
    "invoice.currency_mismatch",
    "invoice.tax_mismatch",
    "invoice.duplicate_in_erp",
    "invoice.payment_state",
    "invoice.orphan_in_erp",
    "credit_note.missing_in_erp",
    "credit_note.amount_mismatch",
    "invoice.refund_not_reflected",
    "subscription.terms_mismatch",
    "subscription.proration_mismatch",
    "entitlement.missing",
    "entitlement.tier_mismatch",
    "entitlement.orphan",
)

#: plants chosen last and without the random stream, on invoices billed as any other (taxed),
#: whose ERP copy is made as an ordinary one (drawing what an ordinary one draws) and then changed:
#: every other record of the dataset stays as it is
STREAM_NEUTRAL_PLANTS = frozenset({"invoice.tax_mismatch", "subscription.proration_mismatch"})

ACTIVE_STATUSES = frozenset({"trialing", "active", "past_due"})
FINALIZED_STATUSES = frozenset({"open", "paid", "void", "uncollectible"})
INVOICE_GRACE = 900
PAYMENT_GRACE = 3600
TIER_RANK = {"standard": 1, "premium": 2, "enterprise": 3}
