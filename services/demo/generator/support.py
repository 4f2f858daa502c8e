"""Phase 5, the helpdesk mirror: the agents, one organization per subscribed customer
(``external_id`` = billing customer id; ``organization_fields`` carry the support tier, SLA
policy and entitlement end that follow billing at once), its end users and their tickets —
with the support-side plants (unmapped organizations, stale names, missing, wrong and orphan
entitlements) applied where the organization is made."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.demo.generator.dates import DAY, aware_utc
from services.demo.generator.ground_truth import TIER_RANK
from services.demo.generator.plants import _stale_name
from services.demo.generator.state import _ascii_slug, _Cust, _Gen
from services.demo.generator.truth import record_disputes
from services.demo.generator.truth_disputes import plant_disputes
from services.demo.store import ManifestEntry


def _person_email(first: str, last: str, domain: str) -> str:
    local = _ascii_slug(f"{first} {last}").replace("-", ".") or "user"
    return f"{local}@{domain}"


def _build_support(g: _Gen) -> None:
    s = g.support
    rng = g.rng
    names = g.p.names
    plans_by_tier = {p.tier: p for p in g.p.plans}
    s.tokens[g.creds.zendesk_email] = g.creds.zendesk_token
    agents: list[int] = []
    agent_names = [(rng.choice(names.person_first), rng.choice(names.person_last))
                   for _ in range(max(1, g.p.company.agents))]
    for n, (first, last) in enumerate(agent_names):
        uid = s.new_id("user")
        email = g.creds.zendesk_email if n == 0 else _person_email(first, last, g.p.company.agent_domain)
        t = aware_utc(g.setup_ts + n * 3600)
        s.users[uid] = _user(uid, f"{first} {last}", email, "admin" if n == 0 else "agent", None, t)
        agents.append(uid)
    todo: list[tuple[int, int, _Cust]] = []
    for n, cu in enumerate(g.custs):
        if cu.first_sub_at is not None:
            todo.append((g.clip(cu.first_sub_at + g.ri(30, 600)), n, cu))
    todo.sort(key=lambda x: (x[0], x[1]))
    tickets: list[tuple[int, int, dict[str, Any]]] = []
    for created, _, cu in todo:
        plant = g.plants.get(cu.c.id)
        rule = plant.rule if plant is not None else None
        tier = cu.tier if cu.active else None
        external_id: str | None = cu.c.id
        name = cu.legal_name
        if rule == "customer.unmapped_support":
            assert plant is not None
            g.manifest.append(ManifestEntry(rule, cu.c.id, cu.c.id, "no support organization with this external id"
                                            + ("; candidate organization with the same name" if
                                               plant.variant == "candidate" else "")))
            if plant.variant != "candidate":
                _org_people(g, cu, None, created, agents, tickets)
                continue
            external_id = None
        elif rule == "customer.master_drift" and plant is not None and plant.variant == "support_name":
            name = _stale_name(cu.legal_name)
        elif rule == "entitlement.missing":
            g.manifest.append(ManifestEntry(rule, cu.c.id, cu.c.id, f"no support tier; plan grants {tier}"))
            tier = None
        elif rule == "entitlement.tier_mismatch":
            assert tier is not None
            others = [t for t in TIER_RANK if t != tier]
            wrong = rng.choice(others)
            g.manifest.append(ManifestEntry(rule, cu.c.id, cu.c.id, f"support tier {wrong}, plan grants {tier}"))
            tier = wrong
        elif rule == "entitlement.orphan":
            tier = cu.cancelled_tier
            g.manifest.append(ManifestEntry(rule, cu.c.id, cu.c.id,
                                            f"support tier {tier} but no active subscription"))
        plan = plans_by_tier.get(tier) if tier else None
        end = cu.ent_end if cu.active else (cu.last_change if rule == "entitlement.orphan" else None)
        updated = g.clip(max(created, cu.last_change + g.ri(30, 600))) if cu.last_change else created
        org_id = s.new_id("organization")
        s.add_organization({
            "id": org_id, "name": name, "external_id": external_id,
            "created_at": aware_utc(created), "updated_at": aware_utc(updated),
            "domain_names": [cu.domain], "details": "", "notes": "", "tags": [tier] if tier else [],
            "group_id": None, "shared_tickets": False, "shared_comments": False,
            "organization_fields": {
                "support_tier": tier, "sla_policy": plan.sla_policy if plan else None,
                "entitlement_end": g.day(end).isoformat() if (end and tier) else None},
        })
        _org_people(g, cu, org_id, created, agents, tickets)
    disputes = plant_disputes(g, tickets)  # billing disputes linked to finance mismatches (truth_disputes.py)
    tickets.sort(key=lambda x: (x[0], x[1]))
    for _, _, ticket in tickets:
        tid = s.new_id("ticket")
        ticket["id"] = tid
        s.tickets[tid] = ticket
    record_disputes(g, [(t["id"], c) for t, c in disputes])


def _user(uid: int, name: str, email: str, role: str, org: int | None, t: datetime) -> dict[str, Any]:
    return {"id": uid, "name": name, "email": email, "role": role, "organization_id": org,
            "created_at": t, "updated_at": t, "active": True, "verified": True, "time_zone": "UTC",
            "locale": "en-US", "phone": None, "external_id": None, "tags": [], "suspended": False}


_TICKET_WEIGHTS = (0.3, 0.35, 0.2, 0.1, 0.05)


def _org_people(g: _Gen, cu: _Cust, org_id: int | None, created: int, agents: list[int],
                tickets: list[tuple[int, int, dict[str, Any]]]) -> None:
    s = g.support
    rng = g.rng
    A = g.A
    names = g.p.names
    users: list[int] = []
    people = list(cu.people)
    for _ in range(g.ri(1, max(1, g.r.users_max)) - len(people)):
        people.append((rng.choice(names.person_first), rng.choice(names.person_last)))
    seen: set[str] = set()
    for first, last in people:
        email = _person_email(first, last, cu.domain)
        if email in seen:
            continue
        seen.add(email)
        uid = s.new_id("user")
        t = aware_utc(g.clip(created + g.ri(0, 3 * DAY)))
        s.users[uid] = _user(uid, f"{first} {last}", email, "end-user", org_id, t)
        users.append(uid)
    n_tickets = min(g.r.tickets_max, rng.choices(range(len(_TICKET_WEIGHTS)), _TICKET_WEIGHTS)[0])
    for _ in range(n_tickets):
        t0 = g.ri(created, A)
        age = A - t0
        if age > 14 * DAY:
            status = rng.choice(("closed", "closed", "solved"))
            t1 = t0 + g.ri(600, min(age, 10 * DAY))
        else:
            status = rng.choice(("new", "open", "open", "pending", "hold", "solved"))
            t1 = t0 if status == "new" else t0 + g.ri(0, age)
        requester = rng.choice(users)
        tickets.append((t0, len(tickets), {
            "id": 0, "subject": rng.choice(names.ticket_subjects),
            "description": "Hello, could you help us with this? Thanks.",
            "status": status, "priority": rng.choice(("low", "normal", "normal", "high", "urgent")),
            "type": rng.choice(("question", "incident", "problem", "task")),
            "requester_id": requester, "submitter_id": requester,
            "assignee_id": None if status == "new" else rng.choice(agents),
            "organization_id": org_id, "group_id": None,
            "created_at": aware_utc(t0), "updated_at": aware_utc(t1), "tags": [],
            "via": {"channel": "email"}, "external_id": None, "is_public": True, "due_at": None,
        }))
