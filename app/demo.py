"""The shell's one door to the built-in demo environment (``services/demo``).

It serves the built-in demo world for the console and the headless commands (``--demo``:
:func:`start_demo`; the world persists in SYNCDESK_HOME/demo, ``services/demo/world.py``),
starts it again (:func:`reset_demo`, the ``demo reset`` command), and holds the
``demo-server``, ``demo-manifest`` and ``tryton-sandbox`` commands. No other module of
``app/``, ``views/`` or ``services/`` imports ``services.demo`` (an import-linter contract in
``pyproject.toml``), and this one imports it only when a demo is asked for: Starlette, uvicorn
and the generator never load for a real profile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from services.core.domain import System
from services.io.config import Profile
from services.store.home import DEMO_AUDIT, DEMO_SNAPSHOT, demo_dir


class RunningDemo(Protocol):
    """What the shell uses of a started demo environment."""

    def profile(self, name: str = "demo") -> Profile: ...

    def now(self) -> datetime: ...

    def stop(self) -> None: ...


class ServedWorld(RunningDemo, Protocol):
    """The built-in demo world being served (:func:`start_demo`): also where its files are
    (``folder``: its world, snapshot and audit log) and one line saying which world it is."""

    folder: Path

    def describe(self) -> str: ...


class DemoError(Exception):
    """The built-in demo world cannot be used as asked: one line saying why and what to do.
    ``reason``: ``"unreadable"`` (damaged, or another format version), ``"mismatch"`` (other
    ``customers``/``seed`` than the saved world's), ``"in_use"`` (another process serves it) or
    ``"other"``; a console offers its reset for the first two."""

    def __init__(self, message: str, reason: str = "other") -> None:
        super().__init__(message)
        self.reason = reason


RESET_HINT = "syncdesk demo reset"


def start_demo(customers: int | None = None, seed: int | None = None, *,
               home: Path | None = None) -> ServedWorld:
    """Serve the built-in demo world on 127.0.0.1 (blocking: run it in a thread): the one kept
    in SYNCDESK_HOME/demo (``home``: another home-like folder, e.g. a throwaway one), or a new
    one generated from ``customers``/``seed`` (default 250/1) when there is none. Its state is
    saved after writes and at ``stop()``; until then no other process can serve it.
    :class:`DemoError` when the saved world cannot be read, was made with other
    ``customers``/``seed`` than the ones given, or is in use."""
    from services.demo.world import DemoWorld, WorldError, WorldInUse, WorldMismatch, WorldUnreadable

    folder = demo_dir(home)
    try:
        world = DemoWorld.open(folder, customers, seed, discard_on_create=[folder / DEMO_SNAPSHOT])
    except WorldMismatch as exc:
        raise DemoError(f"{exc}; to start a new world with these, run `{RESET_HINT} --customers {exc.customers} "
                        f"--seed {exc.seed}`, or leave out --customers/--seed to use this one", "mismatch") from None
    except WorldUnreadable as exc:
        raise DemoError(f"{exc}; to start a new world, run `{RESET_HINT}` (the demo's audit log is kept)",
                        "unreadable") from None
    except WorldInUse as exc:
        raise DemoError(str(exc), "in_use") from None
    except WorldError as exc:
        raise DemoError(str(exc)) from None
    try:
        return world.start()
    except BaseException:
        world.stop()
        raise


def demo_world_summary(home: Path | None = None) -> str | None:
    """One line about the saved demo world (its size, seed and age), ``None`` when there is
    none; :class:`DemoError` when it cannot be read. For a reset's confirmation."""
    from services.demo.world import WorldUnreadable, describe_meta, read_world_meta

    try:
        meta = read_world_meta(demo_dir(home))
    except WorldUnreadable as exc:
        raise DemoError(str(exc), "unreadable") from None
    return None if meta is None else describe_meta(meta)


def reset_demo(customers: int | None = None, seed: int | None = None, *, home: Path | None = None) -> str:
    """Start the built-in demo world again (blocking): the saved world and its snapshot are
    deleted and a new world is generated (``customers``/``seed``: given, else the old world's,
    else 250/1); the demo's audit log is kept, and the reset is recorded in it as actions are
    (an intent before anything is deleted, then the outcome: who, when, the old and the new
    world). Returns one line saying what was done. :class:`DemoError` when the world is in use
    (a console or command serving it must stop it first) or the role policy cannot be read."""
    from services.demo.world import WorldError, WorldInUse, WorldMeta, describe_meta, reset_world

    folder = demo_dir(home)
    log = _ResetRecord(folder / DEMO_AUDIT, {"customers": customers, "seed": seed})

    def intent(old: WorldMeta | None) -> None:
        log.intent(describe_meta(old) if old else None)

    try:
        _, new = reset_world(folder, customers, seed, discard=[folder / DEMO_SNAPSHOT], before=intent)
    except WorldInUse as exc:
        raise DemoError(str(exc), "in_use") from None
    except WorldError as exc:
        raise DemoError(str(exc)) from None
    except Exception as exc:
        log.outcome("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    log.outcome("succeeded", world={"world": describe_meta(new), "customers": new.customers, "seed": new.seed,
                                    "anchor": new.anchor})
    return f"a new demo world: {describe_meta(new)}; its snapshot starts empty, its audit log is kept"


