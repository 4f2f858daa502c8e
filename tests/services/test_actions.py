"""Operator actions on the demo environment over loopback: every rule's fix path and its
refusals, the dry-run preview, write-ahead ordering, idempotency, verify-after-write,
accepted differences (reopen on change, expiry), Tryton warnings, the outbox operations."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from services.actions.accepted import exception_fingerprint
from services.actions.model import ActionConflict, ActionKind, ActionRequest, ActionStatus, PermissionDenied
from services.core.domain import SyncException, System
from services.core.reconcile import DEFAULT_OWNERSHIP
from services.engine import RefreshMode
from services.io.connectors.tryton import TrytonConnector
from tests.services.actions_rig import AUDITOR, FINANCE, SUPPORT, Rig, make_rig, plant_posted_amount_mismatch


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await make_rig(tmp_path)
    yield r
    await r.close()


def audit_rows(rig: Rig) -> list[sqlite3.Row]:
    con = sqlite3.connect(rig.audit_db)
    con.row_factory = sqlite3.Row
    try:
        return list(con.execute("select * from audit_entry order by seq"))
    finally:
        con.close()


def outbox_rows(rig: Rig) -> list[sqlite3.Row]:
    con = sqlite3.connect(rig.audit_db)
    con.row_factory = sqlite3.Row
    try:
        return list(con.execute("select * from action_outbox order by created_at"))
    finally:
        con.close()


def has_candidates(exc: SyncException) -> bool:
    return any(s.values.get("candidates") for s in exc.sides)


def erp_state(state: str) -> Callable[[SyncException], bool]:
    return lambda e: any(s.system is System.ERP and s.values.get("state") == state for s in e.sides)


# -- every rule's fix closes its exception ---------------------------------------------------------
CASES: list[tuple[str, ActionKind, Any, Callable[[SyncException], bool]]] = [
    ("invoice.missing_in_erp", ActionKind.RETRY, FINANCE, lambda e: True),
    ("customer.unmapped_erp", ActionKind.CREATE, FINANCE, lambda e: not has_candidates(e)),
    ("customer.unmapped_erp", ActionKind.LINK, FINANCE, has_candidates),
    ("customer.unmapped_support", ActionKind.LINK, SUPPORT, has_candidates),
    ("customer.master_drift", ActionKind.PUSH, FINANCE, lambda e: True),
    ("invoice.amount_mismatch", ActionKind.CORRECT, FINANCE, erp_state("draft")),
    ("invoice.duplicate_in_erp", ActionKind.CANCEL, FINANCE, erp_state("draft")),
    ("subscription.terms_mismatch", ActionKind.PUSH, FINANCE, lambda e: True),
    ("entitlement.missing", ActionKind.PUSH, SUPPORT, lambda e: True),
    ("entitlement.tier_mismatch", ActionKind.PUSH, SUPPORT, lambda e: True),
    ("entitlement.orphan", ActionKind.REVOKE, SUPPORT, lambda e: True),
]


@pytest.mark.parametrize(("rule", "kind", "operator", "pick"), CASES, ids=[f"{c[0]}-{c[1].value}" for c in CASES])
async def test_fix_is_verified_and_closes_the_exception(rig: Rig, rule: str, kind: ActionKind, operator: Any,
                                                         pick: Callable[[SyncException], bool]) -> None:
    rig.service.set_operator(operator)
    exc = await rig.one(rule, pick)
    value = None
    if kind is ActionKind.LINK:
        value = {"candidate": next(s.values["candidates"][0]["id"] for s in exc.sides if s.values.get("candidates"))}
    plan = await rig.service.plan(ActionRequest(kind, exc.id, reason="test fix", value=value))
    assert plan.ok, plan.explanation
    assert plan.calls, "the preview lists the calls"
    result = await rig.service.execute(plan)
    assert result.status is ActionStatus.SUCCEEDED, result.message
    assert result.verified
    assert exc.id not in {e.id for e in await rig.engine.open_exceptions()}
    # the tracker closed it too
    stored = await rig.engine.exception(exc.id)
    assert stored is not None and not stored.is_open
    # a fresh refresh from the systems agrees: the disagreement is really gone
    await rig.engine.refresh(RefreshMode.FULL)
    result2, _ = await rig.engine.reconcile()
    assert exc.id not in {e.id for e in result2.exceptions}
    rows = audit_rows(rig)
    assert [(r["phase"], r["outcome"]) for r in rows] == [("intent", "pending"), ("outcome", "succeeded")]
    assert {(r["operator"], r["role"]) for r in rows} == {(operator.name, operator.role.value)}
    assert outbox_rows(rig)[0]["status"] == "succeeded"
    if rule == "invoice.missing_in_erp":
        live = rig.live_erp_invoices(exc.object_id)
        assert len(live) == 1 and live[0]["state"] == "posted"


async def test_create_support_organization(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path, customers=250, seed=2, operator=SUPPORT)
    try:
        exc = await rig.one("customer.unmapped_support", lambda e: not has_candidates(e))
        plan = await rig.service.plan(ActionRequest(ActionKind.CREATE, exc.id))
        assert plan.ok, plan.explanation
        assert [c.method for c in plan.calls] == ["GET", "POST"]
        result = await rig.service.execute(plan)
        assert result.status is ActionStatus.SUCCEEDED and result.verified, result.message
        org_id = rig.env.dataset.support.orgs_by_external_id[exc.customer_id or ""]
        org = rig.env.dataset.support.organizations[org_id]
        assert org["organization_fields"]["support_tier"], "created with the tier billing grants"
    finally:
        await rig.close()


async def test_create_support_organization_refused_when_the_name_exists(rig: Rig) -> None:
    rig.service.set_operator(SUPPORT)
    exc = await rig.one("customer.unmapped_support", has_candidates)
    plan = await rig.service.plan(ActionRequest(ActionKind.CREATE, exc.id))
    assert not plan.ok
    assert "link it instead" in plan.explanation


async def test_flag_and_accept_are_local_and_audited(rig: Rig) -> None:
    exc = await rig.one("invoice.orphan_in_erp")
    plan = await rig.service.plan(ActionRequest(ActionKind.FLAG, exc.id, reason="ask accounting"))
    assert plan.ok and plan.calls == []
    result = await rig.service.execute(plan)
    assert result.status is ActionStatus.SUCCEEDED and not result.verified
    assert exc.id in {e.id for e in await rig.engine.open_exceptions()}, "a flag keeps the exception open"
    assert audit_rows(rig)[-1]["reason"] == "ask accounting"


# -- refusals --------------------------------------------------------------------------------------
async def test_wrong_team_and_auditor_are_refused_by_the_service(rig: Rig) -> None:
    exc = await rig.one("invoice.missing_in_erp")
    rig.service.set_operator(SUPPORT)
    plan = await rig.service.plan(ActionRequest(ActionKind.RETRY, exc.id))
    assert not plan.ok and "owned by finance" in plan.explanation
    rig.service.set_operator(AUDITOR)
    allowed = rig.service.allowed_actions(exc)
    assert allowed and all(not ok for _, ok, _ in allowed)
    plan = await rig.service.plan(ActionRequest(ActionKind.RETRY, exc.id))
    assert not plan.ok and "auditor" in plan.explanation
    assert audit_rows(rig) == [] and outbox_rows(rig) == [], "a plan writes nothing"
    result = await rig.service.execute(plan)
    assert result.status is ActionStatus.REFUSED
    rows = audit_rows(rig)
    assert [(r["outcome"], r["role"], r["operator"]) for r in rows] == [("refused", "auditor", AUDITOR.name)]
    assert outbox_rows(rig) == []
    with pytest.raises(PermissionDenied):
        await rig.service.bulk([ActionRequest(ActionKind.RETRY, exc.id)])
    with pytest.raises(PermissionDenied):
        await rig.service.replay_pending()
    assert rig.live_erp_invoices(exc.object_id) == []


async def test_correcting_the_owner_from_a_copy_is_refused(rig: Rig) -> None:
    exc = await rig.one("customer.master_drift")
    billing_name = next(s.values.get("name") for s in exc.sides if s.system is System.BILLING)
    for value in ({"target": "erp", "name": billing_name or "Copy Name"}, {"name": "Copy Name"}):
        plan = await rig.service.plan(ActionRequest(ActionKind.CORRECT, exc.id, reason="copy is right", value=value))
        assert not plan.ok
        assert plan.explanation.startswith("the ERP owns name")
        assert "corrections flow from the owner to the copies" in plan.explanation
    # a correction of a copy is allowed (and verified: a value other than the owner's leaves the drift)
    plan = await rig.service.plan(ActionRequest(ActionKind.CORRECT, exc.id, reason="typo",
                                                value={"target": "billing", "name": "Something Else Ltd"}))
    assert plan.ok, plan.explanation
    result = await rig.service.execute(plan)
    assert result.status is ActionStatus.FAILED
    assert result.message.startswith("written but the difference remains")


async def test_posted_invoice_is_never_edited_in_place(rig: Rig) -> None:
    exc = await rig.one("invoice.amount_mismatch", erp_state("paid"))
    allowed = dict((k, (ok, why)) for k, ok, why in rig.service.allowed_actions(exc))
    assert allowed[ActionKind.CORRECT][0] is False and "never edited in place" in allowed[ActionKind.CORRECT][1]
    assert allowed[ActionKind.FLAG][0] is True
    plan = await rig.service.plan(ActionRequest(ActionKind.CORRECT, exc.id, reason="fix it"))
    assert not plan.ok and "never edited in place" in plan.explanation
    dup = await rig.one("invoice.duplicate_in_erp", lambda e: not erp_state("draft")(e))
    plan = await rig.service.plan(ActionRequest(ActionKind.CANCEL, dup.id))
    assert not plan.ok and "never cancelled in place" in plan.explanation


# -- credit + repost of a posted ERP invoice -------------------------------------------------------
def credit_notes_of(rig: Rig, invoice_id: int) -> list[dict[str, Any]]:
    """The demo ERP's invoices whose lines' origins are ``invoice_id``'s lines."""
    erp = rig.env.dataset.erp
    origins = {f"account.invoice.line,{lid}" for lid in erp.tables["account.invoice"][invoice_id]["lines"]}
    table = erp.tables["account.invoice"]
    ids = {ln["invoice"] for ln in erp.tables["account.invoice.line"].values() if ln.get("origin") in origins}
    return [table[i] for i in sorted(ids)]


