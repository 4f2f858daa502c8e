"""Planning the subscription and entitlement fixes (billing owns the plan, quantity and period;
the support tier follows the plan billing grants).

- ``subscription.terms_mismatch`` → PUSH billing's plan (subscription service of that product),
  quantity and period end (next invoice date) to the ERP subscription. ACCEPT.
- ``entitlement.missing`` / ``entitlement.tier_mismatch`` → PUSH the tier billing grants
  (PUT ``organization_fields.support_tier``); ``entitlement.orphan`` → REVOKE (tier null). ACCEPT.
"""

from __future__ import annotations

from datetime import UTC

from services.actions.model import PlannedCall
from services.actions.plan_builder import _PlanBuilderCore, _Refuse
from services.actions.steps import KEEP, JsonObject, SetOrgFields, WriteSubscription
from services.core.domain import Customer, System, Tier


class _EntitlementPlans(_PlanBuilderCore):
    """PUSH of subscription terms, PUSH and REVOKE of support tiers."""

    def push_terms(self) -> None:
        sub = self.b.subscriptions.get(self.exc.object_id)
        if sub is None:
            raise _Refuse("source", f"billing subscription {self.exc.object_id} is not in the snapshot")
        self.party(sub.customer_id)
        esub = self.idx.erp_subs_by_ref.get(sub.ref.id)
        if esub is None:
            raise _Refuse("target", f"no running ERP subscription carries {sub.ref.id}")
        erp_keys = {p.key for p in self.e.plans.values()}
        if sub.plan_key and erp_keys and sub.plan_key not in erp_keys:
            raise _Refuse("product", f"plan {sub.plan_key!r} has no ERP product with that code")
        self.ok("product", f"plan {sub.plan_key} maps to an ERP product")
        bend = sub.current_period_end.astimezone(UTC).date() if sub.current_period_end else None
        eend = esub.current_period_end.astimezone(UTC).date() if esub.current_period_end else None
        # only what differs is written: KEEP / None leave the ERP's plan / quantity / date as they are
        step = WriteSubscription(
            int(esub.ref.id), plan_key=sub.plan_key if sub.plan_key != esub.plan_key else KEEP,
            quantity=sub.quantity if sub.quantity != esub.quantity else None,
            next_invoice_date=bend.isoformat() if bend != eend and bend is not None else None)
        self.steps = [step]
        if step.plan_key is not KEEP or step.quantity is not None:
            line = {k: v for k, v in (("service", f"<service of {step.plan_key}>" if step.plan_key is not KEEP
                                       else None), ("quantity", step.quantity)) if v is not None}
            self.rpc_call("model.sale.subscription.line.write", [["<first line>"], line],
                          "write billing's plan and quantity on the subscription line")
        if step.next_invoice_date is not None:
            self.rpc_call("model.sale.subscription.write", [[int(esub.ref.id)],
                                                           {"next_invoice_date": step.next_invoice_date}],
                          "write billing's period end as the next invoice date")
        self.before = {"erp": {"plan": esub.plan_key, "quantity": esub.quantity,
                               "period_end": eend.isoformat() if eend else None}}
        self.expected_after = {"erp": {"plan": sub.plan_key, "quantity": sub.quantity,
                                       "period_end": bend.isoformat() if bend else None}}

    def org(self) -> Customer:
        cid = self.exc.customer_id or self.exc.object_id
        org = self.idx.orgs_by_ext.get(cid)
        if org is None:
            raise _Refuse("mapping", f"no support organization carries {cid}")
        self.ok("mapping", f"support organization {org.ref.id} carries {cid}")
        return org

    def set_tier(self, org: Customer, tier: Tier | None, description: str) -> None:
        fields_: JsonObject = {"support_tier": tier.value if tier else None}
        self.steps = [SetOrgFields(int(org.ref.id), fields_)]
        self.calls.append(PlannedCall(System.SUPPORT, "PUT", f"/api/v2/organizations/{org.ref.id}.json",
                                      {"organization": {"organization_fields": fields_}}, description))
        ent = self.s.entitlements.get(org.ref.id)
        self.before = {"support": {"support_tier": ent.tier.value if ent and ent.tier else None}}
        self.expected_after = {"support": fields_}

    def push_tier(self) -> None:
        org = self.org()
        cid = self.exc.customer_id or self.exc.object_id
        tier = self.idx.granted_tier(cid)
        if tier is None:
            raise _Refuse("plan", f"billing's active plans of {cid} grant no support tier (plan → tier mapping)")
        self.ok("plan", f"billing's plan grants {tier.value}")
        self.set_tier(org, tier, f"set the support tier billing grants ({tier.value})")

    def revoke_tier(self) -> None:
        org = self.org()
        cid = self.exc.customer_id or self.exc.object_id
        if self.idx.active_subs.get(cid):
            raise _Refuse("plan", f"{cid} has an active subscription again: refresh")
        self.ok("plan", "no active subscription in billing")
        self.set_tier(org, None, "revoke the support tier (no active subscription)")


