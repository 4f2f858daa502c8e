"""Which open exceptions a command means (Qt-free): one filter shared by ``reconcile`` and ``fix``.

    --rule R           a rule id (``invoice.amount_mismatch``) or its family (``invoice``)
    --customer QUERY   one customer (resolved by services.core.lookup before filtering)
    --owner TEAM       finance | support
    --severity S       at least S: low < medium < high < critical
    --system SYS       the exceptions a system takes part in (one of its sides): billing | erp | support
    --min-age AGE      open at least that long: 90s, 30m, 2h, 3d, 1w (or combined: 1d12h)

:meth:`ExceptionFilter.narrowing` says how many exceptions are left after each criterion, so a
command that finds nothing can say which criterion left nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.core.domain import RULES, Severity, SyncException, System, Team

SEVERITY_ORDER = (Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL)
_AGE_PART = re.compile(r"(\d+)\s*(w|d|h|m|min|s)", re.IGNORECASE)
_UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1), "m": timedelta(minutes=1),
          "min": timedelta(minutes=1), "s": timedelta(seconds=1)}


class FilterError(ValueError):
    """A criterion that cannot be used (an unknown rule, an age that is not one)."""


def parse_age(text: str) -> timedelta:
    """``"2h"`` -> 2 hours; ``"3d"``, ``"90s"``, ``"30m"`` (or ``30min``), ``"1w"``, and sums
    such as ``"1d12h"``. :class:`FilterError` for anything else."""
    compact = text.strip()
    parts = _AGE_PART.findall(compact)
    if not parts or _AGE_PART.sub("", compact).strip():
        raise FilterError(f"--min-age {text!r}: a duration such as 90s, 30m, 2h, 3d, 1w or 1d12h")
    return sum((int(n) * _UNITS[unit.lower()] for n, unit in parts), timedelta())


def age_text(delta: timedelta) -> str:
    """``timedelta(hours=26)`` -> ``"1d2h"`` (the form :func:`parse_age` reads)."""
    secs = int(delta.total_seconds())
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if secs >= size:
            out += f"{secs // size}{unit}"
            secs %= size
    return out or "0s"


def rule_matcher(spec: str) -> Callable[[str], bool]:
    """A rule id, or a family (``invoice``, ``invoice.`` or ``invoice.*``). :class:`FilterError`
    naming the rules when it names none."""
    name = spec.strip().removesuffix("*").removesuffix(".")
    if name in RULES:
        return lambda rule: rule == name
    families = {r.split(".", 1)[0] for r in RULES}
    if name in families:
        return lambda rule: rule.split(".", 1)[0] == name
    raise FilterError(f"--rule {spec!r}: no such rule or family (families: {', '.join(sorted(families))}; "
                      f"rules: {', '.join(sorted(RULES))})")


@dataclass(frozen=True)
class ExceptionFilter:
    rule: str | None = None
    customer_ids: frozenset[str] | None = None
    customer_label: str = ""  # how the customer is named in messages ("Acme (cus_1)")
    owner: Team | None = None
    min_severity: Severity | None = None
    system: System | None = None
    min_age: timedelta | None = None

    def __post_init__(self) -> None:
        if self.rule is not None:
            rule_matcher(self.rule)  # an unknown rule is an error now, not an empty result later

    def criteria(self, now: datetime) -> list[tuple[str, Callable[[SyncException], bool]]]:
        """(what it keeps, predicate) for each criterion given, in the order of the module doc."""
        out: list[tuple[str, Callable[[SyncException], bool]]] = []
        if self.rule is not None:
            matches = rule_matcher(self.rule)
            out.append((f"rule {self.rule}", lambda e: matches(e.rule)))
        if self.customer_ids is not None:
            ids = self.customer_ids
            out.append((f"customer {self.customer_label or ', '.join(sorted(ids))}", lambda e: e.customer_id in ids))
        if self.owner is not None:
            owner = self.owner
            out.append((f"owner {owner.value}", lambda e: e.owner is owner))
        if self.min_severity is not None:
            floor = SEVERITY_ORDER.index(self.min_severity)
            out.append((f"severity {self.min_severity.value} or higher",
                        lambda e: SEVERITY_ORDER.index(e.severity) >= floor))
        if self.system is not None:
            system = self.system
            out.append((f"system {system.value}", lambda e: any(s.system is system for s in e.sides)))
        if self.min_age is not None:
            seconds = self.min_age.total_seconds()
            out.append((f"open at least {age_text(self.min_age)}", lambda e: e.age(now) >= seconds))
        return out

    @property
    def empty(self) -> bool:
        return not self.criteria(datetime.min)

    def apply(self, exceptions: Sequence[SyncException], now: datetime) -> list[SyncException]:
        tests = [test for _, test in self.criteria(now)]
        return [e for e in exceptions if all(test(e) for test in tests)]

    def narrowing(self, exceptions: Sequence[SyncException], now: datetime) -> list[tuple[str, int]]:
        """How many are left after each criterion, applied one after the other."""
        left = list(exceptions)
        out: list[tuple[str, int]] = []
        for label, test in self.criteria(now):
            left = [e for e in left if test(e)]
            out.append((label, len(left)))
        return out

    def why_none(self, exceptions: Sequence[SyncException], now: datetime) -> str:
        """Why nothing of ``exceptions`` matches: ``"12 open exceptions; 3 of rule …; none of
        customer …"``, naming the criterion that left none."""
        total = len(exceptions)
        parts = [f"{total} open exception{'s' if total != 1 else ''}" if total else "no open exception"]
        for label, count in self.narrowing(exceptions, now):
            if total == 0:
                break
            parts.append(f"{count} of {label}" if count else f"none of {label}")
            if not count:
                break
        return "; ".join(parts)