def erp_invoice_id(exc: SyncException) -> int:
    return int(next(s.ref.id for s in exc.sides if s.system is System.ERP and s.ref is not None))


async def assert_credited_once(rig: Rig, exc: SyncException) -> None:
    """One credit note (paid: reconciled) of the original (cancelled), one live corrected copy
    with billing's total; a fresh refresh reports no invoice exception for it any more."""
    original = rig.env.dataset.erp.tables["account.invoice"][erp_invoice_id(exc)]
    assert original["state"] == "cancelled"
    [note] = credit_notes_of(rig, original["id"])
    assert note["state"] == "paid" and not note.get("reference") and note["sequence_type_cache"] == "credit_note"
    [copy] = rig.live_erp_invoices(exc.object_id)
    assert copy["state"] == "posted" and copy["id"] not in (original["id"], note["id"])
    billing = rig.engine.data[System.BILLING].invoices[exc.object_id]
    erp = rig.engine.data[System.ERP].invoices
    assert erp[str(copy["id"])].total == billing.total
    assert erp[str(note["id"])].billing_invoice_id is None
    await rig.engine.refresh(RefreshMode.FULL)
    result, _ = await rig.engine.reconcile()
    assert not [e.id for e in result.exceptions if e.object_id == exc.object_id and e.rule.startswith("invoice.")
                and e.rule != "invoice.payment_state"]