#: ``action_kind`` of the audit entries a demo reset appends
DEMO_RESET = "demo_reset"


class _ResetRecord:
    """A reset's entries in the demo's audit log: a person started the demo's systems again,
    which tells its reader why later entries act on another world. Who: the login, in the role
    it starts in under the role policy (as the console; a policy that cannot be read stops the
    reset, as it stops ``fix``)."""

    def __init__(self, audit_file: Path, asked: dict[str, Any]) -> None:
        from services.core.identity import current_login, resolve_identity
        from services.io.config import ConfigError, load_roles
        from services.store.home import config_path

        self.audit_file = audit_file
        self.asked = asked
        self.login = current_login()
        try:
            self.role = resolve_identity(load_roles(config_path()), self.login).default_role().value
        except ConfigError as exc:
            raise DemoError(str(exc)) from None
        self.action_id = f"demo-reset-{uuid.uuid4()}"
        self.old: str | None = None

    def _append(self, phase: str, outcome: str, **extra: Any) -> None:
        from services.store.audit import AuditEntry, AuditLog
        from services.store.storage import Storage

        storage = Storage.open_path(self.audit_file, durable=True)
        try:
            AuditLog(storage).append(AuditEntry(
                operator=self.login, role=self.role, action_id=self.action_id, action_kind=DEMO_RESET, phase=phase,
                outcome=outcome, request={"asked": self.asked}, before={"world": self.old},
                reason="start the demo world again", **extra))
        finally:
            storage.close()

    def intent(self, old: str | None) -> None:
        self.old = old
        self._append("intent", "pending")

    def outcome(self, outcome: str, *, world: dict[str, Any] | None = None, error: str | None = None) -> None:
        self._append("outcome", outcome, after=world or {}, error=error)


# -- command-line options ------------------------------------------------------------------------
def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


FAULT_KEYS = ("latency_ms", "error_rate", "rate_limit", "outage", "drop_after_commit_rate", "malformed_rate",
              "throttle_rate")


def port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65533:
        raise argparse.ArgumentTypeError("must be 0 (free ports) or a port up to 65533")
    return value


def fault(text: str) -> tuple[System, str, object]:
    """``billing:error_rate=0.1``, ``erp:outage=true``, ``support:rate_limit=off``."""
    try:
        target, assignment = text.split(":", 1)
        key, raw = assignment.split("=", 1)
        system = System(target.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected SYSTEM:KEY=VALUE with SYSTEM in billing/erp/support, got {text!r}") from None
    key = key.strip().replace("-", "_")
    if key not in FAULT_KEYS:
        raise argparse.ArgumentTypeError(f"unknown fault {key!r}; known: {', '.join(FAULT_KEYS)}")
    raw = raw.strip().lower()
    value: object
    if key == "outage":
        if raw not in ("true", "false", "1", "0", "on", "off"):
            raise argparse.ArgumentTypeError("outage takes true or false")
        value = raw in ("true", "1", "on")
    elif key == "rate_limit" and raw in ("off", "none", ""):
        value = None
    else:
        try:
            value = float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{key} takes a number, got {raw!r}") from None
    return system, key, value


def add_dataset_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--customers", type=positive_int, default=250, help="number of customers (default 250)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--anchor", type=int, default=None,
                   help="unix time the dataset is generated 'as of' (default: now); fixes every timestamp")
    p.add_argument("--mismatch-rate", type=float, default=None,
                   help="share of customers with a planted mismatch per rule (0 = clean data)")


