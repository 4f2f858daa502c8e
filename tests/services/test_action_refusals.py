"""The outbox operations' refusals, and a real cancellation of a bulk action.

- ``retry_failed`` is refused for another team's action and for an auditor, and a succeeded
  action is never run again; ``cancel_pending`` is refused for an auditor and for another team.
  Each refusal writes nothing: the outbox row unchanged, no audit entry, no request to any system.
- The owning team comes from the outbox row itself when the console's snapshot does not know the
  exception (a fresh snapshot, another machine on a shared team database): a support operator
  cannot retry or cancel a finance action just because their snapshot never saw it.
- Cancelling :meth:`ActionService.bulk` mid-way over 40 postings on a slowed ERP: a result per
  request, the started ones finished (intent + one outcome each, posted once), the rest not
  started and untouched anywhere, the audit chain intact.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.actions.model import (
    ActionConflict,
    ActionKind,
    ActionRequest,
    ActionResult,
    ActionStatus,
    BulkProgress,
    BulkResult,
    Operator,
    PermissionDenied,
)
from services.core.domain import System
from services.demo.faults import FaultConfig
from tests.services.actions_rig import (
    AUDITOR,
    FINANCE,
    SUPPORT,
    RequestLog,
    Rig,
    delete_posted_invoices,
    live_count,
    make_rig,
)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await make_rig(tmp_path)
    yield r
    await r.close()


def state(rig: Rig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every outbox row and every audit entry, all columns: what a refusal must leave as it is."""
    return [dict(r) for r in rig.outbox_rows()], [dict(r) for r in rig.audit_rows()]


def reset_requests(rig: Rig) -> None:
    for injector in rig.env.injectors.values():
        injector.reset_stats()


def requests_sent(rig: Rig) -> dict[str, int]:
    return {s.value: i.stats()["total"] for s, i in rig.env.injectors.items() if i.stats()["total"]}


async def failed_action(rig: Rig, operator: Operator, rule: str) -> ActionResult:
    """An action of ``operator`` on ``rule`` that failed (its target answered 5xx to everything)."""
    rig.service.set_operator(operator)
    exc = await rig.one(rule)
    kind = ActionKind.RETRY if rule == "invoice.missing_in_erp" else ActionKind.PUSH
    plan = await rig.service.plan(ActionRequest(kind, exc.id))
    assert plan.ok, plan.explanation
    assert plan.target_system is not None
    injector = rig.env.injectors[plan.target_system]
    injector.config.error_rate = 1.0
    try:
        result = await rig.service.execute(plan)
    finally:
        injector.config.error_rate = 0.0
    assert result.status is ActionStatus.FAILED, result.message
    return result


def owned_by(rule: str, team: str, role: str) -> str:
    return re.escape(f"{rule} is owned by {team}; the {role} role cannot act on it")


AUDITOR_REFUSAL = re.escape(f"{AUDITOR.name} is an auditor: auditors read, verify and export; they never act")


# -- retry_failed --------------------------------------------------------------------------------------
async def test_retry_failed_is_refused_for_another_team_and_an_auditor_and_writes_nothing(rig: Rig) -> None:
    failed = await failed_action(rig, FINANCE, "invoice.missing_in_erp")
    ref = failed.exception_id.split(":", 1)[1]
    before = state(rig)
    assert before[0][0]["status"] == "failed" and [e["outcome"] for e in before[1]] == ["pending", "failed"]
    for operator, why in ((SUPPORT, owned_by("invoice.missing_in_erp", "finance", "support")),
                          (AUDITOR, AUDITOR_REFUSAL)):
        rig.service.set_operator(operator)
        reset_requests(rig)
        with pytest.raises(PermissionDenied, match=f"^{why}$"):
            await rig.service.retry_failed(failed.action_id)
        assert state(rig) == before, f"{operator.role.value}: the refusal wrote nothing"
        assert requests_sent(rig) == {}, f"{operator.role.value}: nothing was sent"
        assert live_count(rig.env, ref) == 0
    # the row was retryable all along: its own team retries it
    rig.service.set_operator(FINANCE)
    again = await rig.service.retry_failed(failed.action_id)
    assert (again.action_id, again.status, again.verified) == (failed.action_id, ActionStatus.SUCCEEDED, True)
    assert live_count(rig.env, ref) == 1


