"""Each person's job at the console, end to end against the real services.

The real main window, composed as the console composes it (``app.console.compose``: the real
engine, EngineAdapter, ActionService on a durable temp audit database, ActionAdapter, health
probes, the first refresh, automatic replay) over the demo servers on loopback, running as the
console runs (Qt on a qasync loop, the services on a ServiceLoop thread). Every step is a
click on a real widget; every wait is on a condition (:func:`until`). Nothing here is faked:
what a dialog or tooltip says is what :class:`services.actions.service.ActionService` said.

- finance analyst: click the fix of a missing ERP invoice in the Exceptions page, review the
  preflight checks and the exact calls, give a reason, confirm, see it verified; the exception
  leaves the queue, the ERP holds the invoice once, the audit log holds intent and outcome
  (read through AuditLog, and shown on the Audit log page);
- support lead: switch the login to the support role in the toolbar (an audited role change),
  push billing's tier to Zendesk;
- auditor: every fix refused in the service's words, a preview that the service refuses, and
  nothing written anywhere but the role switch's own audit entry (no action entry, no outbox
  row, no change in the three systems);
- start-up: actions a previous session left executing (its process died after the
  write-ahead) and queued (the ERP was down) are replayed exactly once when the console starts.

Windows and dialogs are rendered to PNG in ``tmp_path`` (and ``$SYNCDESK_SHOTS`` when set).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import SIGNAL, Qt
from PySide6.QtWidgets import QPushButton
from pytestqt.qtbot import QtBot

from app.console import ConsoleSession, _replay_after, close_console, compose, default_operator
from services.actions.model import PENDING_STATUSES, ActionKind, ActionRequest, ActionStatus, Operator, OutboxItem, Role
from services.actions.roles import auditor_refusal, role_check
from services.actions.service import ActionService
from services.actions.steps import SetOrgFields
from services.core.domain import SyncException, System
from services.demo.environment import DemoEnvironment, DemoOptions
from services.demo.faults import FaultConfig
from services.engine import Engine, RefreshMode
from services.io.http import HttpPolicy
from services.metrics.model import Resolution
from services.runner import ServiceLoop
from services.store.audit import AuditEntry, AuditLog
from services.store.storage import Storage
from tests.gui.live_loop import grab_png, run_qasync
from views.actions.bulk_dialog import BulkDialog
from views.actions.fix_dialog import FixDialog
from views.actions.pending import PendingActionsPage
from views.adapters import HealthAdapter
from views.audit_page import AuditPage
from views.exceptions.model import Column
from views.main_window import MainWindow

pytestmark = pytest.mark.gui

ANCHOR = 1_780_000_000  # fixed: the same company on every run
CUSTOMERS = 80  # two planted exceptions of every rule
SEED = 3
#: A generous bound on any one wait: on a loaded 2-core machine the first refresh of 80
#: customers takes about a second and a fix (preflight, write, re-read, reconcile) well under
#: five; the bound only turns a hang into a failure that says what it was waiting for.
DEADLINE = 60.0


# -- the loop and the console --------------------------------------------------------------------
async def until(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Wait (the Qt and asyncio events keep running) until ``condition()`` holds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"waited {deadline:.0f} s for {what}")
        await asyncio.sleep(0.02)


def demo_env() -> DemoEnvironment:
    opts = DemoOptions(customers=CUSTOMERS, seed=SEED, anchor=ANCHOR, faults={s: FaultConfig() for s in System})
    return DemoEnvironment(opts)


@dataclass
class Live:
    """The console under test, and where to look behind it."""

    window: MainWindow
    session: ConsoleSession
    env: DemoEnvironment
    tmp: Path
    qtbot: QtBot

    @property
    def audit_db(self) -> Path:
        return self.tmp / "audit.db"

    @property
    def service(self) -> ActionService:
        assert self.session.service is not None
        return self.session.service

    def exceptions(self, rule: str) -> list[SyncException]:
        state = self.window.state
        assert state is not None
        return sorted((e for e in state.exceptions if e.rule == rule), key=lambda e: e.id)

    async def audit(self) -> list[AuditEntry]:
        return await asyncio.to_thread(read_audit, self.audit_db)

    async def outbox(self) -> list[OutboxItem]:
        return await asyncio.to_thread(self.service.outbox)

    # -- what a person does ----------------------------------------------------------------------
    def go_to(self, page: str) -> None:
        """Click the page in the navigation list."""
        nav = self.window.nav
        item = nav.item(self.window.PAGES.index(page))
        nav.scrollToItem(item)
        self.qtbot.mouseClick(nav.viewport(), Qt.MouseButton.LeftButton, pos=nav.visualItemRect(item).center())
        assert nav.currentRow() == self.window.PAGES.index(page)

    def click_exception(self, exc_id: str) -> None:
        """Click the exception's row in the queue (the Exceptions page)."""
        self.go_to("Exceptions")
        page = self.window.exceptions_page
        row = page.model.row_of(exc_id)
        assert row is not None, f"{exc_id} is not in the queue"
        index = page.model.index(row, Column.SUMMARY)
        page.table.scrollTo(index)
        self.qtbot.mouseClick(page.table.viewport(), Qt.MouseButton.LeftButton,
                              pos=page.table.visualRect(index).center())
        assert page.selected_id() == exc_id
        assert page.detail.exception is not None and page.detail.exception.id == exc_id

    def fix_button(self, action: str) -> QPushButton:
        """The fix button of the selected exception, in the detail pane."""
        buttons = [b for b in self.window.exceptions_page.detail.fix_buttons if b.property("action") == action]
        assert len(buttons) == 1, [b.property("action") for b in self.window.exceptions_page.detail.fix_buttons]
        return buttons[0]

    async def switch_role(self, role: Role) -> None:
        """The toolbar's role switch: pick the role, press Switch role. The operator stays the
        login; the service switches (and audits) on its loop, then the widget shows it."""
        widget = self.window.operator_widget
        login = self.service.operator.name
        widget.role_combo.setCurrentIndex(widget.role_combo.findData(role.value))
        widget.apply_button.click()  # the form lives in the button's pop-up menu
        await until(lambda: widget.text() == f"{login} · {role.value}", f"the switch to {role.value}")
        assert self.service.operator == Operator(login, role)

    def dialog(self, exc_id: str) -> FixDialog:
        assert self.window.launcher is not None
        dialog = self.window.launcher.dialogs.get(exc_id)
        assert dialog is not None and dialog.isVisible()
        return dialog


