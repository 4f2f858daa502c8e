"""What a command is about, on the command line: a customer named the way a user knows it
(services.core.lookup) and the exception filters ``reconcile`` and ``fix`` share
(services.core.exception_filter).

    --rule R  --customer QUERY  --owner finance|support  --severity S  --system SYS  --min-age AGE

A ``--customer`` (or ``timeline``'s QUERY) must name one customer: none is a one-line error
saying what was tried; several is an error listing them (one per line), never a guess.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import timedelta

from services.core.domain import Severity, System, Team
from services.core.exception_filter import ExceptionFilter, FilterError, parse_age, rule_matcher
from services.core.lookup import CustomerIndex, Lookup, Match
from services.core.text_safety import terminal_safe

QUERY_HELP = ("a name (any part, any case, accents optional), a billing customer id or ERP party code, an ERP "
              "party id, a support organization id, an e-mail address or domain, a tax id, or the start of an id")


class SelectionError(Exception):
    """The command cannot tell what it is about: one line (``str``), and for several
    candidates the list (:meth:`lines`)."""

    def __init__(self, message: str, candidates: Sequence[Match] = ()) -> None:
        super().__init__(message)
        self.candidates = list(candidates)

    def lines(self, limit: int = 20) -> list[str]:
        """The candidates, one per line, plain (escapes shown): ``  cus_1  Acme  (name)``."""
        out = [f"  {terminal_safe(m.describe())}" for m in self.candidates[:limit]]
        if len(self.candidates) > limit:
            out.append(f"  … and {len(self.candidates) - limit} more")
        return out


def age_arg(text: str) -> timedelta:
    try:
        return parse_age(text)
    except FilterError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--min-age {text!r}: ")) from None


def rule_arg(text: str) -> str:
    try:
        rule_matcher(text)
    except FilterError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix(f"--rule {text!r}: ")) from None
    return text.strip()


def add_filter_options(p: argparse.ArgumentParser, *, rule_choices: Sequence[str] | None = None) -> None:
    """``--rule`` (a rule or family; with ``rule_choices``, one of them), ``--customer``,
    ``--owner``, ``--severity``, ``--system``, ``--min-age``."""
    if rule_choices is not None:
        p.add_argument("--rule", choices=list(rule_choices), help="only this rule's exceptions")
    else:
        p.add_argument("--rule", type=rule_arg, help="only this rule's exceptions (a rule id, or a family: "
                                                     "customer, invoice, subscription, entitlement)")
    p.add_argument("--customer", metavar="QUERY", help=f"only this customer's exceptions: {QUERY_HELP}")
    p.add_argument("--owner", choices=[t.value for t in Team], help="only the exceptions this team owns")
    p.add_argument("--severity", choices=[s.value for s in Severity],
                   help="only exceptions of this severity or higher (low < medium < high < critical)")
    p.add_argument("--system", choices=[s.value for s in System],
                   help="only the exceptions this system takes part in")
    p.add_argument("--min-age", type=age_arg, metavar="AGE",
                   help="only exceptions open at least this long (90s, 30m, 2h, 3d, 1w, 1d12h)")


def resolve(index: CustomerIndex, query: str, what: str = "") -> Match:
    """The one customer ``query`` names; :class:`SelectionError` for none or several
    (``what``: how the command names the argument, e.g. ``"--customer "``)."""
    lookup: Lookup = index.find(query)
    match = lookup.unique
    if match is not None:
        return match
    problem = lookup.problem() or ""
    if lookup.matches:
        head = (f"{what}{query!r} matches {len(lookup.matches)} customers ({lookup.kind.value}); "
                "give more of the name or an id:")
        raise SelectionError(head, lookup.matches)
    raise SelectionError(f"{what.strip()}: {problem}" if what else problem)


def exception_filter(args: argparse.Namespace, index: CustomerIndex | None) -> tuple[ExceptionFilter, Match | None]:
    """The filter the options ask for, and the customer ``--customer`` names (resolved in
    ``index``; None without ``--customer``)."""
    match: Match | None = None
    if getattr(args, "customer", None):
        if index is None:
            raise SelectionError("--customer needs the systems' customers, and none is loaded")
        match = resolve(index, args.customer, "--customer ")
    return ExceptionFilter(
        rule=getattr(args, "rule", None),
        customer_ids=frozenset({match.customer_id}) if match is not None else None,
        customer_label=f"{match.row.name} ({match.customer_id})" if match is not None else "",
        owner=Team(args.owner) if getattr(args, "owner", None) else None,
        min_severity=Severity(args.severity) if getattr(args, "severity", None) else None,
        system=System(args.system) if getattr(args, "system", None) else None,
        min_age=getattr(args, "min_age", None)), match
