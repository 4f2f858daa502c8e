"""Which system owns the data an exception is about: the rule -> ownership-key map and
:func:`owner_system`, read from a configured ownership (``ReconcileConfig.ownership``).

The console shows the owner from the same configuration the action service enforces (the
engine's ``config.ownership``), never from the defaults. Pure Python, no Qt, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping

from services.core.domain import SyncException, System

#: rule -> the ``ReconcileConfig.ownership`` entry that decides its owning system
RULE_OWNERSHIP_KEY: dict[str, str] = {
    "customer.master_drift": "customer.name",
    "invoice.missing_in_erp": "invoice.content",
    "invoice.amount_mismatch": "invoice.content",
    "invoice.currency_mismatch": "invoice.content",
    "invoice.tax_mismatch": "invoice.content",
    "invoice.duplicate_in_erp": "invoice.content",
    "invoice.orphan_in_erp": "invoice.content",
    "credit_note.missing_in_erp": "invoice.content",
    "credit_note.amount_mismatch": "invoice.content",
    "invoice.refund_not_reflected": "invoice.payment",
    "invoice.payment_state": "invoice.payment",
    "subscription.terms_mismatch": "subscription.terms",
    "subscription.proration_mismatch": "invoice.content",
    "entitlement.missing": "entitlement.tier",
    "entitlement.tier_mismatch": "entitlement.tier",
    "entitlement.orphan": "entitlement.tier",
}


def ownership_key(rule: str) -> str | None:
    """The ownership entry (``"customer.name"`` …) that decides who owns ``rule``'s data."""
    return RULE_OWNERSHIP_KEY.get(rule)


def owner_system(exc: SyncException, ownership: Mapping[str, System]) -> System:
    """The system of record for this disagreement: the configured owner of the rule's data
    (``ownership``, e.g. ``engine.config.ownership``: master data → ERP; invoice, subscription,
    entitlement → billing by default); for a rule the configuration does not decide, a side
    flagged ``owner``; otherwise billing (an unmapped customer exists only in billing, whose id is
    the cross-system key)."""
    key = RULE_OWNERSHIP_KEY.get(exc.rule)
    if key is not None and key in ownership:
        return ownership[key]
    for side in exc.sides:
        if side.values.get("owner") is True:
            return side.system
    return System.BILLING
