"""The screens show ownership from the engine's configuration — the one the action service
enforces: with a custom configuration (customer master data owned by billing) the detail pane
and the fix dialog name billing as the owner, all the way from the engine to the window."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtWidgets import QTableWidget
from pytestqt.qtbot import QtBot

from services.actions.model import ActionKind, Operator, Role
from services.actions.service import ActionService
from services.core.domain import System
from services.core.reconcile import ReconcileConfig
from services.demo.environment import DemoEnvironment, DemoOptions
from services.demo.faults import FaultConfig
from services.engine import Engine, RefreshMode
from services.io.http import HttpPolicy
from services.store.audit import AuditLog
from services.store.storage import Storage
from tests.gui.fake_actions import ALICE, NOW, amount_mismatch, master_drift, shot
from views.action_adapter import ActionAdapter
from views.actions.fix_dialog import FixDialog
from views.adapters import EngineAdapter
from views.exceptions.page import ExceptionsPage
from views.main_window import MainWindow

pytestmark = pytest.mark.gui

DEFAULT = ReconcileConfig().ownership
#: customer master data owned by billing, invoice content by the ERP
CUSTOM = {**DEFAULT, "customer.name": System.BILLING, "invoice.content": System.ERP}
FAST = {s: HttpPolicy(max_retries=0, backoff_base=0.01, read_timeout=5.0, breaker_threshold=50) for s in System}
OWNER_LINE = "Owner system: {} — corrections flow from the owner to the copies"


def header_texts(table: QTableWidget) -> list[str]:
    items = [table.horizontalHeaderItem(c) for c in range(table.columnCount())]
    return [item.text() if item is not None else "" for item in items]


def headers(page: ExceptionsPage) -> list[str]:
    return header_texts(page.detail.sides_table)


def test_detail_pane_shows_the_configured_owner(qtbot: QtBot) -> None:
    page = ExceptionsPage()
    qtbot.addWidget(page)
    drift, invoice = master_drift(), amount_mismatch()
    page.set_ownership(CUSTOM)
    page.set_exceptions([drift, invoice], NOW)
    assert page.select_exception(drift.id)
    # the reconciler flags the ERP side; the configuration says billing owns the name
    assert page.detail.owner_line.text() == OWNER_LINE.format("Billing")
    assert [h.split("\n")[0] for h in headers(page)] == ["ERP", "Billing (owner)", "Support"]
    assert page.select_exception(invoice.id)
    assert page.detail.owner_line.text() == OWNER_LINE.format("ERP")
    assert [h.split("\n")[0] for h in headers(page)] == ["Billing", "ERP (owner)"]
    # a new configuration re-shows the selected exception at once
    page.set_ownership(DEFAULT)
    assert page.detail.owner_line.text() == OWNER_LINE.format("Billing")
    assert [h.split("\n")[0] for h in headers(page)] == ["Billing (owner)", "ERP"]
    assert page.select_exception(drift.id)
    assert page.detail.owner_line.text() == OWNER_LINE.format("ERP")
    assert [h.split("\n")[0] for h in headers(page)] == ["ERP (owner)", "Billing", "Support"]


def test_fix_dialog_shows_the_configured_owner(qtbot: QtBot) -> None:
    for ownership, owner in ((CUSTOM, "Billing"), (DEFAULT, "ERP")):
        dialog = FixDialog(master_drift(), ActionKind.PUSH, ALICE, ownership=ownership, today=NOW)
        qtbot.addWidget(dialog)
        assert dialog.object_label.text().endswith(f" · owner {owner}")
        marked = [text for text in header_texts(dialog.sides_table) if "(owner)" in text]
        assert marked == [f"{owner} (owner): {'cus_3' if owner == 'Billing' else '3'}"]
    dialog = FixDialog(amount_mismatch(), ActionKind.ACCEPT, ALICE, ownership=CUSTOM, today=NOW)
    qtbot.addWidget(dialog)
    assert dialog.object_label.text().endswith(" · owner ERP")


async def _until(condition: Callable[[], bool], what: str, deadline: float = 60.0) -> None:
    """Wait for ``condition`` (the refresh and the preview run in tasks and worker threads);
    60 s is generous for a refresh of 80 demo customers over loopback on a loaded machine."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"waited {deadline:.0f} s for {what}")
        await asyncio.sleep(0.02)


async def test_the_engine_configuration_reaches_the_window(qtbot: QtBot, tmp_path: Path) -> None:
    """A real engine configured with CUSTOM, on the demo servers: the published state carries its
    ownership, the window's detail pane and the fix dialog the launcher opens show billing as
    the owner of a customer's master data — as the action service, reading the same
    configuration, enforces it."""
    opts = DemoOptions(customers=80, seed=3, anchor=1_780_000_000, faults={s: FaultConfig() for s in System})
    env = await asyncio.to_thread(lambda: DemoEnvironment(opts).start())
    storage = Storage.open_path(tmp_path / "snap.db")
    audit_storage = Storage.open_path(tmp_path / "audit.db")
    engine = Engine.from_profile(env.profile(), storage, policies=FAST, config=ReconcileConfig(ownership=CUSTOM),
                                 clock=env.now)
    service = ActionService(engine, AuditLog(audit_storage), Operator("alice", Role.FINANCE), clock=env.now)
    adapter = EngineAdapter(engine)
    actions = ActionAdapter(service, service.audit)
    window = MainWindow()
    qtbot.addWidget(window)
    adapter.state_changed.connect(window.set_state)
    try:
        await adapter.load()
        report = await adapter.start_refresh(RefreshMode.FULL)
        assert report is not None and not report.failed
        state = window.state
        assert state is not None and state.ownership == CUSTOM
        assert service.engine.config.ownership == CUSTOM  # what the action service checks
        drift = sorted(e.id for e in state.exceptions if e.rule == "customer.master_drift")
        assert drift, "the demo plants master-data drift"
        page = window.exceptions_page
        assert page.select_exception(drift[0])
        assert page.detail.owner_line.text() == OWNER_LINE.format("Billing")
        window.attach_actions(actions)
        window.request_fix(drift[0], "push")
        assert window.launcher is not None
        dialog = window.launcher.dialogs[drift[0]]
        assert dialog.object_label.text().endswith(" · owner Billing")
        await _until(lambda: dialog.plan is not None, "the preview")
        shot(dialog, tmp_path, "fix-dialog-configured-owner")
        dialog.reject()
        await _until(lambda: not actions.tasks.running(f"fix:{drift[0]}"), "the fix flow to end")
    finally:
        await actions.aclose()
        await adapter.aclose()
        await service.aclose()
        await engine.aclose()
        storage.close()
        audit_storage.close()
        await asyncio.to_thread(env.stop)