@pytest.fixture
async def credit_rig(tmp_path: Path) -> AsyncIterator[Rig]:
    """The rig, with an amount mismatch on a posted ERP invoice (the demo plants draft and paid ones)."""
    planted: list[str] = []
    r = await make_rig(tmp_path, before_start=lambda env: planted.append(plant_posted_amount_mismatch(env)))
    r.extra["planted"] = planted[0]
    yield r
    await r.close()


async def posted_mismatch(rig: Rig) -> SyncException:
    exc = await rig.one("invoice.amount_mismatch", erp_state("posted"))
    assert exc.object_id == rig.extra["planted"]
    return exc


async def test_credit_repost_preview_and_the_fixes_offered(credit_rig: Rig) -> None:
    rig = credit_rig
    exc = await posted_mismatch(rig)
    allowed = {k: (ok, why) for k, ok, why in rig.service.allowed_actions(exc)}
    assert allowed[ActionKind.CORRECT][0] is False and "credit + repost it instead" in allowed[ActionKind.CORRECT][1]
    assert allowed[ActionKind.CREDIT_REPOST] == (True, "")
    assert allowed[ActionKind.FLAG][0] is True and allowed[ActionKind.ACCEPT][0] is True
    no_reason = await rig.service.plan(ActionRequest(ActionKind.CREDIT_REPOST, exc.id))
    assert not no_reason.ok and no_reason.explanation == "a credit + repost needs a reason"
    plan = await rig.service.plan(ActionRequest(ActionKind.CREDIT_REPOST, exc.id, reason="wrong seat count"))
    assert plan.ok, plan.explanation
    assert [c.body["method"] for c in plan.calls] == [
        "model.account.invoice.search_read", "model.account.invoice.search", "model.account.invoice.search_read",
        "wizard.account.invoice.credit.create", "wizard.account.invoice.credit.execute",
        "wizard.account.invoice.credit.delete", "model.account.invoice.search_read", "model.account.invoice.create",
        "model.account.invoice.read", "model.account.invoice.post"]
    assert all(c.system is System.ERP and c.method == "POST" and c.path == "/syncdesk_demo/rpc/" for c in plan.calls)
    iid = erp_invoice_id(exc)
    session, data, state, active = plan.calls[4].body["params"]
    assert session == "<wizard session>" and data["start"]["with_refund"] is True and state == "credit"
    assert active == {"active_model": "account.invoice", "active_id": iid, "active_ids": [iid]}
    assert plan.calls[2].body["params"][0][0] == ["origin_invoices", "=", iid]
    create = plan.calls[7].body["params"][0][0]
    billing = rig.engine.data[System.BILLING].invoices[exc.object_id]
    assert create["reference"] == exc.object_id and create["currency"] == billing.total.currency
    assert plan.expected_after["erp"]["corrected"]["total"] == str(billing.total.amount)
    assert plan.expected_after["erp"]["credited"] == {"invoice": str(iid), "state": "cancelled"}
    text = json.dumps([[c.body, c.description, c.path] for c in plan.calls], default=str)
    creds = rig.env.dataset.credentials
    assert creds.tryton_password not in text and "password" not in text
    assert audit_rows(rig) == [] and outbox_rows(rig) == [], "a plan writes nothing"
    assert rig.env.dataset.erp.tables["account.invoice"][iid]["state"] == "posted"


