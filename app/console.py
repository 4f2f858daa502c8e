"""Composition root of the desktop console: QApplication, the qasync loop, wiring, shutdown.

The order matters (STYLE.md): qasync is bound to PySide6 (QT_API, set in app/__init__), the QApplication exists
before the loop, and the loop runs under ``asyncio.Runner(loop_factory=qasync.QEventLoop)``.
The services (connectors, engine, actions, health probes) run on a loop of their own in the
service thread (``services/runner.py``): the UI thread only draws. Shutdown is explicit:
tracked tasks cancelled, HTTP clients closed on the service loop, the service thread joined,
demo servers stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import traceback
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import qasync
from PySide6.QtCore import QMessageLogContext, QObject, QtMsgType, qInstallMessageHandler
from PySide6.QtWidgets import QApplication, QMessageBox

from app.demo import DemoError, RunningDemo, ServedWorld, start_demo
from app.runtime import collect_when_idle, tune_interpreter, tune_loop
from app.sources import open_storage
from services.actions.model import PENDING_STATUSES, ActionKind, ActionRequest, Operator, PermissionDenied, Role
from services.actions.role_audit import record_policy_change
from services.actions.service import ActionService
from services.core.domain import System
from services.core.identity import Identity, current_login, resolve_identity
from services.core.redaction import register_secret
from services.engine import Engine, RefreshMode
from services.io.config import ConfigError, Profile, load_profile, load_profiles, load_roles
from services.io.connectors.base import utc_now
from services.io.http import HttpPolicy
from services.metrics.sla import SlaConfigError, load_sla
from services.runner import ServiceLoop
from services.store.audit import AuditLog
from services.store.audit_keys import KEY_DIR_ENV, WITNESS_ENV
from services.store.home import DEMO_AUDIT, audit_path, config_path, syncdesk_home
from services.store.storage import Storage, StorageError
from views.action_adapter import ActionAdapter
from views.actions.permissions import ProfilePermissions
from views.adapters import EngineAdapter, HealthAdapter
from views.connections.opener import ConnectionsOpener
from views.main_window import MainWindow
from views.profile_chooser import ProfileChooser
from views.settings import Appearance, ConsoleSettings

log = logging.getLogger(__name__)
qt_log = logging.getLogger("qt")

#: Qt's own messages, by level: its warnings (a platform plugin's "This plugin does not support
#: propagateSizeHints()", a font substitution) are details for the log file, below the terminal's
#: WARNING threshold; what Qt calls critical or fatal is shown on the terminal too
QT_LEVELS: dict[QtMsgType, int] = {QtMsgType.QtDebugMsg: logging.DEBUG, QtMsgType.QtInfoMsg: logging.DEBUG,
                                   QtMsgType.QtWarningMsg: logging.INFO, QtMsgType.QtCriticalMsg: logging.ERROR,
                                   QtMsgType.QtFatalMsg: logging.CRITICAL}


def qt_message(kind: QtMsgType, context: QMessageLogContext, message: str) -> None:
    """Qt's messages go to SyncDesk's log (the file; the terminal only from ERROR, or with
    --verbose) instead of Qt's default of printing every one on stderr."""
    where = f" ({context.category})" if context.category and context.category != "default" else ""
    label = kind.name.removeprefix("Qt").removesuffix("Msg").lower()
    qt_log.log(QT_LEVELS.get(kind, logging.INFO), "Qt %s%s: %s", label, where, message)


