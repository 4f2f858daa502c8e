"""Command line: the console (default) and the headless sub-commands.

    syncdesk [console] [--demo | --config FILE --profile NAME]
    syncdesk demo-server [--customers N] [--seed S] [--port 0] [--write-config FILE] [--fault SYS:KEY=VALUE ...]
    syncdesk demo-manifest [--customers N] [--seed S]
    syncdesk screenshot (--demo | --config FILE --profile NAME) --out DIR
    syncdesk reconcile (--demo [--customers N] [--seed S] | [--config FILE] --profile NAME) [--format ...] [--wide]
                       [--rule R] [--customer QUERY] [--owner T] [--severity S] [--system SYS] [--min-age AGE]
    syncdesk timeline QUERY (same source options) [--format table|json] [--wide]
    syncdesk customers [QUERY] (same source options) [--rule R] [--open-only] [--format table|json|csv] [--wide]
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from app.demo import DEMO_COMMANDS, add_demo_parsers, positive_int
from app.logsetup import setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="syncdesk", description="SyncDesk operator console")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    console = sub.add_parser("console", help="open the operator console (the default)")
    _add_console_options(console)

    shot = sub.add_parser("screenshot", help="render the console's main views to PNG files (offscreen)")
    _add_console_options(shot)
    shot.add_argument("--out", type=Path, required=True, help="folder for the PNG files")

    from app.headless import add_source_options
    from app.selection import QUERY_HELP, add_filter_options

    rec = sub.add_parser("reconcile", help="refresh, reconcile and print the open exceptions")
    add_source_options(rec)
    rec.add_argument("--format", choices=("table", "json", "csv"), default="table")
    rec.add_argument("--output", type=Path, help="write to FILE instead of standard output")
    rec.add_argument("--wide", action="store_true", help="table: print long texts whole (default: fit the terminal)")
    add_filter_options(rec)
    from app.metrics_cli import add_alert_option

    add_alert_option(rec)

    tl = sub.add_parser("timeline", help="refresh and print one customer's lifecycle timeline")
    tl.add_argument("query", metavar="QUERY", help=f"the customer: {QUERY_HELP}")
    add_source_options(tl)
    tl.add_argument("--format", choices=("table", "json"), default="table")
    tl.add_argument("--oldest-first", action="store_true", help="oldest event first (default: newest first)")
    tl.add_argument("--output", type=Path, help="write to FILE instead of standard output")
    tl.add_argument("--wide", action="store_true", help="table: print long texts whole (default: fit the terminal)")

    from app.audit_cli import add_audit_parser
    from app.customers_cli import add_customers_parser
    from app.fix import add_fix_parser

    add_customers_parser(sub)
    add_fix_parser(sub)
    add_audit_parser(sub)
    from app.evidence_cli import add_evidence_parser

    add_evidence_parser(sub)
    from app.metrics_cli import add_metrics_parser

    add_metrics_parser(sub)
    from app.connect_cli import add_connect_parser

    add_connect_parser(sub)
    add_demo_parsers(sub)
    return parser


def _add_console_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--demo", action="store_true", help="use the built-in demo environment")
    p.add_argument("--config", type=Path, help="connection profiles (default: SYNCDESK_HOME/config.toml)")
    p.add_argument("--profile", help="profile name in the configuration file")
    p.add_argument("--customers", type=positive_int, default=None,
                   help="demo size when its world is created (with --demo; default 250)")
    p.add_argument("--seed", type=int, default=None,
                   help="demo seed when its world is created (with --demo; default 1)")


def cmd_console(args: argparse.Namespace) -> int:
    import os

    from app.qt_prereqs import missing_qt_library

    problem = missing_qt_library(os.environ)  # before Qt starts: it would abort with its plugin message
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
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
    # what is logged on the way (a refresh failed, a circuit opened, the traceback of a system's
    # unexpected failure) goes to the log file only, unless --verbose.
    headless = args.command in ("reconcile", "timeline", "customers", "fix", "audit", "evidence", "metrics",
                                "connect")
    setup_logging(verbose=args.verbose, console_level=logging.CRITICAL if headless else logging.WARNING)
    from app.audit_cli import cmd_audit
    from app.connect_cli import cmd_connect
    from app.customers_cli import cmd_customers
    from app.evidence_cli import cmd_evidence
    from app.fix import cmd_fix
    from app.headless import cmd_reconcile, cmd_timeline
    from app.metrics_cli import cmd_metrics

    commands = {"console": cmd_console, "screenshot": cmd_screenshot, "reconcile": cmd_reconcile,
                "timeline": cmd_timeline, "customers": cmd_customers, "fix": cmd_fix, "audit": cmd_audit,
                "evidence": cmd_evidence, "metrics": cmd_metrics, "connect": cmd_connect, **DEMO_COMMANDS}
    return commands[args.command](args)
