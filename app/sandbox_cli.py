"""``syncdesk tryton-sandbox build|serve``: a real Tryton 8.2 on SQLite, seeded like the demo."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import tomli_w


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
        from services import tryton_sandbox as sb
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
