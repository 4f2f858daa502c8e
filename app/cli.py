"""Command line: the console (default) and the headless sub-commands.

    syncdesk [console] [--demo | --config FILE --profile NAME]
    syncdesk demo-server [--customers N] [--seed S] [--port 0] [--write-config FILE] [--fault SYS:KEY=VALUE ...]
    syncdesk demo-manifest [--customers N] [--seed S]
    syncdesk screenshot (--demo | --config FILE --profile NAME) --out DIR
    syncdesk reconcile (--demo [--customers N] [--seed S] | [--config FILE] --profile NAME) [--format ...]
    syncdesk timeline CUSTOMER_ID (same source options) [--format table|json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from app.logsetup import setup_logging
from services.domain import System

FAULT_KEYS = ("latency_ms", "error_rate", "rate_limit", "outage", "drop_after_commit_rate", "malformed_rate",
              "throttle_rate")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65533:
        raise argparse.ArgumentTypeError("must be 0 (free ports) or a port up to 65533")
    return value


def _fault(text: str) -> tuple[System, str, object]:
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


def _add_dataset_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--customers", type=_positive_int, default=250, help="number of customers (default 250)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--anchor", type=int, default=None,
                   help="unix time the dataset is generated 'as of' (default: now); fixes every timestamp")
    p.add_argument("--mismatch-rate", type=float, default=None,
                   help="share of customers with a planted mismatch per rule (0 = clean data)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="syncdesk", description="SyncDesk operator console")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    console = sub.add_parser("console", help="open the operator console (the default)")
    _add_console_options(console)

    server = sub.add_parser("demo-server", help="run the built-in demo servers in the foreground")
    _add_dataset_options(server)
    server.add_argument("--port", type=_port, default=0,
                        help="first port: billing, erp and support use PORT, PORT+1, PORT+2 (0 = free ports)")
    server.add_argument("--write-config", type=Path, metavar="FILE",
                        help="once the servers answer, write a TOML file with the profile 'demo'")
    server.add_argument("--fault", type=_fault, action="append", default=[], metavar="SYS:KEY=VALUE",
                        help=f"inject a fault, e.g. erp:error_rate=0.1 (keys: {', '.join(FAULT_KEYS)})")

    shot = sub.add_parser("screenshot", help="render the console's main views to PNG files (offscreen)")
    _add_console_options(shot)
    shot.add_argument("--out", type=Path, required=True, help="folder for the PNG files")

    from app.headless import add_source_options

    rec = sub.add_parser("reconcile", help="refresh, reconcile and print the open exceptions")
    add_source_options(rec)
    rec.add_argument("--format", choices=("table", "json", "csv"), default="table")
    rec.add_argument("--output", type=Path, help="write to FILE instead of standard output")

    tl = sub.add_parser("timeline", help="refresh and print one customer's lifecycle timeline")
    tl.add_argument("customer_id", help="billing customer id (cus_...)")
    add_source_options(tl)
    tl.add_argument("--format", choices=("table", "json"), default="table")
    tl.add_argument("--oldest-first", action="store_true", help="oldest event first (default: newest first)")
    tl.add_argument("--output", type=Path, help="write to FILE instead of standard output")

    manifest = sub.add_parser("demo-manifest", help="print the demo dataset's planted mismatches as JSON")
    _add_dataset_options(manifest)
    from app.fix import add_audit_parser, add_fix_parser
    from app.sandbox_cli import add_sandbox_parser

    add_fix_parser(sub)
    add_audit_parser(sub)
    add_sandbox_parser(sub)
    return parser


def _add_console_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--demo", action="store_true", help="use the built-in demo environment")
    p.add_argument("--config", type=Path, help="connection profiles (default: SYNCDESK_HOME/config.toml)")
    p.add_argument("--profile", help="profile name in the configuration file")
    p.add_argument("--customers", type=_positive_int, default=250, help="demo size (with --demo)")
    p.add_argument("--seed", type=int, default=1, help="demo seed (with --demo)")


def cmd_demo_manifest(args: argparse.Namespace) -> int:
    from services.demo.dataset import generate

    ds = generate(args.customers, args.seed, anchor=args.anchor, mismatch_rate=args.mismatch_rate)
    json.dump([e.as_dict() for e in ds.manifest], sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def cmd_demo_server(args: argparse.Namespace) -> int:
    from services.config import write_profile
    from services.demo.environment import (
        DEFAULT_RATE_LIMITS,
        DemoEnvironment,
        DemoOptions,
        wait_until_answering,
    )
    from services.demo.faults import FaultConfig

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


def cmd_console(args: argparse.Namespace) -> int:
    from app.console import run_console

    return run_console(demo=args.demo, config=args.config, profile=args.profile,
                       customers=args.customers, seed=args.seed)


def cmd_screenshot(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from app.console import run_console

    return run_console(demo=args.demo, config=args.config, profile=args.profile,
                       customers=args.customers, seed=args.seed, screenshot_dir=args.out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "-v", "--verbose")):
        argv = ["console", *argv]
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args([*argv, "console"])
    # The headless commands report a failure as one line of their own (exit 2, app.headless):
    # the warnings logged on the way (a refresh failed, a circuit opened) go to the log file
    # only, unless --verbose.
    headless = args.command in ("reconcile", "timeline", "fix", "audit")
    setup_logging(verbose=args.verbose, console_level=logging.ERROR if headless else logging.WARNING)
    from app.fix import cmd_audit, cmd_fix
    from app.headless import cmd_reconcile, cmd_timeline
    from app.sandbox_cli import cmd_sandbox

    commands = {"console": cmd_console, "screenshot": cmd_screenshot, "reconcile": cmd_reconcile,
                "timeline": cmd_timeline, "demo-server": cmd_demo_server, "demo-manifest": cmd_demo_manifest,
                "fix": cmd_fix, "audit": cmd_audit, "tryton-sandbox": cmd_sandbox}
    return commands[args.command](args)
