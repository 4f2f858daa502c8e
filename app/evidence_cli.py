"""``syncdesk evidence``: a customer's evidence pack, as a PDF and its JSON twin.

    syncdesk evidence CUSTOMER [CUSTOMER ...] --out FILE.pdf [--json FILE.json]
                      (--demo … | [--config FILE] --profile NAME) [--full] [-q]

Each CUSTOMER is found as ``timeline`` finds one (services.core.lookup: a name, any id in any
system, an e-mail domain, the start of an id); a query that names several customers is exit 2
with the list. Refreshes (incrementally) and reconciles like ``reconcile``, runs ``audit verify``
on the source's audit log (``app.sources.choose_audit_log``: the profile's, or the demo's), then
writes the JSON twin (``--json``; default: FILE.json beside the PDF) and the PDF
(app.evidence_pdf), both atomically. The PDF prints the pack's SHA-256, the SHA-256 of the JSON
twin's exact bytes (services.evidence.pack: what it holds and how a third party checks it).

Standard output: the files written and the pack's SHA-256 (``pack SHA-256 <hex>``).

Reading only: any role may run it (an auditor's); like ``audit export`` it writes no audit
entry. Exit status: 0 written, the audit log intact; 1 written, but ``audit verify`` found the
log NOT intact (the pack and its PDF say so, and stderr); 2 nothing written (a usage, source or
output problem, an unknown customer: one line on stderr); 4 written, but some records a system
sent could not be read (as ``reconcile``); 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from app.headless import CommandError, _run, add_source_options, open_source, refresh_or_fail, report_quarantined
from app.selection import QUERY_HELP, SelectionError, resolve
from app.sources import choose_audit_log
from services.core.identity import current_login
from services.core.lookup import CustomerIndex
from services.core.text_safety import terminal_safe
from services.core.timeline import build_timeline
from services.evidence.collect import collect_pack
from services.evidence.pack import EvidencePack
from services.io.config import ConfigError, write_private

EXIT_NOT_INTACT = 1


def add_evidence_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "evidence", help="write a customer's evidence pack (PDF and JSON twin): identities, timeline, exceptions, "
                         "audit entries with their hashes, and audit verify's result")
    p.add_argument("queries", nargs="+", metavar="CUSTOMER", help=f"the customer(s): {QUERY_HELP}")
    p.add_argument("--out", type=Path, required=True, metavar="FILE.pdf", help="the PDF to write")
    p.add_argument("--json", type=Path, metavar="FILE.json",
                   help="the JSON twin to write (default: the PDF's name with .json)")
    add_source_options(p)
    return p


def customer_ids(index: CustomerIndex, snapshot: Any, queries: list[str], exceptions: list[Any]) -> list[str]:
    """The customer each query names (as ``timeline``: a query no lookup matches may still be an
    id some records refer to); :class:`SelectionError` for an unknown or ambiguous one."""
    out: list[str] = []
    for query in queries:
        lookup = index.find(query)
        if lookup.unique is None and not lookup.matches:
            orphan = build_timeline(snapshot, query.strip(), exceptions=exceptions)
            if orphan.known:
                out.append(orphan.customer_id)
                continue
        out.append(resolve(index, query).customer_id)
    return list(dict.fromkeys(out))


def write_pack(pack: EvidencePack, pdf: Path, json_path: Path) -> int:
    """The JSON twin, then the PDF (rendered to a temporary file beside it, then renamed); pages."""
    from app.evidence_pdf import render_pdf

    for target in (pdf, json_path):
        if not target.parent.is_dir():
            raise CommandError(f"cannot write {target}: no folder {target.parent}")
    try:
        write_private(json_path, pack.json_bytes)  # atomic, 0600 from the first byte, flushed
        fd, tmp = tempfile.mkstemp(prefix=f".{pdf.name}.", suffix=".tmp", dir=pdf.parent)
        os.close(fd)
        try:
            pages = render_pdf(pack, Path(tmp))
            if Path(tmp).stat().st_size == 0:
                raise CommandError(f"cannot write {pdf}: the PDF writer wrote nothing")
            os.replace(tmp, pdf)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError as exc:
        raise CommandError(f"cannot write the evidence pack: {exc.strerror or exc}") from None
    return pages


async def _evidence(args: argparse.Namespace, json_path: Path) -> int:
    try:
        choice = choose_audit_log(argparse.Namespace(demo=args.demo, profile=args.profile, db=None))
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    missing = "" if choice.path.exists() else choice.missing()
    async with open_source(args) as source:
        await refresh_or_fail(source, args)
        await source.engine.reconcile()
        snapshot = source.engine.snapshot()
        exceptions = await source.engine.open_exceptions()
        ids = customer_ids(CustomerIndex.from_snapshot(snapshot, exceptions), snapshot, args.queries, exceptions)
        where = "the built-in demo" if args.demo else f"profile {args.profile!r}"
        pack = await collect_pack(source.engine, ids, choice.path, generated_by=current_login(), source=where,
                                  missing=missing)
        pages = write_pack(pack, args.out, json_path)
        verdict = pack.data["audit_verify"]
        print(f"wrote {args.out} ({pages} page{'s' if pages != 1 else ''}) and {json_path}")
        print(f"pack SHA-256 {pack.sha256}")
        if not verdict["ok"]:
            print(f"evidence: {terminal_safe(verdict['sentence'])}", file=sys.stderr)
        quarantined = report_quarantined(source.engine, "evidence")
        return EXIT_NOT_INTACT if not verdict["ok"] else quarantined


def cmd_evidence(args: argparse.Namespace) -> int:
    json_path: Path = args.json or args.out.with_suffix(".json")
    if json_path.resolve() == args.out.resolve():
        print("evidence: --json must name another file than --out", file=sys.stderr)
        return 2
    return _run(_evidence(args, json_path), "evidence")


__all__ = ["SelectionError", "add_evidence_parser", "cmd_evidence", "customer_ids", "write_pack"]
