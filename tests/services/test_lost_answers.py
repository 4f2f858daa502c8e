"""Lost answers on the billing (Stripe) and support (Zendesk) writes, through the action service.

Every write the product performs on those two systems is driven through its real fix path
(:class:`ActionService` plan + execute) while the demo server applies the write and then drops
its answer — once, for the first such write (:class:`DropAnswers`, the demo's
``drop_after_commit`` semantics). Then: the action ended succeeded and verified, the system holds
no duplicate (customer, organization), the retry was the right kind of retry, and the audit log
records one intent and one verified outcome.

The writes: Zendesk organization create (a POST without idempotency key: the connector looks the
organization up by external id before creating, so the retry finds the one the lost answer
created), Zendesk organization update (link: ``external_id``) and organization fields (tier push
and revoke) (PUTs of absolute values: re-sent), Stripe customer update (a POST with an
``Idempotency-Key``: re-sent with the same key, Stripe replays the first answer). The Zendesk
connector creates no tickets, and the product creates no Stripe customer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.actions.model import ActionKind, ActionRequest, ActionResult, ActionStatus, Operator, Plan
from services.actions.steps import UpdateCustomer
from services.core.domain import SyncException, System
from services.engine import RefreshMode
from tests.services.actions_rig import FINANCE, SUPPORT, DropAnswers, Match, RequestLog, Rig, http, make_rig

CREATE_ORG = http("POST", "/api/v2/organizations.json")
UPDATE_ORG = http("PUT", "/api/v2/organizations/")
UPDATE_CUSTOMER = http("POST", "/v1/customers/")


async def lost_answer_rig(tmp_path: Path, system: System, match: Match) -> tuple[Rig, DropAnswers, RequestLog]:
    """The rig, with the first committed write on ``system`` matching ``match`` answered by a
    dropped connection, and every request to ``system`` logged."""
    drop, log = DropAnswers(match, times=1), RequestLog()
    rig = await make_rig(tmp_path, wrap={system: lambda app: log.wrap(drop.wrap(app))})
    return rig, drop, log


async def fix(rig: Rig, operator: Operator, exc: SyncException, kind: ActionKind,
              value: dict[str, Any] | None = None) -> tuple[Plan, ActionResult]:
    rig.service.set_operator(operator)
    plan = await rig.service.plan(ActionRequest(kind, exc.id, reason="lost answer test", value=value))
    assert plan.ok, plan.explanation
    return plan, await rig.service.execute(plan)


async def assert_done_once(rig: Rig, plan: Plan, result: ActionResult, drop: DropAnswers) -> None:
    """Succeeded and verified despite exactly one lost answer; one outbox row, one intent and one
    verified outcome in an intact audit log; a fresh refresh from the systems agrees."""
    assert (result.status, result.verified) == (ActionStatus.SUCCEEDED, True), result.message
    assert len(drop.dropped) == 1, "exactly one answer was lost"
    [row] = rig.outbox_rows()
    assert (row["action_id"], row["status"], row["idempotency_key"]) == (result.action_id, "succeeded",
                                                                         plan.idempotency_key)
    entries = rig.audit_rows()
    assert [(e["action_id"], e["phase"], e["outcome"]) for e in entries] == [
        (result.action_id, "intent", "pending"), (result.action_id, "outcome", "succeeded")]
    assert json.loads(entries[1]["after"])["verified"] is True
    assert rig.audit.verify().ok
    stored = await rig.engine.exception(plan.exception.id)
    assert stored is not None and not stored.is_open
    assert (await rig.engine.refresh(RefreshMode.FULL)).ok
    found, _ = await rig.engine.reconcile()
    assert plan.exception.id not in {e.id for e in found.exceptions}, "the systems agree after a full refresh"


def orgs_carrying(rig: Rig, customer_id: str) -> list[dict[str, Any]]:
    """Every support organization whose external id is ``customer_id`` (Zendesk compares them
    case-insensitively): more than one is a duplicate."""
    return [o for o in rig.env.dataset.support.organizations.values()
            if (o.get("external_id") or "").lower() == customer_id.lower()]


def has_candidates(exc: SyncException) -> bool:
    return any(s.values.get("candidates") for s in exc.sides)


# -- Zendesk: organization create (POST, no idempotency key) ----------------------------------------
async def test_support_organization_create_with_a_lost_answer_creates_one_organization(tmp_path: Path) -> None:
    rig, drop, log = await lost_answer_rig(tmp_path, System.SUPPORT, CREATE_ORG)
    try:
        rig.service.set_operator(SUPPORT)
        creatable = [e for e in await rig.open_of("customer.unmapped_support")
                     if (await rig.service.plan(ActionRequest(ActionKind.CREATE, e.id))).ok]
        assert creatable, "the demo has an unmapped customer whose organization can be created"
        exc = creatable[0]
        cid = exc.customer_id or ""
        organizations = len(rig.env.dataset.support.organizations)
        assert orgs_carrying(rig, cid) == []
        plan, result = await fix(rig, SUPPORT, exc, ActionKind.CREATE)
        await assert_done_once(rig, plan, result, drop)
        [org] = orgs_carrying(rig, cid)
        assert len(rig.env.dataset.support.organizations) == organizations + 1, "one organization created"
        assert org["organization_fields"]["support_tier"], "with the tier billing grants"
        # the create was sent once: the retry found the organization the lost answer created by its
        # external id (the demo would refuse a second create by name, which would fail the action)
        assert [r.status for r in log.matching(CREATE_ORG)] == [201]
        lookups = log.matching(http("GET", "/api/v2/organizations/search.json"))
        assert [(r.query, r.status) for r in lookups] == [(f"external_id={cid}", 200)] * 2
    finally:
        await rig.close()


# -- Zendesk: organization update (PUT) -------------------------------------------------------------
async def test_support_organization_link_with_a_lost_answer_links_once(tmp_path: Path) -> None:
    rig, drop, log = await lost_answer_rig(tmp_path, System.SUPPORT, UPDATE_ORG)
    try:
        exc = await rig.one("customer.unmapped_support", has_candidates)
        cid = exc.customer_id or ""
        sides: list[dict[str, Any]] = [dict(s.values) for s in exc.sides]
        candidate = next(v["candidates"][0]["id"] for v in sides if v.get("candidates"))
        organizations = len(rig.env.dataset.support.organizations)
        plan, result = await fix(rig, SUPPORT, exc, ActionKind.LINK, {"candidate": candidate})
        await assert_done_once(rig, plan, result, drop)
        [org] = orgs_carrying(rig, cid)
        assert str(org["id"]) == str(candidate).rsplit(":", 1)[-1], "the chosen organization carries it"
        assert len(rig.env.dataset.support.organizations) == organizations, "no organization created"
        # the PUT (absolute values) was sent again after the lost answer, to the same organization
        puts = log.matching(UPDATE_ORG)
        assert [(r.path, r.status) for r in puts] == [(f"/api/v2/organizations/{org['id']}.json", 200)] * 2
        assert puts[0].body == puts[1].body
    finally:
        await rig.close()


def billing_tier(exc: SyncException) -> Any:
    """The tier billing's plans grant, as the exception shows it."""
    tier = next(s.values["tier"] for s in exc.sides if s.system is System.BILLING)
    assert tier
    return tier


