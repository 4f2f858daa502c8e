"""The Connections dialog against the demo servers over loopback, run as the console runs it
(Qt on a qasync loop, the services on a ServiceLoop thread), with an in-memory keyring (never
the user's) and a config.toml in the test's SYNCDESK_HOME: a profile added in the dialog for the
demo servers passes Test all, its secrets land in the keyring and nowhere on disk; the
demo-readonly profile's test shows the write permissions it lacks on each system; an edit keeps
the file's comments; Cancel stops a running test (the server sees the connection dropped)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from services.core.domain import System
from services.demo.environment import DemoEnvironment, DemoOptions
from services.demo.faults import FaultConfig
from services.io.config import KEYRING_SERVICE, SECRET_KEYS, Profile, load_profile
from services.io.config_write import put_profiles
from services.runner import ServiceLoop
from tests.connect_support import MemoryKeyring, files_holding, memory_keyring
from tests.gui.live_loop import grab_png, run_qasync
from views.connections.adapter import ConnectionsAdapter
from views.connections.dialog import ConnectionsDialog
from views.connections.model import IN_KEYRING

__all__ = ["memory_keyring"]  # the fixture, used by name
pytestmark = pytest.mark.gui
#: a generous bound on one wait (a Test all of three demo servers takes well under a second)
DEADLINE = 60.0
COMMENTED = """# SyncDesk connection profiles — kept by hand, do not reformat
[roles]  # who may act
alice = "finance"   # the finance lead
"""


async def until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"waited {DEADLINE:.0f} s for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
def env() -> Iterator[DemoEnvironment]:
    opts = DemoOptions(customers=20, seed=5, faults={s: FaultConfig() for s in System})
    with DemoEnvironment(opts) as running:
        yield running


@pytest.fixture
def runner() -> Iterator[ServiceLoop]:
    loop = ServiceLoop(name="test-connections").start()
    yield loop
    loop.stop()


def open_dialog(qtbot: QtBot, path: Path, runner: ServiceLoop, deadline: float = 20.0) -> ConnectionsDialog:
    dialog = ConnectionsDialog(ConnectionsAdapter(path, runner, deadline=deadline))
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def fill(dialog: ConnectionsDialog, name: str, profile: Profile) -> None:
    """Type ``profile``'s systems into the dialog's fields, as a user would."""
    if name:
        dialog.name_edit.setText(name)
    for system, box in dialog.boxes.items():
        conn = profile.connections[system]
        box.setChecked(True)
        box.url.setText(conn.url)
        for key, edit in box.settings.items():
            edit.setText(conn.settings[key])
        box.secret.setText(conn.secret(SECRET_KEYS[conn.kind][0]))


async def loaded(dialog: ConnectionsDialog, name: str) -> None:
    await until(lambda: name in dialog.stored and dialog.current is not None and dialog.current.name == name,
                f"profile {name} listed and selected")


async def report_in(dialog: ConnectionsDialog) -> None:
    await until(lambda: dialog.checklist.report is not None and not dialog.adapter.testing(), "the test's report")


def test_a_profile_added_for_the_demo_servers_passes_test_all_and_its_secrets_stay_in_the_keyring(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, env: DemoEnvironment, runner: ServiceLoop,
        memory_keyring: MemoryKeyring, syncdesk_home: Path, tmp_path: Path) -> None:
    path = syncdesk_home / "config.toml"
    path.write_text(COMMENTED, encoding="utf-8")
    demo = env.profile("demo")

    async def scenario() -> None:
        dialog = open_dialog(qtbot, path, runner)
        await until(lambda: not dialog.adapter.tasks.running("load"), "the profiles read")
        assert dialog.profile_list.count() == 0 and dialog.name_edit.text() == "default"
        # validation in place, in plain words: nothing filled in
        dialog.save()
        assert dialog.boxes[System.BILLING].errors["url"].text() == "Give the address."
        assert "key" in dialog.boxes[System.BILLING].errors["secret"].text()
        assert not path.read_text(encoding="utf-8").count("[profiles")
        fill(dialog, "acme", demo)
        dialog.boxes[System.BILLING].secret.setText("pk_test_publishable")
        dialog.save()
        assert "publishable" in dialog.boxes[System.BILLING].errors["secret"].text()
        fill(dialog, "acme", demo)
        dialog.save()
        await loaded(dialog, "acme")
        text = path.read_text(encoding="utf-8")
        assert text.startswith(COMMENTED)  # the user's comments and layout, byte for byte
        for system in System:
            user = f"acme/{system.value}/{SECRET_KEYS[demo.connections[system].kind][0]}"
            assert memory_keyring.entries[(KEYRING_SERVICE, user)] == demo.connections[system].secret(
                SECRET_KEYS[demo.connections[system].kind][0])
            box = dialog.boxes[system]
            assert box.secret.text() == "" and IN_KEYRING in box.secret.placeholderText()  # never pre-filled
            assert box.secret.echoMode() is box.secret.EchoMode.Password
        # Test all: on the service thread, the busy bar shown meanwhile
        dialog.test_all_button.click()
        assert dialog.checklist.busy.isVisibleTo(dialog) and not dialog.test_all_button.isEnabled()
        await report_in(dialog)
        report = dialog.checklist.report
        assert report is not None and report.ok, [r.lines() for r in report.systems.values()]
        assert set(report.systems) == set(System)
        lines = dialog.checklist.lines()
        assert lines and all(tone in ("ok", "info") for tone, _ in lines), lines
        assert dialog.checklist.headline.text().startswith("Every check passed")
        assert not dialog.checklist.busy.isVisibleTo(dialog) and dialog.test_all_button.isEnabled()
        assert dialog.checklist.blocked.text() == ""
        dialog.resize(1180, 720)
        grab_png(dialog, tmp_path, "connections-dialog")
        dialog.close()

    run_qasync(qloop, scenario())
    # the profile the console would open has the keyring's credentials
    assert load_profile(path, "acme").all_secrets() == demo.all_secrets()
    # a secret search over SYNCDESK_HOME (config.toml and its .bak included) finds none
    assert files_holding([syncdesk_home, tmp_path], demo.all_secrets()) == []


def test_the_demo_readonly_profile_shows_its_missing_write_permissions_on_each_system(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, env: DemoEnvironment, runner: ServiceLoop,
        memory_keyring: MemoryKeyring, syncdesk_home: Path, tmp_path: Path) -> None:
    path = syncdesk_home / "config.toml"
    put_profiles(path, [env.profile("demo"), env.readonly_profile()], plain_secrets=True)  # demo-server --write-config

    async def scenario() -> None:
        dialog = open_dialog(qtbot, path, runner)
        await until(lambda: "demo-readonly" in dialog.stored, "the profiles read")
        dialog.select("demo-readonly")
        assert dialog.current is not None and dialog.current.name == "demo-readonly"
        assert dialog.boxes[System.BILLING].secret.text() == ""  # the stored key is never shown
        assert "in the file" in dialog.boxes[System.BILLING].secret.placeholderText()
        dialog.test_all_button.click()
        await report_in(dialog)
        report = dialog.checklist.report
        assert report is not None and not report.ok
        for system in System:
            sys_report = report.systems[system]
            assert sys_report.reachable and sys_report.authenticated, sys_report.lines()
            assert any(c.access != "read" for c in sys_report.missing), (system, sys_report.lines())
            assert all(c.ok for c in sys_report.checks if c.access == "read" and c.needed), sys_report.lines()
        lines = dialog.checklist.lines()
        bad = [text for tone, text in lines if tone == "bad"]
        assert any("cannot create erp invoices" in text.lower() for text in bad), bad
        assert any(text.startswith("Billing:") for tone, text in lines if tone == "bad")
        assert any(text.startswith("Support:") for tone, text in lines if tone == "bad")
        assert any("Can read" in text for tone, text in lines if tone == "ok")
        # what is missing is listed; the granted permissions only when asked for
        shown = dialog.checklist.lines(shown_only=True)
        assert not any(tone == "ok" and text.startswith("Can ") for tone, text in shown), shown
        assert [t for t in shown if t[0] == "bad"] == [t for t in lines if t[0] == "bad"]
        dialog.checklist.show_granted.setChecked(True)
        assert dialog.checklist.lines(shown_only=True) == lines
        assert dialog.checklist.headline.text().startswith("Some checks failed (Billing, ERP, Support)")
        assert dialog.checklist.blocked.text().startswith("Fixes this profile cannot perform")
        dialog.resize(1180, 720)
        grab_png(dialog, tmp_path, "connections-failed-check")
        # the full-rights demo profile, tested next in the same dialog, passes
        dialog.select("demo")
        dialog.test_all_button.click()
        await report_in(dialog)
        assert dialog.checklist.report is not None and dialog.checklist.report.ok
        dialog.close()

    run_qasync(qloop, scenario())


def test_an_edit_in_the_dialog_keeps_the_files_comments_and_other_profiles(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, env: DemoEnvironment, runner: ServiceLoop,
        memory_keyring: MemoryKeyring, syncdesk_home: Path) -> None:
    path = syncdesk_home / "config.toml"
    put_profiles(path, [env.profile("demo"), env.readonly_profile()], plain_secrets=True)
    original = path.read_text(encoding="utf-8")
    commented = original.replace('login = "reader"', 'login = "reader"  # the auditors\' account', 1)
    commented = "# written by demo-server, then annotated by hand\n" + commented
    assert commented.count("# the auditors' account") == 1
    path.write_text(commented, encoding="utf-8")

    async def scenario() -> None:
        dialog = open_dialog(qtbot, path, runner)
        await until(lambda: "demo-readonly" in dialog.stored, "the profiles read")
        dialog.select("demo-readonly")
        dialog.boxes[System.SUPPORT].settings["email"].setText("auditor@syncdesk-demo.example")
        dialog.read_only.setChecked(True)
        dialog.save()
        await until(lambda: "profile demo-readonly saved" in dialog.status.text().lower(), "the save")
        dialog.close()

    run_qasync(qloop, scenario())
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# written by demo-server, then annotated by hand\n")
    assert 'login = "reader"  # the auditors\' account' in text
    assert 'email = "auditor@syncdesk-demo.example"' in text
    assert (path.with_name("config.toml.bak")).read_text(encoding="utf-8") == commented
    # only the edited lines changed (read_only makes the profile's own table appear, with its header)
    changed = [line for line in text.splitlines() if line not in commented.splitlines()]
    assert sorted(changed) == sorted(['email = "auditor@syncdesk-demo.example"', "[profiles.demo-readonly]",
                                      "read_only = true"]), changed
    assert load_profile(path, "demo-readonly").read_only
    assert load_profile(path, "demo").connections.keys() == set(System)


class SilentServer:
    """Accepts connections and never answers; records when a client hangs up."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = threading.Event()
        self.hung_up = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        self.accepted.set()
        with conn:
            while conn.recv(4096):
                pass
        self.hung_up.set()

    def close(self) -> None:
        self.sock.close()