def read_audit(path: Path) -> list[AuditEntry]:
    """Every audit entry, oldest first, read through a fresh AuditLog (what was committed)."""
    storage = Storage.open_path(path, durable=True)
    try:
        return list(reversed(AuditLog(storage).entries()))
    finally:
        storage.close()


async def console(qtbot: QtBot, tmp_path: Path, caplog: pytest.LogCaptureFixture,
                  scenario: Callable[[Live], Awaitable[None]], env: DemoEnvironment | None = None,
                  policies: dict[System, HttpPolicy] | None = None) -> None:
    """Start the console as ``app.console._main`` does (``compose``) on ``tmp_path``'s snapshot
    and audit databases (over ``env``, started, or a new demo), wait for its first refresh, run
    ``scenario``, shut down as it does (``close_console``: the demo servers stop too). Nothing
    may be logged as an error meanwhile (a failed background task is only logged)."""
    caplog.set_level(logging.WARNING)
    if env is None:
        env = await asyncio.to_thread(lambda: demo_env().start())
    window = MainWindow()
    window.show()
    runner = ServiceLoop(name="test-services").start()
    health = HealthAdapter(window, runner=runner)
    window.attach_health(health)
    session = ConsoleSession()
    live = Live(window, session, env, tmp_path, qtbot)
    try:
        await compose(session, window, health, runner, env.profile(),
                      snapshot=lambda: Storage.open_path(tmp_path / "snap.db"), audit_file=live.audit_db,
                      clock=env.now, policies=policies)
        assert session.refresh is not None and session.adapter is not None
        report = await session.refresh
        assert report is not None and report.ok, report
        await until(lambda: window.state is not None and window.state.complete and bool(window.state.exceptions),
                    "the first refresh to be shown")
        await scenario(live)
    finally:
        if window.launcher is not None:
            for dialog in list(window.launcher.dialogs.values()):
                dialog.close()
            if window.launcher.bulk_dialog is not None:
                window.launcher.bulk_dialog.close()
        await close_console(session, health, runner, env)
        window.close()
        window.deleteLater()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], errors


def stores(env: DemoEnvironment) -> tuple[Any, ...]:
    """Everything the three demo systems hold (a deep copy, to compare before and after)."""
    d = env.dataset
    with d.erp.lock, d.support.lock:
        return (copy.deepcopy(d.erp.tables), dict(d.erp.versions), copy.deepcopy(d.support.organizations),
                copy.deepcopy(d.support.tickets), copy.deepcopy(d.billing.customers),
                copy.deepcopy(d.billing.invoices), copy.deepcopy(d.billing.subscriptions))


