"""What the console may honestly say about its data: which systems the latest refresh read,
which rules could not run, and — from that — the state each page is in.

Every page is in one of four states (DESIGN.md, "What the console promises on screen"):
loading; not loaded (which system, why, Retry and a way to the Systems page); loaded and
empty; loaded. "Everything agrees" is said only when all three systems were read in the latest
refresh and no rule was skipped. This module is plain Python (no Qt): the pages ask it what to
show, and the tests ask it too.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from services.core.domain import System
from services.core.reconcile import RULE_SYSTEMS

SYSTEM_NAMES: dict[System, str] = {System.BILLING: "Billing", System.ERP: "ERP", System.SUPPORT: "Support"}
#: why a system was not read when no refresh has finished in this session
NOT_YET = "not read yet in this session"


class PageState(enum.StrEnum):
    LOADING = "loading"
    NOT_LOADED = "not loaded"
    EMPTY = "empty"
    LOADED = "loaded"


@dataclass(frozen=True)
class Coverage:
    """What the data shown rests on.

    ``with_data``: the systems the local snapshot holds data of (ever read); ``unread``: each
    system the latest refresh did not read, and why (an error, "not configured", or
    :data:`NOT_YET` before a refresh finished in this session); ``refreshing``: a refresh is
    under way; ``skipped_rules``: rule -> why it could not be evaluated; ``ages``: when each
    system was last read."""

    with_data: frozenset[System] = frozenset()
    unread: Mapping[System, str] = field(default_factory=dict)
    refreshing: bool = False
    skipped_rules: Mapping[str, str] = field(default_factory=dict)
    ages: Mapping[System, datetime | None] = field(default_factory=dict)
    #: False until a state arrived (the console is still opening its snapshot)
    opened: bool = True

    @property
    def all_read(self) -> bool:
        """All three systems were read in the latest refresh and every rule ran."""
        return self.opened and not self.unread and not self.skipped_rules and self.with_data >= set(System)

    @property
    def refreshed(self) -> bool:
        """A refresh finished in this session (its outcome is in ``unread``)."""
        return not any(why == NOT_YET for why in self.unread.values())

    def pending(self, system: System) -> bool:
        """``system`` is being read and has nothing to show yet."""
        return system not in self.with_data and (self.refreshing or self.unread.get(system) == NOT_YET)

    def why(self, system: System) -> str:
        return self.unread.get(system, "")


ALL_READ = Coverage(with_data=frozenset(System))
OPENING = Coverage(opened=False)


def coverage_of(with_data: frozenset[System], refreshed: Mapping[System, str] | None,
                skipped_rules: Mapping[str, str], ages: Mapping[System, datetime | None],
                refreshing: bool) -> Coverage:
    """``refreshed``: the latest refresh's outcome per system ("" = read, else why not), or None
    before a refresh finished in this session."""
    if refreshed is None:
        unread: dict[System, str] = {s: NOT_YET for s in System}
    else:
        unread = {s: (refreshed[s] or "") if s in refreshed else "not configured" for s in System}
        unread = {s: why for s, why in unread.items() if why}
    return Coverage(with_data, unread, refreshing, dict(skipped_rules), dict(ages))


def skipped_by_data(with_data: frozenset[System]) -> dict[str, str]:
    """The rules that cannot run on ``with_data`` (the reconciliation's own criterion)."""
    return {rule: "no data from " + ", ".join(sorted(s.value for s in needs - with_data))
            for rule, needs in RULE_SYSTEMS.items() if not needs <= with_data}


def names(systems: list[System] | set[System] | frozenset[System]) -> str:
    """``"Billing, ERP and Support"``."""
    ordered = [SYSTEM_NAMES[s] for s in System if s in systems]
    if len(ordered) <= 1:
        return "".join(ordered)
    return ", ".join(ordered[:-1]) + " and " + ordered[-1]


@dataclass(frozen=True)
class View:
    """What a page shows in place of (or above) its table."""

    state: PageState
    title: str = ""
    text: str = ""
    #: offer Retry (a refresh) and a way to the Systems page
    retry: bool = False


def _reasons(cov: Coverage, systems: list[System]) -> str:
    return "; ".join(f"{SYSTEM_NAMES[s]}: {cov.why(s)}" for s in systems if cov.why(s))


# -- customers ---------------------------------------------------------------------------------
def customers_view(cov: Coverage, total: int) -> View:
    """The customer list is billing's customers (linked to ERP parties and support organizations)."""
    if not cov.opened:
        return View(PageState.LOADING, "Opening the local snapshot…", "Customers appear in a moment.")
    if total:
        return View(PageState.LOADED)
    if System.BILLING in cov.with_data:
        return View(PageState.EMPTY, "No customers", "Billing was read and holds no customers yet.")
    if cov.pending(System.BILLING):
        return View(PageState.LOADING, "Reading customers from billing…",
                    "The list fills in as soon as billing answers.")
    return View(PageState.NOT_LOADED, "Billing could not be read",
                f"The customer list comes from billing. {_reasons(cov, [System.BILLING])}".strip(), retry=True)


# -- exceptions --------------------------------------------------------------------------------
def exceptions_view(cov: Coverage, total: int) -> View:
    if not cov.opened:
        return View(PageState.LOADING, "Loading exceptions…", "Reading the latest reconciliation.")
    if total:
        return View(PageState.LOADED)
    if cov.all_read:
        return View(PageState.EMPTY, "No open exceptions — everything agrees",
                    "Billing, ERP and support were read in the latest refresh and hold the same values.")
    if not cov.with_data:
        if cov.refreshing or not cov.refreshed:
            return View(PageState.LOADING, "Reading billing, ERP and support…",
                        "Exceptions appear once the systems are read and compared.")
        return View(PageState.NOT_LOADED, "No system could be read",
                    "Nothing was compared. " + _reasons(cov, list(System)), retry=True)
    if not cov.refreshed:
        return View(PageState.LOADING, "Checking the three systems…",
                    "No exception was open in the last reconciliation stored on this computer; "
                    "the systems are being read again.")
    missing = [s for s in System if s in cov.unread]
    return View(PageState.EMPTY, "No open exceptions among the rules that ran",
                f"Not everything was compared: {_reasons(cov, missing) or 'some rules were skipped'}.",
                retry=bool(missing))


def exceptions_banner(cov: Coverage, now: datetime) -> tuple[str, str] | None:
    """(text, tone) of the banner above the queue: rules skipped for want of a system, systems
    the latest refresh did not read; ``None`` when everything was read."""
    if not cov.opened:
        return None
    lines: list[str] = []
    tone = "warn"
    if not cov.refreshed:
        lines.append("Showing the last reconciliation stored on this computer"
                     + (" while billing, ERP and support are read…" if cov.refreshing
                        else ": press F5 to read billing, ERP and support."))
        tone = "busy" if cov.refreshing else "warn"
    else:
        stale = [s for s in System if s in cov.unread and s in cov.with_data]
        for system in stale:
            lines.append(f"{SYSTEM_NAMES[system]} was not read in the latest refresh ({cov.why(system)}): "
                         f"its rules ran on data from {age_text(cov.ages.get(system), now)}.")
    if cov.skipped_rules:
        by_why: dict[str, list[str]] = {}
        for rule, why in cov.skipped_rules.items():
            by_why.setdefault(why, []).append(rule)
        for why, rules in by_why.items():
            lines.append(f"Skipped — {len(rules)} rule{'s' if len(rules) != 1 else ''} could not be checked "
                         f"({why}): {', '.join(sorted(rules))}.")
    if not lines:
        return None
    return "\n".join(lines), tone


def age_text(at: datetime | None, now: datetime) -> str:
    if at is None:
        return "never"
    seconds = max(0.0, (now - at).total_seconds())
    if seconds < 90:
        return "moments ago"
    if seconds < 90 * 60:
        return f"{int(seconds // 60)} min ago"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


def stale_banner(cov: Coverage, systems: list[System], now: datetime) -> tuple[str, str] | None:
    """A banner for data taken from ``systems`` that the latest refresh did not read (billing
    never read is left to the page's own state: without it there is no customer to show)."""
    if not cov.opened or not cov.refreshed:
        return None
    lines = []
    for system in systems:
        if system not in cov.unread:
            continue
        if system in cov.with_data:
            lines.append(f"{SYSTEM_NAMES[system]} was not read in the latest refresh ({cov.why(system)}): "
                         f"what it holds is shown as of {age_text(cov.ages.get(system), now)}.")
        elif system is not System.BILLING:
            lines.append(f"{SYSTEM_NAMES[system]} has not been read ({cov.why(system)}): whether a customer is "
                         "linked there is unknown (“not loaded”).")
    return ("\n".join(lines), "warn") if lines else None
