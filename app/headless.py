"""Headless sub-commands over the engine: ``reconcile`` and ``timeline``.

Both take the same source options: ``--demo [--customers N] [--seed S]`` (the built-in demo,
started in-process on free ports with a fresh local snapshot) or ``[--config FILE] --profile
NAME`` (a configured connection; snapshot in SYNCDESK_HOME, or ``--db URL``).

Exit status (``reconcile``, ``timeline``; ``fix`` adds its own, see app.fix):

- 0: refreshed and printed (``reconcile``: the open exceptions, however many);
- 2: nothing printed, one line on stderr naming the cause: a usage or configuration problem
  (no such file / profile, malformed TOML, wrong ``kind``, a credential not configured, a
  snapshot database that cannot be opened, an output file that cannot be written, an unknown
  customer) or a system that could not be refreshed (unreachable, unavailable (5xx),
  rejected the credentials, kept rate limiting, answered something unexpected); every failed
  system is named on that one line;
- 130: interrupted (Ctrl+C).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from app.demo import RunningDemo, start_demo
from app.sources import open_storage
from services.core.domain import SyncException, System
from services.core.errors import (
    AuthenticationError,
    ConnectorError,
    ProtocolError,
    RateLimitedError,
    UnavailableError,
)
from services.core.redaction import redact, register_secret
from services.core.sysdata import Progress
from services.engine import Engine, RefreshMode, RefreshReport, SystemOutcome
from services.io.config import SECRET_KEYS, ConfigError, Profile, load_profile
from services.store.home import config_path
from services.store.storage import StorageError


class CommandError(Exception):
    """A one-line reason to print before exiting non-zero."""


def add_source_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--demo", action="store_true", help="use the built-in demo environment")
    p.add_argument("--customers", type=int, default=250, help="demo size (with --demo; default 250)")
    p.add_argument("--seed", type=int, default=1, help="demo seed (with --demo; default 1)")
    p.add_argument("--config", type=Path, help="connection profiles (default: SYNCDESK_HOME/config.toml)")
    p.add_argument("--profile", help="profile name in the configuration file")
    p.add_argument("--db", help="snapshot database (SQLAlchemy URL; default: SQLite in SYNCDESK_HOME)")
    p.add_argument("--full", action="store_true", help="full refresh instead of incremental")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


@dataclass
class Source:
    profile: Profile
    engine: Engine
    demo: RunningDemo | None


@asynccontextmanager
async def open_source(args: argparse.Namespace) -> AsyncIterator[Source]:
    demo: RunningDemo | None = None
    if args.demo:
        if args.profile or args.config:
            raise CommandError("--demo cannot be combined with --config/--profile")
        demo = await asyncio.to_thread(start_demo, args.customers, args.seed)
        profile = demo.profile("demo")
        storage = open_storage(None, args.db)
        clock = demo.now
    else:
        if not args.profile:
            raise CommandError("choose a source: --demo, or --profile NAME (with --config FILE)")
        try:
            profile = load_profile(args.config or config_path(), args.profile)
            _check_credentials(profile)
            storage = open_storage(args.profile, args.db)
        except (ConfigError, StorageError) as exc:
            raise CommandError(str(exc)) from None
        from services.io.connectors.base import utc_now
        clock = utc_now
    for secret in profile.all_secrets():
        register_secret(secret)
    try:
        engine = Engine.from_profile(profile, storage, clock=clock)
    except ConfigError as exc:
        storage.close()
        raise CommandError(str(exc)) from None
    try:
        await engine.load()
        yield Source(profile, engine, demo)
    finally:
        await engine.aclose()
        storage.close()
        if demo is not None:
            await asyncio.to_thread(demo.stop)


def _check_credentials(profile: Profile) -> None:
    """A credential neither in the file, the environment nor the keyring is a configuration
    error, told before any connection is made (the ERP's password is only read at login)."""
    for conn in profile.connections.values():
        for key in SECRET_KEYS[conn.kind]:
            if key not in conn.secrets:
                raise ConfigError(f"profile {profile.name!r}, {conn.system.value}: credential {key!r} is not "
                                  f"configured (set {key!r} or {key + '_env'!r}, or store it in the keyring)")


def _progress_printer(quiet: bool) -> Any:
    last: dict[tuple[System, str], int] = {}

    def show(p: Progress) -> None:
        if quiet:
            return
        key = (p.system, p.phase)
        if p.phase != "done" and p.done - last.get(key, -10**9) < 500:
            return
        last[key] = p.done
        total = f"/{p.total}" if p.total else ""
        print(f"  {p.system.value:8} {p.phase:14} {p.done}{total} {p.message}", file=sys.stderr, flush=True)

    return show


async def refresh_or_fail(source: Source, args: argparse.Namespace) -> RefreshReport:
    mode = RefreshMode.FULL if args.full else RefreshMode.AUTO
    report = await source.engine.refresh(mode, _progress_printer(args.quiet))
    if not report.ok:
        urls = {s: c.url for s, c in source.profile.connections.items()}
        raise CommandError("; ".join(failure_reason(o, urls.get(o.system)) for o in report.failed))
    return report


def failure_reason(outcome: SystemOutcome, url: str | None = None) -> str:
    """``billing (http://…) is unreachable: list events: connection failed (ConnectError)``:
    the system, what kind of failure, then the connector's words without the repeated system."""
    error = outcome.error
    name = outcome.system.value
    where = f"{name} ({url})" if url else name
    detail = outcome.error_text
    if detail.startswith(f"{name} "):
        detail = detail[len(name) + 1:]
    if isinstance(error, AuthenticationError):
        what = "rejected the credentials"
    elif isinstance(error, RateLimitedError):
        what = "kept answering 429 (rate limited)"
    elif isinstance(error, UnavailableError):
        what = "is unavailable" if error.status is not None else "is unreachable"
    elif isinstance(error, ProtocolError):
        what = "answered something unexpected"
    elif isinstance(error, ConnectorError):
        what = "refused the request"
    else:
        what = "could not be refreshed"
    return f"{where} {what}: {detail}"


# -- reconcile ---------------------------------------------------------------------------
def exception_dict(exc: SyncException, now: datetime) -> dict[str, Any]:
    return {
        "id": exc.id,
        "rule": exc.rule,
        "customer": exc.customer_id,
        "object": exc.object_id,
        "severity": exc.severity.value,
        "owner": exc.owner.value,
        "summary": exc.summary,
        "first_seen": exc.first_seen.isoformat(),
        "age_seconds": round(exc.age(now)),
        "fix_actions": list(exc.fix_actions),
        "sides": {side.system.value: {"ref": str(side.ref) if side.ref else None, **side.values}
                  for side in exc.sides},
    }


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot write {output}: {exc.strerror or exc}") from None


def render_exceptions(rows: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=2, ensure_ascii=False, default=str) + "\n"
    columns = ["rule", "customer", "object", "severity", "owner", "summary"]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow([*columns, "id", "first_seen", "sides"])
        for r in rows:
            writer.writerow([r[c] or "" for c in columns] + [r["id"], r["first_seen"],
                                                             json.dumps(r["sides"], default=str)])
        return buf.getvalue()
    return _table([[str(r[c] or "—") for c in columns] for r in rows], columns) + f"\n{len(rows)} open exceptions\n"


def _table(rows: list[list[str]], header: list[str], max_width: int = 70) -> str:
    cells = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


async def _reconcile(args: argparse.Namespace) -> int:
    async with open_source(args) as source:
        report = await refresh_or_fail(source, args)
        result, _ = await source.engine.reconcile()
        exceptions = await source.engine.open_exceptions()
        now = result.checked_at
        rows = [exception_dict(e, now) for e in sorted(exceptions, key=lambda e: (e.rule, e.id))]
        _write(render_exceptions(rows, args.format), args.output)
        if not args.quiet:
            took = ", ".join(f"{o.system.value} {o.mode} {o.records} records in {o.seconds:.1f} s "
                             f"({o.requests} requests)" for o in report.outcomes.values())
            print(f"refreshed: {took}", file=sys.stderr)
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    return _run(_reconcile(args), "reconcile")


# -- timeline ----------------------------------------------------------------------------
async def _timeline(args: argparse.Namespace) -> int:
    from services.core.timeline import build_timeline

    async with open_source(args) as source:
        await refresh_or_fail(source, args)
        await source.engine.reconcile()
        exceptions = await source.engine.open_exceptions()
        timeline = build_timeline(source.engine.snapshot(), args.customer_id, exceptions=exceptions,
                                  now=source.engine.clock())
        entries = timeline.oldest_first() if args.oldest_first else timeline.newest_first()
        if not entries and not timeline.identities:
            raise CommandError(f"no customer {args.customer_id!r} in any system")
        if args.format == "json":
            out = {"customer": timeline.customer_id, "name": timeline.name,
                   "identities": {s.value: [str(r) for r in refs] for s, refs in timeline.identities.items()},
                   "entries": [{"at": e.event.at.isoformat(), "system": e.event.system.value,
                                "kind": e.event.kind.value, "ref": str(e.event.ref), "summary": e.event.summary,
                                "group": e.group, "status": e.status, "note": e.note,
                                "lag_seconds": e.lag.total_seconds() if e.lag is not None else None,
                                "exceptions": list(e.event.exception_ids)} for e in entries]}
            _write(json.dumps(out, indent=2, ensure_ascii=False) + "\n", args.output)
        else:
            header = ["when (UTC)", "system", "event", "status", "lag", "summary"]
            rows = [[e.event.at.strftime("%Y-%m-%d %H:%M"), e.event.system.value, e.event.kind.value,
                     e.status, _lag(e.lag), e.event.summary + (f"  [{', '.join(e.event.exception_ids)}]"
                                                                if e.event.exception_ids else "")]
                    for e in entries]
            ident = "; ".join(f"{s.value}: {', '.join(r.id for r in refs)}" for s, refs in timeline.identities.items())
            _write(f"{timeline.name} ({timeline.customer_id}) — {ident}\n\n{_table(rows, header, 90)}\n", args.output)
    return 0


def _lag(lag: Any) -> str:
    if lag is None:
        return ""
    seconds = int(lag.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"


def cmd_timeline(args: argparse.Namespace) -> int:
    return _run(_timeline(args), "timeline")


def _run(coro: Any, name: str, stream: TextIO | None = None) -> int:
    try:
        return asyncio.run(coro)
    except CommandError as exc:
        # one line, whatever the vendor's message holds, and never a configured secret
        line = " ".join(redact(str(exc)).split())
        print(f"{name}: {line}", file=stream or sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: cancelled", file=stream or sys.stderr)
        return 130
