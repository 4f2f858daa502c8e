"""The metrics report: what :func:`services.metrics.compute.compute_metrics` answers.

Plain frozen dataclasses, stable once published (fields are added, never renamed). Durations
are seconds (``float``), rates are percentages 0..100 (``float``), times are aware UTC
``datetime``. Every figure lists the records behind it (:class:`Records`) so a view can open
exactly those customers / exceptions / invoices."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta

#: open-exception age buckets: labels and their upper bounds in seconds (``None``: no bound)
AGE_BUCKETS: tuple[str, ...] = ("< 1 h", "< 1 d", "< 7 d", "< 30 d", "older")
AGE_BOUNDS_S: tuple[float | None, ...] = (3600.0, 86400.0, 7 * 86400.0, 30 * 86400.0, None)

#: the flows governance coverage is reported for
FLOWS: tuple[str, ...] = ("customer", "invoice", "payment", "subscription", "entitlement", "credit_note")


class Unit(enum.StrEnum):
    PERCENT = "percent"
    SECONDS = "seconds"
    COUNT = "count"


class Comparison(enum.StrEnum):
    """How a value meets its target: at most (``<=``) or at least (``>=``)."""

    AT_MOST = "<="
    AT_LEAST = ">="


class Resolution(enum.StrEnum):
    """How a closed exception was resolved."""

    FIX = "fix"            # an operator action verified it gone
    ACCEPT = "accept"      # an operator accepted the difference
    VANISHED = "vanished"  # a later reconciliation no longer found it (fixed elsewhere)


class GroupBy(enum.StrEnum):
    TEAM = "team"
    RULE = "rule"
    SYSTEM = "system"


# well-known figure keys (Figure.key)
SUCCESS_RATE = "invoice_sync_success_rate"
POSTING_P50 = "posting_latency_p50"
POSTING_P95 = "posting_latency_p95"
POSTING_MAX = "posting_latency_max"
ACTIVATION_P50 = "activation_latency_p50"
ACTIVATION_P95 = "activation_latency_p95"
FAILED_MAPPINGS = "failed_account_mappings"
OPEN_EXCEPTIONS = "open_exceptions"
OPEN_CRITICAL = "open_critical_exceptions"
MTTR_P50 = "mttr_p50"
MTTR_P95 = "mttr_p95"
EFFORT_P50 = "reconciliation_effort_p50"
RETRY_FAILURES = "retry_replay_failures"
DISPUTES = "billing_disputes_linked"
FRESHNESS_MAX = "data_freshness_max_age"


@dataclass(frozen=True, slots=True)
class Period:
    """``[since, until)``; both aware UTC."""

    since: datetime
    until: datetime

    @property
    def length(self) -> timedelta:
        return self.until - self.since

    def previous(self) -> Period:
        """The period of the same length just before this one."""
        return Period(self.since - self.length, self.since)

    def contains(self, at: datetime) -> bool:
        return self.since <= at < self.until


@dataclass(frozen=True, slots=True)
class Filters:
    """Restrict every figure to one owner team / rule / system / currency (``None``: all)."""

    team: str | None = None
    rule: str | None = None
    system: str | None = None
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class Records:
    """The records behind a figure: billing customer ids, exception ids, invoice refs
    (billing invoice ids), support ticket ids."""

    customers: tuple[str, ...] = ()
    exceptions: tuple[str, ...] = ()
    invoices: tuple[str, ...] = ()
    tickets: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SlaTarget:
    metric: str          # a Figure.key
    comparison: Comparison
    value: float         # in the figure's unit

    def met_by(self, value: float | None) -> bool:
        """``None`` (no data) meets every target: no data is not a breach."""
        if value is None:
            return True
        return value <= self.value if self.comparison is Comparison.AT_MOST else value >= self.value


@dataclass(frozen=True, slots=True)
class Figure:
    """A headline figure: its value in the period and in the previous one (``None``: no data, or
    not known — e.g. an open count at a time before the exception history starts).

    ``basis``: how many measurements the value rests on (postings whose posting time is known,
    activations, resolved exceptions, counted invoices; ``None``: not a sample, e.g. a count);
    ``note``: in plain words what that basis is and what it leaves out ("9 of 189 invoices: ..."),
    so a p95 over three postings is not read as the truth."""

    key: str
    label: str
    value: float | None
    previous: float | None
    unit: Unit
    target: SlaTarget | None = None
    breached: bool = False
    records: Records = field(default_factory=Records)
    basis: int | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class MonthPoint:
    """One calendar month (``month``: ``"2026-03"``)."""

    month: str
    success_rate: float | None
    posting_latency_p95: float | None
    invoices: int
    postings: int


@dataclass(frozen=True, slots=True)
class AgeingRow:
    """Open exceptions of one owner team by age bucket (aligned with :data:`AGE_BUCKETS`)."""

    owner: str
    counts: tuple[int, ...]
    exceptions: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class RuleCount:
    rule: str
    owner: str
    count: int
    critical: int
    exceptions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Histogram:
    """``counts[i]`` postings took ``edges[i] <= lag < edges[i+1]`` seconds (the last bucket
    is open-ended: ``edges`` has one more entry than ``counts``, its last is ``inf``)."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    invoices: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class Freshness:
    """When the snapshot last read each system successfully (``None``: never)."""

    system: str
    last_read: datetime | None
    age: float | None
    target: SlaTarget | None = None
    breached: bool = False


