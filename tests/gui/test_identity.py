"""The console's operator is the login: the toolbar shows it and switches only among the roles
the ``[roles]`` table grants it; every switch, and a policy changed since the audit log last saw
it, is an entry of the audit chain.

- the widget alone: no name field, only the identity's roles offered, a switch is a request
  (``role_changed``) that the widget shows once the service answered; an unlisted login is told
  it is read-only;
- the console composed as it starts (``app.console.compose`` over the demo on loopback, the
  policy read from SYNCDESK_HOME/config.toml, the login faked through the documented seam
  ``services.core.identity.os_login``): the policy change is audited at start-up, the widget
  offers the login's roles only, each click on "Switch role" adds one ``role_change`` entry by
  the login, and an unlisted login starts read-only with every fix refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.console import ConsoleSession, close_console, compose
from services.actions.model import Operator, Role
from services.actions.roles import auditor_refusal
from services.actions.service import ActionService
from services.core import identity
from services.core.domain import System
from services.core.identity import Identity, RolePolicy, resolve_identity
from services.demo.environment import DemoEnvironment, DemoOptions
from services.demo.faults import FaultConfig
from services.runner import ServiceLoop
from services.store.audit import AuditEntry, AuditLog
from services.store.storage import Storage
from tests.gui.fake_actions import shot
from tests.gui.live_loop import grab_png, run_qasync
from views.actions.operator import OperatorWidget
from views.actions.wording import AUDITOR_TIP
from views.adapters import HealthAdapter
from views.main_window import MainWindow

pytestmark = pytest.mark.gui

POLICY = RolePolicy((("dana", (Role.FINANCE, Role.AUDITOR)), ("sue", (Role.SUPPORT,))), "/etc/syncdesk/config.toml")
ROLES = '[roles]\ndana = ["finance", "auditor"]\nsue = "support"\n'
#: a generous bound on any one wait (a refresh of 60 customers takes about a second on a loaded
#: 2-core machine); it only turns a hang into a failure that says what it waited for
DEADLINE = 60.0


# -- the widget ----------------------------------------------------------------------------------------
def test_the_widget_shows_the_login_and_offers_only_its_roles(qtbot: QtBot, tmp_path: Path) -> None:
    dana = resolve_identity(POLICY, "dana")
    widget = OperatorWidget(Operator("dana", Role.FINANCE), identity=dana)
    qtbot.addWidget(widget)
    assert widget.text() == "dana · finance"
    assert widget.login_label.text() == "dana"
    assert not hasattr(widget, "name_edit"), "no field to type a name in"
    roles = [widget.role_combo.itemData(i) for i in range(widget.role_combo.count())]
    assert roles == ["finance", "auditor"] and widget.role_combo.isEnabled()
    assert widget.policy_note.text() == "Granted by the [roles] table of /etc/syncdesk/config.toml: finance, auditor."
    assert not widget.apply_button.isEnabled(), "the current role: nothing to switch to"
    seen: list[Role] = []
    widget.role_changed.connect(seen.append)
    widget.role_combo.setCurrentIndex(widget.role_combo.findData("auditor"))
    assert widget.role_hint.text() == AUDITOR_TIP and widget.apply_button.isEnabled()
    widget.apply_button.click()
    assert seen == [Role.AUDITOR]
    assert widget.text() == "dana · finance", "shown once the service switched, not before"
    widget.set_operator(Operator("dana", Role.AUDITOR))  # the service answered
    assert widget.text() == "dana · auditor" and AUDITOR_TIP in widget.toolTip()
    widget.apply()  # the current role again: no request
    assert seen == [Role.AUDITOR]
    shot(widget, tmp_path, "identity-button")
    widget.form.resize(widget.form.sizeHint())
    shot(widget.form, tmp_path, "identity-form")


def test_the_widget_tells_an_unlisted_login_it_is_read_only(qtbot: QtBot) -> None:
    mallory = resolve_identity(POLICY, "mallory")
    widget = OperatorWidget(Operator("mallory", Role.AUDITOR), identity=mallory)
    qtbot.addWidget(widget)
    assert widget.text() == "mallory · auditor"
    assert widget.offered_roles() == [Role.AUDITOR] and not widget.role_combo.isEnabled()
    assert widget.policy_note.text() == ("mallory is not listed in the [roles] table of /etc/syncdesk/config.toml: "
                                         "read-only (auditor)")
    assert widget.policy_note.text() in widget.toolTip()
    # without a table the one login holds every role
    kim = Identity("kim", tuple(Role), None)
    widget.set_identity(kim)
    assert widget.offered_roles() == list(Role)
    assert widget.policy_note.text() == "No [roles] table in config.toml: this login holds every role."


# -- the console ---------------------------------------------------------------------------------------
async def until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"waited {DEADLINE:.0f} s for {what}")
        await asyncio.sleep(0.02)


def read_audit(path: Path) -> list[AuditEntry]:
    storage = Storage.open_path(path, durable=True)
    try:
        return list(reversed(AuditLog(storage).entries()))
    finally:
        storage.close()


def verified(path: Path) -> bool:
    storage = Storage.open_path(path, durable=True)
    try:
        return AuditLog(storage).verify().ok
    finally:
        storage.close()


Scenario = Callable[[MainWindow, ActionService, Path], Awaitable[None]]


async def run_console(tmp_path: Path, caplog: pytest.LogCaptureFixture, scenario: Scenario) -> None:
    """Compose the console as ``app.console._main`` does (the identity from SYNCDESK_HOME's
    config.toml), wait for the first refresh, run ``scenario``, shut down."""
    caplog.set_level(logging.WARNING)
    opts = DemoOptions(customers=60, seed=3, anchor=1_780_000_000, faults={s: FaultConfig() for s in System})
    env = await asyncio.to_thread(lambda: DemoEnvironment(opts).start())
    window = MainWindow()
    window.show()
    runner = ServiceLoop(name="test-services").start()
    health = HealthAdapter(window, runner=runner)
    window.attach_health(health)
    session = ConsoleSession()
    audit_db = tmp_path / "audit.db"
    try:
        await compose(session, window, health, runner, env.profile(),
                      snapshot=lambda: Storage.open_path(tmp_path / "snap.db"), audit_file=audit_db, clock=env.now)
        assert session.refresh is not None and session.service is not None
        report = await session.refresh
        assert report is not None and report.ok, report
        await until(lambda: window.state is not None and window.state.complete and bool(window.state.exceptions),
                    "the first refresh to be shown")
        await scenario(window, session.service, audit_db)
    finally:
        await close_console(session, health, runner, env)
        window.close()
        window.deleteLater()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], errors


def test_each_role_switch_and_the_policy_change_are_audited(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path, syncdesk_home: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    (syncdesk_home / "config.toml").write_text(ROLES)
    monkeypatch.setattr(identity, "os_login", lambda: "dana")

    async def scenario(window: MainWindow, service: ActionService, audit_db: Path) -> None:
        widget = window.operator_widget
        assert widget.text() == "dana · finance" and service.operator == Operator("dana", Role.FINANCE)
        assert widget.offered_roles() == [Role.FINANCE, Role.AUDITOR]
        # start-up recorded the policy this log had not seen (it had seen none: the default)
        entries = await asyncio.to_thread(read_audit, audit_db)
        assert [(e.action_kind, e.phase, e.operator, e.after["policy"]) for e in entries] == [
            ("role_policy", "policy", "dana", [["dana", ["finance", "auditor"]], ["sue", ["support"]]])]
        assert entries[0].reason is not None and entries[0].reason.startswith(
            "role policy changed: dana = finance, auditor; sue = support (was: no [roles] table")

        async def switch(role: Role) -> None:
            widget.role_combo.setCurrentIndex(widget.role_combo.findData(role.value))
            widget.apply_button.click()  # the form lives in the button's pop-up menu
            await until(lambda: widget.text() == f"dana · {role.value}", f"the switch to {role.value}")

        await switch(Role.AUDITOR)
        assert service.operator == Operator("dana", Role.AUDITOR)
        # the fix buttons follow: every one refused in the service's words
        exc = window.state.exceptions[0] if window.state is not None else None
        assert exc is not None
        assert {(ok, why) for _k, ok, why in service.allowed_actions(exc)} == {
            (False, auditor_refusal(service.operator))}
        grab_png(window, tmp_path, "identity-auditor")
        await switch(Role.FINANCE)
        entries = await asyncio.to_thread(read_audit, audit_db)
        assert [(e.action_kind, e.phase, e.operator, e.role, e.before, e.after) for e in entries[1:]] == [
            ("role_change", "policy", "dana", "auditor", {"role": "finance"}, {"role": "auditor"}),
            ("role_change", "policy", "dana", "finance", {"role": "auditor"}, {"role": "finance"})]
        assert await asyncio.to_thread(verified, audit_db)

    run_qasync(qloop, run_console(tmp_path, caplog, scenario))


def test_an_unlisted_login_starts_read_only(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, tmp_path: Path, syncdesk_home: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    (syncdesk_home / "config.toml").write_text(ROLES)
    monkeypatch.setattr(identity, "os_login", lambda: "mallory")

    async def scenario(window: MainWindow, service: ActionService, audit_db: Path) -> None:
        widget = window.operator_widget
        assert widget.text() == "mallory · auditor" and service.operator == Operator("mallory", Role.AUDITOR)
        assert widget.offered_roles() == [Role.AUDITOR] and not widget.role_combo.isEnabled()
        assert "mallory is not listed in the [roles] table" in widget.policy_note.text()
        state = window.state
        assert state is not None
        refusal = auditor_refusal(service.operator)
        assert all((ok, why) == (False, refusal) for e in state.exceptions
                   for _k, ok, why in service.allowed_actions(e))
        entries = await asyncio.to_thread(read_audit, audit_db)
        assert [(e.action_kind, e.operator, e.role) for e in entries] == [("role_policy", "mallory", "auditor")]

    run_qasync(qloop, run_console(tmp_path, caplog, scenario))
