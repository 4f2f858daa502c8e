"""The audit log on the command line.

    syncdesk audit verify [--demo | --profile NAME | --db FILE]
    syncdesk audit export --format csv|json|signed [--output FILE] [--demo | --profile NAME | --db FILE]
    syncdesk audit verify-export FILE [--public-key KEY]

``audit verify`` exits 0 when the log is intact — its hash chain, its head file, its signed
checkpoints and its witnesses (README: "The audit log: what it detects, what it cannot") — else
names the first altered, removed, reordered or unsigned entry (or what could not be checked) in
one sentence (one line on standard error) and exits 1; 2 when there is no log. An intact log's
report also says which protection is in force (where the signing key is, which witnesses, a
warning when the key is in the fallback key file) and since when the log is anchored. Each profile
has its own log (``app.sources.choose_audit_log``: ``--profile``, ``--demo``, ``--db``, else
the profile the console opens).

``audit export --format signed`` writes the entries as stored, the signed checkpoints, the
witnesses' checkpoints and the public key: ``audit verify-export`` checks such a file anywhere,
without SYNCDESK_HOME or the key store (``--public-key``: the key its owner gave you).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from app.sources import add_audit_log_options, choose_audit_log
from services.core.text_safety import terminal_safe
from services.io.config import ConfigError
from services.store.audit import AuditLog, VerifyResult
from services.store.audit_export import ExportError, signed_export, verify_export
from services.store.storage import Storage, StorageError, database_url

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_audit_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser("audit", help="verify or export the tamper-evident audit log")
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    verify = asub.add_parser("verify", help="check the hash chain, the signed checkpoints and the witnesses; "
                                            "names the first bad entry")
    add_audit_log_options(verify)
    export = asub.add_parser("export", help="write every entry as CSV or JSON, or a signed export (JSON with the "
                                            "checkpoints and the public key) that anyone can verify")
    export.add_argument("--format", choices=("csv", "json", "signed"), required=True)
    export.add_argument("--output", type=Path, help="write to FILE instead of standard output")
    add_audit_log_options(export)
    offline = asub.add_parser("verify-export", help="check a signed export (audit export --format signed) without "
                                                    "SYNCDESK_HOME or the key")
    offline.add_argument("file", type=Path, help="the signed export (JSON)")
    offline.add_argument("--public-key", help="the log's public key (base64) as its owner gave it; default: the "
                                              "export's own (its fingerprint is printed to compare)")
    return p


def _say(line: str, stream: TextIO) -> None:
    print(terminal_safe(line), file=stream)


def report(result: VerifyResult) -> int:
    """Print a verify result; its exit code. Intact: the sentence, then the protection in force,
    since when the log is anchored and any warning about the key's place (standard output). Not
    intact: the one sentence naming the first bad entry (standard error), nothing else."""
    if not result.ok:
        _say(str(result), sys.stderr)
        return EXIT_FAILED
    _say(str(result), sys.stdout)
    if result.protection:
        _say(f"protection: {result.protection}", sys.stdout)
    if result.anchored and not result.late:  # a late anchoring is said in the sentence
        _say(result.anchored, sys.stdout)
    if result.warning:
        _say(f"warning: {result.warning}", sys.stdout)
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    if args.audit_command == "verify-export":
        return _verify_export(args.file, args.public_key)
    try:
        choice = choose_audit_log(args)
    except ConfigError as exc:
        _say(f"audit: {exc}", sys.stderr)
        return EXIT_USAGE
    path = choice.path
    if not path.exists():
        _say(f"audit: {choice.missing()}", sys.stderr)
        return EXIT_USAGE
    try:
        storage = Storage(database_url(path), durable=True)
    except StorageError as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    log = AuditLog(storage)
    try:
        if args.audit_command == "verify":
            try:
                result = log.verify()
            except Exception as exc:  # never a traceback: say what stopped the check
                _say(f"audit log NOT verified: the check could not run ({type(exc).__name__}: {exc})", sys.stderr)
                return EXIT_FAILED
            return report(result)
        if args.format == "signed":
            try:
                text = json.dumps(signed_export(log), indent=1, ensure_ascii=False) + "\n"
            except ExportError as exc:
                _say(f"audit: {exc}", sys.stderr)
                return EXIT_FAILED
        else:
            text = log.export(args.format)
        if args.output:
            args.output.write_text(text, encoding="utf-8")
            print(f"audit: wrote {log.count()} entries to {args.output}", file=sys.stderr)
        else:
            sys.stdout.write(text)
        return EXIT_OK
    finally:
        log.flush()
        storage.close()


def _verify_export(file: Path, public_key: str | None) -> int:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        _say(f"audit: no file {file}", sys.stderr)
        return EXIT_USAGE
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        _say(f"audit export NOT intact: {file} is not a readable JSON file ({exc})", sys.stderr)
        return EXIT_FAILED
    return report(verify_export(data, public_key))


__all__ = ["add_audit_parser", "cmd_audit", "report"]
