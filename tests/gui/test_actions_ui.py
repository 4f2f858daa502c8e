"""GUI tests for actions in the UI: fix dialog, bulk, pending actions, audit page, operator.

The action service is faked at its public API (``FakeActionService``); flows that await run on
pytest-asyncio's plain loop and are driven by clicking real widgets — no ``exec()``, no
``qtbot.waitSignal`` inside the running loop. Widgets are rendered to PNG (``tmp_path``, or
``$SYNCDESK_SHOTS`` when set, to look at them).
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QFileDialog, QLabel, QPushButton, QWidget
from pytestqt.qtbot import QtBot

from services.actions.service import (
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
    action_verdict,
    auditor_refusal,
    role_check,
)
from services.core.domain import ExternalRef, Severity, Side, SyncException, System, Team
from services.core.redaction import MASK, register_secret
from services.store.audit import AuditEntry, AuditFilter, AuditLog, VerifyResult
from services.store.storage import Storage
from views.action_adapter import ActionAdapter
from views.actions_ui import (
    AUDITOR_TIP,
    BulkDialog,
    FixDialog,
    FixLauncher,
    OperatorWidget,
    PendingActionsPage,
    PendingModel,
    apply_fix_permissions,
    bulk_eligible,
    fix_policy,
    run_fix,
)
from views.audit_page import AuditModel, AuditPage, entry_detail, request_summary

pytestmark = pytest.mark.gui

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HOSTILE = "<b>x</b> & <i>y</i> <img src=q>"
SECRET = "sk_test_51SuperSecretKeyDoNotShow"
ALICE = Operator("alice", Role.FINANCE)


# -- fixtures: exceptions, plans, a fake service -----------------------------------------------
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
                            verified=self.verified)

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
    path = tmp_path / f"{name}.png"
    pix = widget.grab()
    assert pix.save(str(path))
    extra = os.environ.get("SYNCDESK_SHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        assert pix.save(str(Path(extra) / f"{name}.png"))
    return path


async def settle(n: int = 8) -> None:
    """Let the tasks started by clicks run a few steps (no Qt event loop needed)."""
    for _ in range(n):
        await asyncio.sleep(0)


def visible_texts(widget: QWidget) -> list[str]:
    return [lab.text() for lab in widget.findChildren(QLabel)]


@pytest.fixture
def service() -> FakeActionService:
    return FakeActionService([amount_mismatch(), unmapped(), *[missing_in_erp(n) for n in range(10, 16)],
                              tier_mismatch(30)])


@pytest.fixture
async def adapter(service: FakeActionService):  # type: ignore[no-untyped-def]
    a = ActionAdapter(service)  # type: ignore[arg-type]
    yield a
    await a.aclose()


# -- the fix dialog (widgets) -------------------------------------------------------------------
async def test_fix_dialog_shows_checks_preview_and_value_editors(qtbot: QtBot, service: FakeActionService,
                                                                 tmp_path: Path) -> None:
    exc = amount_mismatch()
    dialog = FixDialog(exc, ActionKind.CORRECT, ALICE, today=NOW)
    qtbot.addWidget(dialog)
    requested: list[Any] = []
    dialog.request_changed.connect(requested.append)
    # the editor holds the owner's (billing's) currency; the lines come from billing
    assert list(dialog.value_edits) == ["currency"]
    assert dialog.value_edits["currency"].text() == "EUR"
    # a correction's preflight checks the reason: no preview until one is given
    assert not dialog.request_complete()
    assert "Give a reason" in dialog.banner.text()
    assert not dialog.confirm_button.isEnabled()
    shot(dialog, tmp_path, "fix-dialog-correct-empty")
    dialog.reason_edit.setText("billing total is right")
    assert not requested  # typing waits for a pause…
    dialog.flush_edits()  # …which the timer ends
    assert requested[-1] == ActionRequest(ActionKind.CORRECT, exc.id, "billing total is right", {"currency": "EUR"})
    assert not dialog.confirm_button.isEnabled()  # no plan yet
    dialog.set_plan(await service.plan(requested[-1]))
    assert dialog.checks.rowCount() == 3
    assert dialog.checks.item(0, 0).text() == "✓ mapping"
    assert dialog.calls.rowCount() == 2
    assert dialog.calls.item(0, 1).text() == "POST"
    assert dialog.calls.item(0, 2).text() == "/tryton/rpc/"
    assert dialog.body.isReadOnly()
    body = dialog.body.toPlainText()
    assert '"method": "model.account.invoice.write"' in body and "expected after" in body
    assert "Preflight passed" in dialog.banner.text()
    assert dialog.banner.tone == "ok"
    assert dialog.confirm_button.isEnabled()
    # editing the value makes the preview stale until it is planned again
    dialog.value_edits["currency"].setText("")
    dialog.value_edits["currency"].textEdited.emit("")
    assert not dialog.confirm_button.isEnabled()
    dialog.value_edits["currency"].setText("usd")
    dialog.value_edits["currency"].textEdited.emit("usd")
    dialog.flush_edits()
    assert requested[-1].value == {"currency": "usd"}
    assert not dialog.confirm_button.isEnabled()
    dialog.set_plan(await service.plan(requested[-1]))
    assert dialog.confirm_button.isEnabled()
    # clearing the reason blocks again
    dialog.reason_edit.setText("")
    assert not dialog.confirm_button.isEnabled()
    assert "Give a reason" in dialog.missing()
    dialog.reason_edit.setText("billing total is right")
    dialog.flush_edits()
    dialog.set_plan(await service.plan(requested[-1]))
    shot(dialog, tmp_path, "fix-dialog-correct")


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


def test_correct_master_data_writes_a_copy_prefilled_from_the_erp(qtbot: QtBot, tmp_path: Path) -> None:
    dialog = FixDialog(master_drift(), ActionKind.CORRECT, ALICE, today=NOW)
    qtbot.addWidget(dialog)
    assert dialog.target_combo is not None
    assert [dialog.target_combo.itemData(i) for i in range(dialog.target_combo.count())] == ["billing", "support"]
    assert {k: e.text() for k, e in dialog.value_edits.items()} == {
        "name": "Acme GmbH", "tax_id": "DE123", "country": "DE"}
    dialog.reason_edit.setText("legal name changed")
    assert dialog.request().value == {"target": "billing", "name": "Acme GmbH", "tax_id": "DE123", "country": "DE"}
    requested: list[Any] = []
    dialog.request_changed.connect(requested.append)
    dialog.target_combo.setCurrentIndex(1)  # the support organization holds only the name
    assert requested[-1].value == {"target": "support", "name": "Acme GmbH"}
    assert not dialog.value_edits["tax_id"].isEnabled()
    shot(dialog, tmp_path, "fix-dialog-correct-master")


def test_retry_may_choose_the_invoice_date(qtbot: QtBot) -> None:
    dialog = FixDialog(missing_in_erp(10), ActionKind.RETRY, ALICE, today=NOW)
    qtbot.addWidget(dialog)
    assert dialog.value_box.isVisibleTo(dialog)
    assert dialog.value() is None
    requested: list[Any] = []
    dialog.request_changed.connect(requested.append)
    assert dialog.date_check is not None and dialog.date_edit is not None
    dialog.date_check.setChecked(True)
    assert requested[-1].value == {"invoice_date": "2025-03-01"}


async def test_fix_dialog_failed_preflight_is_explained_and_blocks(qtbot: QtBot, service: FakeActionService,
                                                                   tmp_path: Path) -> None:
    exc = amount_mismatch()
    service.fail_checks[exc.id] = Check("currency", False, "ERP invoice is in USD, billing in EUR")
    dialog = FixDialog(exc, ActionKind.CORRECT, ALICE, today=NOW)
    qtbot.addWidget(dialog)
    dialog.reason_edit.setText("fix it")
    dialog.set_plan(await service.plan(dialog.request()))
    assert dialog.banner.tone == "bad"
    assert dialog.banner.text().count("ERP invoice is in USD") == 1  # named and explained once
    assert "Preflight failed" in dialog.banner.text()
    assert "currency: ERP invoice is in USD, billing in EUR" in dialog.banner.text()
    bad = dialog.checks.item(1, 0)
    assert bad.text() == "✗ currency"
    assert bad.foreground().color().name() == "#d0453b"
    assert dialog.checks.item(1, 1).text() == "ERP invoice is in USD, billing in EUR"
    assert not dialog.confirm_button.isEnabled()
    assert dialog.missing() == "the preflight failed"
    shot(dialog, tmp_path, "fix-dialog-preflight-failed")


async def test_link_needs_a_candidate_and_names_it(qtbot: QtBot, service: FakeActionService,
                                                   tmp_path: Path) -> None:
    exc = unmapped()
    dialog = FixDialog(exc, ActionKind.LINK, ALICE, today=NOW)
    qtbot.addWidget(dialog)
    assert dialog.candidate_list is not None
    assert dialog.candidate_list.topLevelItemCount() == 2
    assert dialog.candidate_list.topLevelItem(0).text(0) == "Acme GmbH (erp:party.party:7)"
    assert not dialog.request_complete()
    assert "Pick a candidate" in dialog.banner.text()
    assert not dialog.confirm_button.isEnabled()
    requested: list[Any] = []
    dialog.request_changed.connect(requested.append)
    dialog.candidate_list.setCurrentItem(dialog.candidate_list.topLevelItem(1))
    assert requested[-1].value == {"candidate": "erp:party.party:9"}
    assert requested[-1].kind == ActionKind.LINK
    dialog.set_plan(await service.plan(requested[-1]))
    assert dialog.confirm_button.isEnabled()  # the reason is optional for LINK
    assert dialog.request().value == {"candidate": "erp:party.party:9"}
    shot(dialog, tmp_path, "fix-dialog-link")


async def test_accept_has_expiry_thirty_days_ahead_and_requires_reason(qtbot: QtBot, service: FakeActionService,
                                                                      tmp_path: Path) -> None:
    dialog = FixDialog(amount_mismatch(), ActionKind.ACCEPT, ALICE, today=NOW)
    qtbot.addWidget(dialog)
    assert dialog.expiry_edit is not None
    assert dialog.expiry_edit.date().toPython() == (NOW + timedelta(days=30)).date()
    assert dialog.value() == {"expires_at": "2025-03-31T00:00:00+00:00"}
    assert dialog.expiry_edit.minimumDate().toPython() == (NOW + timedelta(days=1)).date()
    assert not dialog.request_complete() and not dialog.confirm_button.isEnabled()
    dialog.reason_edit.setText("credit note agreed with the customer")
    dialog.set_plan(await service.plan(dialog.request()))
    assert dialog.confirm_button.isEnabled()
    requested: list[Any] = []
    dialog.request_changed.connect(requested.append)
    dialog.expiry_edit.setDate(dialog.expiry_edit.date().addDays(10))
    assert requested[-1].value == {"expires_at": "2025-04-10T00:00:00+00:00"}
    assert requested[-1].reason == "credit note agreed with the customer"
    assert not dialog.confirm_button.isEnabled()  # stale until re-planned
    shot(dialog, tmp_path, "fix-dialog-accept")


async def test_credit_repost_is_titled_explained_and_requires_a_reason(qtbot: QtBot,
                                                                      service: FakeActionService) -> None:
    dialog = FixDialog(amount_mismatch(), ActionKind.CREDIT_REPOST, ALICE, today=NOW)
    qtbot.addWidget(dialog)
    assert dialog.title.text() == "Credit + repost — invoice.amount_mismatch"
    assert "credit note" in dialog.hint.text() and "Finance only" in dialog.hint.text()
    assert not dialog.value_box.isVisibleTo(dialog) and dialog.value() is None
    assert not dialog.request_complete() and not dialog.confirm_button.isEnabled()
    dialog.reason_edit.setText("posted with the wrong seat count")
    assert dialog.request_complete()


async def test_reason_is_optional_for_retry(qtbot: QtBot, service: FakeActionService) -> None:
    """A retry (finance) and a push (support: the tier exception is theirs) confirm without a reason."""
    for exc, kind, operator in ((missing_in_erp(10), ActionKind.RETRY, ALICE),
                                (tier_mismatch(30), ActionKind.PUSH, Operator("sam", Role.SUPPORT))):
        service.set_operator(operator)
        dialog = FixDialog(exc, kind, operator, today=NOW)
        qtbot.addWidget(dialog)
        assert kind is ActionKind.RETRY or not dialog.value_box.isVisibleTo(dialog)  # a retry may pick a date
        assert dialog.reason() == "" and dialog.request_complete()
        dialog.set_plan(await service.plan(dialog.request()))
        assert dialog.confirm_button.isEnabled(), dialog.missing()
        assert dialog.request().value is None and dialog.request().reason == ""


async def test_hostile_text_is_shown_verbatim_and_secrets_never(qtbot: QtBot, service: FakeActionService,
                                                                tmp_path: Path) -> None:
    register_secret(SECRET)
    exc = amount_mismatch(summary=HOSTILE)
    service.exceptions[exc.id] = exc
    service.body_extra = {"note": f"key {SECRET}", "api_key": "********"}
    service.path_suffix = HOSTILE
    dialog = FixDialog(exc, ActionKind.CORRECT, Operator(HOSTILE, Role.FINANCE), today=NOW)
    qtbot.addWidget(dialog)
    dialog.reason_edit.setText(HOSTILE)
    dialog.set_plan(await service.plan(dialog.request()))
    assert dialog.summary_label.text() == HOSTILE
    assert dialog.summary_label.textFormat() == Qt.TextFormat.PlainText
    assert all(lab.textFormat() == Qt.TextFormat.PlainText for lab in dialog.findChildren(QLabel)
               if lab.text() and lab.pixmap().isNull() is not False and lab.text() != "")
    assert HOSTILE in dialog.operator_label.text()
    assert dialog.calls.item(0, 2).text() == "/tryton/rpc/" + HOSTILE
    assert SECRET not in dialog.body.toPlainText()
    assert MASK in dialog.body.toPlainText()
    dialog.show_result(ActionResult("act_9", ActionKind.CORRECT, exc.id, ActionStatus.FAILED,
                                    f"ERP said {HOSTILE} with {SECRET}"))
    assert HOSTILE in dialog.result_banner.text()
    assert SECRET not in dialog.result_banner.text()
    for text in visible_texts(dialog):
        assert SECRET not in text
    shot(dialog, tmp_path, "fix-dialog-hostile-failed")


# -- the fix flow (awaited without nested loops) -------------------------------------------------
async def test_run_fix_confirms_executes_and_shows_verified_result(qtbot: QtBot, service: FakeActionService,
                                                                   adapter: ActionAdapter, tmp_path: Path) -> None:
    exc = amount_mismatch()
    dialog = FixDialog(exc, ActionKind.CORRECT, adapter.operator, today=NOW)
    qtbot.addWidget(dialog)
    dialog.show()
    results: list[Any] = []
    adapter.result.connect(results.append)
    flow = asyncio.ensure_future(run_fix(adapter, dialog))
    await settle()
    assert dialog.plan is None and service.planned == []  # a correction needs a reason first
    assert not dialog.confirm_button.isEnabled()
    dialog.reason_edit.setText("billing is the owner")
    dialog.flush_edits()
    await settle()
    assert dialog.plan is not None and dialog.state == "ready"
    assert dialog.confirm_button.isEnabled()
    service.execute_gate = asyncio.Event()
    qtbot.mouseClick(dialog.confirm_button, Qt.MouseButton.LeftButton)
    await settle()
    # busy while writing: no confirm, no cancel, closing is refused
    assert dialog.state == "busy"
    assert not dialog.cancel_button.isEnabled()
    assert dialog.busy_bar.isVisible()
    shot(dialog, tmp_path, "fix-dialog-busy")
    dialog.reject()
    assert dialog.isVisible()
    service.execute_gate.set()
    result = await asyncio.wait_for(flow, 2)
    assert result is not None and result.status == ActionStatus.SUCCEEDED
    assert len(service.executed) == 1
    assert service.executed[0].request.reason == "billing is the owner"
    assert service.executed[0].request.value == {"currency": "EUR"}
    assert results == [result]
    assert dialog.result_banner.isVisible()
    assert "verified" in dialog.result_banner.text()
    assert dialog.result_banner.tone == "ok"
    assert not dialog.confirm_button.isVisible()
    assert dialog.cancel_button.text() == "Close" and dialog.cancel_button.isEnabled()
    assert not dialog.busy_bar.isVisible()
    shot(dialog, tmp_path, "fix-dialog-done")
    dialog.cancel_button.click()
    assert not dialog.isVisible()


@pytest.mark.parametrize(("status", "verified", "tone", "words"), [
    (ActionStatus.QUEUED, False, "info", "Queued"),
    (ActionStatus.FAILED, False, "bad", "Failed"),
    (ActionStatus.SUCCEEDED, False, "warn", "not verified"),
])
async def test_run_fix_shows_queued_failed_unverified(qtbot: QtBot, service: FakeActionService,
                                                      adapter: ActionAdapter, status: Any, verified: bool,
                                                      tone: str, words: str) -> None:
    service.status, service.verified, service.message = status, verified, "ERP unreachable: connect timeout"
    dialog = FixDialog(missing_in_erp(10), ActionKind.RETRY, adapter.operator, today=NOW)
    qtbot.addWidget(dialog)
    dialog.show()
    flow = asyncio.ensure_future(run_fix(adapter, dialog))
    await settle()
    dialog.confirm_button.click()
    result = await asyncio.wait_for(flow, 2)
    assert result is not None and result.status == status
    assert dialog.result_banner.tone == tone
    assert words in dialog.result_banner.text()
    assert "ERP unreachable: connect timeout" in dialog.result_banner.text()


async def test_run_fix_changed_preview_needs_a_second_confirm(qtbot: QtBot, service: FakeActionService,
                                                              adapter: ActionAdapter) -> None:
    dialog = FixDialog(missing_in_erp(11), ActionKind.RETRY, adapter.operator, today=NOW)
    qtbot.addWidget(dialog)
    dialog.show()
    flow = asyncio.ensure_future(run_fix(adapter, dialog))
    await settle()
    service.path_suffix = "changed"  # the data moved between preview and confirm
    dialog.confirm_button.click()
    await settle()
    assert service.executed == []
    assert "preview changed" in dialog.banner.text()
    assert dialog.state == "ready" and dialog.confirm_button.isEnabled()
    assert dialog.calls.item(0, 2).text() == "/tryton/rpc/changed"
    dialog.confirm_button.click()
    result = await asyncio.wait_for(flow, 2)
    assert result is not None and len(service.executed) == 1


async def test_run_fix_preflight_failing_on_confirm_writes_nothing(qtbot: QtBot, service: FakeActionService,
                                                                   adapter: ActionAdapter) -> None:
    exc = missing_in_erp(12)
    dialog = FixDialog(exc, ActionKind.RETRY, adapter.operator, today=NOW)
    qtbot.addWidget(dialog)
    dialog.show()
    flow = asyncio.ensure_future(run_fix(adapter, dialog))
    await settle()
    service.fail_checks[exc.id] = Check("reachable", False, "ERP circuit breaker is open")
    dialog.confirm_button.click()
    await settle()
    assert service.executed == []
    assert dialog.banner.tone == "bad" and "ERP circuit breaker is open" in dialog.banner.text()
    assert not dialog.confirm_button.isEnabled()
    assert dialog.cancel_button.isEnabled()
    dialog.cancel_button.click()
    assert await asyncio.wait_for(flow, 2) is None


async def test_run_fix_closed_without_confirm_returns_none(qtbot: QtBot, service: FakeActionService,
                                                           adapter: ActionAdapter) -> None:
    dialog = FixDialog(missing_in_erp(15), ActionKind.RETRY, adapter.operator, today=NOW)
    qtbot.addWidget(dialog)
    dialog.show()
    service.plan_gate = asyncio.Event()  # close while the preview is being planned
    flow = asyncio.ensure_future(run_fix(adapter, dialog))
    await settle()
    assert dialog.state == "planning"
    dialog.close()
    assert await asyncio.wait_for(flow, 2) is None
    assert service.executed == []
    assert not adapter.tasks.running(f"fix-preview:{dialog.exception.id}:{id(dialog)}")


async def test_run_fix_plan_error_is_shown_and_recoverable(qtbot: QtBot, service: FakeActionService,
                                                           adapter: ActionAdapter) -> None:
    async def broken(req: Any) -> Any:
        raise RuntimeError(f"ERP said 500 with token {SECRET}")

    register_secret(SECRET)
    real_plan = service.plan
    service.plan = broken  # type: ignore[method-assign]
    dialog = FixDialog(missing_in_erp(13), ActionKind.RETRY, adapter.operator, today=NOW)
    qtbot.addWidget(dialog)
    dialog.show()
    flow = asyncio.ensure_future(run_fix(adapter, dialog))
    await settle()
    assert dialog.banner.tone == "bad" and "ERP said 500" in dialog.banner.text()
    assert SECRET not in dialog.banner.text()
    assert not dialog.confirm_button.isEnabled()
    service.plan = real_plan  # type: ignore[method-assign]
    dialog.flush_edits()
    await settle()
    assert dialog.confirm_button.isEnabled()
    dialog.confirm_button.click()
    assert (await asyncio.wait_for(flow, 2)) is not None


async def test_launcher_opens_one_dialog_per_exception(qtbot: QtBot, service: FakeActionService,
                                                       adapter: ActionAdapter) -> None:
    parent = QWidget()
    qtbot.addWidget(parent)
    launcher = FixLauncher(adapter, parent, today=lambda: NOW)
    exc = amount_mismatch()
    first = launcher.open_fix(exc, "correct")
    assert first is not None and first.isVisible()
    assert launcher.open_fix(exc, "correct") is first
    errors: list[str] = []
    adapter.error.connect(errors.append)
    assert launcher.open_fix(exc, "accept") is first  # same exception: the open one is raised
    assert launcher.open_fix(missing_in_erp(14), "record") is None  # a fix the service lacks
    assert errors and "not available" in errors[-1]
    first.reason_edit.setText("because")
    first.flush_edits()
    await settle()
    assert first.plan is not None and first.confirm_button.isEnabled()
    # switching the operator while it is open: shown, and the fix is no longer allowed
    carol = Operator("carol", Role.AUDITOR)
    adapter.set_operator(carol)
    assert "carol · auditor" in first.operator_label.text()
    # the service's refusal, in its words (the fake takes it from services.actions.service)
    assert not first.confirm_button.isEnabled()
    assert first.banner.text() == f"You cannot do this: {role_check(exc, carol).detail}"
    assert "carol is an auditor" in first.banner.text()
    adapter.set_operator(ALICE)
    await settle()
    assert first.plan is not None and first.plan.operator == ALICE and first.confirm_button.isEnabled()
    first.close()
    await settle()
    assert exc.id not in launcher.dialogs


async def test_run_fix_offers_to_acknowledge_an_erp_warning(qtbot: QtBot, service: FakeActionService,
                                                            adapter: ActionAdapter, tmp_path: Path) -> None:
    service.warning = "account_invoice.due_date_in_past"
    dialog = FixDialog(missing_in_erp(10), ActionKind.RETRY, adapter.operator, today=NOW)
    qtbot.addWidget(dialog)
    dialog.show()
    flow = asyncio.ensure_future(run_fix(adapter, dialog))
    await settle()
    dialog.confirm_button.click()
    await settle()
    assert not flow.done()  # the flow waits: acknowledge or close
    assert dialog.awaiting_acknowledgement
    assert dialog.acknowledge_button.isVisible()
    assert "due_date_in_past" in dialog.acknowledge_button.toolTip()
    assert dialog.banner.tone == "warn" and "Nothing was posted" in dialog.banner.text()
    shot(dialog, tmp_path, "fix-dialog-warning")
    dialog.acknowledge_button.click()
    await settle()
    assert service.planned[-1].value == {"acknowledge_warning": "account_invoice.due_date_in_past"}
    assert "acknowledges the ERP warning" in dialog.notes_label.text()
    assert dialog.confirm_button.isVisible() and dialog.confirm_button.isEnabled()
    dialog.confirm_button.click()
    result = await asyncio.wait_for(flow, 2)
    assert result is not None and result.status == ActionStatus.SUCCEEDED
    assert service.executed[-1].request.value == {"acknowledge_warning": "account_invoice.due_date_in_past"}


# -- auditors never act ---------------------------------------------------------------------------
async def test_auditor_sees_every_fix_disabled(qtbot: QtBot, service: FakeActionService,
                                               adapter: ActionAdapter) -> None:
    auditor = Operator("carol", Role.AUDITOR)
    adapter.set_operator(auditor)
    exc = amount_mismatch()
    buttons = []
    for action in exc.fix_actions:
        b = QPushButton(action)
        b.setProperty("action", action)
        qtbot.addWidget(b)
        buttons.append(b)
    apply_fix_permissions(buttons, adapter.allowed_actions(exc), adapter.operator)
    assert all(not b.isEnabled() for b in buttons)
    # the tooltip is the service's refusal (services.actions.service.role_check), not words of the view's
    refusal = role_check(exc, auditor).detail
    assert refusal == "carol is an auditor: auditors read, verify and export; they never act"
    assert all(b.toolTip() == refusal for b in buttons)
    # finance may correct a finance exception; support may not
    adapter.set_operator(ALICE)
    apply_fix_permissions(buttons, adapter.allowed_actions(exc), adapter.operator)
    assert all(b.isEnabled() for b in buttons)
    sam = Operator("sam", Role.SUPPORT)
    adapter.set_operator(sam)
    apply_fix_permissions(buttons, adapter.allowed_actions(exc), adapter.operator)
    assert not any(b.isEnabled() for b in buttons)
    assert buttons[0].toolTip() == role_check(exc, sam).detail
    assert buttons[0].toolTip() == "invoice.amount_mismatch is owned by finance; the support role cannot act on it"
    # the dialog itself refuses too, with the verdict the launcher passes it, and the plan's failed check
    adapter.set_operator(auditor)
    _, ok, why = next(v for v in adapter.allowed_actions(exc) if v[0] is ActionKind.CORRECT)
    dialog = FixDialog(exc, ActionKind.CORRECT, auditor, allowed=ok, why_not=why, today=NOW)
    qtbot.addWidget(dialog)
    dialog.reason_edit.setText("x")
    plan = await service.plan(dialog.request())
    assert not plan.ok and plan.explanation == refusal
    dialog.set_plan(plan)
    assert not dialog.confirm_button.isEnabled()
    assert dialog.banner.text() == f"You cannot do this: {refusal}"
    assert dialog.confirm_button.toolTip() == refusal
    failed = [row for row in range(dialog.checks.rowCount()) if dialog.checks.item(row, 0).text() == "✗ role"]
    assert len(failed) == 1 and dialog.checks.item(failed[0], 1).text() == refusal
    bulk = BulkDialog(ActionKind.RETRY, [missing_in_erp(10)], operator=auditor, today=NOW)
    qtbot.addWidget(bulk)
    assert not bulk.start_button.isEnabled()
    # bulk, retry and cancel are refused by the service for an auditor (PermissionDenied): its words
    assert bulk.banner.text() == f"You cannot do this: {auditor_refusal(auditor)}" == f"You cannot do this: {refusal}"
    assert bulk.start_button.toolTip() == refusal
    page = PendingActionsPage()
    qtbot.addWidget(page)
    page.set_operator(auditor)
    page.set_items([outbox_item(1, ActionStatus.FAILED, "boom")])
    page.table.selectRow(0)
    assert not page.retry_button.isEnabled() and page.retry_button.toolTip() == refusal
    assert not page.cancel_button.isEnabled() and page.cancel_button.toolTip() == refusal


def test_exception_views_enable_fixes_by_policy_and_emit(qtbot: QtBot, adapter: ActionAdapter) -> None:
    from views.customer_view import ExceptionCard
    from views.exceptions import ExceptionDetail

    exc = amount_mismatch()
    detail = ExceptionDetail()
    qtbot.addWidget(detail)
    detail.show_exception(exc, NOW)
    assert all(not b.isEnabled() for b in detail.fix_buttons)  # no policy yet: disabled, as before
    detail.set_fix_policy(fix_policy(adapter))
    assert [b.property("action") for b in detail.fix_buttons] == ["correct", "accept"]
    assert all(b.isEnabled() for b in detail.fix_buttons)
    seen: list[tuple[str, str]] = []
    detail.fix_requested.connect(lambda i, a: seen.append((i, a)))
    detail.fix_buttons[0].click()
    assert seen == [(exc.id, "correct")]
    adapter.set_operator(Operator("carol", Role.AUDITOR))
    detail.set_fix_policy(fix_policy(adapter))  # the lead calls it again on operator_changed
    refusal = role_check(exc, adapter.operator).detail  # the service's words
    assert all(not b.isEnabled() and b.toolTip() == refusal for b in detail.fix_buttons)
    adapter.set_operator(ALICE)
    card = ExceptionCard(exc, policy=fix_policy(adapter))
    qtbot.addWidget(card)
    card.fix_requested.connect(lambda i, a: seen.append((i, a)))
    card.fix_buttons[1].click()
    assert seen[-1] == (exc.id, "accept")


# -- operator -----------------------------------------------------------------------------------------
def test_operator_widget_shows_and_switches(qtbot: QtBot, tmp_path: Path) -> None:
    widget = OperatorWidget(ALICE)
    qtbot.addWidget(widget)
    assert widget.text() == "alice · finance"
    seen: list[Any] = []
    widget.operator_changed.connect(seen.append)
    widget.name_edit.setText("  bob  ")
    widget.role_combo.setCurrentIndex(widget.role_combo.findData("auditor"))
    assert widget.role_hint.text() == AUDITOR_TIP
    widget.apply_button.click()
    assert seen == [Operator("bob", Role.AUDITOR)]
    assert widget.text() == "bob · auditor"
    assert AUDITOR_TIP in widget.toolTip()
    widget.name_edit.setText("")
    assert not widget.apply_button.isEnabled()
    widget.apply()
    assert len(seen) == 1  # an empty name is refused
    widget.set_operator(Operator("dora", Role.SUPPORT))  # shown, not emitted
    assert widget.text() == "dora · support" and len(seen) == 1
    shot(widget, tmp_path, "operator-button")
    widget.form.resize(widget.form.sizeHint())
    shot(widget.form, tmp_path, "operator-form")


async def test_operator_switch_reaches_the_service(adapter: ActionAdapter, service: FakeActionService) -> None:
    seen: list[Any] = []
    adapter.operator_changed.connect(seen.append)
    adapter.set_operator(Operator("bob", Role.SUPPORT))
    adapter.set_operator(Operator("bob", Role.SUPPORT))  # unchanged: no signal
    assert service.operator == Operator("bob", Role.SUPPORT)
    assert seen == [Operator("bob", Role.SUPPORT)]


# -- bulk -----------------------------------------------------------------------------------------------
async def test_bulk_progress_cancel_and_summary(qtbot: QtBot, service: FakeActionService,
                                                adapter: ActionAdapter, tmp_path: Path) -> None:
    selection = [missing_in_erp(n) for n in range(10, 16)] + [tier_mismatch(30)]
    eligible, skipped = bulk_eligible(adapter, selection, ActionKind.RETRY)
    assert len(eligible) == 6 and len(skipped) == 1
    dialog = BulkDialog(ActionKind.RETRY, eligible, skipped, operator=adapter.operator, today=NOW)
    qtbot.addWidget(dialog)
    dialog.bind(adapter)
    dialog.show()
    assert dialog.skipped_label.text() == "Left out: 1 of the 7 selected — 1 × retry is not a fix for its rule."
    assert dialog.start_button.isEnabled()  # the reason is optional for RETRY
    shot(dialog, tmp_path, "bulk-setup")
    service.bulk_gate = asyncio.Event()
    dialog.start_button.click()
    await settle()
    assert dialog.state == "running"
    for _ in range(3):
        service.bulk_gate.set()
        await settle()
    assert dialog.progress.value() == 3
    assert dialog.progress.maximum() == 6
    assert "3 of 6 done — 2 succeeded · 1 failed · 0 queued" in dialog.counts_label.text()
    assert dialog.current_label.text() == "now: invoice.missing_in_erp:in_13"
    shot(dialog, tmp_path, "bulk-running")
    dialog.cancel_button.click()  # cancels the task; the action under way is the fake's gate
    assert dialog.state == "cancelling" and not dialog.cancel_button.isEnabled()
    dialog.reject()
    assert dialog.isVisible()  # stays until the summary
    await settle()
    assert dialog.state == "done"
    assert dialog.outcome is not None and dialog.outcome.cancelled
    assert "Cancelled after 3 of 6" in dialog.summary_label.text()
    assert "3 not started" in dialog.summary_label.text()
    assert dialog.failures.rowCount() == 1
    assert dialog.failures.item(0, 0).text() == "invoice.missing_in_erp:in_11"
    assert dialog.failures.item(0, 2).text() == f"ERP said: {HOSTILE}"
    assert service.bulk_started == 4  # the fourth was waiting at its gate: it never started writing
    assert dialog.cancel_button.text() == "Close"
    shot(dialog, tmp_path, "bulk-summary")
    dialog.cancel_button.click()
    assert not dialog.isVisible()


async def test_bulk_runs_to_the_end_and_accept_needs_reason(qtbot: QtBot, service: FakeActionService,
                                                            adapter: ActionAdapter) -> None:
    selection = [tier_mismatch(n) for n in range(30, 34)]
    service.exceptions.update({e.id: e for e in selection})
    adapter.set_operator(Operator("sam", Role.SUPPORT))
    parent = QWidget()
    qtbot.addWidget(parent)
    launcher = FixLauncher(adapter, parent, today=lambda: NOW)
    assert launcher.open_bulk(selection, ActionKind.CORRECT) is None  # needs a value per item
    dialog = launcher.open_bulk(selection, "accept")
    assert dialog is not None and len(dialog.eligible) == 4
    assert dialog.expiry_edit is not None
    assert not dialog.start_button.isEnabled()
    dialog.reason_edit.setText("contract allows it")
    assert dialog.start_button.isEnabled()
    reqs = dialog.requests()
    assert {r.value["expires_at"] for r in reqs} == {"2025-03-31T00:00:00+00:00"}
    assert {r.reason for r in reqs} == {"contract allows it"}
    done: list[Any] = []
    adapter.bulk_done.connect(done.append)
    dialog.start_button.click()
    assert launcher.open_bulk(selection, "accept") is dialog  # one bulk at a time
    await settle(20)
    assert done and not done[0].cancelled
    assert "Finished: 4 of 4. 3 succeeded, 1 failed." in dialog.summary_label.text()
    dialog.cancel_button.click()
    assert launcher.bulk_dialog is None


# -- pending actions -------------------------------------------------------------------------------
async def test_pending_page_filters_retry_and_cancel(qtbot: QtBot, service: FakeActionService,
                                                     adapter: ActionAdapter, tmp_path: Path) -> None:
    service.outbox = [outbox_item(1, ActionStatus.QUEUED), outbox_item(2, ActionStatus.EXECUTING),
                      outbox_item(3, ActionStatus.FAILED, f"ERP said {HOSTILE}"),
                      outbox_item(4, ActionStatus.FAILED, "timeout"), outbox_item(5, ActionStatus.QUEUED)]
    page = PendingActionsPage()
    qtbot.addWidget(page)
    page.bind(adapter)
    page.resize(1300, 360)
    page.show()  # show() asks for a refresh (read in a worker thread)
    await asyncio.wait_for(_until(lambda: page.model.rowCount() == 5), 5)
    assert "2 queued · 1 executing · 2 failed" in page.count_label.text()
    shot(page, tmp_path, "pending-actions")
    page.set_status_filter("failed")
    assert page.proxy.rowCount() == 2
    assert "2 of 5 shown" in page.count_label.text()
    page.table.selectAll()
    assert page.retry_button.isEnabled() and page.cancel_button.isEnabled()
    page.retry_button.click()
    await asyncio.wait_for(_until(lambda: page.model.rowCount() == 3), 5)  # refreshed after the retries
    assert sorted(service.retried) == ["act_3", "act_4"]
    page.set_status_filter("queued")
    page.table.selectRow(0)
    assert not page.retry_button.isEnabled()  # queued: cancel only
    assert page.cancel_button.isEnabled()
    page.cancel_button.click()
    await asyncio.wait_for(_until(lambda: page.model.rowCount() == 2), 5)
    assert len(service.cancelled) == 1
    assert page.proxy.rowCount() == 1
    page.set_status_filter("executing")
    page.table.selectRow(0)
    assert not page.retry_button.isEnabled() and not page.cancel_button.isEnabled()
    page.set_status_filter(None)
    # a hostile error text is data, shown as typed
    page.set_items([outbox_item(3, ActionStatus.FAILED, f"ERP said {HOSTILE}")])
    assert page.model.index(0, 7).data() == f"ERP said {HOSTILE}"
    page.hide()
    assert not page.timer.isActive()


def test_pending_empty_state(qtbot: QtBot) -> None:
    page = PendingActionsPage()
    qtbot.addWidget(page)
    assert page.stack.currentWidget() is page.empty
    page.set_items([outbox_item(1, ActionStatus.QUEUED)])
    assert page.stack.currentWidget() is page.table
    page.set_status_filter("failed")
    assert page.stack.currentWidget() is page.empty
    assert page.empty.title() == "No action with this status"


def test_models_pass_modeltester(qtmodeltester: Any) -> None:
    pending = PendingModel()
    pending.set_items([outbox_item(n, s, "e" if s is ActionStatus.FAILED else None)
                       for n, s in enumerate([ActionStatus.QUEUED, ActionStatus.EXECUTING, ActionStatus.FAILED])])
    qtmodeltester.check(pending)
    audit = AuditModel()
    audit.set_entries(sample_entries())
    qtmodeltester.check(audit)
    audit.set_entries([])
    qtmodeltester.check(audit)


# -- the audit page ----------------------------------------------------------------------------------
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


def test_audit_filters_build_the_filter(qtbot: QtBot) -> None:
    page = AuditPage(today=NOW)
    qtbot.addWidget(page)
    seen: list[AuditFilter] = []
    page.filter_changed.connect(seen.append)
    assert page.current_filter() == AuditFilter()
    page.operator_edit.setText(" alice ")
    page.customer_edit.setText("cus_1")
    page.system_combo.setCurrentIndex(page.system_combo.findData("erp"))
    page.kind_combo.setCurrentIndex(page.kind_combo.findData("correct"))
    page.outcome_combo.setCurrentIndex(page.outcome_combo.findData("failed"))
    page.since_edit.set_value(page.since_edit.edit.date().fromString("2025-02-01", "yyyy-MM-dd"))
    page.until_edit.set_value(page.until_edit.edit.date().fromString("2025-02-28", "yyyy-MM-dd"))
    page.text_edit.setText("rpc")
    page.emit_filter()
    assert seen[-1] == AuditFilter(operator="alice", customer_id="cus_1", target_system="erp",
                                   action_kind="correct", outcome="failed",
                                   since=datetime(2025, 2, 1, tzinfo=UTC),
                                   until=datetime(2025, 2, 28, 23, 59, 59, 999999, tzinfo=UTC), text="rpc")
    page.clear_filters()
    assert seen[-1] == AuditFilter()


def test_audit_table_detail_and_request_summary(qtbot: QtBot, tmp_path: Path) -> None:
    page = AuditPage(today=NOW)
    qtbot.addWidget(page)
    page.resize(1400, 720)
    entries = sample_entries()
    page.set_entries(entries)
    assert page.model.rowCount() == 6
    assert page.model.index(0, 0).data() == "6"
    assert page.model.index(0, 9).data() == "POST /tryton/rpc/ (+1 more)"
    assert page.model.index(0, 2).data() == HOSTILE  # plain text, as typed
    assert page.model.index(2, 10).data() == "ERP said no"
    assert request_summary(entries[0]) == "POST /tryton/rpc/ (+1 more)"
    assert page.select_seq(4)
    detail = page.detail.toPlainText()
    assert "Entry 4" in detail and "Error: ERP said no" in detail
    assert '"total": "90.00"' in detail and "Hash:" in detail and f"{4:064x}" in detail
    assert "6 entries shown" in page.count_label.text()
    shot(page, tmp_path, "audit-page")


def test_audit_detail_scrubs_secrets(qtbot: QtBot) -> None:
    register_secret(SECRET)
    entry = sample_entries()[0]
    entry.error = f"401 with {SECRET}"
    assert SECRET not in entry_detail(entry)


def make_log(tmp_path: Path) -> tuple[Storage, AuditLog]:
    storage = Storage(f"sqlite:///{tmp_path / 'audit.db'}")
    log = AuditLog(storage, head_file=tmp_path / "audit.db.head")
    for e in reversed(sample_entries()):
        e.seq, e.prev_hash, e.hash = 0, "", ""
        log.append(e)
    return storage, log


def bound_audit_page(qtbot: QtBot, adapter: ActionAdapter) -> AuditPage:
    page = AuditPage(today=NOW)
    qtbot.addWidget(page)
    page.bind(adapter)
    return page


async def test_audit_page_loads_verifies_and_exports(qtbot: QtBot, service: FakeActionService,
                                                     tmp_path: Path) -> None:
    storage, log = make_log(tmp_path)
    adapter = ActionAdapter(service, log)  # type: ignore[arg-type]
    try:
        page = bound_audit_page(qtbot, adapter)
        page.resize(1400, 720)
        page.show()  # the first show loads
        await asyncio.wait_for(_until(lambda: page.model.rowCount() == 6), 5)
        page.outcome_combo.setCurrentIndex(page.outcome_combo.findData("failed"))
        await asyncio.wait_for(_until(lambda: page.model.rowCount() == 1), 5)
        assert page.model.entry_at(0).seq == 4
        # verify: intact
        page.verify_button.click()
        assert not page.verify_button.isEnabled()
        await asyncio.wait_for(_until(lambda: page.last_verify is not None), 5)
        assert page.verify_label.tone == "ok" and "Intact: 6 entries verified" in page.verify_label.text()
        assert page.verify_button.isEnabled()
        shot(page, tmp_path, "audit-verify-ok")
        # export the filtered log as JSON through the file dialog: shown with QDialog.open(), so
        # the call returns at once (no nested event loop; we are past it) and the dialog blocks
        # only the window it belongs to (window-modal), never the whole application
        page.format_combo.setCurrentIndex(page.format_combo.findData("json"))
        dialog = page.choose_export_file()
        assert dialog.isVisible()
        assert dialog.windowModality() is Qt.WindowModality.WindowModal
        assert dialog.parentWidget() is page and page.file_dialog is dialog
        assert dialog.acceptMode() is QFileDialog.AcceptMode.AcceptSave
        assert dialog.defaultSuffix() == "json" and dialog.nameFilters() == ["JSON files (*.json)"]
        target = tmp_path / "out.json"
        dialog.fileSelected.emit(str(target))
        dialog.close()
        await asyncio.wait_for(_until(lambda: page.export_button.isEnabled() and target.exists()), 5)
        data = json.loads(target.read_text())
        assert [d["seq"] for d in data] == [4]
        assert f"Exported to {target}" in page.verify_label.text()
        page.export_to(str(tmp_path / "all.csv"), "csv")
        await asyncio.wait_for(_until(lambda: (tmp_path / "all.csv").exists()), 5)
        assert (tmp_path / "all.csv").read_text().startswith("seq,at,operator")
        # tamper with entry 3: verify names it in red and selects it
        with storage.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE audit_entry SET reason = 'edited' WHERE seq = 3")
        page.clear_filters()
        await asyncio.wait_for(_until(lambda: page.model.rowCount() == 6), 5)
        page.last_verify = None
        page.verify_button.click()
        await asyncio.wait_for(_until(lambda: page.last_verify is not None), 5)
        assert page.verify_label.tone == "bad"
        assert "entry 3 was altered" in page.verify_label.text()
        assert "First bad entry: 3" in page.verify_label.text()
        assert page.selected_entry() is not None and page.selected_entry().seq == 3
        shot(page, tmp_path, "audit-verify-bad")
    finally:
        await adapter.aclose()
        storage.close()


async def test_audit_verify_reports_progress_and_can_be_stopped(qtbot: QtBot, service: FakeActionService,
                                                                 tmp_path: Path) -> None:
    storage, log = make_log(tmp_path)
    adapter = ActionAdapter(service, log)  # type: ignore[arg-type]
    try:
        page = bound_audit_page(qtbot, adapter)
        page.show()
        progress: list[tuple[int, int]] = []
        adapter.verify_progress.connect(lambda done, total: progress.append((done, total)))
        page.verify_button.click()
        assert page.cancel_verify_button.isVisible()
        await asyncio.wait_for(_until(lambda: page.last_verify is not None), 5)
        # emitted from the worker thread: queued to this thread's Qt event queue (this test's loop
        # is plain asyncio, so Qt events are pumped by hand), maybe after the result
        await asyncio.wait_for(_until(lambda: QApplication.processEvents() or (
            bool(progress) and progress[-1] == (6, 6))), 5)
        assert page.verify_label.tone == "ok"  # a late progress signal does not overwrite the result
        assert not page.cancel_verify_button.isVisible()
        # stopped before it could conclude: said so, never "intact"
        page.last_verify = None
        page.verify_button.click()
        page.cancel_verify_button.click()  # before the worker starts: it stops at once
        await asyncio.wait_for(_until(lambda: page.verify_button.isEnabled()), 5)
        assert page.last_verify is None
        assert page.verify_label.tone == "bad" and "Verification stopped after 0 entries" in page.verify_label.text()
        assert not page.cancel_verify_button.isVisible()
        assert not adapter.cancel_verify()  # nothing running any more
    finally:
        await adapter.aclose()
        storage.close()


async def test_audit_errors_come_back_as_signals(qtbot: QtBot, service: FakeActionService) -> None:
    adapter = ActionAdapter(service, None)  # type: ignore[arg-type]
    try:
        page = bound_audit_page(qtbot, adapter)
        errors: list[str] = []
        adapter.error.connect(errors.append)
        page.verify_button.click()
        await settle()
        assert errors and "no audit log is open" in errors[-1]
        assert page.verify_button.isEnabled()  # restored in the adapter's finally
        assert page.verify_label.tone == "bad"
    finally:
        await adapter.aclose()


def test_verify_result_texts(qtbot: QtBot) -> None:
    page = AuditPage(today=NOW)
    qtbot.addWidget(page)
    page.show_verify(VerifyResult(False, 11, None, "the head file x is unreadable"))
    assert "NOT intact: the head file x is unreadable" in page.verify_label.text()
    assert "First bad" not in page.verify_label.text()


async def _until(cond: Any, seconds: float = 5.0) -> None:
    """Poll ``cond`` (the work it waits for runs in worker threads, which signal nothing else)."""
    for _ in range(int(seconds / 0.01)):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")