TIER_CASES: list[tuple[str, ActionKind, Callable[[SyncException], Any]]] = [
    ("entitlement.tier_mismatch", ActionKind.PUSH, billing_tier),
    ("entitlement.missing", ActionKind.PUSH, billing_tier),
    ("entitlement.orphan", ActionKind.REVOKE, lambda exc: None),
]


@pytest.mark.parametrize(("rule", "kind", "expected"), TIER_CASES, ids=[c[0] for c in TIER_CASES])
async def test_support_tier_write_with_a_lost_answer_is_written_once(tmp_path: Path, rule: str, kind: ActionKind,
                                                                     expected: Callable[[SyncException], Any]) -> None:
    rig, drop, log = await lost_answer_rig(tmp_path, System.SUPPORT, UPDATE_ORG)
    try:
        exc = await rig.one(rule)
        cid = exc.customer_id or ""
        want = expected(exc)
        assert [org["organization_fields"]["support_tier"] for org in orgs_carrying(rig, cid)] != [want]
        organizations = len(rig.env.dataset.support.organizations)
        plan, result = await fix(rig, SUPPORT, exc, kind)
        await assert_done_once(rig, plan, result, drop)
        [org] = orgs_carrying(rig, cid)
        assert org["organization_fields"]["support_tier"] == want
        assert len(rig.env.dataset.support.organizations) == organizations, "no organization created"
        puts = log.matching(UPDATE_ORG)
        assert [r.status for r in puts] == [200, 200] and puts[0].body == puts[1].body, "the same PUT, again"
    finally:
        await rig.close()


# -- Stripe: customer update (POST with an Idempotency-Key) ------------------------------------------
async def test_billing_customer_update_with_a_lost_answer_is_replayed_not_repeated(tmp_path: Path) -> None:
    rig, drop, log = await lost_answer_rig(tmp_path, System.BILLING, UPDATE_CUSTOMER)
    try:
        exc = await rig.one("customer.master_drift")
        cid = exc.customer_id or exc.object_id
        billing = rig.env.dataset.billing
        customers, events = len(billing.customers), len(billing.events)
        plan, result = await fix(rig, FINANCE, exc, ActionKind.PUSH)
        assert [s.op for s in plan.steps] == ["billing.update_customer"]
        await assert_done_once(rig, plan, result, drop)
        key = f"{plan.idempotency_key}-0"
        posts = log.matching(UPDATE_CUSTOMER)
        assert [(r.path, r.status) for r in posts] == [(f"/v1/customers/{cid}", 200)] * 2
        # the second POST carried the same key and parameters: Stripe answered it from the first
        assert "idempotent-replayed" not in posts[0].headers
        assert posts[1].headers.get("idempotent-replayed") == "true" and posts[1].headers["idempotency-key"] == key
        assert posts[0].body == posts[1].body
        # the customer was updated once, with the ERP's (the owner's) values; no customer created
        new_events = billing.events[events:]
        assert [(e.type, e.object_id, e.idempotency_key) for e in new_events] == [("customer.updated", cid, key)]
        assert len(billing.customers) == customers
        party = next(s.values for s in exc.sides if s.system is System.ERP)
        step = plan.steps[0]
        assert isinstance(step, UpdateCustomer)
        written = step.fields
        customer = billing.customers[cid]
        for name, value in written.items():
            assert value == party[name]
            assert getattr(customer, name) == value, name
    finally:
        await rig.close()
