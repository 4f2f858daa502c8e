"""``syncdesk customers [QUERY]``: find customers by what a user knows, or list them.

    syncdesk customers [QUERY] (--demo … | [--config FILE] --profile NAME) [--rule R] [--open-only]
                       [--format table|json|csv] [--output FILE] [--wide]

Refreshes (incrementally once a snapshot exists) and reconciles like ``reconcile``, then lists
the customers QUERY names (services.core.lookup: a name — any part, any case, accents optional
—, a billing customer id or ERP party code, an ERP party id, a support organization id, an
e-mail address or domain, a tax id, or the start of an id), each with how it matched; without
QUERY, every customer in name order. ``--rule R`` keeps the customers with an open exception of
that rule (or family), ``--open-only`` those with any open exception.

Each row: the customer id, name, current plan and quantity, subscription status, support
tier, ERP party, support organization, open exceptions (count, worst severity, rules).

Exit status: 0 listed (also an empty list when filters leave nothing); 1 QUERY matched no
customer (the reason on stderr); 2 a usage, configuration or source error (as ``reconcile``);
4 listed, but some records could not be read (as ``reconcile``); 130 interrupted.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path
from typing import Any

from app.headless import (
    _run,
    _table,
    _write,
    add_source_options,
    csv_text,
    json_text,
    open_source,
    refresh_or_fail,
    report_quarantined,
    safe_text,
    terminal_width,
)
from app.selection import QUERY_HELP, rule_arg
from services.core.exception_filter import rule_matcher
from services.core.lookup import CustomerIndex, Match, MatchKind
from services.core.overview import CustomerRow, current_subscription

EXIT_NOT_FOUND = 1
#: the table's columns (narrow headers: a header is the least a column is cut to); ``party`` is the
#: ERP party id, ``org`` the support organization id
COLUMNS = ["customer", "name", "plan", "status", "tier", "party", "org", "open"]


def add_customers_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "customers", help="find customers by name, any id, e-mail domain or id prefix; or list them all")
    p.add_argument("query", nargs="?", metavar="QUERY", help=QUERY_HELP)
    add_source_options(p)
    p.add_argument("--rule", type=rule_arg, help="only customers with an open exception of this rule (or family)")
    p.add_argument("--open-only", action="store_true", help="only customers with open exceptions")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--output", type=Path, help="write to FILE instead of standard output")
    p.add_argument("--wide", action="store_true", help="table: print long texts whole (default: fit the terminal)")
    return p


def customer_dict(index: CustomerIndex, row: CustomerRow, match: Match | None) -> dict[str, Any]:
    sub = current_subscription(index.subscription_of(row.customer_id))
    return {
        "customer": row.customer_id, "name": row.name, "email": row.email or None,
        "subscription": sub.ref.id if sub else None, "status": row.status, "plan": row.plan or None,
        "quantity": sub.quantity if sub else None, "support_tier": row.tier or None,
        "erp_party": row.erp_party, "erp_code": row.erp_code, "support_org": row.support_org,
        "support_name": row.support_name, "open_exceptions": row.open_exceptions,
        "worst_severity": row.worst.value if row.worst else None, "rules": list(row.rules),
        "matched": {"via": match.via.value, "value": match.key} if match is not None else None,
    }


def render_customers(items: list[dict[str, Any]], fmt: str, width: int | None, footer: str) -> str:
    if fmt == "json":
        return json_text(items)

    # how each matched, unless it is by name for all of them
    matched = any(d["matched"] is not None and d["matched"]["via"] not in ("name", "text") for d in items)
    columns = [*COLUMNS, "matched"] if matched else COLUMNS

    def cells(d: dict[str, Any]) -> list[str]:
        plan = (d["plan"] or "") + (f" × {d['quantity']}" if d["quantity"] is not None else "")
        open_text = str(d["open_exceptions"]) + (f" ({d['worst_severity']})" if d["worst_severity"] else "")
        out = [d["customer"], d["name"], plan, d["status"], d["support_tier"] or "", d["erp_party"] or "",
               d["support_org"] or "", open_text]
        if matched:
            m = d["matched"]
            out.append("" if m is None else m["via"] + (
                "" if m["via"] in ("name", "text") or m["value"] == d["customer"] else f" {m['value']}"))
        return out

    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["customer", "name", "plan", "quantity", "status", "tier", "erp party", "support org",
                         "open", "worst", "rules", "email", "matched"])
        for d in items:
            m = d["matched"]
            writer.writerow([csv_text(v if v is not None else "") for v in (
                d["customer"], d["name"], d["plan"], d["quantity"], d["status"], d["support_tier"], d["erp_party"],
                d["support_org"], d["open_exceptions"], d["worst_severity"], " ".join(d["rules"]), d["email"],
                m["via"] if m else None)])
        return buf.getvalue()
    rows = [[c or "—" for c in cells(d)] for d in items]
    count = f"{len(items)} customer{'s' if len(items) != 1 else ''}"
    # the customer id is never cut: it is what the next command is given
    return f"{_table(rows, columns, width, frozenset({0}))}\n{count}{safe_text(footer)}\n"


async def _customers(args: argparse.Namespace) -> int:
    async with open_source(args) as source:
        await refresh_or_fail(source, args)
        await source.engine.reconcile()
        exceptions = await source.engine.open_exceptions()
        index = CustomerIndex.from_snapshot(source.engine.snapshot(), exceptions)
        matches: list[tuple[CustomerRow, Match | None]]
        footer = ""
        if args.query:
            lookup = index.find(args.query)
            if not lookup.matches:
                print(f"customers: {safe_text(lookup.problem() or '')}", file=sys.stderr)
                return EXIT_NOT_FOUND
            matches = [(m.row, m) for m in lookup.matches]
            if lookup.kind is not MatchKind.EXACT or len(lookup.matches) > 1:
                footer = f" ({lookup.kind.value} match of {args.query!r})"
        else:
            order = index.filter.order("name")
            matches = [(index.rows[i], None) for i in order]
        found = len(matches)
        if args.rule:
            wanted = rule_matcher(args.rule)
            matches = [(r, m) for r, m in matches if any(wanted(rule) for rule in r.rules)]
        if args.open_only:
            matches = [(r, m) for r, m in matches if r.open_exceptions]
        if len(matches) != found:
            kept = " and ".join(x for x in (f"an open {args.rule} exception" if args.rule else "",
                                            "open exceptions" if args.open_only else "") if x)
            footer += f" with {kept} (of {found})"
        items = [customer_dict(index, row, match) for row, match in matches]
        _write(render_customers(items, args.format, terminal_width(args), footer), args.output)
        return report_quarantined(source.engine, "customers")


def cmd_customers(args: argparse.Namespace) -> int:
    return _run(_customers(args), "customers")


__all__ = ["add_customers_parser", "cmd_customers"]
