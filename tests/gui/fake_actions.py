"""Shared pieces of the action-view GUI tests: exceptions, outbox items and audit entries to show,
``FakeActionService`` (the public API of services.actions.service.ActionService, scripted per
test), and small helpers (render to PNG, let tasks run, wait for a condition).

The fixtures built on them (``service``, ``adapter``) are in ``tests/gui/conftest.py``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QApplication, QLabel, QWidget

from services.actions.model import (
    ActionKind,
    ActionRequest,
    ActionResult,
    ActionStatus,
    BulkProgress,
    BulkResult,
    Check,
    Operator,
    OutboxItem,
    Plan,
    PlannedCall,
    Role,
)
from services.actions.roles import action_verdict, role_check
from services.core.domain import ExternalRef, Severity, Side, SyncException, System, Team
from services.core.reconcile import ReconcileConfig
from services.store.audit import AuditEntry
from tests.gui.live_loop import save_png

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HOSTILE = "<b>x</b> & <i>y</i> <img src=q>"
SECRET = "sk_test_51SuperSecretKeyDoNotShow"
ALICE = Operator("alice", Role.FINANCE)

#: what an engine with the default configuration enforces (``engine.config.ownership``)
OWNERSHIP = ReconcileConfig().ownership


# -- exceptions, plans, a fake service --------------------------------------------------------
def amount_mismatch(n: int = 1, summary: str = "in_1: total 100.00 EUR in billing, 90.00 EUR in the ERP"
                    ) -> SyncException:
    return SyncException(
        id=f"invoice.amount_mismatch:in_{n}", rule="invoice.amount_mismatch", severity=Severity.HIGH,
        owner=Team.FINANCE, customer_id=f"cus_{n}", object_id=f"in_{n}", summary=summary,
        sides=[Side(System.BILLING, ExternalRef(System.BILLING, "invoice", f"in_{n}"),
                    {"status": "paid", "total": "100.00", "currency": "EUR", "number": f"INV-{n}"}),
               Side(System.ERP, ExternalRef(System.ERP, "account.invoice", str(n)),
                    {"state": "draft", "total": "90.00", "currency": "EUR", "number": f"E-{n}"})],
        first_seen=NOW - timedelta(hours=5), last_seen=NOW, fix_actions=("correct", "accept"))


def unmapped(n: int = 2) -> SyncException:
    cands = [{"ref": "erp:party.party:7", "id": "7", "name": "Acme GmbH", "score": 5,
              "reasons": ["same tax id", "same email domain"]},
             {"ref": "erp:party.party:9", "id": "9", "name": "ACME", "score": 1, "reasons": ["same name"]}]
    return SyncException(
        id=f"customer.unmapped_erp:cus_{n}", rule="customer.unmapped_erp", severity=Severity.MEDIUM,
        owner=Team.FINANCE, customer_id=f"cus_{n}", object_id=f"cus_{n}", summary="Acme: no ERP party",
        sides=[Side(System.BILLING, ExternalRef(System.BILLING, "customer", f"cus_{n}"),
                    {"name": "Acme", "tax_id": "DE123", "email": "a@acme.test", "country": "DE"}),
               Side(System.ERP, None, {"party": None, "candidates": cands})],
        first_seen=NOW - timedelta(days=2), last_seen=NOW, fix_actions=("create", "link"))


def missing_in_erp(n: int) -> SyncException:
    return SyncException(
        id=f"invoice.missing_in_erp:in_{n}", rule="invoice.missing_in_erp", severity=Severity.HIGH,
        owner=Team.FINANCE, customer_id=f"cus_{n}", object_id=f"in_{n}", summary=f"in_{n} never reached the ERP",
        sides=[Side(System.BILLING, ExternalRef(System.BILLING, "invoice", f"in_{n}"), {"total": "10.00"}),
               Side(System.ERP, None, {"invoice": None})],
        first_seen=NOW - timedelta(hours=2), last_seen=NOW, fix_actions=("retry",))


def tier_mismatch(n: int) -> SyncException:
    return SyncException(
        id=f"entitlement.tier_mismatch:cus_{n}", rule="entitlement.tier_mismatch", severity=Severity.MEDIUM,
        owner=Team.SUPPORT, customer_id=f"cus_{n}", object_id=f"org_{n}", summary="tier differs",
        sides=[Side(System.BILLING, None, {"tier": "premium"}),
               Side(System.SUPPORT, ExternalRef(System.SUPPORT, "organization", str(n)), {"tier": "standard"})],
        first_seen=NOW - timedelta(hours=2), last_seen=NOW, fix_actions=("push", "accept"))


class FakeActionService:
    """The public API of services.actions.service.ActionService, scripted per test — for fast widget
    tests only (tests/gui/test_jobs_live.py drives the real service). Who may act, and every
    refusal text, come from the service's own role logic (``action_verdict``, ``role_check``):
    the fake never words a refusal itself."""

    def __init__(self, exceptions: list[SyncException], operator: Operator = ALICE) -> None:
        self.operator = operator
        self.exceptions = {e.id: e for e in exceptions}
        self.planned: list[ActionRequest] = []
        self.executed: list[Plan] = []
        self.fail_checks: dict[str, Check] = {}  # exception id -> failing check
        self.status = ActionStatus.SUCCEEDED
        self.verified = True
        self.message = "ERP invoice 1 now totals 100.00 EUR"
        self.body_extra: dict[str, Any] = {}
        self.path_suffix = ""
        self.outbox: list[OutboxItem] = []
        self.cancelled: list[str] = []
        self.retried: list[str] = []
        self.bulk_gate: asyncio.Event | None = None
        self.bulk_started = 0
        self.plan_gate: asyncio.Event | None = None
        self.execute_gate: asyncio.Event | None = None
        self.warning = ""
        #: what a succeeded execution reports as written and re-read (ActionResult.after)
        self.after: dict[str, Any] = {}

    def set_operator(self, op: Operator) -> None:
        self.operator = op

    def allowed_actions(self, exc: SyncException) -> list[tuple[ActionKind, bool, str]]:
        """The fixes the exception lists, each judged by the service's role and refusal logic."""
        out = []
        for action in exc.fix_actions:
            try:
                kind = ActionKind(action)
            except ValueError:
                continue
            out.append(action_verdict(exc, kind, self.operator))
        return out

    async def plan(self, req: ActionRequest) -> Plan:
        self.planned.append(req)
        if self.plan_gate is not None:
            await self.plan_gate.wait()
        await asyncio.sleep(0)
        exc = self.exceptions[req.exception_id]
        checks = [Check("mapping", True, "ERP invoice 1 carries in_1"),
                  role_check(exc, self.operator),  # the service's own role check and words
                  Check("reachable", True, "ERP answered in 12 ms")]
        if req.exception_id in self.fail_checks:
            checks.insert(1, self.fail_checks[req.exception_id])
        if req.kind in (ActionKind.CORRECT, ActionKind.ACCEPT, ActionKind.FLAG) and not req.reason.strip():
            checks.append(Check("reason", False, "a correction needs a reason"))
            return Plan(req, exc, self.operator, checks, [], f"key-{req.exception_id}", {}, {})
        body = {"method": "model.account.invoice.write", "params": [[1], {"total": "100.00"}],
                "value": req.value, **self.body_extra}
        calls = [PlannedCall(System.ERP, "POST", "/tryton/rpc/" + self.path_suffix, body,
                             "write the billing total to the draft ERP invoice"),
                 PlannedCall(System.ERP, "POST", "/tryton/rpc/", {"method": "model.account.invoice.read"},
                             "re-read the invoice to verify")]
        notes = [f"acknowledges the ERP warning {req.value['acknowledge_warning']} once (audited)"] \
            if req.value and "acknowledge_warning" in req.value else []
        return Plan(request=req, exception=exc, operator=self.operator, checks=checks, calls=calls,
                    idempotency_key=f"key-{req.exception_id}", before={"total": "90.00"},
                    expected_after={"total": "100.00"}, notes=notes)

    async def execute(self, plan: Plan) -> ActionResult:
        self.executed.append(plan)
        if self.execute_gate is not None:
            await self.execute_gate.wait()
        await asyncio.sleep(0)
        if self.warning and not (plan.request.value or {}).get("acknowledge_warning"):
            return ActionResult(f"act_{len(self.executed)}", plan.request.kind, plan.request.exception_id,
                                ActionStatus.FAILED, f"the ERP asks for a confirmation: due date in the past. "
                                f"re-run with acknowledge_warning={self.warning!r}", after={"warning": self.warning})
        return ActionResult(action_id=f"act_{len(self.executed)}", kind=plan.request.kind,
                            exception_id=plan.request.exception_id, status=self.status, message=self.message,
                            verified=self.verified, after=dict(self.after))

    async def bulk(self, reqs: list[ActionRequest], progress: Any) -> BulkResult:
        results: list[ActionResult] = []
        counts = {"succeeded": 0, "failed": 0, "queued": 0}
        try:
            for i, req in enumerate(reqs):
                progress(BulkProgress(done=i, total=len(reqs), succeeded=counts["succeeded"],
                                      failed=counts["failed"], queued=counts["queued"], current=req.exception_id))
                self.bulk_started += 1
                if self.bulk_gate is not None:
                    await self.bulk_gate.wait()
                    self.bulk_gate.clear()
                await asyncio.sleep(0)
                status = ActionStatus.FAILED if i % 3 == 1 else ActionStatus.SUCCEEDED
                counts[status.value] += 1
                results.append(ActionResult(f"act_b{i}", req.kind, req.exception_id, status,
                                            f"ERP said: {HOSTILE}" if status is ActionStatus.FAILED else "ok",
                                            verified=status is ActionStatus.SUCCEEDED))
                progress(BulkProgress(done=i + 1, total=len(reqs), succeeded=counts["succeeded"],
                                      failed=counts["failed"], queued=counts["queued"], current=req.exception_id))
        except asyncio.CancelledError:
            results += [ActionResult("", r.kind, r.exception_id, ActionStatus.CANCELLED,
                                     "not started: the bulk action was cancelled") for r in reqs[len(results):]]
            return BulkResult(results=results, cancelled=True)
        return BulkResult(results=results, cancelled=False)

    def pending(self) -> list[OutboxItem]:
        return list(self.outbox)

    async def cancel_pending(self, action_id: str) -> None:
        self.cancelled.append(action_id)
        self.outbox = [o for o in self.outbox if o.action_id != action_id]

    async def retry_failed(self, action_id: str) -> ActionResult:
        self.retried.append(action_id)
        item = next(o for o in self.outbox if o.action_id == action_id)
        self.outbox = [o for o in self.outbox if o.action_id != action_id]
        return ActionResult(action_id, item.kind, item.exception_id, ActionStatus.SUCCEEDED, "done", verified=True)