async def test_credit_repost_is_finance_only_and_refused_where_the_erp_refuses(credit_rig: Rig) -> None:
    rig = credit_rig
    exc = await posted_mismatch(rig)
    iid = erp_invoice_id(exc)
    for operator, why in ((SUPPORT, "owned by finance"), (AUDITOR, "auditor")):
        rig.service.set_operator(operator)
        assert all(not ok for _, ok, _ in rig.service.allowed_actions(exc))
        plan = await rig.service.plan(ActionRequest(ActionKind.CREDIT_REPOST, exc.id, reason="try"))
        assert not plan.ok and why in plan.explanation
        result = await rig.service.execute(plan)
        assert result.status is ActionStatus.REFUSED
    assert [(r["outcome"], r["action_kind"]) for r in audit_rows(rig)] == [("refused", "credit_repost")] * 2
    assert outbox_rows(rig) == []
    assert rig.env.dataset.erp.tables["account.invoice"][iid]["state"] == "posted" and credit_notes_of(rig, iid) == []
    rig.service.set_operator(FINANCE)
    # a paid one is credited too (without refund, as the ERP credits a paid invoice: G6.5);
    # tests/services/test_invoices_close.py carries it out
    paid = await rig.one("invoice.amount_mismatch", erp_state("paid"))
    allowed = {k: (ok, why) for k, ok, why in rig.service.allowed_actions(paid)}
    assert allowed[ActionKind.CREDIT_REPOST] == (True, "")
    assert allowed[ActionKind.CORRECT][0] is False and "credit + repost it instead" in allowed[ActionKind.CORRECT][1]
    plan = await rig.service.plan(ActionRequest(ActionKind.CREDIT_REPOST, paid.id, reason="fix"))
    assert plan.ok and "is paid" in next(c.detail for c in plan.checks if c.name == "posted")
    draft = await rig.one("invoice.amount_mismatch", erp_state("draft"))
    plan = await rig.service.plan(ActionRequest(ActionKind.CREDIT_REPOST, draft.id, reason="fix"))
    assert not plan.ok and "corrected in place" in plan.explanation


