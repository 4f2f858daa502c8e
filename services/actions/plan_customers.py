"""Planning the customer fixes (the ERP owns legal name, tax id and country; billing and support
hold copies).

- ``customer.unmapped_erp`` → CREATE the party from billing's copy (the ERP owns legal name,
  tax id and country, but when no party exists billing's copy is the only source — the preview
  says so) or LINK a candidate party (``value={"candidate": id}``; must exist and be unlinked):
  its code becomes the customer id.
- ``customer.unmapped_support`` → CREATE the organization (external id = customer id, name =
  the ERP party's legal name when mapped, else billing's; with the support tier the billing
  plan grants, so no ``entitlement.missing`` follows) or LINK (PUT the candidate's external id).
- ``customer.master_drift`` → PUSH the ERP's (owner's) name / tax id / country to billing
  (``POST /v1/customers/{id}`` with Idempotency-Key) and its name to the support organization
  (PUT). CORRECT writes operator-chosen values to a *copy* (``value={"target": "billing" |
  "support", "name": …}``); a CORRECT aimed at the ERP is refused: "the ERP owns …;
  corrections flow from the owner to the copies".
"""

from __future__ import annotations

from typing import Any

from services.actions.model import OWNER_FIELDS, PlannedCall
from services.actions.plan_builder import _PlanBuilderCore, _ref_id, _Refuse
from services.actions.steps import CreateOrg, EnsureParty, JsonObject, LinkOrg, LinkParty, UpdateCustomer, UpdateOrg
from services.core.domain import Customer, System


