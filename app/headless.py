"""Headless sub-commands over the engine: ``reconcile`` and ``timeline`` (``customers``:
app/customers_cli.py).

``timeline QUERY`` and ``reconcile --customer QUERY`` name a customer the way a user knows it
(app/selection.py, services.core.lookup): a name (any part, any case, accents optional), any id
in any system, an e-mail domain, the start of an id; a query that names several customers is
exit 2 with the list. ``reconcile`` takes the exception filters ``fix`` takes (``--rule``,
``--customer``, ``--owner``, ``--severity``, ``--system``, ``--min-age``).

Both take the same source options: ``--demo [--customers N] [--seed S]`` (the built-in demo:
its world, kept in SYNCDESK_HOME/demo between runs, served in-process on free ports; its
snapshot there too; ``--customers``/``--seed`` only matter when the world is created) or
``[--config FILE] --profile NAME`` (a configured connection; snapshot in SYNCDESK_HOME, or
``--db URL``). Either way the refresh is incremental once a snapshot exists.

Exit status (``reconcile``, ``timeline``; ``fix`` adds its own, see app.fix):

- 0: refreshed and printed (``reconcile``: the open exceptions, however many);
- 2: nothing printed, one line on stderr naming the cause: a usage or configuration problem
  (no such file / profile, malformed TOML, wrong ``kind``, a credential not configured, a
  snapshot database that cannot be opened, an output file that cannot be written, an unknown
  customer, a query that names several: then the candidates follow, one per line) or a system
  that could not be refreshed (unreachable, unavailable (5xx), rejected the credentials, kept
  rate limiting, answered something unexpected); every failed system is named on that one
  line, and without ``-q`` one line per system before it says how each refresh went;
- 4: refreshed and printed, but some records a system sent could not be read (a time out of
  range, a wrong type, a missing field, an id listed twice with different content): they are
  quarantined — left out of the data, the rest of the refresh goes on — and each is one line on
  stderr, ``reconcile: could not read billing invoice in_1: created: …`` (also with ``-q``);
  the output is complete except for them. The list is kept with the snapshot and is printed
  again by every run until the records read (a full refresh replaces it);
- 130: interrupted (Ctrl+C).

Output (``reconcile``, ``timeline``; ``fix`` uses the same helpers): every text that came from
a system passes :func:`safe_text` — credentials masked (services.core.redaction), control and
bidirectional characters shown as visible escapes (services.core.text_safety), so a name holding
``ESC]52;…`` cannot write to the clipboard. ``--format table`` elides long cells with "…" to fit
the terminal's width (``--wide``: whole); ``--format csv`` cells are also formula-neutralised
(:func:`~services.core.text_safety.csv_cell`); ``--format json`` is exact JSON
(:func:`json_text`: every character that could act on a terminal is a ``\\u`` escape).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import re
import shutil
import sys
import unicodedata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from app.demo import DemoError, RunningDemo, positive_int, start_demo
from app.selection import SelectionError, exception_filter, resolve
from app.sources import open_storage
from services.core.domain import ExceptionMark, SyncException, System
from services.core.errors import (
    AuthenticationError,
    ConnectorError,
    ProtocolError,
    RateLimitedError,
    UnavailableError,
)
from services.core.lookup import CustomerIndex
from services.core.redaction import redact, redact_value, register_secret
from services.core.sysdata import Progress
from services.core.text_safety import BIDI_CONTROLS, SEPARATORS, csv_cell, terminal_safe
from services.engine import Engine, RefreshMode, RefreshReport, SystemOutcome
from services.io.config import ConfigError, Profile, load_profile, missing_secrets
from services.store.home import config_path
from services.store.storage import StorageError


class CommandError(Exception):
    """A one-line reason to print before exiting non-zero."""


def add_source_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--demo", action="store_true",
                   help="use the built-in demo, whose world is kept in SYNCDESK_HOME/demo between runs")
    p.add_argument("--customers", type=positive_int, default=None,
                   help="demo size when its world is created (with --demo; default 250)")
    p.add_argument("--seed", type=int, default=None,
                   help="demo seed when its world is created (with --demo; default 1)")
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
        try:
            demo = await asyncio.to_thread(start_demo, args.customers, args.seed)
        except DemoError as exc:
            raise CommandError(str(exc)) from None
        profile = demo.profile("demo")
        try:
            storage = open_storage(None, args.db)
        except StorageError as exc:
            await asyncio.to_thread(demo.stop)
            raise CommandError(str(exc)) from None
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
        if demo is not None:
            await asyncio.to_thread(demo.stop)
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
        for key in missing_secrets(conn.kind, conn.secrets):
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
        print(f"  {p.system.value:8} {p.phase:14} {p.done}{total} {safe_text(p.message)}", file=sys.stderr,
              flush=True)

    return show


async def refresh_or_fail(source: Source, args: argparse.Namespace) -> RefreshReport:
    mode = RefreshMode.FULL if args.full else RefreshMode.AUTO
    report = await source.engine.refresh(mode, _progress_printer(args.quiet))
    if not report.ok:
        urls = {s: c.url for s, c in source.profile.connections.items()}
        if not args.quiet:  # how each system's refresh went, then the reason (one line)
            for line in refresh_lines(report, urls):
                print(line, file=sys.stderr)
        raise CommandError("; ".join(failure_reason(o, urls.get(o.system)) for o in report.failed))
    return report


def refresh_lines(report: RefreshReport, urls: dict[System, str]) -> list[str]:
    """One line per system: ``refresh: erp      failed  is unreachable at http://…`` or
    ``refresh: billing  ok      full, 214 records in 1.5 s``."""
    out = []
    for system in System:
        o = report.outcomes.get(system)
        if o is None:
            continue
        if o.ok:
            what = f"ok      {o.mode}, {o.records} records in {o.seconds:.1f} s"
        else:
            url = urls.get(system)
            what = f"failed  {failure_kind(o)}" + (f" at {url}" if url else "")
        out.append(f"refresh: {system.value:8} {safe_text(what)}")
    return out


#: exit status: refreshed and printed, but some records could not be read (see the module doc)
EXIT_QUARANTINED = 4


def report_quarantined(engine: Engine, name: str) -> int:
    """One line on stderr per record the systems sent that could not be read; the exit
    status: :data:`EXIT_QUARANTINED` when there is any, else 0."""
    entries = engine.quarantined()
    for q in entries:
        print(f"{name}: could not read {q.system.value} {safe_text(q.kind)} {safe_text(q.record_id)}: "
              f"{safe_text(q.reason)}", file=sys.stderr)
    return EXIT_QUARANTINED if entries else 0


def failure_reason(outcome: SystemOutcome, url: str | None = None) -> str:
    """``billing (http://…) is unreachable: list events: connection failed (ConnectError)``:
    the system, what kind of failure, then the connector's words without the repeated system."""
    name = outcome.system.value
    where = f"{name} ({url})" if url else name
    detail = outcome.error_text
    if detail.startswith(f"{name} "):
        detail = detail[len(name) + 1:]
    return f"{where} {failure_kind(outcome)}: {detail}"


def failure_kind(outcome: SystemOutcome) -> str:
    """What kind of failure, as a predicate: ``is unreachable``, ``rejected the credentials``…"""
    error = outcome.error
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
    return what


# -- output that cannot be turned against the reader --------------------------------------
def safe_text(text: str, *, newlines: bool = False) -> str:
    """Upstream text as a terminal may print it: credentials masked, every control and
    bidirectional character a visible escape (``newlines=True`` keeps line breaks)."""
    return terminal_safe(redact(text), newlines=newlines)


#: what ``json.dumps(ensure_ascii=False)`` leaves raw and a terminal may act on: DEL, the C1
#: controls (U+0080..U+009F: 8-bit CSI, OSC...), bidirectional controls and line separators
_JSON_RAW_CONTROLS = re.compile("[\x7f-\x9f" + "".join(sorted(BIDI_CONTROLS | SEPARATORS)) + "]")


def json_text(value: Any) -> str:
    """``value`` as indented JSON with credentials masked in its strings; characters a terminal
    could act on are ``\\uXXXX`` escapes, so the text is inert and ``json.loads`` gives back
    exactly the (masked) value. A trailing newline."""
    text = json.dumps(redact_value(value), indent=2, ensure_ascii=False, default=str)
    return _JSON_RAW_CONTROLS.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text) + "\n"