async def test_credit_repost_twice_writes_once(credit_rig: Rig) -> None:
    rig = credit_rig
    exc = await posted_mismatch(rig)
    req = ActionRequest(ActionKind.CREDIT_REPOST, exc.id, reason="posted with a wrong seat count")
    plan, again = await rig.service.plan(req), await rig.service.plan(req)
    first, second = await asyncio.gather(rig.service.execute(plan), rig.service.execute(again))
    assert first.action_id == second.action_id and first.status is ActionStatus.SUCCEEDED and first.verified
    assert len(first.after["targets"]) == 3  # the credited invoice, the credit note, the corrected copy
    third = await rig.service.execute(plan)
    assert third.action_id == first.action_id and third.message.startswith("already done")
    # the same steps replayed (as after a crash whose outcome was not recorded): nothing new
    await rig.service._perform(_work(rig, first.action_id))
    await assert_credited_once(rig, exc)
    assert [(r["phase"], r["outcome"], r["action_kind"]) for r in audit_rows(rig)] == [
        ("intent", "pending", "credit_repost"), ("outcome", "succeeded", "credit_repost")]


def _work(rig: Rig, action_id: str) -> Any:
    from services.actions.outbox import _work_from_row

    return _work_from_row(rig.service._row(action_id))


async def test_credit_repost_after_dropped_answers_and_a_crash_between_the_steps(credit_rig: Rig) -> None:
    rig = credit_rig
    exc = await posted_mismatch(rig)
    erp = rig.engine.connectors[System.ERP]
    assert isinstance(erp, TrytonConnector)
    # a crash after the credit (the corrected copy never posted) ...
    await erp.credit_invoice(erp_invoice_id(exc))
    # ... then the action, while every committed write's answer is lost (create, post)
    injector = rig.env.injectors[System.ERP]
    injector.config.drop_after_commit_rate = 1.0
    result = await rig.service.execute(await rig.service.plan(
        ActionRequest(ActionKind.CREDIT_REPOST, exc.id, reason="posted with a wrong seat count")))
    injector.config.drop_after_commit_rate = 0.0
    assert result.status is ActionStatus.SUCCEEDED and result.verified, result.message
    assert injector.injected["drop_after_commit"] == 2
    await assert_credited_once(rig, exc)


async def test_credit_repost_after_the_credit_answer_is_lost(credit_rig: Rig) -> None:
    rig = credit_rig
    exc = await posted_mismatch(rig)
    injector = rig.env.injectors[System.ERP]
    injector.config.drop_after_commit_rate = 1.0  # the credit wizard's, the create's and the post's answers
    result = await rig.service.execute(await rig.service.plan(
        ActionRequest(ActionKind.CREDIT_REPOST, exc.id, reason="posted with a wrong seat count")))
    injector.config.drop_after_commit_rate = 0.0
    assert result.status is ActionStatus.SUCCEEDED and result.verified, result.message
    assert injector.injected["drop_after_commit"] == 3
    await assert_credited_once(rig, exc)


# -- the preview -----------------------------------------------------------------------------------
async def test_preview_lists_the_exact_calls_without_secrets(rig: Rig) -> None:
    exc = await rig.one("invoice.missing_in_erp")
    plan = await rig.service.plan(ActionRequest(ActionKind.RETRY, exc.id))
    methods = [c.body["method"] for c in plan.calls]
    assert methods == ["model.account.invoice.search_read", "model.account.invoice.create",
                       "model.account.invoice.read", "model.account.invoice.post"]
    assert all(c.method == "POST" and c.path == "/syncdesk_demo/rpc/" for c in plan.calls)
    create = plan.calls[1].body["params"][0][0]
    assert create["reference"] == exc.object_id and create["lines"][0][0] == "create"
    drift = await rig.one("customer.master_drift")
    push = await rig.service.plan(ActionRequest(ActionKind.PUSH, drift.id))
    billing = next(c for c in push.calls if c.system is System.BILLING)
    assert billing.method == "POST" and billing.path == f"/v1/customers/{drift.customer_id}"
    assert "Idempotency-Key" in billing.description
    text = json.dumps([[c.body, c.description, c.path] for p in (plan, push) for c in p.calls], default=str)
    creds = rig.env.dataset.credentials
    for secret in (creds.stripe_api_key, creds.tryton_password, creds.zendesk_token):
        assert secret not in text
    assert audit_rows(rig) == [] and outbox_rows(rig) == []


