"""What each fix writes, as permissions: the table :func:`services.io.permissions.blocked_fixes`
reads to grey out the fixes a profile cannot perform, and the probes read to know which write
permissions SyncDesk needs at all.

Keys are ``(rule, kind)`` with the kinds' string values of
:class:`services.actions.model.ActionKind` (``services.io`` does not import the actions layer;
``tests/test_connect_permissions.py`` holds this table to ``RULE_ACTIONS``: every fix that
writes to a system is here). ``accept`` and ``flag`` write nothing to a system.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.core.domain import System


@dataclass(frozen=True)
class Need:
    """A permission one fix needs: ``access`` on ``resource`` of ``system`` (the same names as
    :class:`services.io.permissions.PermissionCheck`)."""

    system: System
    resource: str
    access: str


#: what a person calls each resource
LABELS: dict[tuple[System, str], str] = {
    (System.BILLING, "customers"): "billing customers",
    (System.BILLING, "subscriptions"): "billing subscriptions",
    (System.BILLING, "invoices"): "billing invoices",
    (System.BILLING, "events"): "billing events",
    (System.BILLING, "prices"): "billing prices",
    (System.BILLING, "products"): "billing products",
    (System.BILLING, "credit notes"): "billing credit notes",
    (System.BILLING, "refunds"): "billing refunds",
    (System.BILLING, "charges"): "billing charges",
    (System.BILLING, "tax rates"): "billing tax rates",
    (System.ERP, "party.party"): "ERP parties",
    (System.ERP, "party.identifier"): "ERP party tax identifiers",
    (System.ERP, "party.address"): "ERP party addresses",
    (System.ERP, "party.contact_mechanism"): "ERP party contacts",
    (System.ERP, "account.invoice"): "ERP invoices",
    (System.ERP, "account.invoice.line"): "ERP invoice lines",
    (System.ERP, "account.invoice.tax"): "ERP invoice taxes",
    (System.ERP, "sale.subscription"): "ERP subscriptions",
    (System.ERP, "sale.subscription.line"): "ERP subscription lines",
    (System.ERP, "sale.subscription.service"): "ERP subscription services",
    (System.ERP, "product.product"): "ERP products",
    (System.ERP, "currency.currency"): "ERP currencies",
    (System.ERP, "country.country"): "ERP countries",
    (System.SUPPORT, "organizations"): "support organizations",
    (System.SUPPORT, "tickets"): "support tickets",
    (System.SUPPORT, "organization fields"): "support organization fields",
    (System.SUPPORT, "users"): "support users",
}

_ERP_POST = (Need(System.ERP, "account.invoice", "create"), Need(System.ERP, "account.invoice.line", "create"),
             Need(System.ERP, "account.invoice", "write"))
_ORG_WRITE = (Need(System.SUPPORT, "organizations", "write"),)

#: (rule, fix kind) -> the permissions it needs, in the order it uses them
FIX_NEEDS: dict[tuple[str, str], tuple[Need, ...]] = {
    ("invoice.missing_in_erp", "retry"): _ERP_POST,
    ("invoice.not_posted_in_erp", "post"): (Need(System.ERP, "account.invoice", "write"),),
    ("invoice.not_posted_in_erp", "repost"): (Need(System.ERP, "account.invoice", "delete"), *_ERP_POST),
    ("invoice.amount_mismatch", "correct"): (Need(System.ERP, "account.invoice", "write"),
                                             Need(System.ERP, "account.invoice.line", "create"),
                                             Need(System.ERP, "account.invoice.line", "delete")),
    ("invoice.amount_mismatch", "credit_repost"): _ERP_POST,
    # the ERP copy's tax, currency or proration lines differ: corrected or credited and reposted as above
    **{(rule, kind): needs for rule in ("invoice.tax_mismatch", "invoice.currency_mismatch",
                                        "subscription.proration_mismatch")
       for kind, needs in (("correct", (Need(System.ERP, "account.invoice", "write"),
                                        Need(System.ERP, "account.invoice.line", "create"),
                                        Need(System.ERP, "account.invoice.line", "delete"))),
                           ("credit_repost", _ERP_POST))},
    ("invoice.duplicate_in_erp", "cancel"): (Need(System.ERP, "account.invoice", "write"),),
    # Tryton's credit makes the credit note (an account.invoice with its lines) and posts it
    ("credit_note.missing_in_erp", "credit"): _ERP_POST,
    ("invoice.refund_not_reflected", "credit"): _ERP_POST,
    # a draft ERP credit note's lines replaced
    ("credit_note.amount_mismatch", "correct"): (Need(System.ERP, "account.invoice", "write"),
                                                 Need(System.ERP, "account.invoice.line", "create"),
                                                 Need(System.ERP, "account.invoice.line", "delete")),
    ("customer.unmapped_erp", "create"): (Need(System.ERP, "party.party", "create"),),
    ("customer.unmapped_erp", "link"): (Need(System.ERP, "party.party", "write"),),
    ("customer.unmapped_support", "create"): _ORG_WRITE,
    ("customer.unmapped_support", "link"): _ORG_WRITE,
    # a push writes the owner's values to both copies; a correction to the one chosen (the
    # console greys it when either copy cannot be written: the conservative side)
    ("customer.master_drift", "push"): (Need(System.BILLING, "customers", "write"), *_ORG_WRITE),
    ("customer.master_drift", "correct"): (Need(System.BILLING, "customers", "write"), *_ORG_WRITE),
    ("subscription.terms_mismatch", "push"): (Need(System.ERP, "sale.subscription", "write"),
                                              Need(System.ERP, "sale.subscription.line", "write")),
    ("entitlement.missing", "push"): _ORG_WRITE,
    ("entitlement.tier_mismatch", "push"): _ORG_WRITE,
    ("entitlement.orphan", "revoke"): _ORG_WRITE,
}

#: what is refused without a write permission, in a user's words
_CONSEQUENCE: dict[tuple[System, str], str] = {
    (System.BILLING, "customers"): "fixes that push the customer master to billing will be refused",
    (System.ERP, "account.invoice"): ("fixes that post, correct, credit or cancel ERP invoices will be "
                                      "refused"),
    (System.ERP, "account.invoice.line"): "fixes that post or correct ERP invoices will be refused",
    (System.ERP, "party.party"): "fixes that create or link ERP parties will be refused",
    (System.ERP, "sale.subscription"): "fixes that push subscription terms to the ERP will be refused",
    (System.ERP, "sale.subscription.line"): "fixes that push subscription terms to the ERP will be refused",
    (System.SUPPORT, "organizations"): ("fixes that create, link or update support organizations (names, support "
                                        "tiers) will be refused"),
}

_VERB = {"read": "read", "write": "update", "create": "create", "delete": "delete"}


def label(system: System, resource: str) -> str:
    return LABELS.get((system, resource), f"{system.value} {resource}")


def consequence(system: System, resource: str, access: str) -> str:
    """What fails without ``access`` on ``resource``: a refresh, or the fixes that need it."""
    if access == "read":
        return "the refresh cannot read them"
    return _CONSEQUENCE.get((system, resource), "the fixes that need it will be refused")


def write_needs(system: System) -> dict[str, set[str]]:
    """resource -> the write accesses (``write``, ``create``, ``delete``) some fix needs on it."""
    out: dict[str, set[str]] = {}
    for needs in FIX_NEEDS.values():
        for need in needs:
            if need.system is system:
                out.setdefault(need.resource, set()).add(need.access)
    return out


def sentence(system: System, resource: str, access: str, granted: bool, *, needed: bool = True,
             detail: str = "") -> str:
    """"can read ERP invoices" / "cannot create ERP invoices: fixes that post … will be refused"."""
    verb = _VERB.get(access, access)
    what = label(system, resource)
    tail = f" ({detail})" if detail else ""
    if granted:
        return f"can {verb} {what}{tail}"
    if not needed:
        return f"cannot {verb} {what}{tail} (SyncDesk does not need it)"
    return f"cannot {verb} {what}{tail}: {consequence(system, resource, access)}"


def need_sentence(need: Need, check: object | None) -> str:
    """Why a fix needing ``need`` is blocked: the check's own sentence, or that it is unknown."""
    text = getattr(check, "sentence", None)
    if isinstance(text, str) and text:
        return text
    return (f"not known whether SyncDesk may {_VERB.get(need.access, need.access)} "
            f"{label(need.system, need.resource)}: test the connection")