@dataclass(frozen=True, slots=True)
class ResolutionStats:
    """Exceptions closed in the period: time to resolve (first seen -> closed) and how."""

    mttr_p50: float | None
    mttr_p95: float | None
    resolved: int
    by_how: tuple[tuple[Resolution, int], ...]
    exceptions: tuple[tuple[Resolution, tuple[str, ...]], ...]


@dataclass(frozen=True, slots=True)
class RetryStats:
    """Retry / replay / repost actions in the period (from the audit log) and their outcome."""

    attempts: int
    succeeded: int
    failed: int
    by_action: tuple[tuple[str, int, int], ...]  # (action, succeeded, failed)
    exceptions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EffortStats:
    """Operator time from the first audit entry about an exception (not before it was first
    seen) to the action that resolved it (fix or accept), for those resolved in the period."""

    resolved_by_operator: int
    total: float
    p50: float | None
    p95: float | None
    exceptions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DisputeStats:
    """Support tickets about billing from customers with an open finance exception at the time."""

    tickets: tuple[str, ...]
    customers: tuple[str, ...]
    exceptions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GovernanceRow:
    flow: str
    rules: tuple[str, ...]
    owner: str | None
    sla: tuple[str, ...]  # Figure keys with a target that covers this flow

    @property
    def has_rule(self) -> bool:
        return bool(self.rules)

    @property
    def has_owner(self) -> bool:
        return self.owner is not None

    @property
    def has_sla(self) -> bool:
        return bool(self.sla)


@dataclass(frozen=True, slots=True)
class GroupRow:
    """The headline figures restricted to one team / rule / system (``--by``)."""

    key: str
    figures: tuple[Figure, ...]


@dataclass(frozen=True, slots=True)
class MetricsReport:
    period: Period
    previous_period: Period
    generated_at: datetime
    filters: Filters
    headline: tuple[Figure, ...]
    monthly: tuple[MonthPoint, ...]
    ageing: tuple[AgeingRow, ...]
    by_rule: tuple[RuleCount, ...]
    latency_histogram: Histogram
    freshness: tuple[Freshness, ...]
    resolution: ResolutionStats
    retries: RetryStats
    effort: EffortStats
    disputes: DisputeStats
    governance: tuple[GovernanceRow, ...]
    failed_mappings: Records
    group_by: GroupBy | None = None
    groups: tuple[GroupRow, ...] = ()

    def figure(self, key: str) -> Figure | None:
        return next((f for f in self.headline if f.key == key), None)

    @property
    def breaches(self) -> tuple[Figure, ...]:
        return tuple(f for f in self.headline if f.breached)