def test_cancel_stops_a_running_test(qtbot: QtBot, qloop: asyncio.AbstractEventLoop, env: DemoEnvironment,
                                     runner: ServiceLoop, memory_keyring: MemoryKeyring, syncdesk_home: Path) -> None:
    path = syncdesk_home / "config.toml"
    server = SilentServer()
    demo = env.profile("demo")

    async def scenario() -> None:
        # a deadline far beyond the waits below: only Cancel can end this test early
        dialog = open_dialog(qtbot, path, runner, deadline=600.0)
        await until(lambda: not dialog.adapter.tasks.running("load"), "the profiles read")
        fill(dialog, "stuck", demo)
        dialog.boxes[System.BILLING].url.setText(server.url)
        dialog.boxes[System.BILLING].test_button.click()
        await until(server.accepted.is_set, "the test's request reaching the silent server")
        assert dialog.adapter.testing() and dialog.checklist.busy.isVisibleTo(dialog)
        assert "Billing" in dialog.checklist.busy_label.text()
        dialog.checklist.cancel.click()
        await until(lambda: not dialog.adapter.testing(), "the test to stop")
        await until(server.hung_up.is_set, "the connection dropped by the cancelled test")
        assert dialog.checklist.report is None
        assert dialog.checklist.headline.text().startswith("Test cancelled")
        assert not dialog.checklist.busy.isVisibleTo(dialog) and dialog.test_all_button.isEnabled()
        dialog.close()

    try:
        run_qasync(qloop, scenario())
    finally:
        server.close()


