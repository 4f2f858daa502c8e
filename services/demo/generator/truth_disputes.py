"""Billing disputes linked to integration defects, planted in the demo (services/metrics
"billing disputes"): for every other customer whose planted mismatch is owned by finance and
who has a support organization, an open support ticket about billing, raised shortly before
the anchor by one of the organization's people, from a random stream of its own (numbered with the
other tickets in created order); their ids are kept with the generator's truth
(services/demo/generator/truth.py)."""

from __future__ import annotations

import random
from typing import Any

from services.core.domain import RULES, Team
from services.demo.generator.dates import DAY, aware_utc
from services.demo.generator.state import _Gen

SUBJECTS: tuple[str, ...] = (
    "Our invoice does not match what we were charged",
    "Billing dispute: wrong amount on our latest invoice",
    "We were charged but our accounts show no invoice",
    "Refund missing from our billing statement",
)


def plant_disputes(g: _Gen, tickets: list[tuple[int, int, dict[str, Any]]]) -> list[tuple[dict[str, Any], str]]:
    """Add the dispute tickets to ``tickets`` (created time, order, ticket: numbered later with
    every other ticket, in created order); answers each with its billing customer id."""
    s = g.support
    rng = random.Random(f"disputes-{g.seed}")
    finance = sorted({m.customer for m in g.manifest
                      if m.customer and (owner := RULES.get(m.rule)) is not None and owner[0] is Team.FINANCE})
    people: dict[int, list[int]] = {}
    for uid, user in s.users.items():
        if user.get("organization_id") is not None and user.get("role") == "end-user":
            people.setdefault(user["organization_id"], []).append(uid)
    planted: list[tuple[dict[str, Any], str]] = []
    for n, customer in enumerate(finance):
        org = s.orgs_by_external_id.get(customer)
        if n % 2 or org is None or not people.get(org):
            continue
        t0 = g.A - rng.randint(3600, 2 * DAY)
        t = aware_utc(t0)
        requester = rng.choice(people[org])
        ticket: dict[str, Any] = {
            "id": 0, "subject": rng.choice(SUBJECTS),
            "description": "Hello, the amounts on our invoice and in our accounts differ. Can you check?",
            "status": "open", "priority": "high", "type": "problem", "requester_id": requester,
            "submitter_id": requester, "assignee_id": None, "organization_id": org, "group_id": None,
            "created_at": t, "updated_at": t, "tags": ["billing"], "via": {"channel": "email"},
            "external_id": None, "is_public": True, "due_at": None,
        }
        tickets.append((t0, len(tickets), ticket))
        planted.append((ticket, customer))
    return planted