def _excepthook(window_getter: list[MainWindow]) -> object:
    def hook(etype: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        log.error("unhandled error", exc_info=(etype, value, tb))
        text = "".join(traceback.format_exception_only(etype, value)).strip()
        parent = window_getter[0] if window_getter else None
        box = QMessageBox(QMessageBox.Icon.Critical, "SyncDesk: unexpected error",
                          "Something went wrong. The details are in the log file.", parent=parent)
        box.setDetailedText(text)
        box.setModal(False)
        box.show()  # never exec(): no nested event loop

    return hook


def _loop_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
    exc = context.get("exception")
    log.error("asyncio: %s", context.get("message"), exc_info=exc if isinstance(exc, BaseException) else None)


def _choose_profile(config: Path | None, profile: str | None) -> Profile | None:
    path = config or config_path()
    if config is None and not path.exists():
        return None
    if profile:
        return load_profile(path, profile)
    profiles = load_profiles(path)
    return profiles.get("default") or next(iter(profiles.values()))


#: the README's gallery: every page in both appearances at a small and a large screen size
SHOT_SIZES = ((1024, 640), (1920, 1080))
SHOT_APPEARANCES = (Appearance.LIGHT, Appearance.DARK)


async def _save_screenshots(window: MainWindow, health: HealthAdapter, out: Path) -> list[Path]:
    """Render every page to ``out/{page}-{light|dark}-{W}x{H}.png`` at each of :data:`SHOT_SIZES`
    in each of :data:`SHOT_APPEARANCES`: the Overview, the customer list, the customer with the most open
    exceptions, the exceptions queue (first exception selected), the pending actions, the audit
    log (its newest entry selected), the systems."""
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    await health.check_now()
    saved: list[Path] = []

    async def shot(name: str, appearance: Appearance, width: int, height: int) -> None:
        await asyncio.sleep(0.15)  # let the page lay itself out
        path = out / f"{name}-{appearance.value}-{width}x{height}.png"
        if not window.grab().save(str(path)):
            raise OSError(f"could not write {path}")
        saved.append(path)

    state = window.state
    worst = max(state.rows, key=lambda r: (r.open_exceptions, r.customer_id)) if state and state.rows else None
    window.nav.setCurrentRow(window.PAGES.index("Audit log"))
    await asyncio.sleep(0.5)  # the page loads its entries off the UI thread
    audit_table = getattr(window.audit_page, "table", None)
    if audit_table is not None and audit_table.model() is not None and audit_table.model().rowCount():
        audit_table.selectRow(0)
    window.nav.setCurrentRow(window.PAGES.index("Exceptions"))
    window.exceptions_page.next_exception()
    try:
        for appearance in SHOT_APPEARANCES:
            window.set_appearance(appearance)
            for width, height in SHOT_SIZES:
                window.resize(width, height)
                window.nav.setCurrentRow(window.PAGES.index("Overview"))
                await shot("overview", appearance, width, height)
                window.nav.setCurrentRow(window.PAGES.index("Customers"))
                window.show_customer_list()
                await shot("customers", appearance, width, height)
                if worst is not None:
                    window.open_customer(worst.customer_id)
                    await shot("customer", appearance, width, height)
                    window.show_customer_list()
                for page, name in (("Exceptions", "exceptions"), ("Pending actions", "pending-actions"),
                                   ("Audit log", "audit-log"), ("Systems", "systems")):
                    window.nav.setCurrentRow(window.PAGES.index(page))
                    await shot(name, appearance, width, height)
                if (width, height) == SHOT_SIZES[-1]:  # the money cases: a tax mismatch, a credit note
                    from app.screenshot_money import money_shots
                    await money_shots(window, shot, appearance, width, height)
    finally:
        window.set_appearance(Appearance.SYSTEM)
    return saved


def _wire_actions(window: MainWindow, adapter: EngineAdapter, actions: ActionAdapter) -> None:
    window.attach_actions(actions)
    # an action closes or changes exceptions: show the engine's state again
    actions.result.connect(lambda _result: adapter.republish())
    actions.bulk_done.connect(lambda _result: adapter.republish())
    # the service replays queued actions by itself when a system returns: show what they closed
    actions.replayed.connect(lambda _results: adapter.republish())
    actions.replayed.connect(window.notify_replayed)  # the operator hears of it
    actions.follow_replays()


def _wire(window: MainWindow, adapter: EngineAdapter) -> list[tuple[Any, Callable[..., object]]]:
    """Connect ``adapter`` to the window; returns the window's signals connected to this adapter
    (signal, slot), which a profile switch disconnects (the adapter's own die with it)."""
    adapter.sort_keys = lambda: (window.customers_page.sort_key,)  # prepared off the UI thread
    adapter.state_changed.connect(window.set_state)
    adapter.refresh_started.connect(window.on_refresh_started)
    adapter.progress.connect(window.on_refresh_progress)
    adapter.system_refreshed.connect(window.on_system_refreshed)
    adapter.refresh_finished.connect(window.on_refresh_ended)
    adapter.refresh_cancelled.connect(window.on_refresh_ended)
    adapter.failed.connect(window.show_error)
    adapter.metrics_changed.connect(window.set_metrics)
    adapter.metrics_failed.connect(window.on_metrics_failed)
    links: list[tuple[Any, Callable[..., object]]] = [
        (window.refresh_requested, lambda mode: adapter.start_refresh(RefreshMode(mode))),
        (window.cancel_requested, adapter.cancel_refresh)]
    for signal, slot in links:
        signal.connect(slot)
    return links


def _service_loop() -> ServiceLoop:
    def configure(loop: asyncio.AbstractEventLoop) -> None:
        tune_loop(loop)
        loop.set_exception_handler(_loop_exception_handler)

    return ServiceLoop(configure=configure)


@dataclass
class ConsoleSession:
    """What :func:`compose` builds, filled in as it goes: a failure half-way still lets
    :func:`close_console` close what was opened."""

    engine: Engine | None = None
    adapter: EngineAdapter | None = None
    service: ActionService | None = None
    actions: ActionAdapter | None = None
    audit_storage: Storage | None = None
    #: the first refresh (auto), started once the local snapshot is shown
    refresh: asyncio.Task[Any] | None = None
    #: the profile composed (its name is in every audit entry the service writes)
    profile: Profile | None = None
    #: the window's signals connected to this session's engine adapter (see :func:`_wire`)
    links: list[tuple[Any, Callable[..., object]]] = field(default_factory=list)
    #: the background connection test of the profile (``compose(test_connection=True)``)
    test: asyncio.Task[Any] | None = None

    def reset(self) -> None:
        """Forget what was composed (once :func:`close_profile` closed it)."""
        for name, value in vars(ConsoleSession()).items():
            setattr(self, name, value)


async def compose(session: ConsoleSession, window: MainWindow, health: HealthAdapter, runner: ServiceLoop,
                  profile: Profile, *, snapshot: Callable[[], Storage], audit_file: Path,
                  clock: Callable[[], datetime] = utc_now,
                  policies: dict[System, HttpPolicy] | None = None,
                  identity: Identity | None = None, config: Path | None = None,
                  permissions: ProfilePermissions | None = None, test_connection: bool = False) -> ConsoleSession:
    """The console's start-up once the profile is known: the engine on the local snapshot
    (``snapshot`` opens it, in a worker thread), the engine and action adapters wired to the
    window, the action service on the durable audit log at ``audit_file``, the health probes;
    then the snapshot is shown, the first refresh starts, queued actions replay by themselves
    when their system returns, and what an earlier session left queued or executing is
    replayed once the first refresh is done. ``policies``: the HTTP policy per system (default:
    each vendor's, ``services.io.http.DEFAULT_POLICIES``). ``identity``: who is logged in and
    the roles the policy grants (default: :func:`console_identity` of SYNCDESK_HOME/config.toml);
    the service acts only as that login, and a policy changed since the audit log last saw it
    is recorded there before anything else. ``config``: the file whose ``[sla]`` targets the
    Overview holds the figures to (default: SYNCDESK_HOME/config.toml). ``permissions``: where
    the fixes the profile cannot perform are applied (bound to this session's action service);
    ``test_connection``: test the profile's connections in the background on the service thread
    (a non-demo profile's) and grey out what it cannot do."""
    identity = identity or console_identity(None)
    session.profile = profile
    for secret in profile.all_secrets():
        register_secret(secret)
    window.set_profile(profile)
    storage = await asyncio.to_thread(snapshot)
    session.engine = engine = Engine.from_profile(profile, storage, clock=clock, policies=policies)
    session.adapter = adapter = EngineAdapter(engine, window, runner=runner)
    session.links = _wire(window, adapter)
    session.audit_storage = audit_storage = await asyncio.to_thread(Storage.open_path, audit_file, durable=True)
    adapter.audit = audit_storage  # the Overview's resolutions, effort and retries come from the audit log
    try:
        adapter.sla = await asyncio.to_thread(load_sla, config or config_path())
    except SlaConfigError as exc:
        window.show_error(f"{exc} — the default targets are used")
    audit = AuditLog(audit_storage)
    operator = default_operator(identity)
    changed = await asyncio.to_thread(record_policy_change, audit, identity, operator.role, clock())
    if changed is not None:
        log.warning("audit: %s", changed.reason)
    session.service = service = ActionService(engine, audit, operator, clock=clock, identity=identity,
                                              profile=profile.name)
    # what an earlier session left queued or executing (read before anything can replay it):
    # once it is replayed, the window is shown the state that leaves
    left = await asyncio.to_thread(service.outbox, PENDING_STATUSES)
    session.actions = actions = ActionAdapter(service, service.audit, window, runner=runner)
    _wire_actions(window, adapter, actions)
    if permissions is not None:
        permissions.bind(actions, profile.name)
    from app.evidence_cli import write_pack  # the evidence pack's PDF is rendered by app/, not views/

    window.attach_evidence(write_pack, f"profile {profile.name!r}")
    window.operator_widget.set_identity(identity)  # the login, and the roles its switch offers
    health.start(profile)
    await adapter.load()  # opens at once from the local snapshot
    session.refresh = refresh = adapter.start_refresh(RefreshMode.AUTO)  # then catches up in the background
    # queued actions replay by themselves when a system returns (on the service loop)
    runner.spawn(service.start_auto_replay)
    adapter.tasks.start("replay", _replay_after(refresh, service, runner, adapter.republish if left else None))
    adapter.tasks.start("idle-gc", collect_when_idle(lambda: adapter.refreshing))
    if test_connection and permissions is not None:
        session.test = adapter.tasks.start("connection-test", _test_connection(profile, runner, permissions, window))
    return session


async def _test_connection(profile: Profile, runner: ServiceLoop, permissions: ProfilePermissions,
                           window: MainWindow) -> None:
    """Test ``profile``'s connections on the service thread; grey out the fixes it cannot perform
    (``permissions``) and say how many in the status bar."""
    from services.io.permissions import check_profile

    try:
        report = await runner.call(check_profile(profile))
    except Exception:
        log.exception("the connection test of profile %r failed", profile.name)
        return
    if permissions.apply_report(report) and permissions.blocked:
        window.statusBar().showMessage(
            f"Profile “{profile.name}”: {len(permissions.blocked)} fixes cannot be performed with its credentials — "
            "their buttons say why (File > Connections… tests it again)", 30_000)


async def close_console(session: ConsoleSession, health: HealthAdapter, runner: ServiceLoop,
                        env: RunningDemo | None = None) -> None:
    """Shut down what :func:`compose` opened (and the service thread, the demo servers).
    Each step runs even if one before it failed: a hang or a skipped close at exit would lose
    the demo servers' shutdown or the database's last writes."""
    steps = _close_steps(session, health, runner, stop_thread=True)
    if env is not None:
        steps.append(("demo servers", partial(asyncio.to_thread, env.stop)))
    await _run_steps(steps, "shutdown")


def _close_steps(session: ConsoleSession, health: HealthAdapter, runner: ServiceLoop, *,
                 stop_thread: bool) -> list[tuple[str, Callable[[], Awaitable[object]]]]:
    """What closes a session, in order: the adapters' tasks (the running refresh among them),
    the health probes, the action service and the engine's HTTP clients on the service loop,
    the service thread itself (``stop_thread``: at exit, not for a profile switch), the
    snapshot and audit databases."""
    actions, adapter, service, engine = session.actions, session.adapter, session.service, session.engine
    steps: list[tuple[str, Callable[[], Awaitable[object]]]] = []
    if actions is not None:
        steps.append(("actions", actions.aclose))
    if adapter is not None:
        steps.append(("engine adapter", adapter.aclose))
    steps.append(("health", health.aclose))
    # the HTTP clients and the action service's tasks belong to the service loop
    if service is not None:
        steps.append(("action service", partial(runner.call_later, service.aclose)))
    if engine is not None:
        steps.append(("engine", partial(runner.call_later, engine.aclose)))
    if stop_thread:
        steps.append(("service thread", partial(asyncio.to_thread, runner.stop)))
    if engine is not None:
        steps.append(("snapshot database", partial(asyncio.to_thread, engine.storage.close)))
    if session.audit_storage is not None:
        steps.append(("audit database", partial(asyncio.to_thread, session.audit_storage.close)))
    return steps


async def _run_steps(steps: list[tuple[str, Callable[[], Awaitable[object]]]], what: str) -> None:
    """Each step runs even if one before it failed (logged)."""
    for label, step in steps:
        try:
            await step()
        except Exception:
            log.exception("%s: closing the %s failed", what, label)


@dataclass(frozen=True)
class ProfileSource:
    """Where a profile's data is: the profile, its snapshot and audit log, its clock, and the line
    the window shows as its source. ``demo``: the built-in demo's running world (not tested:
    its servers are the demo company's own)."""

    profile: Profile
    snapshot: Callable[[], Storage]
    audit_file: Path
    source: str
    clock: Callable[[], datetime] = utc_now
    demo: bool = False


def config_source(name: str, config: Path | None = None) -> ProfileSource:
    """The config profile ``name`` (ConfigError when the file does not name it or is malformed):
    its own snapshot and audit log in SYNCDESK_HOME (``services.store.home``)."""
    profile = load_profile(config or config_path(), name)
    return ProfileSource(profile, partial(open_storage, profile.name), audit_path(profile.name),
                         f"Profile “{profile.name}”")


def demo_source(world: ServedWorld) -> ProfileSource:
    """The built-in demo being served: its world's own snapshot and audit log, its clock."""
    return ProfileSource(world.profile(), partial(open_storage, None, demo_folder=world.folder),
                         world.folder / DEMO_AUDIT, world.describe(), world.now, demo=True)


async def close_profile(session: ConsoleSession, window: MainWindow, health: HealthAdapter,
                        runner: ServiceLoop) -> None:
    """Close what :func:`compose` opened for the active profile, in :func:`close_console`'s order
    but keeping the service thread (and the demo servers): the running refresh is cancelled (the
    window is told, ``refresh_cancelled``), the background connection test too, the action service
    and the engine's clients are closed, both databases closed; the window's requests no longer
    reach the old adapter."""
    for signal, slot in session.links:
        with contextlib.suppress(RuntimeError, TypeError):
            signal.disconnect(slot)
    old = (session.actions, session.adapter)
    await _run_steps(_close_steps(session, health, runner, stop_thread=False), "profile switch")
    for obj in old:
        if obj is not None:
            obj.deleteLater()
    session.reset()


async def switch_profile(session: ConsoleSession, window: MainWindow, health: HealthAdapter, runner: ServiceLoop,
                         target: ProfileSource, *, identity: Identity | None = None, config: Path | None = None,
                         permissions: ProfilePermissions | None = None) -> ConsoleSession:
    """Switch the running console to ``target`` without a restart: the active profile is closed
    (:func:`close_profile`: its refresh cancelled, its service and clients closed in order), then
    ``target`` is composed (:func:`compose`): the views show its stored snapshot at once, its own
    audit log and outbox take the actions (each entry naming it), its refresh catches up in the
    background and, unless it is the built-in demo, its connections are tested in the background
    (``permissions`` greys out what it cannot do). Every profile keeps its own snapshot,
    exceptions and audit log (``services.store.home``)."""
    window.show_customer_list()  # a customer of the old profile means nothing in the new one
    await close_profile(session, window, health, runner)
    window.set_source(target.source)
    return await compose(session, window, health, runner, target.profile, snapshot=target.snapshot,
                         audit_file=target.audit_file, clock=target.clock, identity=identity, config=config,
                         permissions=permissions, test_connection=not target.demo)


class ProfileSwitcher:
    """The toolbar's profile chooser (``views.profile_chooser``) and the switches it asks for, one
    at a time (:func:`switch_profile`). The built-in demo (``demo``: where its data is) is
    started on first use when the console did not start on it, and kept serving until the
    console closes (``env``; a config profile such as ``demo-readonly`` may point at its servers)."""

    def __init__(self, session: ConsoleSession, window: MainWindow, health: HealthAdapter, runner: ServiceLoop, *,
                 current: str | None, config: Path | None = None, identity: Identity | None = None,
                 permissions: ProfilePermissions | None = None, demo: ProfileSource | None = None,
                 customers: int | None = None, seed: int | None = None) -> None:
        self.session, self.window, self.health, self.runner = session, window, health, runner
        self.config, self.identity, self.permissions = config, identity, permissions
        self.demo, self.customers, self.seed = demo, customers, seed
        #: the built-in demo's servers when a switch started them (closed with the console)
        self.env: ServedWorld | None = None
        self.chooser = ProfileChooser(self.profile_names(), current)
        window.toolbar.addWidget(self.chooser)
        self.chooser.chosen.connect(self.choose)
        self.task: asyncio.Task[bool] | None = None

    def profile_names(self) -> list[str]:
        from services.io.config_write import ConfigWriteError, profile_names

        try:
            return profile_names(self.config or config_path())
        except ConfigWriteError as exc:
            log.warning("the profile chooser cannot list the profiles: %s", exc)
            return []

    def reload(self) -> None:
        """The profiles of the file again (after the Connections dialog saved one)."""
        self.chooser.set_profiles(self.profile_names(), self.chooser.current)

    def choose(self, name: str | None) -> asyncio.Task[bool] | None:
        """Switch to ``name`` (None: the built-in demo) in the background; None while a switch runs."""
        if self.task is not None and not self.task.done():
            return None
        self.task = asyncio.ensure_future(self.switch(name))
        return self.task

    async def switch(self, name: str | None) -> bool:
        """False (said in the window) when ``name`` cannot be opened: the active profile stays
        when its file or servers fail before it was closed."""
        self.chooser.set_busy(True)
        try:
            if name is None:
                if self.demo is None:
                    self.window.set_source("Built-in demo environment (starting…)")
                    self.env = await asyncio.to_thread(partial(start_demo, self.customers, self.seed))
                    self.demo = demo_source(self.env)
                target = self.demo
            else:
                target = await asyncio.to_thread(config_source, name, self.config)
            await switch_profile(self.session, self.window, self.health, self.runner, target,
                                 identity=self.identity, config=self.config, permissions=self.permissions)
        except (ConfigError, StorageError, DemoError) as exc:
            self.window.show_error(f"Could not switch to {'the built-in demo' if name is None else repr(name)}: {exc}")
            self.chooser.set_current(self.chooser.current)
            return False
        finally:
            self.chooser.set_busy(False)
        self.chooser.set_current(name)
        return True

    def follow_connections(self, opener: ConnectionsOpener) -> None:
        """Follow every Connections dialog the window opens (File > Connections…, the Systems
        page's button): :meth:`follow_dialog`."""
        self.window.connections_action.triggered.connect(lambda *_: self.follow_dialog(opener.dialog))

    def follow_dialog(self, dialog: object) -> None:
        """A Connections dialog's test of the active profile greys out its fixes too, and a
        profile it saved joins the chooser (each dialog followed once)."""
        tested = getattr(getattr(dialog, "adapter", None), "tested", None)
        saved = getattr(dialog, "profile_saved", None)
        if tested is None or not isinstance(dialog, QObject) or dialog.property("syncdeskSwitchFollowed"):
            return
        dialog.setProperty("syncdeskSwitchFollowed", True)
        if self.permissions is not None:
            tested.connect(self.permissions.apply_report)
        if saved is not None:
            saved.connect(lambda *_: self.reload())


async def _main(app: QApplication, demo: bool, config: Path | None, profile_name: str | None,
                customers: int | None, seed: int | None, windows: list[MainWindow], screenshot_dir: Path | None) -> int:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_loop_exception_handler)
    tune_loop(loop)
    closed = asyncio.Event()
    env: ServedWorld | None = None
    session = ConsoleSession()
    switcher: ProfileSwitcher | None = None
    runner = _service_loop().start()
    # the preferences and the memory of the window live in the home folder (a screenshot run uses
    # neither: the same pictures whoever runs it)
    home = syncdesk_home()
    window = MainWindow(None if screenshot_dir is not None else ConsoleSettings(home / "console.ini"), home)
    windows.append(window)
    window.closed.connect(closed.set)
    window.show()
    health = HealthAdapter(window, runner=runner)
    connections = ConnectionsOpener(window, config or config_path(), runner)  # File > Connections…
    window.attach_health(health)
    # a screenshot run on the demo works in a throwaway home (world, snapshot, audit log made from
    # nothing): the user's demo world and audit log are never touched, and the action it takes
    # to have something to show (_demo_fix) is never written into a log of what people did
    scratch: tempfile.TemporaryDirectory[str] | None = None
    throwaway_keys = contextlib.ExitStack()
    try:
        # first run (no profile, not --demo): the welcome's choice, asked or remembered
        start = await connections.first_run(demo=demo or screenshot_dir is not None, profile=profile_name,
                                            explicit_config=config is not None)
        if start is not None and start.quit:
            return 0
        if start is not None:
            demo, profile_name = start.profile is None, start.profile
        profile = None if demo else _choose_profile(config, profile_name)
        clock = utc_now
        if profile is None:
            window.set_source("Built-in demo environment (starting…)")
            if screenshot_dir is not None:
                scratch = tempfile.TemporaryDirectory(prefix="syncdesk-screenshot-", ignore_cleanup_errors=True)
                throwaway_keys = _keep_audit_keys_in(Path(scratch.name) / "audit-keys")
            world = await asyncio.to_thread(partial(start_demo, customers, seed,
                                                    home=Path(scratch.name) if scratch else None))
            env = world
            profile = world.profile()
            clock = world.now
            window.set_source(world.describe())
            snapshot = partial(open_storage, None, demo_folder=world.folder)
            audit_file = world.folder / DEMO_AUDIT
        else:
            window.set_source(f"Profile “{profile.name}”")
            snapshot = partial(open_storage, profile.name)
            audit_file = audit_path(profile.name)
        identity = console_identity(config)
        permissions = ProfilePermissions(window.apply_fix_policy, window)
        await compose(session, window, health, runner, profile, snapshot=snapshot, audit_file=audit_file,
                      clock=clock, identity=identity, config=config, permissions=permissions,
                      test_connection=env is None and screenshot_dir is None)
        if screenshot_dir is None:  # the toolbar's profile chooser: switch live
            switcher = ProfileSwitcher(session, window, health, runner, current=None if env else profile.name,
                                       config=config, identity=identity, permissions=permissions,
                                       demo=demo_source(env) if env is not None else None,
                                       customers=customers, seed=seed)
            switcher.follow_connections(connections)
        if screenshot_dir is not None:
            if session.refresh is not None:
                with contextlib.suppress(Exception):
                    await session.refresh
            figures = asyncio.Event()  # the Overview's figures follow each state, off the UI thread
            if session.adapter is not None:
                session.adapter.metrics_changed.connect(lambda _report: figures.set())
                session.adapter.metrics_failed.connect(lambda _text: figures.set())
            if env is not None and session.service is not None and session.adapter is not None:
                await runner.call(_demo_fix(session.service))
                session.adapter.republish()
                await asyncio.sleep(0.3)
            if window.overview_page.report is None or env is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(figures.wait(), 60.0)
            for path in await _save_screenshots(window, health, screenshot_dir):
                print(path, flush=True)
            window.close()
        await closed.wait()
    except (ConfigError, StorageError, DemoError) as exc:
        window.show_error(str(exc))
        if screenshot_dir is not None:
            log.error("%s", exc)
            return 2
        await closed.wait()
    finally:
        await close_console(session, health, runner, env or (switcher.env if switcher is not None else None))
        if scratch is not None:
            throwaway_keys.close()
            scratch.cleanup()
    return 0


