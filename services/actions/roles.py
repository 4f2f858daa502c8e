"""Who may act on what (pure; the service and the console's fast widget tests share it).

Roles: ``finance`` acts on finance-owned rules, ``support`` on support-owned ones, ``auditor``
never acts (plans show a failed ``role`` check; execute/bulk/replay/cancel raise
:class:`~services.actions.model.PermissionDenied`). ``retry_failed`` and ``cancel_pending`` refuse
another team's action too, whose owner comes from the outbox row's rule when the local snapshot
does not know the exception. Every audit entry carries the operator's name and role.

Which roles a login holds is the role policy's (:mod:`services.core.identity`, the ``[roles]``
table of config.toml); the service acts only as its identity's login in a granted role, and
writes each switch of role and each change of the policy to the audit log
(:mod:`services.actions.role_audit`).

Besides the role, some refusals follow from the exception alone, whoever acts
(:func:`static_refusal`): a fix the rule offers that can never pass its preflight for this
exception is offered greyed with the reason (:func:`allowed_actions_for`) — a posted invoice is
never edited in place, a draft is corrected rather than credited, a voided billing invoice is
not reposted, a duplicate whose copies are all posted is not cancelled, a numbered draft is not
deleted, there is no candidate to link, billing's plans grant no support tier.
"""

from __future__ import annotations

from typing import Any

from services.actions.model import ROLE_TEAM, RULE_ACTIONS, ActionKind, Check, Operator, PermissionDenied, Role
from services.core.domain import SyncException, System, Team


def auditor_refusal(operator: Operator) -> str:
    """Why an auditor's act is refused (a plan's failed ``role`` check, :class:`PermissionDenied`)."""
    return f"{operator.name} is an auditor: auditors read, verify and export; they never act"


def require_actor(operator: Operator) -> None:
    """Raise :class:`PermissionDenied` when ``operator`` may not act at all (an auditor)."""
    if operator.role is Role.AUDITOR:
        raise PermissionDenied(auditor_refusal(operator))


def role_check(exc: SyncException, operator: Operator) -> Check:
    """The ``role`` preflight check: may ``operator`` act on ``exc`` (its owning team)?"""
    if operator.role is Role.AUDITOR:
        return Check("role", False, auditor_refusal(operator))
    team = ROLE_TEAM[operator.role]
    if exc.owner is not team:
        return Check("role", False, f"{exc.rule} is owned by {exc.owner.value}; the {operator.role.value} role "
                                    "cannot act on it")
    return Check("role", True, f"{operator.name} ({operator.role.value}) may act on {exc.owner.value} exceptions")


#: the rules of an ERP copy whose content differs from billing's: a draft copy is corrected in
#: place with billing's lines, taxes and currency, a posted one credited and reposted
CONTENT_RULES = frozenset({"invoice.amount_mismatch", "invoice.tax_mismatch", "invoice.currency_mismatch",
                           "subscription.proration_mismatch"})