def erp_copies(env: DemoEnvironment, reference: str) -> list[dict[str, Any]]:
    """The ERP invoices (not cancelled) that carry a billing invoice id as their reference."""
    erp = env.dataset.erp
    with erp.lock:
        table = erp.tables["account.invoice"]
        return [dict(table[i]) for i in erp.lookup("account.invoice", "reference", reference)
                if table[i].get("state") != "cancelled"]


def entries_of(entries: list[AuditEntry], action_id: str) -> list[AuditEntry]:
    return [e for e in entries if e.action_id == action_id]


def check_rows(dialog: FixDialog) -> list[tuple[str, str]]:
    """("✓ name" or "✗ name", detail) per preflight check: passed or failed as the row says it (its
    drawn mark's data), the name and the detail as shown."""
    rows = []
    for r in range(dialog.checks.rowCount()):
        name = dialog.checks.item(r, 0)
        mark = {True: "✓", False: "✗"}[name.data(Qt.ItemDataRole.UserRole)]
        rows.append((f"{mark} {name.text()}", dialog.checks.item(r, 1).text()))
    return rows


# -- finance analyst ---------------------------------------------------------------------------------
REASON_FINANCE = "month-end close: the invoice never reached the ERP"


def test_finance_analyst_fixes_a_missing_erp_invoice_and_the_audit_log_shows_it(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(live: Live) -> None:
        window, env = live.window, live.env
        me = default_operator()  # who the console acts as when it starts: the login, finance
        assert live.service.operator == me and me.role is Role.FINANCE
        exc = live.exceptions("invoice.missing_in_erp")[0]
        assert erp_copies(env, exc.object_id) == []
        live.click_exception(exc.id)
        button = live.fix_button("retry")
        assert button.isEnabled()
        live.qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        dialog = live.dialog(exc.id)
        # the preflight runs by itself (a retry needs no reason): the real service's checks and calls
        await until(lambda: dialog.plan is not None and dialog.state == "ready", "the preview")
        plan = dialog.plan
        assert plan is not None and plan.ok, plan.explanation if plan else None
        rows = check_rows(dialog)
        assert rows == [(f"✓ {c.name}", c.detail) for c in plan.checks]
        assert ("✓ exception", f"{exc.id} is open") in rows
        assert ("✓ role", role_check(exc, me).detail) in rows
        assert ("✓ reachable", "erp connection ready") in rows
        shown = [(dialog.calls.item(r, 0).text(), dialog.calls.item(r, 1).text(), dialog.calls.item(r, 2).text())
                 for r in range(dialog.calls.rowCount())]
        assert shown == [("ERP", "POST", "/syncdesk_demo/rpc/")] * 4
        # the totals are read back and compared with billing's before the posting (G1: taxed postings)
        assert [c.body["method"] for c in plan.calls] == [
            "model.account.invoice.search_read", "model.account.invoice.create", "model.account.invoice.read",
            "model.account.invoice.post"]
        dialog.calls.selectRow(1)
        assert '"model.account.invoice.create"' in dialog.body.toPlainText()
        assert f'"reference": "{exc.object_id}"' in dialog.body.toPlainText()
        assert "Preflight passed" in dialog.banner.text() and dialog.confirm_button.isEnabled()
        live.qtbot.keyClicks(dialog.reason_edit, REASON_FINANCE)
        assert dialog.reason() == REASON_FINANCE
        grab_png(dialog, live.tmp, "job-finance-preview")
        live.qtbot.mouseClick(dialog.confirm_button, Qt.MouseButton.LeftButton)
        await until(lambda: dialog.state == "done", "the verified result in the dialog")
        result = dialog.outcome
        assert result is not None
        assert result.status is ActionStatus.SUCCEEDED and result.verified, result.message
        assert dialog.result_banner.text().startswith("Done and verified") and dialog.result_banner.tone == "ok"
        assert f"Action {result.action_id}" in dialog.result_banner.text()
        grab_png(dialog, live.tmp, "job-finance-verified")

        # the exception left the queue
        await until(lambda: window.exceptions_page.model.row_of(exc.id) is None, "the exception to leave the queue")
        assert window.state is not None and exc.id not in {e.id for e in window.state.exceptions}
        # the Overview counts it resolved by a fix: the console's figures read its own audit log
        adapter = live.session.adapter
        assert adapter is not None

        def resolved_by_fix() -> tuple[str, ...]:
            report = adapter.metrics
            return dict(report.resolution.exceptions).get(Resolution.FIX, ()) if report is not None else ()

        await until(lambda: exc.id in resolved_by_fix(), "the Overview to count the exception resolved by a fix")
        # the ERP holds the invoice exactly once, posted
        copies = erp_copies(env, exc.object_id)
        assert len(copies) == 1 and copies[0]["state"] == "posted", copies
        # the outbox: one row, succeeded at the first attempt
        outbox = await live.outbox()
        assert [(o.action_id, o.status, o.attempts, o.reason) for o in outbox] == [
            (result.action_id, ActionStatus.SUCCEEDED, 1, REASON_FINANCE)]
        # the audit log: the intent before the write, the verified outcome after it
        mine = entries_of(await live.audit(), result.action_id)
        assert [(e.phase, e.outcome) for e in mine] == [("intent", "pending"), ("outcome", "succeeded")]
        for entry in mine:
            assert (entry.operator, entry.role, entry.reason) == (me.name, "finance", REASON_FINANCE)
            assert (entry.action_kind, entry.exception_id, entry.target_system) == ("retry", exc.id, "erp")
        assert mine[1].after["verified"] is True
        assert [c["body"]["method"] for c in mine[0].request["calls"]] == [c.body["method"] for c in plan.calls]

        # the Audit log page shows both entries, and the detail of the outcome
        dialog.close()
        live.go_to("Audit log")
        page = window.audit_page
        assert isinstance(page, AuditPage)
        await until(lambda: {e.action_id for e in page.model.entries()} >= {result.action_id},
                    "the audit page to show the action")
        shown_entries = [e for e in page.model.entries() if e.action_id == result.action_id]
        assert sorted((e.phase, e.outcome, e.operator, e.role) for e in shown_entries) == [
            ("intent", "pending", me.name, "finance"), ("outcome", "succeeded", me.name, "finance")]
        outcome = next(e for e in shown_entries if e.phase == "outcome")
        assert page.select_seq(outcome.seq)
        assert REASON_FINANCE in page.detail.toPlainText() and result.action_id in page.detail.toPlainText()
        grab_png(window, live.tmp, "job-finance-audit-log")

    run_qasync(qloop, console(qtbot, tmp_path, caplog, scenario))


# -- support lead ------------------------------------------------------------------------------------
REASON_SUPPORT = "tier from the customer's plan"


def test_support_lead_switches_role_and_pushes_the_tier_to_zendesk(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(live: Live) -> None:
        window, env = live.window, live.env
        exc = live.exceptions("entitlement.tier_mismatch")[0]
        # as the finance login the console starts with, the push is refused in the service's words
        live.click_exception(exc.id)
        refused = live.fix_button("push")
        assert not refused.isEnabled()
        assert refused.toolTip() == role_check(exc, live.service.operator).detail
        assert "owned by support; the finance role cannot act on it" in refused.toolTip()
        # the login (which holds every role: no [roles] table) switches to support in the toolbar
        lead = Operator(default_operator().name, Role.SUPPORT)
        await live.switch_role(lead.role)
        live.click_exception(exc.id)
        button = live.fix_button("push")
        assert button.isEnabled()
        live.qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        dialog = live.dialog(exc.id)
        assert f"acting as {lead.name} · support" in dialog.operator_label.text()
        await until(lambda: dialog.plan is not None and dialog.state == "ready", "the preview")
        plan = dialog.plan
        assert plan is not None and plan.ok, plan.explanation if plan else None
        assert ("✓ role", role_check(exc, lead).detail) in check_rows(dialog)
        step = plan.steps[0]
        assert isinstance(step, SetOrgFields)
        org_id = step.org_id
        tier = plan.expected_after["support"]["support_tier"]
        with env.dataset.support.lock:
            before = env.dataset.support.organizations[org_id]["organization_fields"]["support_tier"]
        assert tier and tier != before
        assert [(c.system, c.method, c.path) for c in plan.calls] == [
            (System.SUPPORT, "PUT", f"/api/v2/organizations/{org_id}.json")]
        assert plan.calls[0].body == {"organization": {"organization_fields": {"support_tier": tier}}}
        assert (dialog.calls.item(0, 1).text(), dialog.calls.item(0, 2).text()) == (
            "PUT", f"/api/v2/organizations/{org_id}.json")
        live.qtbot.keyClicks(dialog.reason_edit, REASON_SUPPORT)
        grab_png(dialog, live.tmp, "job-support-preview")
        live.qtbot.mouseClick(dialog.confirm_button, Qt.MouseButton.LeftButton)
        await until(lambda: dialog.state == "done", "the verified result in the dialog")
        result = dialog.outcome
        assert result is not None
        assert result.status is ActionStatus.SUCCEEDED and result.verified, result.message
        grab_png(dialog, live.tmp, "job-support-verified")

        # Zendesk's organization now carries the tier billing grants
        with env.dataset.support.lock:
            assert env.dataset.support.organizations[org_id]["organization_fields"]["support_tier"] == tier
        await until(lambda: window.exceptions_page.model.row_of(exc.id) is None, "the exception to leave the queue")
        mine = entries_of(await live.audit(), result.action_id)
        assert [(e.phase, e.outcome) for e in mine] == [("intent", "pending"), ("outcome", "succeeded")]
        for entry in mine:
            assert (entry.operator, entry.role, entry.reason) == (lead.name, "support", REASON_SUPPORT)
            assert (entry.action_kind, entry.exception_id, entry.target_system) == ("push", exc.id, "support")
        assert mine[0].before == {"support": {"support_tier": before}}
        assert mine[1].after["verified"] is True

    run_qasync(qloop, console(qtbot, tmp_path, caplog, scenario))


# -- auditor -----------------------------------------------------------------------------------------
def test_auditor_is_refused_every_act_in_the_services_words_and_nothing_is_written(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario(live: Live) -> None:
        window, env = live.window, live.env
        before = stores(env)
        auditor = Operator(default_operator().name, Role.AUDITOR)
        await live.switch_role(auditor.role)
        refusal = auditor_refusal(auditor)
        assert refusal == f"{auditor.name} is an auditor: auditors read, verify and export; they never act"
        state = window.state
        assert state is not None and len(state.exceptions) >= 20
        # every fix button of every exception in the queue: disabled, saying the service's verdict
        for exc in state.exceptions:
            live.click_exception(exc.id)
            verdicts = {k.value: (ok, why) for k, ok, why in live.service.allowed_actions(exc)}
            buttons = window.exceptions_page.detail.fix_buttons
            assert sorted(b.property("action") for b in buttons) == sorted(verdicts), exc.id
            for b in buttons:
                assert verdicts[b.property("action")] == (False, refusal)
                assert not b.isEnabled() and b.toolTip() == refusal, (exc.id, b.property("action"))
        # the customer view's exception cards too
        target = live.exceptions("invoice.missing_in_erp")[0]
        assert target.customer_id is not None
        window.open_customer(target.customer_id)
        cards = window.customer_page.cards
        assert cards and all(b.toolTip() == refusal and not b.isEnabled() for c in cards for b in c.fix_buttons)
        grab_png(window, live.tmp, "job-auditor-customer")

        # a fix dialog, if something opens one, refuses too; asking it for a preview (choosing
        # an invoice date re-plans) gets the service's refusal as the failed check
        window.request_fix(target.id, "retry")
        dialog = live.dialog(target.id)
        assert dialog.banner.text() == f"You cannot do this: {refusal}"
        assert not dialog.confirm_button.isEnabled() and dialog.confirm_button.toolTip() == refusal
        assert dialog.date_check is not None
        # (the dialog's flow, a task, starts listening on the next turn of the loop; a person
        # cannot click sooner, a test can: wait for it)
        await until(lambda: dialog.receivers(SIGNAL("request_changed(PyObject)")) > 0, "the dialog's flow")
        live.qtbot.mouseClick(dialog.date_check, Qt.MouseButton.LeftButton)
        assert dialog.date_check.isChecked()
        await until(lambda: dialog.plan is not None and dialog.state == "ready", "the refused preview")
        plan = dialog.plan
        assert plan is not None and not plan.ok and plan.explanation == refusal
        assert ("✗ role", refusal) in check_rows(dialog)
        assert dialog.banner.text() == f"You cannot do this: {refusal}"
        live.qtbot.mouseClick(dialog.confirm_button, Qt.MouseButton.LeftButton)  # disabled: nothing happens
        assert dialog.state == "ready" and dialog.outcome is None
        grab_png(dialog, live.tmp, "job-auditor-refused")
        dialog.close()

        # a bulk run: the menu entry opens it, and it cannot start
        menu = window.bulk_button.menu()
        assert menu is not None
        retry_all = next(a for a in menu.actions() if a.text().startswith("Retry"))
        live.go_to("Exceptions")
        retry_all.trigger()
        assert window.launcher is not None
        bulk = window.launcher.bulk_dialog
        assert isinstance(bulk, BulkDialog) and bulk.isVisible()
        assert bulk.eligible == [] and len(bulk.skipped) == len(state.exceptions)
        # left out: the retryable ones in the service's words; the others as not offering a retry
        assert {why for e, why in bulk.skipped if e.rule == "invoice.missing_in_erp"} == {refusal}
        assert f"{len(live.exceptions('invoice.missing_in_erp'))} × {refusal}" in bulk.skipped_label.text()
        assert bulk.banner.text() == f"You cannot do this: {refusal}"
        assert not bulk.start_button.isEnabled() and bulk.start_button.toolTip() == refusal
        live.qtbot.mouseClick(bulk.start_button, Qt.MouseButton.LeftButton)
        assert bulk.state == "setup"
        bulk.close()

        # nothing was written but the role switch: no action entry, no outbox row, no change in any system
        assert [(e.action_kind, e.phase, e.operator, e.before, e.after) for e in await live.audit()] == [
            ("role_change", "policy", auditor.name, {"role": "finance"}, {"role": "auditor"})]
        assert await live.outbox() == []
        assert stores(env) == before

    run_qasync(qloop, console(qtbot, tmp_path, caplog, scenario))


# -- the console's start-up replay ---------------------------------------------------------------------
class ProcessKilled(BaseException):
    """Where a test stops a service as a killed process stops: nothing after this point runs."""


async def leave_pending(env: DemoEnvironment, tmp_path: Path, operator: Operator
                        ) -> dict[str, tuple[SyncException, str]]:
    """A previous session on ``tmp_path``'s databases, left as a dead process leaves them: one
    retry *executing* (its write-ahead committed, then the process died before its first
    request) and one *queued* (the ERP was down: its breaker opened under the write).
    Answers {"executing" | "queued": (the exception, the action id)}."""
    policies = {s: HttpPolicy(max_retries=0, backoff_base=0.01, read_timeout=5.0, breaker_threshold=1)
                for s in System}
    storage = Storage.open_path(tmp_path / "snap.db")
    audit_storage = Storage.open_path(tmp_path / "audit.db", durable=True)
    engine = Engine.from_profile(env.profile(), storage, policies=policies, clock=env.now)
    service = ActionService(engine, AuditLog(audit_storage), operator, clock=env.now)
    try:
        await engine.load()
        report = await engine.refresh(RefreshMode.FULL)
        assert report.ok, [o.error_text for o in report.failed]
        await engine.reconcile()
        missing = sorted((e for e in await engine.open_exceptions() if e.rule == "invoice.missing_in_erp"),
                         key=lambda e: e.id)
        executing, queued = missing[:2]
        plan = await service.plan(ActionRequest(ActionKind.RETRY, executing.id, reason="left executing"))
        assert plan.ok, plan.explanation

        async def dies(_work: Any) -> Any:
            raise ProcessKilled

        service._run_claimed = dies  # type: ignore[method-assign]  # the process dies after the write-ahead
        with pytest.raises(ProcessKilled):
            await service.execute(plan)
        del service._run_claimed
        env.injectors[System.ERP].config.update({"outage": True})
        plan = await service.plan(ActionRequest(ActionKind.RETRY, queued.id, reason="left queued"))
        assert plan.ok, plan.explanation
        result = await service.execute(plan)
        assert result.status is ActionStatus.QUEUED, result.message
        env.injectors[System.ERP].config.update({"outage": False})
        rows = {o.exception_id: o for o in service.outbox()}
        assert {k: (o.status, o.attempts) for k, o in rows.items()} == {
            executing.id: (ActionStatus.EXECUTING, 1), queued.id: (ActionStatus.QUEUED, 1)}
        assert erp_copies(env, executing.object_id) == [] and erp_copies(env, queued.object_id) == []
        return {"executing": (executing, rows[executing.id].action_id), "queued": (queued, rows[queued.id].action_id)}
    finally:
        await service.aclose()
        await engine.aclose()
        storage.close()
        audit_storage.close()


def test_console_start_replays_what_a_previous_session_left_pending_exactly_once(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = demo_env().start()
    try:
        pending = run_qasync(qloop, leave_pending(env, tmp_path, Operator("kim.finance", Role.FINANCE)))
    except BaseException:
        env.stop()
        raise

    async def scenario(live: Live) -> None:
        session, window = live.session, live.window
        adapter = session.adapter
        assert adapter is not None
        # the start-up replays both by itself (the automatic replay, and the replay after the
        # first refresh): wait until every row is final and the replay-after task is over
        final = {ActionStatus.SUCCEEDED, ActionStatus.FAILED, ActionStatus.CANCELLED}
        await until(lambda: not adapter.tasks.running("replay")
                    and all(o.status in final for o in live.service.outbox()), "the start-up replay")
        rows = {o.action_id: o for o in await live.outbox()}
        assert {(rows[a].exception_id, rows[a].status, rows[a].attempts) for _e, a in pending.values()} == {
            (pending["executing"][0].id, ActionStatus.SUCCEEDED, 2),  # attempt 1 died; the replay is 2
            (pending["queued"][0].id, ActionStatus.SUCCEEDED, 2)}  # attempt 1 met the outage
        assert len(rows) == 2

        # the window shows them closed (the queue as the replays left it)
        replayed = {exc.id for exc, _a in pending.values()}
        await until(lambda: window.state is not None and not replayed & {e.id for e in window.state.exceptions},
                    "the window to show the replayed exceptions closed")
        assert all(window.exceptions_page.model.row_of(i) is None for i in replayed)
        # each invoice reached the ERP exactly once
        for exc, _action in pending.values():
            copies = erp_copies(live.env, exc.object_id)
            assert len(copies) == 1 and copies[0]["state"] == "posted", (exc.id, copies)

        # the audit log: one replay and one verified outcome per action, by the console's operator
        entries = await live.audit()
        me = default_operator()
        for was, (_exc, action_id) in pending.items():
            mine = entries_of(entries, action_id)
            replays = [e for e in mine if str(e.request.get("note", "")).startswith("replay of")]
            assert [e.request["note"] for e in replays] == [f"replay of a {was} action"], mine
            assert replays[0].request["replayed_by"] == f"{me.name} ({me.role.value})"
            outcomes = [e for e in mine if e.phase == "outcome"]
            assert [(e.outcome, e.after.get("verified")) for e in outcomes] == [("succeeded", True)], mine
            assert mine[-1] is outcomes[0]
            assert all(e.reason == f"left {was}" for e in mine)
        storage = Storage.open_path(live.audit_db, durable=True)
        try:
            assert AuditLog(storage).verify().ok  # the whole chain, across both sessions
        finally:
            storage.close()
        # and nothing is left on the Pending actions page
        live.go_to("Pending actions")
        page = window.pending_page
        assert isinstance(page, PendingActionsPage) and session.actions is not None
        await session.actions.refresh_pending()
        assert page.model.rowCount() == 0
        grab_png(window, live.tmp, "job-startup-replayed")

    run_qasync(qloop, console(qtbot, tmp_path, caplog, scenario, env=env))


def test_replay_after_the_first_refresh_replays_once_and_never_as_an_auditor(
        qloop: asyncio.AbstractEventLoop, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``_replay_after`` on its own (no automatic replay beside it), on the service thread as
    the console runs it: after the refresh it replays what was left pending, once; an auditor
    at the keyboard by then replays nothing and nothing is logged as an error."""
    env = demo_env().start()

    async def scenario() -> None:
        pending = await leave_pending(env, tmp_path, Operator("kim.finance", Role.FINANCE))
        runner = ServiceLoop(name="test-services").start()
        storage = Storage.open_path(tmp_path / "snap.db")
        audit_storage = Storage.open_path(tmp_path / "audit.db", durable=True)
        engine = Engine.from_profile(env.profile(), storage, clock=env.now)
        service = ActionService(engine, AuditLog(audit_storage), Operator("ada.audit", Role.AUDITOR),
                                clock=env.now)
        try:
            await runner.call(engine.load())
            refresh = asyncio.ensure_future(runner.call(engine.refresh(RefreshMode.AUTO)))
            audited = len(await asyncio.to_thread(read_audit, tmp_path / "audit.db"))
            shown: list[int] = []  # how many actions were still pending each time the window was re-shown

            def republish() -> None:
                shown.append(len(service.outbox(PENDING_STATUSES)))

            await _replay_after(refresh, service, runner, republish)  # an auditor: nothing replayed, nothing raised
            assert refresh.done() and shown == [2]
            assert {o.status for o in service.outbox()} == {ActionStatus.EXECUTING, ActionStatus.QUEUED}
            assert len(await asyncio.to_thread(read_audit, tmp_path / "audit.db")) == audited
            assert all(erp_copies(env, exc.object_id) == [] for exc, _a in pending.values())
            service.set_operator(Operator("kim.finance", Role.FINANCE))
            for _ in range(2):  # a second run (as when the automatic replay races it) finds nothing left
                await _replay_after(refresh, service, runner, republish)
            assert shown == [2, 0, 0]  # the window is shown the state after the replay, every time
            assert {(o.status, o.attempts) for o in service.outbox()} == {(ActionStatus.SUCCEEDED, 2)}
            assert len(service.outbox()) == 2
            for exc, _a in pending.values():
                assert len(erp_copies(env, exc.object_id)) == 1
            entries = await asyncio.to_thread(read_audit, tmp_path / "audit.db")
            for was, (_exc, action_id) in pending.items():
                mine = entries_of(entries, action_id)
                assert [e.request.get("note") for e in mine if e.request.get("note", "").startswith("replay")] == [
                    f"replay of a {was} action"]
                assert [e.outcome for e in mine if e.phase == "outcome"] == ["succeeded"]
        finally:
            await runner.call(service.aclose())
            await runner.call(engine.aclose())
            await asyncio.to_thread(runner.stop)
            storage.close()
            audit_storage.close()

    caplog.set_level(logging.WARNING)
    try:
        run_qasync(qloop, scenario())
    finally:
        env.stop()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], errors


def test_a_queued_fix_replays_by_itself_when_the_erp_returns_and_the_window_shows_it(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """During a session: the ERP goes down, the analyst's fix is queued (shown on Pending
    actions); the ERP comes back, the service replays it by itself, and — with no click — the
    exception leaves the queue and Pending actions empties."""
    # the ERP's breaker opens at the first failure and is probed again after 0.3 s (the
    # defaults, 5 failures and 30 s, would only make the test slow)
    fast_erp = HttpPolicy(max_retries=0, backoff_base=0.01, read_timeout=5.0, breaker_threshold=1,
                          breaker_cooldown=0.3, concurrency=2)
    policies = {System.ERP: fast_erp}

    async def scenario(live: Live) -> None:
        window, env = live.window, live.env
        exc = live.exceptions("invoice.missing_in_erp")[0]
        env.injectors[System.ERP].config.update({"outage": True})
        live.click_exception(exc.id)
        live.qtbot.mouseClick(live.fix_button("retry"), Qt.MouseButton.LeftButton)
        dialog = live.dialog(exc.id)
        await until(lambda: dialog.plan is not None and dialog.state == "ready", "the preview")
        live.qtbot.keyClicks(dialog.reason_edit, "month-end close")
        live.qtbot.mouseClick(dialog.confirm_button, Qt.MouseButton.LeftButton)
        await until(lambda: dialog.state == "done", "the result in the dialog")
        assert dialog.outcome is not None and dialog.outcome.status is ActionStatus.QUEUED, dialog.outcome
        action_id = dialog.outcome.action_id
        dialog.close()
        live.go_to("Pending actions")
        page = window.pending_page
        assert isinstance(page, PendingActionsPage)
        await until(lambda: page.model.rowCount() == 1, "the queued fix on Pending actions")
        assert erp_copies(env, exc.object_id) == []
        assert window.exceptions_page.model.row_of(exc.id) is not None

        env.injectors[System.ERP].config.update({"outage": False})  # the ERP is back: nobody clicks anything
        await until(lambda: page.model.rowCount() == 0, "Pending actions to empty by itself")
        await until(lambda: window.exceptions_page.model.row_of(exc.id) is None,
                    "the replayed exception to leave the queue by itself")
        copies = erp_copies(env, exc.object_id)
        assert len(copies) == 1 and copies[0]["state"] == "posted", copies
        row = next(o for o in await live.outbox() if o.action_id == action_id)
        assert row.status is ActionStatus.SUCCEEDED
        outcomes = [e.outcome for e in entries_of(await live.audit(), action_id) if e.phase == "outcome"]
        assert outcomes[-1] == "succeeded"
        grab_png(window, live.tmp, "job-replayed-in-session")

    run_qasync(qloop, console(qtbot, tmp_path, caplog, scenario, policies=policies))