async def test_retry_of_a_succeeded_action_is_refused_and_writes_nothing(rig: Rig) -> None:
    exc = await rig.one("invoice.missing_in_erp")
    done = await rig.service.execute(await rig.service.plan(ActionRequest(ActionKind.RETRY, exc.id)))
    assert done.status is ActionStatus.SUCCEEDED
    before = state(rig)
    reset_requests(rig)
    with pytest.raises(ActionConflict, match=f"^action {done.action_id} is succeeded: only a failed or cancelled "
                                             "action can be retried$"):
        await rig.service.retry_failed(done.action_id)
    assert state(rig) == before
    assert requests_sent(rig) == {}
    assert live_count(rig.env, exc.object_id) == 1, "posted once"
    with pytest.raises(ActionConflict, match=r"^no action nonexistent$"):
        await rig.service.retry_failed("nonexistent")


# -- cancel_pending ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("owner", "rule", "other"), [
    (FINANCE, "invoice.missing_in_erp", SUPPORT),
    (SUPPORT, "entitlement.tier_mismatch", FINANCE),
], ids=["finance-action", "support-action"])
async def test_cancel_and_retry_are_refused_for_an_auditor_and_another_team(rig: Rig, owner: Operator, rule: str,
                                                                             other: Operator) -> None:
    failed = await failed_action(rig, owner, rule)
    before = state(rig)
    team = owner.role.value
    for operator, why in ((other, owned_by(rule, team, other.role.value)), (AUDITOR, AUDITOR_REFUSAL)):
        rig.service.set_operator(operator)
        reset_requests(rig)
        with pytest.raises(PermissionDenied, match=f"^{why}$"):
            await rig.service.cancel_pending(failed.action_id)
        with pytest.raises(PermissionDenied, match=f"^{why}$"):
            await rig.service.retry_failed(failed.action_id)
        assert state(rig) == before, f"{operator.role.value}: the refusals wrote nothing"
        assert requests_sent(rig) == {}
    # the owning team may cancel it (audited, under its name)
    rig.service.set_operator(owner)
    await rig.service.cancel_pending(failed.action_id)
    [row] = rig.outbox_rows()
    assert row["status"] == "cancelled"
    last = rig.audit_rows()[-1]
    assert (last["phase"], last["outcome"], last["operator"], last["role"]) == ("outcome", "cancelled", owner.name,
                                                                                team)
    assert rig.audit.verify().ok


async def test_the_owning_team_comes_from_the_outbox_when_the_snapshot_does_not_know_the_exception(
        rig: Rig, tmp_path: Path) -> None:
    """Another console (a fresh snapshot; in team mode, another machine on the shared database)
    has never seen the finance exception: the support operator there is refused all the same."""
    failed = await failed_action(rig, FINANCE, "invoice.missing_in_erp")
    ref = failed.exception_id.split(":", 1)[1]
    service = await rig.reopen(SUPPORT, snapshot_db=tmp_path / "another-console.db")
    assert await rig.engine.exception(failed.exception_id) is None, "this console's snapshot never saw it"
    before = state(rig)
    reset_requests(rig)
    why = owned_by("invoice.missing_in_erp", "finance", "support")
    with pytest.raises(PermissionDenied, match=f"^{why}$"):
        await service.retry_failed(failed.action_id)
    with pytest.raises(PermissionDenied, match=f"^{why}$"):
        await service.cancel_pending(failed.action_id)
    assert state(rig) == before
    assert requests_sent(rig) == {}
    assert live_count(rig.env, ref) == 0, "nothing posted"
    # finance on that console may cancel it
    service.set_operator(FINANCE)
    await service.cancel_pending(failed.action_id)
    assert [r["status"] for r in rig.outbox_rows()] == ["cancelled"]