def add_demo_parsers(sub: Any) -> None:
    """``demo-server``, ``demo-manifest`` and ``tryton-sandbox``."""
    server = sub.add_parser("demo-server", help="run the built-in demo servers in the foreground")
    add_dataset_options(server)
    server.add_argument("--port", type=port, default=0,
                        help="first port: billing, erp and support use PORT, PORT+1, PORT+2 (0 = free ports)")
    server.add_argument("--write-config", type=Path, metavar="FILE",
                        help="once the servers answer, write the profiles 'demo' and 'demo-readonly' (read scopes "
                             "only: see its permission gaps with `connect test`) into FILE, keeping its other "
                             "tables and comments")
    server.add_argument("--fault", type=fault, action="append", default=[], metavar="SYS:KEY=VALUE",
                        help=f"inject a fault, e.g. erp:error_rate=0.1 (keys: {', '.join(FAULT_KEYS)})")

    manifest = sub.add_parser("demo-manifest", help="print the demo dataset's planted mismatches as JSON")
    add_dataset_options(manifest)
    add_sandbox_parser(sub)

    world = sub.add_parser("demo", help="the built-in demo world, kept in SYNCDESK_HOME/demo between runs",
                           description="The built-in demo (--demo, or the console with no profile) keeps its "
                                       "three systems' state, its snapshot and its audit log in SYNCDESK_HOME/demo.")
    actions = world.add_subparsers(dest="demo_command", required=True, metavar="reset")
    reset = actions.add_parser("reset", help="start the demo world again (asks first on a terminal)",
                               description="Delete the demo world and its snapshot and generate a new one. The "
                                           "demo's audit log (SYNCDESK_HOME/demo/audit.db) is kept, and the reset "
                                           "is recorded in it.")
    reset.add_argument("--customers", type=positive_int, default=None,
                       help="size of the new world (default: the old world's, else 250)")
    reset.add_argument("--seed", type=int, default=None,
                       help="seed of the new world (default: the old world's, else 1)")
    reset.add_argument("--yes", action="store_true", help="do not ask (needed when standard input is not a terminal)")


# -- the commands --------------------------------------------------------------------------------
def cmd_demo_manifest(args: argparse.Namespace) -> int:
    from services.demo.dataset import generate

    ds = generate(args.customers, args.seed, anchor=args.anchor, mismatch_rate=args.mismatch_rate)
    json.dump([e.as_dict() for e in ds.manifest], sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def cmd_demo_server(args: argparse.Namespace) -> int:
    from services.demo.environment import (
        DEFAULT_RATE_LIMITS,
        DemoEnvironment,
        DemoOptions,
        wait_until_answering,
    )
    from services.demo.faults import FaultConfig
    from services.io.config_write import put_profiles

    faults = {s: FaultConfig(rate_limit=DEFAULT_RATE_LIMITS[s]) for s in System}
    for system, key, value in args.fault:
        faults[system].update({key: value})
    options = DemoOptions(customers=args.customers, seed=args.seed, anchor=args.anchor,
                          mismatch_rate=args.mismatch_rate, base_port=args.port, faults=faults)
    print(f"Generating the demo company ({args.customers} customers, seed {args.seed})...", file=sys.stderr)
    env = DemoEnvironment(options)
    try:
        env.prepare_foreground()
    except OSError as exc:
        print(f"demo-server: cannot listen on port {args.port}: {exc.strerror}", file=sys.stderr)
        return 2

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, env.request_exit)
        started = asyncio.Event()
        serving = asyncio.create_task(env.serve(started))
        await started.wait()
        await wait_until_answering(env.urls)
        for system, url in env.urls.items():
            print(f"{system.value:8} {env.profile().connections[system].kind:8} {url}", flush=True)
        if args.write_config:
            # in place (the file's other profiles, roles and comments are kept); the demo's throwaway
            # credentials stay in the file, as they always did (0600; the keyring holds real ones)
            put_profiles(args.write_config, [env.profile("demo"), env.readonly_profile()], plain_secrets=True)
            print(f"wrote profiles 'demo' and 'demo-readonly' to {args.write_config}", flush=True)
        print("Serving; press Ctrl+C to stop.", file=sys.stderr, flush=True)
        await serving

    asyncio.run(run())
    print("demo servers stopped", file=sys.stderr)
    return 0


