"""Headless fixing on the command line (the audit commands: ``app/audit_cli.py``).

    syncdesk fix (--demo [--customers N] [--seed S] | [--config FILE] --profile NAME) --rule RULE
                 [--customer QUERY] [--owner T] [--severity S] [--system SYS] [--min-age AGE]
                 [--action retry|accept|push|create|link|correct|cancel|revoke|flag]
                 [--reason TEXT] [--value JSON] [--expires ISO|Nd|Nh]
                 [--role finance|support|auditor] [--dry-run] [--resume] [--audit-db FILE] [--limit N]
                 [--format text|json]
    syncdesk fix --resume [--config FILE] --profile NAME        (replay pending actions only)

Who acts is who is logged in: the audit log records the OS login (``services.core.identity``),
never a name given on the command line. ``--role`` must be one the role policy (the ``[roles]``
table of the config file: ``--config``, else SYNCDESK_HOME/config.toml, also for ``--demo``)
grants the login; by default the login's only acting role, finance when it holds both, else
auditor. Without a ``[roles]`` table the login holds every role. A role the login lacks, or an
auditor acting (a fix, ``--resume``, a bulk run), is refused with exit 2 before anything is
opened or written; ``--dry-run`` is open to auditors. A policy that changed since this audit
log last saw it is recorded in the log (``role_policy``) before the first action.

``fix`` refreshes, reconciles, then runs the rule's fix (``--action``, default: the rule's first
fix that the exception itself allows: :func:`default_fix`) over every open exception of the
rule that the filters keep (``reconcile``'s: one customer named as a user knows it —
app/selection.py —, the owner, a minimum severity, a system taking part, a minimum age) as one
bulk action, printing one line per action and a summary.
``--resume`` first replays the actions a previous run left queued or executing (a crash, an
outage). ``--dry-run`` prints each plan (checks and the exact calls) and writes nothing.

Exit status: 0 when every action succeeded (or there was nothing pending to replay with
``--resume`` alone); 1 when any action failed or was refused; 3 when some are still queued (the
target is unreachable; they replay on the next ``--resume`` run or in the console); 2 for a
usage or source error (also a ``--customer`` that names no customer, or several: they are
listed); 5 when nothing matched, so nothing was done: one line on stderr says why — how many
open exceptions each filter left, how many of the rule's (of that customer) are accepted, and
when the last was resolved and by whom, from the exception history and the audit log.

Each profile has its own audit log (services.store.home): SYNCDESK_HOME/audit-<profile>.db,
SYNCDESK_HOME/demo/audit.db for the built-in demo, or ``--audit-db``; ``syncdesk audit verify
--profile NAME`` (``--demo``) checks it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from app.headless import (
    CommandError,
    _run,
    add_source_options,
    json_text,
    open_source,
    refresh_or_fail,
    safe_text,
)
from app.selection import add_filter_options, exception_filter
from services.actions.model import (
    RULE_ACTIONS,
    ActionKind,
    ActionRequest,
    ActionResult,
    ActionStatus,
    BulkProgress,
    Operator,
    Plan,
    Role,
)
from services.actions.role_audit import record_policy_change
from services.actions.roles import auditor_refusal, static_refusal
from services.actions.service import ActionService
from services.core.domain import SyncException
from services.core.exception_filter import ExceptionFilter
from services.core.identity import Identity, RolePolicyError, current_login, resolve_identity
from services.core.lookup import CustomerIndex
from services.io.config import ConfigError, load_roles
from services.store.audit import AuditFilter, AuditLog
from services.store.home import audit_path, config_path
from services.store.storage import Storage, StorageError, database_url

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_QUEUED, EXIT_NOTHING = 0, 1, 2, 3, 5


def add_fix_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "fix", help="run a rule's fix over its open exceptions (scheduled jobs); exits non-zero on failure")
    add_source_options(p)
    add_filter_options(p, rule_choices=sorted(RULE_ACTIONS))
    p.add_argument("--action", choices=[k.value for k in ActionKind],
                   help="the fix (default: the rule's first fix)")
    p.add_argument("--reason", default="", help="why (required for accept, correct, credit_repost and flag)")
    p.add_argument("--value", help="operator-chosen values as a JSON object (correct, link, retry, credit_repost)")
    p.add_argument("--expires", help="accept: until when (ISO date/time, or e.g. 30d, 12h)")
    p.add_argument("--role", choices=[r.value for r in Role],
                   help="act in this role, one the [roles] table grants your login (default: your only acting "
                        "role; finance if you hold finance and support); auditors never act")
    p.add_argument("--dry-run", action="store_true", help="print the plans (checks, exact calls); write nothing")
    p.add_argument("--resume", action="store_true",
                   help="first replay actions left queued or executing by an earlier run")
    p.add_argument("--audit-db", type=Path,
                   help="audit log / outbox database (default: the profile's, SYNCDESK_HOME/audit-PROFILE.db; "
                        "SYNCDESK_HOME/demo/audit.db with --demo)")
    p.add_argument("--limit", type=int, help="at most N exceptions")
    p.add_argument("--format", choices=("text", "json"), default="text")
    return p


def _expiry(text: str | None) -> str | None:
    if not text:
        return None
    m = re.fullmatch(r"(\d+)\s*([dh])", text.strip())
    if m:
        n = int(m.group(1))
        delta = timedelta(days=n) if m.group(2) == "d" else timedelta(hours=n)
        return (datetime.now(UTC) + delta).isoformat()
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--expires {text!r}: an ISO date/time or a duration such as 30d or 12h") from None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).isoformat()


def _value_for(kind: ActionKind, exc: SyncException, base: dict[str, Any] | None,
               expires: str | None) -> dict[str, Any] | None:
    value = dict(base or {})
    if kind is ActionKind.ACCEPT and expires and "expires_at" not in value:
        value["expires_at"] = expires
    if kind is ActionKind.LINK and "candidate" not in value:
        for side in exc.sides:
            cands = side.values.get("candidates")
            if isinstance(cands, list) and cands:
                value["candidate"] = cands[0]["id"]  # the best-scored suggestion
                break
    return value or None


def _plan_text(plan: Plan) -> str:
    lines = [f"{plan.request.kind.value} {plan.exception.id}: {'ready' if plan.ok else 'REFUSED'}"]
    for c in plan.checks:
        lines.append(f"    [{'ok' if c.ok else 'NO'}] {c.name}: {c.detail}")
    for n in plan.notes:
        lines.append(f"    note: {n}")
    for call in plan.calls:
        lines.append(f"    {call.system.value} {call.method} {call.path} "
                     f"{json.dumps(call.body, ensure_ascii=False, default=str)}")
        if call.description:
            lines.append(f"        ({call.description})")
    return "\n".join(lines)


def _plan_dict(plan: Plan) -> dict[str, Any]:
    return {"exception": plan.exception.id, "kind": plan.request.kind.value, "ok": plan.ok,
            "explanation": plan.explanation, "idempotency_key": plan.idempotency_key,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in plan.checks],
            "calls": [{"system": c.system.value, "method": c.method, "path": c.path, "body": c.body,
                       "description": c.description} for c in plan.calls],
            "notes": plan.notes, "before": plan.before, "expected_after": plan.expected_after}


def _result_dict(r: ActionResult) -> dict[str, Any]:
    return {"action_id": r.action_id, "kind": r.kind.value, "exception": r.exception_id, "status": r.status.value,
            "message": r.message, "verified": r.verified}


def _exit_code(results: list[ActionResult]) -> int:
    if any(r.status in (ActionStatus.FAILED, ActionStatus.REFUSED, ActionStatus.CANCELLED) for r in results):
        return EXIT_FAILED
    if any(r.status in (ActionStatus.QUEUED, ActionStatus.EXECUTING) for r in results):
        return EXIT_QUEUED
    return EXIT_OK


def _summary(results: list[ActionResult]) -> str:
    counts = {s: sum(1 for r in results if r.status is s) for s in ActionStatus}
    return (f"{len(results)} actions: {counts[ActionStatus.SUCCEEDED]} succeeded, "
            f"{counts[ActionStatus.FAILED]} failed, {counts[ActionStatus.QUEUED] + counts[ActionStatus.EXECUTING]} "
            f"queued, {counts[ActionStatus.REFUSED]} refused, {counts[ActionStatus.CANCELLED]} cancelled")


def _open_audit(path: Path) -> AuditLog:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return AuditLog(Storage(database_url(path), durable=True))
    except StorageError as exc:
        raise CommandError(str(exc)) from None


def identity_for(config: Path | None) -> Identity:
    """The logged-in login and its roles under the ``[roles]`` table of ``config`` (default:
    SYNCDESK_HOME/config.toml; no file or no table: every role). A malformed table is a usage
    error naming the key."""
    try:
        policy = load_roles(config or config_path())
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    return resolve_identity(policy, current_login())


def _operator(identity: Identity, role: str | None, dry_run: bool) -> Operator:
    """The operator ``fix`` acts as: the login, in ``role`` (default: :meth:`Identity.default_role`).
    A role the policy does not grant, or an auditor acting, is a usage error."""
    chosen = Role(role) if role else identity.default_role()
    try:
        identity.check(identity.login, chosen)
    except RolePolicyError as exc:
        raise CommandError(f"{exc}; nothing was done") from None
    operator = Operator(identity.login, chosen)
    if chosen is Role.AUDITOR and not dry_run:
        why = identity.read_only_reason()
        raise CommandError(f"{why + '; ' if why else ''}{auditor_refusal(operator)} (use --dry-run to see the plans)")
    return operator


async def _fix(args: argparse.Namespace) -> int:
    if not args.rule and not args.resume:
        raise CommandError("choose --rule RULE (or --resume to replay pending actions)")
    identity = identity_for(args.config)
    operator = _operator(identity, args.role, args.dry_run)
    try:
        base_value = json.loads(args.value) if args.value else None
    except ValueError as exc:
        raise CommandError(f"--value is not JSON: {exc}") from None
    if base_value is not None and not isinstance(base_value, dict):
        raise CommandError("--value must be a JSON object")
    expires = _expiry(args.expires)
    quiet = args.quiet or args.format == "json"
    async with open_source(args) as source:
        engine = source.engine
        audit = _open_audit(args.audit_db or (audit_path(demo=True) if args.demo else audit_path(args.profile)))
        service = ActionService(engine, audit, operator, clock=engine.clock, identity=identity,
                                profile="demo" if args.demo else args.profile)  # named in each audit entry
        results: list[ActionResult] = []
        try:
            if not args.dry_run:  # a dry run writes nothing; the next real run records the change
                changed = await asyncio.to_thread(record_policy_change, audit, identity, operator.role, engine.clock())
                if changed is not None and not quiet:
                    print(f"audit: {changed.reason}", file=sys.stderr)
            await refresh_or_fail(source, args)
            await engine.reconcile()
            if args.resume and not args.dry_run:
                replayed = await service.replay_pending()
                results.extend(replayed)
                if not quiet:
                    for r in replayed:
                        print(f"replayed {r.status.value:9} {r.exception_id}: {safe_text(r.message)}", file=sys.stderr)
                await engine.reconcile()
            if args.rule:
                open_all = await engine.open_exceptions()
                index = CustomerIndex.from_snapshot(engine.snapshot(), open_all) if args.customer else None
                flt, _ = exception_filter(args, index)
                now = engine.clock()
                exceptions = sorted(flt.apply(open_all, now), key=lambda e: e.id)
                if not exceptions and not results:
                    why = await _why_nothing(engine, audit, flt, open_all, now)
                    print(f"fix: nothing to do: {safe_text(why)}", file=sys.stderr)
                    return EXIT_NOTHING
                if args.limit:
                    exceptions = exceptions[: args.limit]
                chosen = ActionKind(args.action) if args.action else None
                reqs = []
                for e in exceptions:
                    kind = chosen or default_fix(e)
                    reqs.append(ActionRequest(kind, e.id, args.reason, _value_for(kind, e, base_value, expires)))
                if args.dry_run:
                    plans = [await service.plan(r) for r in reqs]
                    if args.format == "json":
                        print(json_text([_plan_dict(p) for p in plans]), end="")
                    else:
                        for plan in plans:
                            print(safe_text(_plan_text(plan), newlines=True))
                        print(f"dry run: {len(plans)} plans, {sum(p.ok for p in plans)} ready, "
                              f"{sum(not p.ok for p in plans)} refused; nothing written")
                    return EXIT_OK if all(p.ok for p in plans) else EXIT_FAILED

                def show(p: BulkProgress) -> None:
                    if not quiet and (p.done % 50 == 0 or p.done == p.total):
                        print(f"  {p.done}/{p.total}: {p.succeeded} succeeded, {p.failed} failed, {p.queued} queued",
                              file=sys.stderr, flush=True)

                bulk = await service.bulk(reqs, show)
                results.extend(bulk.results)
        finally:
            await service.aclose()
            audit.storage.close()
    if args.format == "json":
        print(json_text({"summary": _summary(results), "results": [_result_dict(r) for r in results]}), end="")
    else:
        for r in results:
            print(f"{r.status.value:9} {r.exception_id}: {safe_text(r.message)}")
        print(f"fix: {_summary(results)}")
    return _exit_code(results)


def default_fix(exc: SyncException) -> ActionKind:
    """The fix ``fix`` runs on ``exc`` without ``--action``: the first its rule offers that the
    exception itself does not forbid (a posted invoice whose amount differs is credited and
    reposted, a draft one corrected: services.actions.roles.static_refusal), never a judgement
    call (accept, flag) unless the rule offers nothing else; else the rule's first (refused, with
    the reason)."""
    offered = RULE_ACTIONS[exc.rule]
    for kind in offered:
        if kind not in (ActionKind.ACCEPT, ActionKind.FLAG) and static_refusal(exc, kind) is None:
            return kind
    return offered[0]


async def _why_nothing(engine: Any, audit: AuditLog, flt: ExceptionFilter, open_all: list[SyncException],
                       now: datetime) -> str:
    """Why ``flt`` keeps no open exception: how many each criterion left, then, when the rule's
    exceptions (of that customer) were resolved before, the last one: when, by whom and how
    (from the exception history and the audit log), or accepted and so hidden."""
    why = flt.why_none(open_all, now)
    same = ExceptionFilter(rule=flt.rule, customer_ids=flt.customer_ids, customer_label=flt.customer_label)
    shown = {e.id for e in open_all}
    accepted = [e for e in same.apply(await engine.open_exceptions(include_hidden=True), now) if e.id not in shown]
    closed = [e for e in same.apply(await engine.exception_history(), now) if e.closed_at is not None]
    notes = []
    if accepted:
        notes.append(f"{len(accepted)} open but accepted as a known difference (hidden)")
    if closed:
        last = max(closed, key=lambda e: (e.closed_at or now, e.id))
        assert last.closed_at is not None
        done = await asyncio.to_thread(audit.entries, AuditFilter(customer_id=last.customer_id, outcome="succeeded"))
        action = next((a for a in done if a.exception_id == last.id and a.phase == "outcome"), None)
        how = (f"by {action.operator} ({action.role}, {action.action_kind})" if action is not None
               else "without an action here (the systems agreed at a refresh)")
        notes.append(f"{len(closed)} resolved before; the last, {last.id}, "
                     f"at {last.closed_at:%Y-%m-%d %H:%M} UTC {how}")
    return "; ".join([why, *notes])


def cmd_fix(args: argparse.Namespace) -> int:
    return _run(_fix(args), "fix")


__all__ = ["add_fix_parser", "cmd_fix"]