# -- a real bulk cancel --------------------------------------------------------------------------------
#: postings in the bulk action; the bulk is cancelled when CANCEL_AT of them have finished
TOTAL, CANCEL_AT = 40, 5


async def test_cancelling_a_bulk_action_midway(tmp_path: Path) -> None:
    victims: list[str] = []
    log = RequestLog()
    # 20 ms per ERP request: 40 postings take seconds, so the cancel lands mid-way
    rig = await make_rig(tmp_path, faults={System.ERP: FaultConfig(latency_ms=20.0)},
                         before_start=lambda env: victims.extend(delete_posted_invoices(env, TOTAL)),
                         wrap={System.ERP: log.wrap})
    try:
        excs = [e for e in await rig.open_of("invoice.missing_in_erp") if e.object_id in victims]
        assert len(excs) == TOTAL
        log.seen.clear()
        seen: list[BulkProgress] = []
        task: asyncio.Task[BulkResult]

        def progress(p: BulkProgress) -> None:
            seen.append(p)
            if p.done == CANCEL_AT and p.current != "cancelled":
                task.cancel()  # the operator's Cancel, as soon as CANCEL_AT have finished

        task = asyncio.create_task(rig.service.bulk([ActionRequest(ActionKind.RETRY, e.id) for e in excs],
                                                    progress))
        result = await task
        assert result.cancelled and not result.ok
        assert [r.exception_id for r in result.results] == [e.id for e in excs], "one result per request, in order"
        assert result.succeeded + result.failed + result.queued + result.refused + result.not_started == TOTAL
        started = [r for r in result.results if r.status is not ActionStatus.CANCELLED]
        not_started = [r for r in result.results if r.status is ActionStatus.CANCELLED]
        # the ones under way when the cancel came finished; no new one started after it
        in_flight = rig.service.bulk_concurrency[System.ERP]
        assert CANCEL_AT <= len(started) <= CANCEL_AT + in_flight, len(started)
        assert len(not_started) == result.not_started >= TOTAL - CANCEL_AT - in_flight
        # the last report says it was cancelled and counts every action that finished, the ones
        # that were under way at the cancel included
        final = seen[-1]
        assert (final.current, final.done, final.total, final.succeeded, final.failed, final.queued) == (
            "cancelled", len(started), TOTAL, result.succeeded, result.failed, result.queued)
        assert all(p.current != "cancelled" for p in seen[:-1])
        assert all(r.status is ActionStatus.SUCCEEDED and r.verified for r in started), [r.message for r in started]
        assert all(r.action_id == "" and r.message == "not started: the bulk action was cancelled"
                   for r in not_started)

        # every started action: one outbox row (succeeded), its intent and exactly one outcome
        outbox = {r["action_id"]: r for r in rig.outbox_rows()}
        assert set(outbox) == {r.action_id for r in started}
        assert rig.service.pending() == []
        audit = rig.audit_rows()
        for r in started:
            assert outbox[r.action_id]["status"] == "succeeded"
            entries = [(e["phase"], e["outcome"]) for e in audit if e["action_id"] == r.action_id]
            assert entries == [("intent", "pending"), ("outcome", "succeeded")], (r.action_id, entries)
        assert len(audit) == 2 * len(started)
        assert rig.audit.verify().ok

        # nothing posted twice; the not-started ones were never even asked about
        for r in started:
            ref = r.exception_id.split(":", 1)[1]
            live = rig.live_erp_invoices(ref)
            assert len(live) == 1 and live[0]["state"] == "posted", ref
        for r in not_started:
            ref = r.exception_id.split(":", 1)[1]
            assert live_count(rig.env, ref) == 0, ref
            assert log.mentioning(ref) == [], f"{ref}: a request was sent for an action never started"
            assert not [e for e in audit if e["exception_id"] == r.exception_id]
        open_ids = {e.id for e in await rig.engine.open_exceptions()}
        assert open_ids >= {r.exception_id for r in not_started}
        assert not open_ids & {r.exception_id for r in started}
    finally:
        await rig.close()