# -- write-ahead: the intent is committed before the first write request ---------------------------
class WriteAheadProbe:
    """ASGI middleware on the demo ERP: at every create request, what the audit DB holds."""

    def __init__(self, app: ASGIApp, db: Path) -> None:
        self.app = app
        self.db = db
        self.seen: list[tuple[int, list[str]]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if b"model.account.invoice.create" in body and self.db.exists():
            con = sqlite3.connect(self.db)
            try:
                intents = con.execute("select count(*) from audit_entry where phase='intent'").fetchone()[0]
                statuses = [r[0] for r in con.execute("select status from action_outbox")]
            finally:
                con.close()
            self.seen.append((intents, statuses))
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def test_intent_and_outbox_are_committed_before_the_first_request(tmp_path: Path) -> None:
    probes: list[WriteAheadProbe] = []

    def wrap(app: ASGIApp) -> ASGIApp:
        probe = WriteAheadProbe(app, tmp_path / "audit.db")
        probes.append(probe)
        return probe

    rig = await make_rig(tmp_path, wrap={System.ERP: wrap})
    try:
        exc = await rig.one("invoice.missing_in_erp")
        result = await rig.service.execute(await rig.service.plan(ActionRequest(ActionKind.RETRY, exc.id)))
        assert result.status is ActionStatus.SUCCEEDED
        assert probes[0].seen == [(1, ["executing"])]
    finally:
        await rig.close()


# -- idempotency -----------------------------------------------------------------------------------
async def test_double_execute_writes_once(rig: Rig) -> None:
    exc = await rig.one("invoice.missing_in_erp")
    plan = await rig.service.plan(ActionRequest(ActionKind.RETRY, exc.id))
    again = await rig.service.plan(ActionRequest(ActionKind.RETRY, exc.id))
    assert plan.idempotency_key == again.idempotency_key
    injector = rig.env.injectors[System.ERP]
    injector.reset_stats()
    first, second = await asyncio.gather(rig.service.execute(plan), rig.service.execute(again))
    assert first.action_id == second.action_id and first.status is ActionStatus.SUCCEEDED
    third = await rig.service.execute(plan)
    assert third.action_id == first.action_id and third.message.startswith("already done")
    assert len(rig.live_erp_invoices(exc.object_id)) == 1
    assert len(outbox_rows(rig)) == 1
    assert len(audit_rows(rig)) == 2


# -- verify after write ----------------------------------------------------------------------------
async def test_a_write_that_does_not_fix_it_is_failed(rig: Rig) -> None:
    exc = await rig.one("invoice.amount_mismatch", erp_state("draft"))
    billing_total = next(s.values["total"] for s in exc.sides if s.system is System.BILLING)
    wrong = [{"plan_key": rig.engine.data[System.BILLING].invoices[exc.object_id].lines[0].plan_key,
              "quantity": 1, "unit_price": "1.00"}]
    plan = await rig.service.plan(ActionRequest(ActionKind.CORRECT, exc.id, reason="operator typo",
                                                value={"lines": wrong}))
    assert plan.ok, plan.explanation
    result = await rig.service.execute(plan)
    assert result.status is ActionStatus.FAILED and not result.verified
    assert result.message.startswith("written but the difference remains")
    assert exc.id in {e.id for e in await rig.engine.open_exceptions()}
    assert billing_total != "1.00"
    # the right correction (billing's lines, the default) fixes it
    result = await rig.service.execute(await rig.service.plan(ActionRequest(ActionKind.CORRECT, exc.id,
                                                                            reason="billing's lines")))
    assert result.status is ActionStatus.SUCCEEDED and result.verified


# -- accepted differences --------------------------------------------------------------------------
async def test_accept_hides_until_the_data_changes(rig: Rig) -> None:
    rig.service.set_operator(SUPPORT)
    exc = await rig.one("entitlement.tier_mismatch")
    no_reason = await rig.service.plan(ActionRequest(ActionKind.ACCEPT, exc.id,
                                                     value={"expires_at": "2099-01-01T00:00:00+00:00"}))
    assert not no_reason.ok and "reason" in no_reason.explanation
    no_expiry = await rig.service.plan(ActionRequest(ActionKind.ACCEPT, exc.id, reason="contract"))
    assert not no_expiry.ok and "expiry" in no_expiry.explanation
    plan = await rig.service.plan(ActionRequest(ActionKind.ACCEPT, exc.id, reason="grandfathered contract",
                                                value={"expires_at": "2099-01-01T00:00:00+00:00"}))
    assert plan.ok and plan.calls == []
    result = await rig.service.execute(plan)
    assert result.status is ActionStatus.SUCCEEDED
    assert exc.id not in {e.id for e in await rig.engine.open_exceptions()}
    assert exc.id in {e.id for e in await rig.engine.open_exceptions(include_hidden=True)}
    assert exc.id in rig.service.accepted_ids()
    # the data changes: another (still wrong) tier in the help desk -> the exception reopens
    support = rig.env.dataset.support
    org = support.organizations[support.orgs_by_external_id[exc.customer_id or ""]]
    current = org["organization_fields"]["support_tier"]
    granted = next(s.values["tier"] for s in exc.sides if s.system is System.BILLING)
    other = next(t for t in ("standard", "premium", "enterprise") if t not in (current, granted))
    with support.lock:
        org["organization_fields"]["support_tier"] = other
        org["updated_at"] = rig.env.now()
    await rig.engine.refresh(RefreshMode.FULL)
    await rig.engine.reconcile()
    reopened = {e.id: e for e in await rig.engine.open_exceptions()}
    assert exc.id in reopened
    assert exception_fingerprint(reopened[exc.id]) != exception_fingerprint(exc)


async def test_accept_expires(tmp_path: Path) -> None:
    now = [datetime(2026, 6, 1, tzinfo=UTC)]
    rig = await make_rig(tmp_path, clock=lambda: now[0])
    try:
        exc = await rig.one("invoice.payment_state")
        expires = (now[0] + timedelta(hours=1)).isoformat()
        result = await rig.service.execute(await rig.service.plan(
            ActionRequest(ActionKind.ACCEPT, exc.id, reason="paid by wire, booked later",
                          value={"expires_at": expires})))
        assert result.status is ActionStatus.SUCCEEDED
        assert exc.id not in {e.id for e in await rig.engine.open_exceptions()}
        now[0] += timedelta(hours=2)
        assert exc.id in {e.id for e in await rig.engine.open_exceptions()}
        past = await rig.service.plan(ActionRequest(ActionKind.ACCEPT, exc.id, reason="again",
                                                    value={"expires_at": expires}))
        assert not past.ok and "in the past" in past.explanation
        con = sqlite3.connect(rig.audit_db)
        assert con.execute("select reason, operator from accepted_difference").fetchall() == [
            ("paid by wire, booked later", FINANCE.name)]
        con.close()
    finally:
        await rig.close()


# -- Tryton warnings are never acknowledged silently -----------------------------------------------
async def test_warning_fails_then_acknowledged_rerun_posts(rig: Rig) -> None:
    exc = await rig.one("invoice.missing_in_erp")
    # 60 days later an invoice dated at the anchor is overdue: posting it raises a warning
    rig.env._started -= 60 * 86400
    anchor_day = datetime.fromtimestamp(rig.env.dataset.anchor, UTC).date().isoformat()
    plan = await rig.service.plan(ActionRequest(ActionKind.RETRY, exc.id, value={"invoice_date": anchor_day}))
    assert plan.ok, plan.explanation
    result = await rig.service.execute(plan)
    assert result.status is ActionStatus.FAILED
    assert "asks for a confirmation" in result.message and "payment date" in result.message
    name = result.after["warning"]
    assert name.endswith(".invoice_payment_term")
    live = rig.live_erp_invoices(exc.object_id)
    assert len(live) == 1 and live[0]["state"] == "draft", "nothing posted"
    ack = await rig.service.plan(ActionRequest(ActionKind.RETRY, exc.id, reason="overdue, confirmed with AR",
                                               value={"invoice_date": anchor_day, "acknowledge_warning": name}))
    assert ack.ok and ack.idempotency_key != plan.idempotency_key
    assert ack.calls[0].body["method"] == "model.res.user.warning.create"
    done = await rig.service.execute(ack)
    assert done.status is ActionStatus.SUCCEEDED, done.message
    live = rig.live_erp_invoices(exc.object_id)
    assert len(live) == 1 and live[0]["state"] == "posted"


# -- the outbox ------------------------------------------------------------------------------------
async def test_failed_action_is_pending_retryable_and_cancellable(rig: Rig) -> None:
    exc = await rig.one("invoice.missing_in_erp")
    rig.env.injectors[System.ERP].config.error_rate = 1.0
    result = await rig.service.execute(await rig.service.plan(ActionRequest(ActionKind.RETRY, exc.id)))
    assert result.status is ActionStatus.FAILED
    items = rig.service.pending()
    assert [(i.action_id, i.status) for i in items] == [(result.action_id, ActionStatus.FAILED)]
    assert items[0].operator == FINANCE.name and items[0].role == "finance" and items[0].last_error
    rig.env.injectors[System.ERP].config.error_rate = 0.0
    again = await rig.service.retry_failed(result.action_id)
    assert again.action_id == result.action_id and again.status is ActionStatus.SUCCEEDED
    assert rig.service.pending() == []
    with pytest.raises(ActionConflict):
        await rig.service.cancel_pending(result.action_id)
    # a failed one can be cancelled (audited)
    exc2 = (await rig.open_of("invoice.missing_in_erp"))[0]
    rig.env.injectors[System.ERP].config.error_rate = 1.0
    failed = await rig.service.execute(await rig.service.plan(ActionRequest(ActionKind.RETRY, exc2.id)))
    rig.env.injectors[System.ERP].config.error_rate = 0.0
    await rig.service.cancel_pending(failed.action_id)
    assert rig.service.pending() == []
    assert audit_rows(rig)[-1]["outcome"] == "cancelled"
    assert rig.audit.verify().ok


async def test_bulk_reports_progress_and_each_result(rig: Rig) -> None:
    excs = [*(await rig.open_of("invoice.missing_in_erp")), *(await rig.open_of("invoice.payment_state"))]
    seen: list[int] = []
    reqs = [ActionRequest(ActionKind.RETRY if e.rule == "invoice.missing_in_erp" else ActionKind.FLAG, e.id,
                          reason="weekly review") for e in excs]
    result = await rig.service.bulk(reqs, lambda p: seen.append(p.done))
    assert not result.cancelled and result.succeeded == len(excs) and result.ok
    assert sorted(seen) == list(range(1, len(excs) + 1))


async def test_push_and_correct_follow_the_configured_ownership(rig: Rig) -> None:
    """With a custom ownership (billing owns the tax id), a push never overwrites billing's tax
    id with the ERP's, and a correction never writes the owner; the default owner still pushes."""
    rig.engine.config = replace(rig.engine.config,
                                ownership={**DEFAULT_OWNERSHIP, "customer.tax_id": System.BILLING})
    drifts = await rig.open_of("customer.master_drift")

    def billing_values(exc: SyncException) -> dict[str, Any]:
        return next(s.values for s in exc.sides if s.system is System.BILLING)

    tax = next(e for e in drifts if "tax_id" in billing_values(e))
    plan = await rig.service.plan(ActionRequest(ActionKind.PUSH, tax.id))
    assert not plan.ok
    assert "tax id is owned by billing" in plan.explanation and "would overwrite the owner" in plan.explanation
    plan = await rig.service.plan(ActionRequest(ActionKind.CORRECT, tax.id, reason="billing is right",
                                                value={"target": "billing", "tax_id": "DE000"}))
    assert not plan.ok and plan.explanation.startswith("billing owns tax id")
    # a field the ERP still owns is pushed as before
    name_only = next(e for e in drifts if set(billing_values(e)) == {"name"})
    plan = await rig.service.plan(ActionRequest(ActionKind.PUSH, name_only.id))
    assert plan.ok, plan.explanation
    assert [s.to_json()["fields"] for s in plan.steps if s.op == "billing.update_customer"] == [
        {"name": next(s.values["name"] for s in name_only.sides if s.system is System.ERP)}]