def static_refusal(exc: SyncException, kind: ActionKind) -> str | None:
    """Why ``kind`` is refused for ``exc`` whoever acts, from the exception alone (a posted
    invoice is never edited in place, …); ``None`` when nothing in it forbids the action."""
    erp_sides = [s for s in exc.sides if s.system is System.ERP and s.ref is not None]
    billing = next((s for s in exc.sides if s.system is System.BILLING), None)
    if exc.rule in CONTENT_RULES and kind in (ActionKind.CORRECT, ActionKind.CREDIT_REPOST):
        state = str(erp_sides[0].values.get("state")) if erp_sides else ""
        ref = erp_sides[0].ref if erp_sides else None
        number = (erp_sides[0].values.get("number") or (ref.id if ref is not None else "?")) if erp_sides else "?"
        if kind is ActionKind.CORRECT and state in ("posted", "paid"):
            return _posted_explanation(number, state)
        if kind is ActionKind.CREDIT_REPOST and billing is not None and billing.values.get("status") == "void":
            return "billing voided the invoice: there is nothing to repost — flag it for review"
        if kind is ActionKind.CREDIT_REPOST and erp_sides:
            return _credit_refusal(number, state)
    if exc.rule == "credit_note.amount_mismatch" and kind is ActionKind.CORRECT and erp_sides:
        state = str(erp_sides[0].values.get("state"))
        if state not in ("draft", "validated"):
            ref = erp_sides[0].ref
            return _credit_note_posted(erp_sides[0].values.get("number") or (ref.id if ref is not None else "?"),
                                       state)
    if exc.rule == "invoice.duplicate_in_erp" and kind is ActionKind.CANCEL:
        drafts = [s for s in erp_sides if s.values.get("state") in ("draft", "validated")]
        if not drafts:
            return "every copy is posted: a posted invoice is never cancelled in place; flag it for review"
    if (exc.rule == "invoice.not_posted_in_erp" and kind is ActionKind.REPOST and erp_sides
            and erp_sides[0].values.get("number")):
        return (f"ERP invoice {erp_sides[0].values['number']} has a number: the ERP never deletes a numbered "
                "invoice; post it")
    if kind is ActionKind.LINK and exc.rule in ("customer.unmapped_erp", "customer.unmapped_support"):
        target = next((s for s in exc.sides if s.system is not System.BILLING), None)
        if target is not None and not target.values.get("candidates"):
            what = "ERP party" if exc.rule == "customer.unmapped_erp" else "support organization"
            return f"no unlinked {what} resembles this customer: there is nothing to link — create it"
    if (kind is ActionKind.PUSH and exc.rule in ("entitlement.missing", "entitlement.tier_mismatch")
            and billing is not None and billing.values.get("tier") is None):
        return "billing's active plans grant no support tier (plan → tier mapping): there is no tier to push"
    return None


def action_verdict(exc: SyncException, kind: ActionKind, operator: Operator) -> tuple[ActionKind, bool, str]:
    """(kind, may ``operator`` run it on ``exc``, why not): the role check first, then the
    refusals the exception itself implies."""
    role = role_check(exc, operator)
    if not role.ok:
        return kind, False, role.detail
    why = static_refusal(exc, kind)
    return kind, why is None, why or ""


def allowed_actions_for(exc: SyncException, operator: Operator) -> list[tuple[ActionKind, bool, str]]:
    """:meth:`ActionService.allowed_actions` for ``operator``: a verdict per fix the rule offers."""
    return [action_verdict(exc, kind, operator) for kind in RULE_ACTIONS.get(exc.rule, ())]


def _role_team(role: str) -> Team | None:
    """The team of an outbox row's role (``None``: not a team role)."""
    try:
        return ROLE_TEAM.get(Role(role))
    except ValueError:
        return None


def _posted_explanation(number: Any, state: str) -> str:
    if state == "paid":
        return (f"ERP invoice {number} is paid: a posted invoice is never edited in place; credit + repost it "
                "instead (a credit note against it, without refund as the ERP does for a paid invoice, and a "
                "corrected copy; finance)")
    return (f"ERP invoice {number} is {state}: a posted invoice is never edited in place; credit + repost it "
            "instead (a credit note cancels it and a corrected copy is posted; finance)")


def _credit_refusal(number: Any, state: str) -> str | None:
    """Why a credit + repost of an ERP invoice in ``state`` is refused (``None``: posted or paid,
    allowed — a paid one is credited without refund)."""
    if state in ("posted", "paid"):
        return None
    if state in ("draft", "validated"):
        return (f"ERP invoice {number} is {state}: it is not posted, so it is corrected in place (correct), not "
                "credited")
    return f"ERP invoice {number} is {state}: there is nothing to credit"


def _credit_note_posted(number: Any, state: str) -> str:
    """Why a correction of an ERP credit note in ``state`` (not a draft) is refused."""
    return (f"ERP credit note {number} is {state}: a posted credit note is never edited in place; flag it for "
            "review")