def csv_text(value: Any) -> str:
    """One CSV cell: credentials masked, control characters as visible escapes (line breaks
    kept: a quoted cell may hold them), formula-neutralised (a leading ``= + - @`` gets ``'``)."""
    if isinstance(value, str):
        value = terminal_safe(redact(value), newlines=True)
    return csv_cell(value)


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes: wide (East Asian) characters two, combining marks none."""
    if text.isascii():
        return len(text)
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in text)


def elide(text: str, width: int) -> str:
    """``text`` cut to ``width`` terminal columns, ending in "…" when cut."""
    if display_width(text) <= width:
        return text
    out: list[str] = []
    used = 0
    for ch in text:
        w = display_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…" if width >= 1 else ""


def terminal_width(args: argparse.Namespace) -> int | None:
    """The width a table must fit (the terminal's, or ``COLUMNS``, else 80); None with ``--wide``."""
    return None if getattr(args, "wide", False) else shutil.get_terminal_size().columns


def _fit(natural: list[int], floors: list[int], room: int) -> list[int]:
    """Column widths within ``room``: the widest columns give way first, none below its floor
    (its header), what is left over goes back to the columns that were cut, left to right."""
    if sum(natural) <= room:
        return natural

    def total(cap: int) -> int:
        return sum(min(n, max(cap, f)) for n, f in zip(natural, floors, strict=True))

    lo, hi = 0, max(natural)
    while lo < hi:  # the largest cap that fits
        mid = (lo + hi + 1) // 2
        if total(mid) <= room:
            lo = mid
        else:
            hi = mid - 1
    widths = [min(n, max(lo, f)) for n, f in zip(natural, floors, strict=True)]
    spare = room - sum(widths)
    for i, n in enumerate(natural):
        if spare <= 0:
            break
        grow = min(spare, n - widths[i])
        widths[i] += grow
        spare -= grow
    return widths


def _table(rows: list[list[str]], header: list[str], width: int | None, whole: frozenset[int] = frozenset()) -> str:
    """A plain-text table; every cell is :func:`safe_text`. ``width``: the columns to fit
    (long cells elided with "…"; never the columns in ``whole``, e.g. ids); None prints every
    cell whole."""
    cells = [[safe_text(c) for c in row] for row in [header, *rows]]
    natural = [max(display_width(row[i]) for row in cells) for i in range(len(header))]
    if width is not None:
        floors = [natural[i] if i in whole else display_width(h) for i, h in enumerate(cells[0])]
        widths = _fit(natural, floors, width - 2 * (len(header) - 1))
        cells = [[elide(c, w) for c, w in zip(row, widths, strict=True)] for row in cells]
    else:
        widths = natural
    lines = ["  ".join(c + " " * (w - display_width(c)) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# -- reconcile ---------------------------------------------------------------------------
def mark_dict(mark: ExceptionMark | None) -> dict[str, Any] | None:
    """A failed fix or a flag as ``reconcile --format json`` shows it."""
    if mark is None:
        return None
    return {"at": mark.at.isoformat(), "by": mark.actor, "role": mark.role, "action": mark.action,
            "action_id": mark.action_id, "reason": mark.text, "rule": mark.rule}


def mark_notes(exc: SyncException) -> str:
    """The marks as the table shows them after the summary."""
    notes = []
    if exc.last_failure is not None:
        m = exc.last_failure
        on = f" ({m.action} on {m.rule})" if m.rule and m.rule != exc.rule else ""
        notes.append(f"[last attempt failed at {m.at:%Y-%m-%d %H:%M} UTC{on}: {m.text}]")
    if exc.flagged is not None:
        m = exc.flagged
        notes.append(f"[flagged by {m.actor} ({m.role}) at {m.at:%Y-%m-%d %H:%M} UTC: {m.text}]")
    return "  ".join(notes)


def mark_tag(flagged: bool, failed: bool) -> str:
    """The marks in a word or two before a summary, so that a table fitted to the terminal still
    shows them (the whole mark follows the summary; ``--wide`` and json show it all)."""
    tags = [t for t, on in (("last attempt failed", failed), ("flagged", flagged)) if on]
    return f"[{', '.join(tags)}] " if tags else ""


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
        "last_attempt_failed": mark_dict(exc.last_failure),
        "flagged": mark_dict(exc.flagged),
        "notes": mark_notes(exc),
    }


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot write {output}: {exc.strerror or exc}") from None


def render_exceptions(rows: list[dict[str, Any]], fmt: str, width: int | None = None, footer: str = "") -> str:
    """The open exceptions as ``json`` (exact), ``csv`` (spreadsheet-safe cells) or a table
    fitted to ``width`` columns (None: whole cells); ``footer`` follows the table's count."""
    if fmt == "json":
        return json_text(rows)
    columns = ["rule", "customer", "object", "severity", "owner", "summary"]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow([*columns, "id", "first_seen", "sides"])
        for r in rows:
            writer.writerow([csv_text(r[c] or "") for c in columns]
                            + [csv_text(r["id"]), csv_text(r["first_seen"]),
                               csv_text(json.dumps(redact_value(r["sides"]), default=str))])
        return buf.getvalue()
    def cell(r: dict[str, Any], c: str) -> str:
        if c != "summary":
            return str(r[c] or "—")
        tag = mark_tag(bool(r.get("flagged")), bool(r.get("last_attempt_failed"))) if width is not None else ""
        return tag + str(r[c] or "—") + (f"  {r['notes']}" if r.get("notes") else "")

    shown = [[cell(r, c) for c in columns] for r in rows]
    return (_table(shown, columns, width)
            + f"\n{len(rows)} open exceptions{footer}\n")


async def _reconcile(args: argparse.Namespace) -> int:
    async with open_source(args) as source:
        report = await refresh_or_fail(source, args)
        result, track = await source.engine.reconcile()
        exceptions = await source.engine.open_exceptions()
        now = result.checked_at
        index = CustomerIndex.from_snapshot(source.engine.snapshot(), exceptions) if args.customer else None
        flt, _ = exception_filter(args, index)
        chosen = flt.apply(exceptions, now)
        footer = ""
        if not flt.empty:
            labels = ", ".join(label for label, _ in flt.criteria(now))
            footer = (f" matching {labels} (of {len(exceptions)})" if chosen
                      else f" matching {labels}: {flt.why_none(exceptions, now)}")
        rows = [exception_dict(e, now) for e in sorted(chosen, key=lambda e: (e.rule, e.id))]
        _write(render_exceptions(rows, args.format, terminal_width(args), footer), args.output)
        if not args.quiet:
            took = ", ".join(f"{o.system.value} {o.mode} {o.records} records in {o.seconds:.1f} s "
                             f"({o.requests} requests)" for o in report.outcomes.values())
            print(f"refreshed: {took}", file=sys.stderr)
        code = report_quarantined(source.engine, "reconcile")
        if getattr(args, "alert_webhook", None):  # G2: app/metrics_cli.py (it imports this module)
            from app.metrics_cli import send_reconcile_alert
            code = max(code, await send_reconcile_alert(source, args, result, track))
        return code


def cmd_reconcile(args: argparse.Namespace) -> int:
    return _run(_reconcile(args), "reconcile")


# -- timeline ----------------------------------------------------------------------------
async def _timeline(args: argparse.Namespace) -> int:
    from services.core.timeline import build_timeline

    async with open_source(args) as source:
        await refresh_or_fail(source, args)
        await source.engine.reconcile()
        exceptions = await source.engine.open_exceptions()
        snapshot = source.engine.snapshot()
        customer_id, found = _timeline_customer(CustomerIndex.from_snapshot(snapshot, exceptions), snapshot, args,
                                                exceptions, source.engine.clock())
        timeline = build_timeline(snapshot, customer_id, exceptions=exceptions, now=source.engine.clock())
        entries = timeline.oldest_first() if args.oldest_first else timeline.newest_first()
        notes = {e.id: mark_notes(e) for e in exceptions if mark_notes(e)}  # failed fixes, flags
        if args.format == "json":
            state = timeline.state
            out = {"customer": timeline.customer_id, "name": timeline.name,
                   "found_by": {"query": args.query, "via": found},
                   "state": {"subscription": state.subscription_id, "status": state.status, "plan": state.plan_key,
                             "plan_name": state.plan_name, "quantity": state.quantity, "support_tier": state.tier},
                   "identities": {s.value: [str(r) for r in refs] for s, refs in timeline.identities.items()},
                   "entries": [{"at": e.event.at.isoformat(), "system": e.event.system.value,
                                "kind": e.event.kind.value, "ref": str(e.event.ref), "summary": e.event.summary,
                                "group": e.group, "status": e.status, "note": e.note,
                                "lag_seconds": e.lag.total_seconds() if e.lag is not None else None,
                                "exceptions": list(e.event.exception_ids),
                                "exception_notes": {x: notes[x] for x in e.event.exception_ids if x in notes}}
                               for e in entries]}
            _write(json_text(out), args.output)
        else:
            header = ["when (UTC)", "system", "event", "status", "lag", "summary"]
            width = terminal_width(args)
            marked = {e.id: e for e in exceptions if e.flagged is not None or e.last_failure is not None}

            def tag(ids: Any) -> str:  # fitted to the terminal: the marks lead, or they would be cut off
                if width is None:
                    return ""
                return mark_tag(any(marked[x].flagged is not None for x in ids if x in marked),
                                any(marked[x].last_failure is not None for x in ids if x in marked))

            rows = [[e.event.at.strftime("%Y-%m-%d %H:%M"), e.event.system.value, e.event.kind.value,
                     e.status, _lag(e.lag), tag(e.event.exception_ids) + e.event.summary
                     + (f"  [{', '.join(e.event.exception_ids)}]" if e.event.exception_ids else "")
                     + "".join(f"  {notes[x]}" for x in e.event.exception_ids if x in notes)]
                    for e in entries]
            name = safe_text(timeline.name or "")
            if width is not None:  # the name gives way, never the id
                name = elide(name, max(20, width // 2))
            title = f"{name} ({safe_text(timeline.customer_id)})"
            lines = [safe_text(timeline.state.summary()), safe_text(identity_text(timeline, snapshot.systems))]
            if width is not None:
                lines = [elide(line, width) for line in lines]
            _write("\n".join([title, *lines, "", _table(rows, header, width)]) + "\n", args.output)
        return report_quarantined(source.engine, "timeline")


def _timeline_customer(index: CustomerIndex, snapshot: Any, args: argparse.Namespace,
                       exceptions: list[SyncException], now: datetime) -> tuple[str, str]:
    """The customer id ``timeline QUERY`` means and how it was found. A query no lookup
    matches may still be an id some records refer to (an ERP invoice booked on a party code no
    system has); else :class:`SelectionError` (none: one line; several: the list)."""
    from services.core.timeline import build_timeline

    lookup = index.find(args.query)
    match = lookup.unique
    if match is not None:
        if not args.quiet and match.customer_id != args.query.strip():
            print(f"timeline: {safe_text(args.query)!r} is {safe_text(match.describe())}", file=sys.stderr)
        return match.customer_id, match.via.value
    if not lookup.matches:
        orphan = build_timeline(snapshot, args.query.strip(), exceptions=exceptions, now=now)
        if orphan.known:
            return orphan.customer_id, "records that refer to it"
    return resolve(index, args.query).customer_id, ""  # raises, saying why


def identity_text(timeline: Any, loaded: Any) -> str:
    """``billing cus_X · ERP party 30 (code cus_X) · support org 360000028``;
    a system that holds none: ``ERP not linked``; never read: ``ERP not loaded``."""
    parts = []
    for system, label in ((System.BILLING, "billing"), (System.ERP, "ERP party"), (System.SUPPORT, "support org")):
        refs = timeline.identities.get(system, [])
        if refs:
            ids = ", ".join(r.id for r in refs)
            parts.append(f"{label} {ids}" + (f" (code {timeline.customer_id})" if system is System.ERP else ""))
        else:
            title = "ERP" if system is System.ERP else system.value
            parts.append(f"{title} {'not linked' if system in loaded else 'not loaded'}")
    return " · ".join(parts)


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
    except SelectionError as exc:  # no such customer (one line), or several (the line, then the list)
        line = terminal_safe(" ".join(redact(str(exc)).split()))
        print(f"{name}: {line}", file=stream or sys.stderr)
        for candidate in exc.lines():
            print(redact(candidate), file=stream or sys.stderr)
        return 2
    except CommandError as exc:
        # one line, whatever the vendor's message holds: never a credential, never a control character
        line = terminal_safe(" ".join(redact(str(exc)).split()))
        print(f"{name}: {line}", file=stream or sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: cancelled", file=stream or sys.stderr)
        return 130