def test_duplicate_and_delete_with_confirmation(qtbot: QtBot, qloop: asyncio.AbstractEventLoop, env: DemoEnvironment,
                                                runner: ServiceLoop, memory_keyring: MemoryKeyring,
                                                syncdesk_home: Path) -> None:
    path = syncdesk_home / "config.toml"
    path.write_text(COMMENTED, encoding="utf-8")
    demo = env.profile("demo")

    async def scenario() -> None:
        dialog = open_dialog(qtbot, path, runner)
        await until(lambda: not dialog.adapter.tasks.running("load"), "the profiles read")
        fill(dialog, "acme", demo)
        dialog.save()
        await loaded(dialog, "acme")
        # duplicate: asked for a name (no nested loop), credentials copied in the keyring
        dialog.ask_duplicate()
        assert dialog.name_ask is not None and dialog.name_ask.textValue() == "acme-2"
        dialog.name_ask.setTextValue("acme-test")
        dialog.name_ask.accept()
        await loaded(dialog, "acme-test")
        assert memory_keyring.entries[(KEYRING_SERVICE, "acme-test/billing/api_key")] == demo.connections[
            System.BILLING].secret("api_key")
        # delete: Cancel in the confirmation changes nothing; Delete removes file tables and secrets
        dialog.ask_delete()
        assert dialog.confirm is not None and dialog.confirm.isVisible()
        dialog.confirm.button(dialog.confirm.StandardButton.Cancel).click()
        assert "acme-test" in dialog.stored and "[profiles.acme-test" in path.read_text(encoding="utf-8")
        dialog.ask_delete()
        delete = next(b for b in dialog.confirm.buttons() if b.text() == "Delete")
        delete.click()
        await until(lambda: "acme-test" not in dialog.stored, "the deleted profile gone from the list")
        assert "deleted" in dialog.status.text()
        dialog.close()

    run_qasync(qloop, scenario())
    text = path.read_text(encoding="utf-8")
    assert text.startswith(COMMENTED) and "acme-test" not in text and "[profiles.acme.billing]" in text
    assert not any(user.startswith("acme-test/") for _, user in memory_keyring.entries)


