"""The action service acts only as the login it was given, in a role the policy grants
(defence in depth: the command line and the console restrict too, the service checks anyway).

- an operator who is not the login, or a role the policy does not grant, is refused at
  construction, by ``set_operator``, by assigning ``operator`` and by ``switch_role``; a refusal
  writes nothing;
- each granted switch of role is one ``role_change`` entry of the audit chain (by the login,
  before / after role) before the switch takes effect; actions then carry the login;
- a policy that changed since the log last saw it is one ``role_policy`` entry, written once.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.actions.model import ActionKind, ActionRequest, ActionStatus, Operator, PermissionDenied, Role
from services.actions.role_audit import record_policy_change
from services.actions.service import ActionService
from services.core.identity import RolePolicy, resolve_identity
from tests.services.actions_rig import Rig, make_rig

POLICY = RolePolicy((("dana", (Role.FINANCE, Role.AUDITOR)), ("sue", (Role.SUPPORT,))), "config.toml")
DANA = resolve_identity(POLICY, "dana")


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await make_rig(tmp_path, customers=60, operator=Operator("dana", Role.FINANCE), identity=DANA)
    yield r
    await r.close()


def rows(rig: Rig) -> list[tuple[str, str, str, str, str]]:
    return [(r["action_kind"], r["phase"], r["outcome"], r["operator"], r["role"]) for r in rig.audit_rows()]


async def test_an_operator_the_identity_does_not_vouch_for_is_refused_and_nothing_is_written(rig: Rig) -> None:
    with pytest.raises(PermissionDenied, match=re.escape("the operator is the login 'dana', not 'cfo.jane'")):
        ActionService(rig.engine, rig.audit, Operator("cfo.jane", Role.FINANCE), identity=DANA)
    with pytest.raises(PermissionDenied, match=r"dana does not hold the support role \(granted by the \[roles\] "
                                               r"table of config.toml: finance, auditor\)"):
        ActionService(rig.engine, rig.audit, Operator("dana", Role.SUPPORT), identity=DANA)
    service = rig.service
    for attempt in (lambda: service.set_operator(Operator("dana", Role.SUPPORT)),
                    lambda: service.set_operator(Operator("cfo.jane", Role.FINANCE))):
        with pytest.raises(PermissionDenied):
            attempt()
    with pytest.raises(PermissionDenied, match=re.escape("not 'cfo.jane'")):
        service.operator = Operator("cfo.jane", Role.FINANCE)
    with pytest.raises(PermissionDenied, match="does not hold the support role"):
        await service.switch_role(Role.SUPPORT)
    assert service.operator == Operator("dana", Role.FINANCE)
    assert rig.audit_rows() == [] and rig.outbox_rows() == []


async def test_each_switch_of_role_is_an_audit_entry_and_actions_carry_the_login(rig: Rig) -> None:
    service = rig.service
    exc = await rig.one("invoice.missing_in_erp")
    assert await service.switch_role(Role.AUDITOR) == Operator("dana", Role.AUDITOR)
    assert await service.switch_role(Role.AUDITOR) == Operator("dana", Role.AUDITOR)  # unchanged: no entry
    # as an auditor the service refuses every act, whoever calls it
    plan = await service.plan(ActionRequest(ActionKind.RETRY, exc.id))
    assert not plan.ok and plan.explanation == "dana is an auditor: auditors read, verify and export; they never act"
    with pytest.raises(PermissionDenied):
        await service.bulk([ActionRequest(ActionKind.RETRY, exc.id)])
    with pytest.raises(PermissionDenied):
        await service.replay_pending()
    service.set_operator(Operator("dana", Role.FINANCE))  # the synchronous switch is audited as well
    result = await service.execute(await service.plan(ActionRequest(ActionKind.RETRY, exc.id)))
    assert result.status is ActionStatus.SUCCEEDED, result.message
    assert rows(rig) == [("role_change", "policy", "recorded", "dana", "auditor"),
                         ("role_change", "policy", "recorded", "dana", "finance"),
                         ("retry", "intent", "pending", "dana", "finance"),
                         ("retry", "outcome", "succeeded", "dana", "finance")]
    switches = [e for e in reversed(rig.audit.entries()) if e.action_kind == "role_change"]
    assert [(e.before, e.after, e.request) for e in switches] == [
        ({"role": "finance"}, {"role": "auditor"}, {"granted": ["finance", "auditor"]}),
        ({"role": "auditor"}, {"role": "finance"}, {"granted": ["finance", "auditor"]})]
    assert switches[0].reason == "dana switched role: finance → auditor"
    assert rig.audit.verify().ok


async def test_a_changed_policy_is_recorded_once_per_change(rig: Rig) -> None:
    now = rig.env.now()
    # a log that never saw a policy has seen the default (no table): the default adds nothing
    assert record_policy_change(rig.audit, resolve_identity(None, "dana"), Role.FINANCE, now) is None
    first = record_policy_change(rig.audit, DANA, Role.FINANCE, now)
    assert first is not None and first.seq == 1
    assert first.reason == ("role policy changed: dana = finance, auditor; sue = support "
                            "(was: no [roles] table (the local login holds every role))")
    assert (first.operator, first.action_kind, first.phase, first.before["policy"], first.after["policy"]) == (
        "dana", "role_policy", "policy", None, [["dana", ["finance", "auditor"]], ["sue", ["support"]]])
    assert record_policy_change(rig.audit, DANA, Role.FINANCE, now) is None  # seen: nothing new
    granted = RolePolicy((("dana", (Role.FINANCE,)), ("sue", (Role.SUPPORT, Role.FINANCE))), "config.toml")
    second = record_policy_change(rig.audit, resolve_identity(granted, "dana"), Role.FINANCE, now)
    assert second is not None and second.reason == (
        "role policy changed: dana = finance; sue = support, finance (was: dana = finance, auditor; sue = support)")
    removed = record_policy_change(rig.audit, resolve_identity(None, "dana"), Role.FINANCE, now)
    assert removed is not None and removed.after["policy"] is None
    assert [r["action_kind"] for r in rig.audit_rows()] == ["role_policy"] * 3
    assert rig.audit.verify().ok