def _keep_audit_keys_in(folder: Path) -> contextlib.ExitStack:
    """Until closed, a new audit log's signing key and witness go to ``folder`` (the throwaway
    log of a screenshot run), not to the user's key store or witness folders."""
    stack = contextlib.ExitStack()
    stack.enter_context(_environ({KEY_DIR_ENV: str(folder), WITNESS_ENV: None}))
    return stack


@contextlib.contextmanager
def _environ(changes: dict[str, str | None]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in changes}
    try:
        for k, v in changes.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def console_identity(config: Path | None) -> Identity:
    """The logged-in login and the roles the ``[roles]`` table of ``config`` (default:
    SYNCDESK_HOME/config.toml; no file or no table: every role) grants it. A malformed table
    raises :class:`ConfigError` naming the key."""
    return resolve_identity(load_roles(config or config_path()), current_login())


def default_operator(identity: Identity | None = None) -> Operator:
    """The person at the keyboard: the login, in the role it starts in (its only acting role,
    finance when it holds both, else auditor); the toolbar switches among its granted roles."""
    identity = identity or console_identity(None)
    return Operator(identity.login, identity.default_role())


async def _demo_fix(service: ActionService) -> None:
    """On the built-in demo only, for the screenshots: push one support tier, so the audit log
    and the customer views show a real action (intent, outcome, closed exception). Runs on the
    service loop."""
    exceptions = await service.engine.open_exceptions()
    target = next((e for e in exceptions if e.rule == "entitlement.missing"), None)
    if target is None:
        return
    identity = service.identity
    if identity is not None and not identity.holds(Role.SUPPORT):
        return  # the login may not act for support: no demo fix (the role policy says who acts)
    previous = service.operator.role
    await service.switch_role(Role.SUPPORT)  # the login's own support role, audited
    try:
        plan = await service.plan(ActionRequest(ActionKind.PUSH, target.id, reason="tier from the plan"))
        result = await service.execute(plan)
        log.info("screenshot demo fix: %s %s", result.status.value, result.message)
    finally:
        await service.switch_role(previous)