class _CustomerPlans(_PlanBuilderCore):
    """CREATE and LINK of parties and organizations, PUSH and CORRECT of the customer master."""

    def billing_customer(self) -> Customer:
        cust = self.b.customers.get(self.exc.customer_id or self.exc.object_id)
        if cust is None:
            raise _Refuse("source", f"billing customer {self.exc.customer_id} is not in the snapshot")
        return cust

    def create_party(self) -> None:
        cust = self.billing_customer()
        if cust.ref.id in self.idx.parties_by_code:
            raise _Refuse("target", f"an ERP party already carries {cust.ref.id}: refresh")
        if not cust.name.strip():
            raise _Refuse("source", "billing has no name for this customer")
        self.ok("target", f"no ERP party carries {cust.ref.id}")
        note = ("the ERP owns the legal name, tax id and country, but no party exists yet: billing's copy is the "
                "only source — review them in the ERP after creation")
        self.notes.append(note)
        self.steps = [EnsureParty(cust.ref.id, cust.name, cust.tax_id, cust.country, cust.email)]
        self.rpc_call("model.party.party.search", [[["code", "=", cust.ref.id]]],
                      "look the party up by code first (idempotency)")
        values: dict[str, Any] = {"name": cust.name, "code": cust.ref.id}
        if cust.tax_id:
            values["identifiers"] = [["create", [{"code": cust.tax_id}]]]
        if cust.country:
            values["addresses"] = [["create", [{"country": cust.country}]]]
        if cust.email:
            values["contact_mechanisms"] = [["create", [{"type": "email", "value": cust.email}]]]
        self.rpc_call("model.party.party.create", [[values]], "create the party; " + note)
        self.before = {"erp": None, "billing": {"name": cust.name, "tax_id": cust.tax_id, "country": cust.country}}
        self.expected_after = {"erp": {"code": cust.ref.id, "name": cust.name}}

    def candidate(self, pool: dict[str, Customer], what: str) -> Customer:
        raw = self.value.get("candidate")
        if not raw:
            raise _Refuse("candidate", f"choose the {what} to link (value candidate)")
        cand = pool.get(_ref_id(raw))
        if cand is None:
            raise _Refuse("candidate", f"{what} {_ref_id(raw)} does not exist in the snapshot")
        if cand.customer_id:
            raise _Refuse("candidate", f"{what} {cand.ref.id} is already linked to {cand.customer_id}")
        self.ok("candidate", f"{what} {cand.ref.id} ({cand.name}) exists and is not linked")
        return cand

    def link_party(self) -> None:
        cust = self.billing_customer()
        if cust.ref.id in self.idx.parties_by_code:
            raise _Refuse("target", f"an ERP party already carries {cust.ref.id}: refresh")
        cand = self.candidate(self.e.customers, "ERP party")
        self.steps = [LinkParty(int(cand.ref.id), cust.ref.id)]
        self.rpc_call("model.party.party.write", [[int(cand.ref.id)], {"code": cust.ref.id}],
                      f"link party {cand.ref.id} to {cust.ref.id} (its code becomes the customer id)")
        self.before = {"erp": {"party": cand.ref.id, "code": None, "name": cand.name}}
        self.expected_after = {"erp": {"party": cand.ref.id, "code": cust.ref.id}}

    def create_org(self) -> None:
        cust = self.billing_customer()
        if cust.ref.id in self.idx.orgs_by_ext:
            raise _Refuse("target", f"a support organization already carries {cust.ref.id}: refresh")
        party = self.idx.parties_by_code.get(cust.ref.id)
        name = party.name if party is not None else cust.name
        from services.core.reconcile import norm_name

        same = next((o for o in self.s.customers.values() if norm_name(o.name).casefold()
                     == norm_name(name).casefold()), None)
        if same is not None:
            raise _Refuse("target", f"support organization {same.ref.id} is already named {same.name!r} (the help "
                                    "desk's names are unique)" + (": link it instead" if not same.customer_id
                                                                  else f" and carries {same.customer_id}"))
        self.ok("target", f"no support organization carries {cust.ref.id}")
        self.notes.append("name from the ERP party (the owner)" if party is not None
                          else "no ERP party: the name comes from billing's copy")
        tier = self.idx.granted_tier(cust.ref.id)
        fields_: JsonObject = {"support_tier": tier.value} if tier else {}
        if tier:
            self.notes.append(f"with the support tier billing's plan grants: {tier.value}")
        self.steps = [CreateOrg(name, cust.ref.id, fields_)]
        self.calls.append(PlannedCall(System.SUPPORT, "GET", "/api/v2/organizations/search.json",
                                      {"external_id": cust.ref.id}, "look it up by external id first (idempotency)"))
        body: dict[str, Any] = {"name": name, "external_id": cust.ref.id}
        if fields_:
            body["organization_fields"] = fields_
        self.calls.append(PlannedCall(System.SUPPORT, "POST", "/api/v2/organizations.json", {"organization": body},
                                      "create the organization"))
        self.before = {"support": None}
        self.expected_after = {"support": body}

    def link_org(self) -> None:
        cust = self.billing_customer()
        if cust.ref.id in self.idx.orgs_by_ext:
            raise _Refuse("target", f"a support organization already carries {cust.ref.id}: refresh")
        cand = self.candidate(self.s.customers, "support organization")
        self.steps = [LinkOrg(int(cand.ref.id), cust.ref.id)]
        self.calls.append(PlannedCall(System.SUPPORT, "PUT", f"/api/v2/organizations/{cand.ref.id}.json",
                                      {"organization": {"external_id": cust.ref.id}},
                                      f"link organization {cand.ref.id} to {cust.ref.id}"))
        self.before = {"support": {"organization": cand.ref.id, "external_id": None}}
        self.expected_after = {"support": {"organization": cand.ref.id, "external_id": cust.ref.id}}

    def field_owner(self, field: str) -> System:
        """The system of record of a customer master field in the engine's configuration (the
        same ownership the console shows, :mod:`services.core.ownership`)."""
        return self.engine.config.ownership.get(f"customer.{field}", System.ERP)

    def push_master(self) -> None:
        cid = self.exc.customer_id or self.exc.object_id
        party = self.party(cid)
        cust = self.billing_customer()
        from services.core.reconcile import norm_country, norm_name, norm_tax

        differing = {"name": norm_name(cust.name) != norm_name(party.name),
                     "tax_id": norm_tax(cust.tax_id) != norm_tax(party.tax_id),
                     "country": norm_country(cust.country) != norm_country(party.country)}
        # a push flows from the ERP (the default owner) to the copies; a field the configuration
        # gives another owner is never overwritten from the ERP's value
        not_erp = [f for f, differs in differing.items() if differs and self.field_owner(f) is not System.ERP]
        if not_erp:
            owners = ", ".join(f"{f.replace('_', ' ')} is owned by {self.field_owner(f).value}" for f in not_erp)
            raise _Refuse("owner", f"in this configuration {owners}: a push writes the ERP's values to the copies "
                                   "and would overwrite the owner; correct the ERP party from the owner's value "
                                   "in the ERP, or accept the difference")
        fields_: JsonObject = {}
        for field, differs in differing.items():
            if differs:
                fields_[field] = getattr(party, field)
        self.before = {"erp (owner)": {"name": party.name, "tax_id": party.tax_id, "country": party.country},
                       "billing": {k: getattr(cust, k) for k in fields_}}
        if fields_:
            self.bill_update(cid, fields_, "push the ERP's (owner's) values to billing's copy")
        org = self.idx.orgs_by_ext.get(cid)
        if org is not None and norm_name(org.name) != norm_name(party.name):
            if self.field_owner("name") is not System.ERP:
                raise _Refuse("owner", f"in this configuration the name is owned by {self.field_owner('name').value}: "
                                       "a push would write the ERP's name to the support organization")
            self.org_update(org, {"name": party.name}, "push the ERP's legal name to the support organization")
            self.before["support"] = {"name": org.name}
        if not self.steps:
            raise _Refuse("target", "the copies already agree with the ERP: refresh")
        self.ok("owner", "values flow from the ERP (owner) to the copies")
        self.expected_after = {"billing": fields_, "support": {"name": party.name} if org is not None else None}

    def bill_update(self, cid: str, fields_: JsonObject, description: str) -> None:
        self.steps.append(UpdateCustomer(cid, fields_))
        body: dict[str, Any] = {}
        for k, v in fields_.items():
            if k == "tax_id":
                body["metadata[tax_id]"] = v if v is not None else ""
            elif k == "country":
                body["address[country]"] = v if v is not None else ""
            else:
                body[k] = v if v is not None else ""
        self.calls.append(PlannedCall(System.BILLING, "POST", f"/v1/customers/{cid}", body,
                                      f"{description} (Idempotency-Key: the action's key)"))

    def org_update(self, org: Customer, values: JsonObject, description: str) -> None:
        self.steps.append(UpdateOrg(int(org.ref.id), values))
        self.calls.append(PlannedCall(System.SUPPORT, "PUT", f"/api/v2/organizations/{org.ref.id}.json",
                                      {"organization": values}, description))

    def correct_master(self) -> None:
        self.need_reason("a correction")
        cid = self.exc.customer_id or self.exc.object_id
        target = str(self.value.get("target") or "").lower()
        values = {k: self.value[k] for k in OWNER_FIELDS if k in self.value}
        owned = [k for k in values if self.field_owner(k).value == target]
        if target in ("", System.ERP.value) and not values:
            owned = [k for k in OWNER_FIELDS if self.field_owner(k) is System.ERP]
        if owned or target in ("", System.ERP.value):
            by_owner: dict[System, list[str]] = {}
            for k in owned or list(OWNER_FIELDS):
                by_owner.setdefault(self.field_owner(k), []).append(k.replace("_", " "))
            owner_text = "; ".join(f"{'the ERP' if o is System.ERP else o.value} owns {', '.join(fs)}"
                                   for o, fs in by_owner.items())
            where = ("correct the party in the ERP" if set(by_owner) == {System.ERP}
                     else "correct the owner's record in its own system")
            raise _Refuse("owner", f"{owner_text}; corrections flow from the owner to the copies: {where}, then push")
        if not values:
            raise _Refuse("value", "choose the values to write (name, tax_id, country)")
        self.ok("owner", f"writes a copy ({target}), not the owner")
        self.party(cid)
        if target == System.BILLING.value:
            self.billing_customer()
            self.bill_update(cid, values, "write the operator's values to billing's copy")
        elif target == System.SUPPORT.value:
            org = self.idx.orgs_by_ext.get(cid)
            if org is None:
                raise _Refuse("mapping", f"no support organization carries {cid}")
            if set(values) - {"name"}:
                raise _Refuse("value", "the support organization holds only the name")
            self.org_update(org, values, "write the operator's name to the support organization")
        else:
            raise _Refuse("value", f"unknown target {target!r} (billing or support)")
        self.before = {"sides": {s.system.value: s.values for s in self.exc.sides}}
        self.expected_after = {target: values}