def test_a_zendesk_oauth_token_is_kept_in_the_keyring_without_an_email_and_reopens_as_oauth(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, env: DemoEnvironment, runner: ServiceLoop,
        memory_keyring: MemoryKeyring, syncdesk_home: Path) -> None:
    path = syncdesk_home / "config.toml"
    path.write_text(COMMENTED, encoding="utf-8")
    demo = env.profile("demo")
    support = demo.connections[System.SUPPORT]
    token = support.secret("api_token")  # the demo Zendesk takes the agent's API token as a Bearer token

    async def scenario() -> None:
        dialog = open_dialog(qtbot, path, runner)
        await until(lambda: not dialog.adapter.tasks.running("load"), "the profiles read")
        fill(dialog, "oauth", demo)
        box = dialog.boxes[System.SUPPORT]
        assert box.credential is not None and box.credential.currentData() == "api_token"
        assert box.rows["email"].isVisibleTo(dialog)
        box.settings["email"].clear()
        box.credential.setCurrentIndex(box.credential.findData("oauth_token"))
        # with an OAuth token the e-mail is neither shown nor asked for; the field says what to type
        assert not box.rows["email"].isVisibleTo(dialog)
        assert box.labels["secret"].text() == "OAuth token"
        assert "support.email" not in dialog.errors()
        box.secret.setText(token)
        dialog.save()
        await loaded(dialog, "oauth")
        assert box.credential.currentData() == "oauth_token"  # reopened as stored: an OAuth token
        assert box.secret.text() == "" and box.secret.placeholderText() == IN_KEYRING
        assert not box.rows["email"].isVisibleTo(dialog)
        dialog.test_all_button.click()
        await report_in(dialog)
        report = dialog.checklist.report
        assert report is not None and report.ok, [r.lines() for r in report.systems.values()]
        # choosing the API token again asks for the token and the e-mail (the OAuth token is not one)
        box.credential.setCurrentIndex(box.credential.findData("api_token"))
        assert box.rows["email"].isVisibleTo(dialog) and box.secret.placeholderText() == "required"
        errors = dialog.errors()
        assert "support.email" in errors and "support.secret" in errors, errors
        dialog.close()

    run_qasync(qloop, scenario())
    assert memory_keyring.entries[(KEYRING_SERVICE, "oauth/support/oauth_token")] == token
    assert (KEYRING_SERVICE, "oauth/support/api_token") not in memory_keyring.entries
    text = path.read_text(encoding="utf-8")
    section = text[text.index("[profiles.oauth.support]"):]
    assert "email" not in section and "token" not in section.replace("[profiles.oauth.support]", ""), section
    loaded_profile = load_profile(path, "oauth")
    assert set(loaded_profile.connections[System.SUPPORT].secrets) == {"oauth_token"}
    assert "email" not in loaded_profile.connections[System.SUPPORT].settings
    assert files_holding([syncdesk_home], demo.all_secrets()) == []


