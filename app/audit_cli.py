"""The audit log on the command line.

    syncdesk audit verify [--db FILE]
    syncdesk audit export --format csv|json [--output FILE] [--db FILE]

``audit verify`` exits 0 when the chain is intact, else names the first altered, removed or
reordered entry and exits 1; 2 when there is no log. The audit log lives in
SYNCDESK_HOME/audit.db, or ``--db``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from services.store.audit import AuditLog
from services.store.home import audit_path
from services.store.storage import Storage, StorageError, database_url

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_audit_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser("audit", help="verify or export the tamper-evident audit log")
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    verify = asub.add_parser("verify", help="check the hash chain; names the first bad entry")
    verify.add_argument("--db", type=Path, help="audit database (default: SYNCDESK_HOME/audit.db)")
    export = asub.add_parser("export", help="write every entry as CSV or JSON")
    export.add_argument("--format", choices=("csv", "json"), required=True)
    export.add_argument("--output", type=Path, help="write to FILE instead of standard output")
    export.add_argument("--db", type=Path, help="audit database (default: SYNCDESK_HOME/audit.db)")
    return p


# -- fix ---------------------------------------------------------------------------------


def cmd_audit(args: argparse.Namespace) -> int:
    path: Path = args.db or audit_path()
    if not path.exists():
        print(f"audit: no audit log at {path}", file=sys.stderr)
        return EXIT_USAGE
    try:
        storage = Storage(database_url(path), durable=True)
    except StorageError as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    log = AuditLog(storage)
    try:
        if args.audit_command == "verify":
            result = log.verify()
            print(str(result), file=sys.stdout if result.ok else sys.stderr)
            return EXIT_OK if result.ok else EXIT_FAILED
        text = log.export(args.format)
        if args.output:
            args.output.write_text(text, encoding="utf-8")
            print(f"audit: wrote {log.count()} entries to {args.output}", file=sys.stderr)
        else:
            sys.stdout.write(text)
        return EXIT_OK
    finally:
        storage.close()


__all__ = ["add_audit_parser", "cmd_audit"]
