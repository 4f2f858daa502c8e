"""``syncdesk metrics``: the metrics of the design for a period, for schedules and spreadsheets.

    syncdesk metrics (--demo … | [--config FILE] --profile NAME) [--since DATE] [--until DATE]
                     [--by team|rule|system] [--team T] [--rule R] [--system S] [--currency C]
                     [--format table|json|csv] [--output FILE]

Refreshes (incrementally once a snapshot exists) and reconciles like ``reconcile``, then
computes services/metrics over the period ``--since``..``--until`` (days, UTC, both included;
default: the 30 days up to now), compared with the period of the same length before it. SLA
targets come from the ``[sla]`` table of the configuration file (services/metrics/sla.py).

``table``: the headline figures (value, previous period, target, breach), then open exceptions
by owner and age, by rule, resolution, retries, freshness, governance coverage; with ``--by``,
the headline figures per team / rule / system. ``json``: the whole report with the records
behind every figure. ``csv``: one row per figure (and per group with ``--by``).

Exit status: 0 computed (also when an SLA is breached: the report says so); 2 a usage,
configuration or source error (as ``reconcile``); 4 computed, but some records could not be
read (as ``reconcile``); 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import sys
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from app.headless import (
    CommandError,
    _run,
    _table,
    _write,
    add_source_options,
    csv_text,
    json_text,
    open_source,
    refresh_or_fail,
    report_quarantined,
    terminal_width,
)
from services.core.domain import System, Team
from services.core.exception_filter import FilterError, rule_matcher
from services.metrics.compute import compute_metrics
from services.metrics.export import duration_text, report_dict, target_text, value_text
from services.metrics.model import AGE_BUCKETS, Filters, GroupBy, MetricsReport, Period
from services.metrics.sla import SlaConfig, SlaConfigError, load_sla
from services.store.home import audit_path, config_path
from services.store.storage import Storage, StorageError

#: the default period: this many days up to now
DEFAULT_DAYS = 30


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _rule(text: str) -> str:
    try:
        rule_matcher(text)
    except FilterError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_metrics_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "metrics", help="sync success rate, posting latency, exception ageing, resolution time … for a period")
    add_source_options(p)
    p.add_argument("--since", type=_day, metavar="DATE", help="first day of the period (UTC; default: 30 days ago)")
    p.add_argument("--until", type=_day, metavar="DATE", help="last day of the period (UTC; default: today, up to now)")
    p.add_argument("--by", choices=[g.value for g in GroupBy], help="the headline figures per team, rule or system")
    p.add_argument("--team", choices=[t.value for t in Team], help="only this owner team's figures")
    p.add_argument("--rule", type=_rule, help="only this rule (or family)")
    p.add_argument("--system", choices=[s.value for s in System], help="only this system's figures")
    p.add_argument("--currency", help="invoice figures in this currency only (e.g. EUR)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--output", type=Path, help="write to FILE instead of standard output")
    p.add_argument("--wide", action="store_true", help="table: print long texts whole (default: fit the terminal)")
    return p


def period_of(since: date | None, until: date | None, now: datetime) -> Period:
    """``--since``/``--until`` as a period: whole UTC days, both included; the last day ends at
    ``now`` when it is today (or later)."""
    end = now if until is None else min(now, datetime.combine(until + timedelta(days=1), time(), UTC))
    start = (end - timedelta(days=DEFAULT_DAYS)) if since is None else datetime.combine(since, time(), UTC)
    if start >= end:
        raise CommandError(f"--since {start:%Y-%m-%d} is not before the end of the period ({end:%Y-%m-%d %H:%M})")
    return Period(start, end)


def _sla(args: argparse.Namespace) -> SlaConfig:
    try:
        return load_sla(args.config or config_path())
    except SlaConfigError as exc:
        raise CommandError(str(exc)) from None


def render_metrics(report: MetricsReport, fmt: str, width: int | None) -> str:
    if fmt == "json":
        return json_text(report_dict(report))
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["group", "metric", "label", "value", "previous", "unit", "target", "breached",
                         "records", "basis", "note"])
        figures = [("", f) for f in report.headline] + [(g.key, f) for g in report.groups for f in g.figures]
        for group, f in figures:
            records = len(f.records.invoices or f.records.exceptions or f.records.tickets or f.records.customers)
            writer.writerow([csv_text(v) for v in (
                group, f.key, f.label, "" if f.value is None else f.value, "" if f.previous is None else f.previous,
                f.unit.value, "" if f.target is None else f"{f.target.comparison.value} {f.target.value}",
                "yes" if f.breached else "no", records, "" if f.basis is None else f.basis, f.note)])
        return buf.getvalue()
    p = report.period
    out = [f"metrics {p.since:%Y-%m-%d %H:%M} .. {p.until:%Y-%m-%d %H:%M} UTC "
           f"(previous: {report.previous_period.since:%Y-%m-%d %H:%M} .. {p.since:%Y-%m-%d %H:%M})", ""]
    rows = [[f.label, value_text(f.value, f.unit), value_text(f.previous, f.unit), target_text(f),
             "BREACH" if f.breached else ""] for f in report.headline]
    out.append(_table(rows, ["metric", "value", "previous", "target", "sla"], width))
    notes: dict[str, list[str]] = {}  # what each figure rests on, figures with the same note together
    for f in report.headline:
        if f.note:
            notes.setdefault(f.note, []).append(f.label)
    if notes:
        out += ["", "what the figures rest on"] + [f"  {', '.join(labels)}: {note}" for note, labels in notes.items()]
    out += ["", "open exceptions by owner and age"]
    out.append(_table([[a.owner, *map(str, a.counts), str(sum(a.counts))] for a in report.ageing],
                      ["owner", *AGE_BUCKETS, "total"], width))
    if report.by_rule:
        out += ["", "open exceptions by rule"]
        out.append(_table([[r.rule, r.owner, str(r.count), str(r.critical)] for r in report.by_rule],
                          ["rule", "owner", "open", "critical"], width, frozenset({0})))
    res = report.resolution
    how = ", ".join(f"{n} {h.value}" for h, n in res.by_how)
    out += ["", f"resolved: {res.resolved} ({how}); time to resolve p50 {duration_text(res.mttr_p50)}, "
                f"p95 {duration_text(res.mttr_p95)}; operator effort p50 {duration_text(report.effort.p50)} "
                f"over {report.effort.resolved_by_operator}",
            f"retries and replays: {report.retries.attempts} ({report.retries.succeeded} succeeded, "
            f"{report.retries.failed} failed); billing disputes linked to sync defects: "
            f"{len(report.disputes.tickets)}", ""]
    out.append(_table([[x.system, x.last_read.strftime("%Y-%m-%d %H:%M:%S") if x.last_read else "never",
                        duration_text(x.age), "BREACH" if x.breached else ""] for x in report.freshness],
                      ["system", "last read (UTC)", "age", "sla"], width))
    out.append("")
    out.append(_table([[g.flow, "yes" if g.has_rule else "NO", g.owner or "NO", ", ".join(g.sla) or "NO"]
                       for g in report.governance], ["flow", "rule", "owner", "sla"], width))
    if report.groups:
        keys = [f.label for f in report.headline]
        out += ["", f"by {report.group_by.value if report.group_by else ''}"]
        out.append(_table([[g.key, *(value_text(f.value, f.unit) + (" !" if f.breached else "") for f in g.figures)]
                           for g in report.groups], ["", *keys], None))  # one column per figure: printed whole
    return "\n".join(out) + "\n"


def _open_audit(args: argparse.Namespace) -> Storage | None:
    path = audit_path(demo=True) if args.demo else audit_path(args.profile)
    if not path.exists():
        return None  # nothing was ever done from this machine: no audit entries
    try:
        return Storage.open_path(path, durable=True)
    except StorageError as exc:
        raise CommandError(str(exc)) from None


async def _metrics(args: argparse.Namespace) -> int:
    sla = _sla(args)
    async with open_source(args) as source:
        await refresh_or_fail(source, args)
        await source.engine.reconcile()
        now = source.engine.clock()
        period = period_of(args.since, args.until, now)
        filters = Filters(team=args.team, rule=args.rule, system=args.system, currency=args.currency)
        audit = await asyncio.to_thread(_open_audit, args)
        try:
            report = await asyncio.to_thread(
                compute_metrics, source.engine.snapshot(), source.engine.storage, audit, period=period, now=now,
                filters=filters, sla=sla, group_by=GroupBy(args.by) if args.by else None)
        finally:
            if audit is not None:
                audit.close()
        _write(render_metrics(report, args.format, terminal_width(args)), args.output)
        return report_quarantined(source.engine, "metrics")


def cmd_metrics(args: argparse.Namespace) -> int:
    return _run(_metrics(args), "metrics")


__all__ = ["add_alert_option", "add_metrics_parser", "cmd_metrics", "send_reconcile_alert"]


# -- reconcile --alert-webhook ----------------------------------------------------------------
async def send_reconcile_alert(source: Any, args: argparse.Namespace, result: Any, track: Any) -> int:
    """After ``reconcile``: POST an alert to ``--alert-webhook`` when the run opened (or
    reopened) critical exceptions or an SLA target (over the last :data:`DEFAULT_DAYS` days)
    is breached. 0 sent or nothing to send; 2 not delivered (one line on stderr, never the URL)."""
    from services.core.domain import Severity
    from services.metrics.alerts import AlertError, alert_message, post_alert

    new = set(track.opened) | set(track.reopened)
    critical = [e for e in result.exceptions if e.id in new and e.severity is Severity.CRITICAL]
    now = source.engine.clock()
    audit = await asyncio.to_thread(_open_audit, args)
    try:
        report = await asyncio.to_thread(compute_metrics, source.engine.snapshot(), source.engine.storage, audit,
                                         period=period_of(None, None, now), now=now, sla=_sla(args))
    finally:
        if audit is not None:
            audit.close()
    if not critical and not report.breaches:
        return 0
    name = "demo" if args.demo else str(args.profile)
    try:
        await post_alert(args.alert_webhook, alert_message(name, critical, report.breaches))
    except AlertError as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return 2
    return 0


def _webhook(text: str) -> str:
    from services.metrics.alerts import AlertError, check_url

    try:
        return check_url(text)
    except AlertError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_alert_option(p: argparse.ArgumentParser) -> None:
    """``reconcile --alert-webhook URL``."""
    p.add_argument("--alert-webhook", metavar="URL", type=_webhook,
                   help="after the run, POST a Slack-compatible message here when it found new critical "
                        "exceptions or an SLA target is breached")
