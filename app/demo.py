"""The shell's one door to the built-in demo environment (``services/demo``).

It starts a demo for the console and the headless commands (``--demo``), and holds the
``demo-server``, ``demo-manifest`` and ``tryton-sandbox`` commands. No other module of
``app/``, ``views/`` or ``services/`` imports ``services.demo`` (an import-linter contract in
``pyproject.toml``), and this one imports it only when a demo is asked for: Starlette, uvicorn
and the generator never load for a real profile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import tomli_w

from services.core.domain import System
from services.io.config import Profile


class RunningDemo(Protocol):
    """What the shell uses of a started demo environment."""

    def profile(self, name: str = "demo") -> Profile: ...

    def now(self) -> datetime: ...

    def stop(self) -> None: ...


def start_demo(customers: int, seed: int) -> RunningDemo:
    """Generate the demo company and serve it on 127.0.0.1 (blocking: run it in a thread)."""
    from services.demo.environment import DemoEnvironment, DemoOptions

    return DemoEnvironment(DemoOptions(customers=customers, seed=seed)).start()


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
                        help="once the servers answer, write a TOML file with the profile 'demo'")
    server.add_argument("--fault", type=fault, action="append", default=[], metavar="SYS:KEY=VALUE",
                        help=f"inject a fault, e.g. erp:error_rate=0.1 (keys: {', '.join(FAULT_KEYS)})")

    manifest = sub.add_parser("demo-manifest", help="print the demo dataset's planted mismatches as JSON")
    add_dataset_options(manifest)
    add_sandbox_parser(sub)


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
    from services.io.config import write_profile

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
            write_profile(args.write_config, env.profile("demo"))
            print(f"wrote profile 'demo' to {args.write_config}", flush=True)
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
    data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    data.setdefault("profiles", {}).setdefault(profile, {})["erp"] = erp
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(tomli_w.dumps(data), encoding="utf-8")
    os.chmod(tmp, 0o600)
    tmp.replace(path)


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


DEMO_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "demo-server": cmd_demo_server, "demo-manifest": cmd_demo_manifest, "tryton-sandbox": cmd_sandbox}