def add_sandbox_parser(sub: Any) -> None:
    p = sub.add_parser("tryton-sandbox", help="a real Tryton 8.2 (SQLite) seeded like the demo; needs the "
                                              "erp-test extra")
    actions = p.add_subparsers(dest="sandbox_command", required=True, metavar="build|serve")
    build = actions.add_parser("build", help="build (or find) the cached, seeded template database")
    serve = actions.add_parser("serve", help="serve a copy of the template until Ctrl+C / SIGTERM")
    for a in (build, serve):
        a.add_argument("--customers", type=int, default=60)
        a.add_argument("--seed", type=int, default=1)
        a.add_argument("--anchor", type=int, default=None, help="unix time of the dataset (default 2024-05-01)")
        a.add_argument("--cache-dir", type=Path, default=None,
                       help="template cache (default $SYNCDESK_TRYTON_CACHE or ~/.cache/syncdesk-tryton)")
    serve.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = a free port)")
    serve.add_argument("--data-dir", type=Path, default=None, help="folder of the served copy (default: temp)")
    serve.add_argument("--write-config", type=Path, metavar="FILE",
                       help="put this server in the erp table of PROFILE in FILE (other tables are kept)")
    serve.add_argument("--profile", default="demo", help="profile to update with --write-config (default demo)")


def write_erp_table(path: Path, profile: str, erp: dict[str, str]) -> None:
    """Make the erp table of ``profile`` the sandbox's, in place: the file's other tables and every
    comment are kept (``services/io/config_write.py``); written atomically, 0600 (the table holds
    the sandbox's throwaway password), the previous version kept as ``.bak``."""
    from services.io.config_write import replace_system_table

    replace_system_table(path, profile, System.ERP, erp)


def cmd_sandbox(args: argparse.Namespace) -> int:
    try:
        from services.demo import tryton_sandbox as sb
    except ImportError as exc:  # pragma: no cover - the module itself imports no trytond
        print(f"tryton-sandbox: {exc}", file=sys.stderr)
        return 2
    if not sb.trytond_available():
        print("tryton-sandbox: trytond 8.2 is not installed; run: pip install -e '.[erp-test]'", file=sys.stderr)
        return 2
    anchor = args.anchor if args.anchor is not None else sb.DEFAULT_ANCHOR
    template = sb.build_template(args.cache_dir or sb.default_cache_dir(), args.customers, args.seed, anchor,
                                 progress=lambda m: print(m, file=sys.stderr, flush=True))
    if args.sandbox_command == "build":
        print(template)
        return 0
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="syncdesk-tryton-"))
    sandbox = sb.TrytonSandbox(sb.copy_database(template, data_dir))
    stop = False

    def request_stop(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    with sandbox:
        erp = sandbox.profile_erp()
        print(f"erp      tryton   {erp['url']}  database {erp['database']}  login {erp['login']}", flush=True)
        if args.write_config:
            write_erp_table(args.write_config, args.profile, erp)
            print(f"wrote the erp table of profile {args.profile!r} to {args.write_config}", flush=True)
        print("Serving; press Ctrl+C to stop.", file=sys.stderr, flush=True)
        while sandbox.running and not stop:
            time.sleep(0.3)
    print("tryton sandbox stopped", file=sys.stderr)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """``demo reset``: asks on a terminal (unless ``--yes``), then :func:`reset_demo`."""
    try:
        current = demo_world_summary() or "none yet"
    except DemoError:
        current = "it cannot be read"
    if not args.yes:
        if not sys.stdin.isatty():
            print("demo reset: nothing done; confirm with --yes (standard input is not a terminal to ask on)",
                  file=sys.stderr)
            return 2
        print(f"The demo world in {demo_dir()} ({current}) and its snapshot will be deleted and a new world "
              f"generated; the demo's audit log is kept.", file=sys.stderr)
        try:
            answer = input("Reset the demo world? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("demo reset: nothing done", file=sys.stderr)
            return 1
    print("Generating a new demo world...", file=sys.stderr, flush=True)
    try:
        done = reset_demo(args.customers, args.seed)
    except DemoError as exc:
        print(f"demo reset: {exc}", file=sys.stderr)
        return 2
    print(f"demo reset: {done}")
    return 0


DEMO_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo-server": cmd_demo_server, "demo-manifest": cmd_demo_manifest, "tryton-sandbox": cmd_sandbox,
    "demo": cmd_demo}