def test_moving_a_profile_from_an_oauth_token_to_an_api_token_drops_the_oauth_token(
        qtbot: QtBot, qloop: asyncio.AbstractEventLoop, env: DemoEnvironment, runner: ServiceLoop,
        memory_keyring: MemoryKeyring, syncdesk_home: Path) -> None:
    path = syncdesk_home / "config.toml"
    demo = env.profile("demo")
    support = demo.connections[System.SUPPORT]
    token = support.secret("api_token")

    async def scenario() -> None:
        dialog = open_dialog(qtbot, path, runner)
        await until(lambda: not dialog.adapter.tasks.running("load"), "the profiles read")
        fill(dialog, "swap", demo)
        box = dialog.boxes[System.SUPPORT]
        assert box.credential is not None
        box.credential.setCurrentIndex(box.credential.findData("oauth_token"))
        box.secret.setText(token)
        dialog.save()
        await loaded(dialog, "swap")
        assert memory_keyring.entries[(KEYRING_SERVICE, "swap/support/oauth_token")] == token
        box.credential.setCurrentIndex(box.credential.findData("api_token"))
        box.settings["email"].setText(support.settings["email"])
        box.secret.setText(token)
        dialog.save()
        await until(lambda: "profile swap saved" in dialog.status.text().lower(), "the save")
        await until(lambda: dialog.current is not None and dialog.current.name == "swap"
                    and dialog.current.systems[System.SUPPORT].credential == "", "the profile read back")
        assert box.credential.currentData() == "api_token" and box.secret.placeholderText() == IN_KEYRING
        dialog.close()

    run_qasync(qloop, scenario())
    assert (KEYRING_SERVICE, "swap/support/oauth_token") not in memory_keyring.entries
    assert memory_keyring.entries[(KEYRING_SERVICE, "swap/support/api_token")] == token
    conn = load_profile(path, "swap").connections[System.SUPPORT]
    assert set(conn.secrets) == {"api_token"} and conn.settings["email"] == support.settings["email"]