async def _replay_after(refresh: asyncio.Task[object], service: ActionService, runner: ServiceLoop,
                        republish: Callable[[], None] | None = None) -> None:
    """Resume actions a previous session left queued or executing, once the data is fresh;
    then ``republish`` (the window shows the exceptions they closed, whichever replay ran
    them: this one, or the automatic replay, whose pass it waits for)."""
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await refresh
    try:
        results = await runner.call(service.replay_pending())
    except PermissionDenied as exc:  # the operator switched to the auditor role meanwhile: auditors never act
        log.info("actions left pending by an earlier session are not replayed now: %s", exc)
        results = []
    if results:
        log.info("replayed %d pending actions from an earlier session", len(results))
    if republish is not None:
        republish()


def run_console(demo: bool = False, config: Path | None = None, profile: str | None = None,
                customers: int | None = None, seed: int | None = None, screenshot_dir: Path | None = None) -> int:
    tune_interpreter()  # GIL switch interval and collector policy: app/runtime.py says why
    previous_handler = qInstallMessageHandler(qt_message)  # before Qt says anything (the platform plugin)
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv)
    app.setApplicationName("SyncDesk")
    app.setOrganizationName("SyncDesk")
    # the loop must outlive the window: _main closes clients and servers after it is closed
    app.setQuitOnLastWindowClosed(False)
    windows: list[MainWindow] = []
    sys.excepthook = _excepthook(windows)  # type: ignore[assignment]
    try:
        with asyncio.Runner(loop_factory=qasync.QEventLoop) as runner:
            return runner.run(_main(app, demo, config, profile, customers, seed, windows, screenshot_dir))
    finally:
        # Destroy Qt objects while Python is fully alive (not during interpreter finalization).
        for window in windows:
            window.deleteLater()
        windows.clear()
        app.processEvents()
        sys.excepthook = sys.__excepthook__
        if existing is None:
            app.shutdown()
        qInstallMessageHandler(previous_handler)