def outbox_item(n: int, status: ActionStatus, error: str | None = None) -> OutboxItem:
    return OutboxItem(action_id=f"act_{n}", kind=ActionKind.RETRY, status=status, operator="alice",
                      role="finance", exception_id=f"invoice.missing_in_erp:in_{n}", customer_id=f"cus_{n}",
                      target_system="erp", reason="month-end close", attempts=n % 4, last_error=error,
                      created_at=NOW - timedelta(minutes=n), updated_at=NOW - timedelta(minutes=n // 2))


def shot(widget: QWidget, tmp_path: Path, name: str) -> Path:
    """Render ``widget`` to a PNG (also into $SYNCDESK_SHOTS when set, for a human to look at)."""
    widget.show()
    QApplication.processEvents()  # pending layout requests (no loop runs them in these tests)
    return save_png(widget.grab(), tmp_path, name)


async def settle(n: int = 8) -> None:
    """Let the tasks started by clicks run a few steps (no Qt event loop needed)."""
    for _ in range(n):
        await asyncio.sleep(0)


def visible_texts(widget: QWidget) -> list[str]:
    return [lab.text() for lab in widget.findChildren(QLabel)]


def master_drift(n: int = 3) -> SyncException:
    return SyncException(
        id=f"customer.master_drift:cus_{n}", rule="customer.master_drift", severity=Severity.MEDIUM,
        owner=Team.FINANCE, customer_id=f"cus_{n}", object_id=f"cus_{n}",
        summary="Acme GmbH: name, tax_id differ from the ERP (owner)",
        sides=[Side(System.ERP, ExternalRef(System.ERP, "party.party", "3"),
                    {"name": "Acme GmbH", "tax_id": "DE123", "country": "DE", "owner": True}),
               Side(System.BILLING, ExternalRef(System.BILLING, "customer", f"cus_{n}"),
                    {"name": "Acme", "tax_id": "DE 123"}),
               Side(System.SUPPORT, ExternalRef(System.SUPPORT, "organization", "8"), {"name": "ACME"})],
        first_seen=NOW - timedelta(days=1), last_seen=NOW, fix_actions=("push",))


def sample_entries() -> list[AuditEntry]:
    out = []
    for i in range(1, 7):
        intent = i % 2 == 1
        out.append(AuditEntry(
            operator="alice" if i < 5 else HOSTILE, role="finance", action_id=f"act_{(i + 1) // 2}",
            action_kind="correct", phase="intent" if intent else "outcome",
            outcome="pending" if intent else ("failed" if i == 4 else "succeeded"),
            exception_id="invoice.amount_mismatch:in_1", customer_id="cus_1", target_system="erp",
            request={"calls": [{"method": "POST", "path": "/tryton/rpc/", "body": {"total": "100.00"}},
                               {"method": "POST", "path": "/tryton/rpc/", "body": {}}]},
            before={"total": "90.00"}, after={} if intent else {"total": "100.00"},
            error="ERP said no" if i == 4 else None, reason="billing is the owner",
            at=NOW + timedelta(minutes=i), seq=i, prev_hash=f"{i - 1:064d}", hash=f"{i:064x}"))
    return list(reversed(out))


async def until(cond: Any, seconds: float = 5.0) -> None:
    """Poll ``cond`` (the work it waits for runs in worker threads, which signal nothing else)."""
    for _ in range(int(seconds / 0.01)):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")
