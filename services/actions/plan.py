"""Planning a fix: which planner serves the request's (rule, kind), and the two local actions.

Semantics per rule (``RULE_ACTIONS``)
-------------------------------------
The fixes each rule offers are :data:`~services.actions.model.RULE_ACTIONS`; what each one
writes is described at the top of the module that plans it:

- invoices (``invoice.missing_in_erp`` RETRY, ``invoice.not_posted_in_erp`` POST and REPOST,
  ``invoice.amount_mismatch``, ``invoice.tax_mismatch``, ``invoice.currency_mismatch`` and
  ``subscription.proration_mismatch`` CORRECT (a draft copy) and CREDIT_REPOST (a posted one),
  ``invoice.duplicate_in_erp`` CANCEL): :mod:`services.actions.plan_invoices`;
- credits (``credit_note.missing_in_erp`` and ``invoice.refund_not_reflected`` CREDIT: the ERP
  credit note posted as Tryton's credit makes one; ``credit_note.amount_mismatch`` CORRECT of a
  draft ERP credit note): :mod:`services.actions.plan_credits`;
- customers (``customer.unmapped_erp`` / ``customer.unmapped_support`` CREATE and LINK,
  ``customer.master_drift`` PUSH and CORRECT): :mod:`services.actions.plan_customers`;
- subscriptions and entitlements (``subscription.terms_mismatch`` PUSH, ``entitlement.*`` PUSH
  and REVOKE): :mod:`services.actions.plan_entitlements`;
- ``invoice.payment_state``, ``invoice.orphan_in_erp`` → FLAG for review (an audited local
  record; no remote write; the exception stays open) or ACCEPT.
- ACCEPT (every rule): reason and expiry required (``value={"expires_at": iso}``); stored in
  ``accepted_difference`` with a fingerprint of the exception's sides
  (:mod:`services.actions.accepted`). While it is valid and the fingerprint unchanged,
  :meth:`Engine.open_exceptions` hides the exception (a hide hook); it reopens when the data
  changes (another fingerprint) or the acceptance expires.

The builder reads only the local snapshot; a refusal (:class:`~services.actions.plan_builder._Refuse`)
becomes the plan's failed check and nothing is written. The steps it lists are typed
(:mod:`services.actions.steps`).
"""

from __future__ import annotations

from services.actions.accepted import exception_fingerprint
from services.actions.encoding import _iso, _parse_dt
from services.actions.model import ActionKind
from services.actions.plan_builder import _Refuse
from services.actions.plan_credits import _CreditPlans
from services.actions.plan_customers import _CustomerPlans
from services.actions.plan_entitlements import _EntitlementPlans
from services.actions.steps import AcceptDifference, FlagForReview


class _PlanBuilder(_CreditPlans, _CustomerPlans, _EntitlementPlans):
    """Builds one plan's checks, steps, calls and before/after values from the snapshot."""

    def build(self) -> None:
        kind = self.req.kind
        if kind is ActionKind.ACCEPT:
            return self.accept()
        if kind is ActionKind.FLAG:
            return self.flag()
        handler = {
            ("invoice.missing_in_erp", ActionKind.RETRY): self.retry_invoice,
            ("invoice.not_posted_in_erp", ActionKind.POST): self.post_draft,
            ("invoice.not_posted_in_erp", ActionKind.REPOST): self.repost,
            ("customer.unmapped_erp", ActionKind.CREATE): self.create_party,
            ("customer.unmapped_erp", ActionKind.LINK): self.link_party,
            ("customer.unmapped_support", ActionKind.CREATE): self.create_org,
            ("customer.unmapped_support", ActionKind.LINK): self.link_org,
            ("customer.master_drift", ActionKind.PUSH): self.push_master,
            ("customer.master_drift", ActionKind.CORRECT): self.correct_master,
            ("invoice.amount_mismatch", ActionKind.CORRECT): self.correct_invoice,
            ("invoice.amount_mismatch", ActionKind.CREDIT_REPOST): self.credit_repost,
            ("invoice.tax_mismatch", ActionKind.CORRECT): self.correct_invoice,
            ("invoice.tax_mismatch", ActionKind.CREDIT_REPOST): self.credit_repost,
            ("invoice.currency_mismatch", ActionKind.CORRECT): self.correct_invoice,
            ("invoice.currency_mismatch", ActionKind.CREDIT_REPOST): self.credit_repost,
            ("subscription.proration_mismatch", ActionKind.CORRECT): self.correct_invoice,
            ("subscription.proration_mismatch", ActionKind.CREDIT_REPOST): self.credit_repost,
            ("invoice.duplicate_in_erp", ActionKind.CANCEL): self.cancel_duplicate,
            ("credit_note.missing_in_erp", ActionKind.CREDIT): self.post_credit_note,
            ("invoice.refund_not_reflected", ActionKind.CREDIT): self.credit_refund,
            ("credit_note.amount_mismatch", ActionKind.CORRECT): self.correct_credit_note,
            ("subscription.terms_mismatch", ActionKind.PUSH): self.push_terms,
            ("entitlement.missing", ActionKind.PUSH): self.push_tier,
            ("entitlement.tier_mismatch", ActionKind.PUSH): self.push_tier,
            ("entitlement.orphan", ActionKind.REVOKE): self.revoke_tier,
        }.get((self.exc.rule, kind))
        if handler is None:
            raise _Refuse("action", f"{kind.value} is not implemented for {self.exc.rule}")
        handler()
        return None

    # -- local --------------------------------------------------------------------------
    def accept(self) -> None:
        self.need_reason("accepting a difference")
        raw = self.value.get("expires_at")
        if not raw:
            raise _Refuse("expiry", "accepting a difference needs an expiry (expires_at)")
        try:
            expires = _parse_dt(str(raw))
        except ValueError:
            raise _Refuse("expiry", f"expires_at {raw!r} is not an ISO date/time") from None
        if expires <= self.clock():
            raise _Refuse("expiry", f"expires_at {raw} is in the past")
        self.ok("expiry", f"accepted until {_iso(expires)}; reopens earlier if the data changes")
        fp = exception_fingerprint(self.exc)
        self.steps = [AcceptDifference(fp, _iso(expires))]
        self.before = {"sides": {s.system.value: s.values for s in self.exc.sides}}
        self.expected_after = {"accepted_until": _iso(expires), "fingerprint": fp}
        self.notes.append("local record only: nothing is sent to any system")

    def flag(self) -> None:
        self.need_reason("flagging for review")
        self.steps = [FlagForReview()]
        self.before = {"sides": {s.system.value: s.values for s in self.exc.sides}}
        self.expected_after = {"flagged": True}
        self.notes.append("an audited record for review; nothing is sent to any system; the exception stays open")

