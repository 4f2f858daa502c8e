"""Compute the metrics report (services/metrics/model.py) from the snapshot, the exception
history and the audit log (services/metrics/sources.py reads the store with SQL aggregates).

Definitions beyond services/metrics/invoices.py:

- open exceptions at a time ``t``: first seen at or before ``t``, not closed by ``t``; "now"
  also leaves out those whose difference is accepted (hidden until it expires);
- resolved in the period: closed in it, or accepted in it. How: *accept* when the difference
  was accepted, *fix* when a succeeded operator action (not a flag) on it is logged between its
  first-seen time and a minute after it closed, *vanished* otherwise; time to resolve is
  closed (or accepted) minus first seen;
- reconciliation effort: for exceptions resolved by an operator (fix / accept), from the first
  audit entry about it (not before it was first seen) to the resolving action;
- billing disputes: support cases whose subject is about billing (:data:`BILLING_WORDS`), from a
  customer that had a finance exception open while the case was open;
- entitlement activation latency: a support entitlement's last update minus the creation of
  the customer's newest billing subscription created before it, for entitlements updated in
  the period within :data:`ACTIVATION_WINDOW` of that creation (the snapshot keeps no time of
  a plan change, so a change made in between is measured from the creation);
- data freshness: now minus the last successful read of each system.

What the history cannot know: the exception history starts with the first exception SyncDesk
found (:attr:`_Calc.history_since`, the earliest first-seen time it holds). An open count at a
time before that, and the billing disputes of a previous period that began before it, are not
known (``previous`` is ``None``, the figure's ``note`` says from when the history runs), never 0.
Time to resolve runs from when SyncDesk first saw the exception, not from when the difference
arose in the systems.

Each sampled figure says what it rests on (``Figure.basis``, ``Figure.note``): the invoices due,
the postings whose posting time the ERP still tells (a paid ERP invoice no longer does, so the
posting latency covers only part of the invoices), the activations (and the later entitlement
updates left out), the resolved exceptions.

Filters: ``team`` and ``rule`` keep the exceptions of that owner / rule (or family) and the
invoice figures only when they concern finance / invoices; ``system`` keeps the exceptions of
rules whose copies live in that system (:data:`RULE_SYSTEM`); ``currency`` restricts the
invoice figures.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from operator import itemgetter

from services.core.domain import RULES, System, Team
from services.core.exception_filter import FilterError, rule_matcher
from services.core.reconcile import ReconcileConfig, Snapshot
from services.metrics import model as m
from services.metrics.invoices import Fact, invoice_facts, percentile
from services.metrics.model import (
    AGE_BOUNDS_S,
    AGE_BUCKETS,
    FLOWS,
    AgeingRow,
    DisputeStats,
    EffortStats,
    Figure,
    Filters,
    Freshness,
    GovernanceRow,
    GroupBy,
    GroupRow,
    Histogram,
    MetricsReport,
    MonthPoint,
    Period,
    Records,
    Resolution,
    ResolutionStats,
    RetryStats,
    RuleCount,
    Unit,
)
from services.metrics.sla import SlaConfig
from services.metrics.sources import (
    Accepted,
    ExcRow,
    RetryRow,
    Touch,
    accepted,
    exception_rows,
    refreshed,
    retries,
    touches,
)
from services.store.storage import Storage

#: support case subjects about billing
BILLING_WORDS = re.compile(r"\b(invoice|invoices|invoiced|billing|billed|charge|charged|refund|payment|vat)\b",
                           re.IGNORECASE)
#: where the copy an exception is about lives
RULE_SYSTEM: dict[str, System] = {r: (System.SUPPORT if r.startswith("entitlement.") or r.endswith("_support")
                                      else System.ERP) for r in RULES}
#: latency histogram bucket edges (seconds)
HISTOGRAM_EDGES: tuple[float, ...] = (0.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 86400.0, 7 * 86400.0, math.inf)
#: how long after an exception closed a logged fix still counts as what closed it
FIX_SLACK = timedelta(minutes=1)
#: flows -> rule families; flows -> the metrics whose SLA covers them
FLOW_RULES: dict[str, tuple[str, ...]] = {
    "customer": ("customer.",), "invoice": ("invoice.",), "payment": ("invoice.payment_state",),
    "subscription": ("subscription.",), "entitlement": ("entitlement.",),
    "credit_note": ("credit_note.", "invoice.refund_not_reflected"),
}
FLOW_METRICS: dict[str, tuple[str, ...]] = {
    "customer": (m.FAILED_MAPPINGS,), "invoice": (m.SUCCESS_RATE, m.POSTING_P95), "payment": (),
    "subscription": (), "entitlement": (m.ACTIVATION_P95,), "credit_note": (),
}
#: an entitlement update further than this from the newest subscription is not its activation
ACTIVATION_WINDOW = timedelta(days=7)
MAPPING_RULES = frozenset({"customer.unmapped_erp", "customer.unmapped_support"})


@dataclass(frozen=True)
class _Store:
    exceptions: list[ExcRow]
    accepted: dict[str, Accepted]
    refreshed: dict[str, datetime | None]
    touches: dict[str, Touch]


def compute_metrics(snapshot: Snapshot, storage: Storage, audit: Storage | None = None, *, period: Period,
                    now: datetime, filters: Filters = Filters(), sla: SlaConfig | None = None,
                    group_by: GroupBy | None = None, config: ReconcileConfig | None = None) -> MetricsReport:
    """The report for ``period`` (previous period: same length just before). ``storage`` is the
    snapshot's database (exception history, per-system refresh times), ``audit`` the audit
    log's (audit entries, accepted differences; default: ``storage``); ``now`` is when open
    exceptions are aged. ``config`` gives the invoice grace (default: the reconciliation's)."""
    sla = sla or SlaConfig()
    audit = audit or storage
    grace = (config or ReconcileConfig()).invoice_grace
    excs = exception_rows(storage)
    acc = accepted(audit)
    prev = period.previous()
    resolved_ids = [e.id for e in excs if (e.closed_at is not None and prev.since <= e.closed_at < period.until)
                    or ((a := acc.get(e.id)) is not None and prev.since <= a.accepted_at < period.until)]
    store = _Store(excs, acc, refreshed(storage), touches(audit, resolved_ids))
    earliest = min(prev.since, _months(period.until)[0][1])  # the previous period, the 12 months
    facts = invoice_facts(snapshot, grace, now, filters.currency, since=earliest)
    both = retries(audit, prev.since, period.since, period.until)
    retry_rows, prev_retry_rows = [r for r in both if r.current], [r for r in both if not r.current]
    calc = _Calc(snapshot, store, facts, period, now, sla)
    report = calc.report(filters, retry_rows, prev_retry_rows)
    if group_by is None:
        return report
    groups: list[GroupRow] = []
    for key in _group_keys(group_by, excs):
        f = Filters(team=key if group_by is GroupBy.TEAM else filters.team,
                    rule=key if group_by is GroupBy.RULE else filters.rule,
                    system=key if group_by is GroupBy.SYSTEM else filters.system, currency=filters.currency)
        groups.append(GroupRow(key, calc.report(f, retry_rows, prev_retry_rows).headline))
    return _replace_groups(report, group_by, tuple(groups))


def _replace_groups(report: MetricsReport, group_by: GroupBy, groups: tuple[GroupRow, ...]) -> MetricsReport:
    return replace(report, group_by=group_by, groups=groups)


def _group_keys(group_by: GroupBy, excs: list[ExcRow]) -> list[str]:
    if group_by is GroupBy.TEAM:
        return [t.value for t in Team]
    if group_by is GroupBy.SYSTEM:
        return [s.value for s in System]
    return sorted(set(RULES) | {e.rule for e in excs})


def _ts(dt: datetime) -> float:
    return dt.timestamp()


def _months(until: datetime, n: int = 12) -> list[tuple[str, datetime, datetime]]:
    last = (until - timedelta(microseconds=1)).astimezone(UTC)
    y, mo = last.year, last.month
    out: list[tuple[str, datetime, datetime]] = []
    for _ in range(n):
        start = datetime(y, mo, 1, tzinfo=UTC)
        end = datetime(y + (mo == 12), mo % 12 + 1, 1, tzinfo=UTC)
        out.append((f"{y:04d}-{mo:02d}", start, end))
        y, mo = (y - 1, 12) if mo == 1 else (y, mo - 1)
    return out[::-1]


def _rate(facts: list[Fact]) -> float | None:
    return 100.0 * sum(map(_OK, facts)) / len(facts) if facts else None


_OK = itemgetter(1)  # a fact's "reached the ERP correctly"


def _in(facts: list[Fact], since: datetime, until: datetime) -> list[Fact]:
    """The facts finalized in ``[since, until)`` (``facts`` are sorted by finalization)."""
    lo = bisect_left(facts, _ts(since), key=_fin)
    return facts[lo:bisect_left(facts, _ts(until), lo=lo, key=_fin)]


def _fin(fact: Fact) -> float:
    return fact[0]


class _Calc:
    def __init__(self, snapshot: Snapshot, store: _Store, facts: list[Fact], period: Period, now: datetime,
                 sla: SlaConfig) -> None:
        self.snapshot, self.store, self.facts = snapshot, store, facts
        self.period, self.prev, self.now, self.sla = period, period.previous(), now, sla
        self.at = min(now, period.until)
        self._created: dict[str, list[datetime]] | None = None
        #: the earliest first-seen time the exception history holds (None: it holds nothing)
        self.history_since: datetime | None = min((e.first_seen for e in store.exceptions), default=None)

    # -- filters ------------------------------------------------------------------------
    def _exc_filter(self, f: Filters) -> Callable[[ExcRow], bool]:
        rule_ok = _rule_match(f.rule) if f.rule else None
        system = System(f.system) if f.system else None

        def keep(e: ExcRow) -> bool:
            return ((f.team is None or e.owner == f.team) and (rule_ok is None or rule_ok(e.rule))
                    and (system is None or RULE_SYSTEM.get(e.rule) is system))
        return keep

    @staticmethod
    def _applies(f: Filters, team: Team, family: str, systems: tuple[System, ...]) -> bool:
        if f.team is not None and f.team != team.value:
            return False
        if f.rule is not None and not any(_rule_match(f.rule)(r) for r in RULES if r.startswith(family)):
            return False
        return f.system is None or System(f.system) in systems

    def _figure(self, key: str, label: str, value: float | None, previous: float | None, unit: Unit,
                records: Records = Records(), basis: int | None = None, note: str = "") -> Figure:
        target = self.sla.target(key)
        return Figure(key, label, value, previous, unit, target,
                      breached=target is not None and not target.met_by(value), records=records,
                      basis=basis, note=note)

    def _known(self, at: datetime) -> bool:
        """Whether the exception history reaches back to ``at`` (module docstring)."""
        return self.history_since is not None and self.history_since <= at

    def _history_note(self, at: datetime) -> str:
        if self._known(at):
            return ""
        if self.history_since is None:
            return "no exception history yet"
        return f"exception history from {self.history_since:%Y-%m-%d %H:%M} UTC"

    # -- the report ---------------------------------------------------------------------
    def report(self, f: Filters, retry_rows: list[RetryRow], prev_retry_rows: list[RetryRow]) -> MetricsReport:
        keep = self._exc_filter(f)
        excs = [e for e in self.store.exceptions if keep(e)]
        invoices_apply = self._applies(f, Team.FINANCE, "invoice.", (System.BILLING, System.ERP))
        facts = self.facts if invoices_apply else []
        cur, before = _in(facts, self.period.since, self.period.until), _in(facts, self.prev.since, self.prev.until)
        headline: list[Figure] = []
        # success rate and posting latency
        failed = [x for x in cur if not x[1]]
        headline.append(self._figure(m.SUCCESS_RATE, "Invoice sync success rate", _rate(cur), _rate(before),
                                     Unit.PERCENT, Records(customers=_uniq(x[4] for x in failed),
                                                           invoices=tuple(x[3] for x in failed)),
                                     basis=len(cur), note=f"{_n(len(cur), 'invoice')} due, {len(failed):,} failed"))
        lags = sorted(x[2] for x in cur if x[2] is not None)
        prev_lags = sorted(x[2] for x in before if x[2] is not None)
        posting_note = f"{len(lags):,} of {_n(len(cur), 'invoice')} (posting time known)"
        for key, label, pct in ((m.POSTING_P50, "Posting latency p50", 50), (m.POSTING_P95, "Posting latency p95", 95),
                                (m.POSTING_MAX, "Posting latency max", 100)):
            value = percentile(lags, pct)
            slow = [x for x in cur if x[2] is not None and value is not None and x[2] >= value]
            # the invoices at or above the figure, and their customers (the console opens those)
            headline.append(self._figure(key, label, value, percentile(prev_lags, pct), Unit.SECONDS,
                                         Records(customers=_uniq(x[4] for x in slow),
                                                 invoices=tuple(x[3] for x in slow)),
                                         basis=len(lags), note=posting_note))
        # activation latency
        act_apply = self._applies(f, Team.SUPPORT, "entitlement.", (System.BILLING, System.SUPPORT))
        act, act_ids, late = self._activation(self.period) if act_apply else ([], [], 0)
        prev_act, _, _ = self._activation(self.prev) if act_apply else ([], [], 0)
        act_note = _n(len(act), "activation") + (f"; {late:,} later tier update{'s' if late != 1 else ''} not timed"
                                                  if late else "")
        for key, label, pct in ((m.ACTIVATION_P50, "Activation latency p50", 50),
                                (m.ACTIVATION_P95, "Activation latency p95", 95)):
            headline.append(self._figure(key, label, percentile(act, pct), percentile(prev_act, pct), Unit.SECONDS,
                                         Records(customers=tuple(act_ids)), basis=len(act), note=act_note))
        # open exceptions
        open_now = self._open_at(excs, self.at, hide_accepted=self.at >= self.now)
        open_prev = self._open_at(excs, self.period.since, hide_accepted=False)
        mapping_now = [e for e in open_now if e.rule in MAPPING_RULES]
        mapping_prev = [e for e in open_prev if e.rule in MAPPING_RULES]
        mapping_records = Records(customers=_uniq(e.customer_id for e in mapping_now),
                                  exceptions=tuple(e.id for e in mapping_now))
        known, history = self._known(self.period.since), self._history_note(self.period.since)

        def then(items: list[ExcRow]) -> float | None:
            return float(len(items)) if known else None

        headline.append(self._figure(m.FAILED_MAPPINGS, "Failed account mappings", float(len(mapping_now)),
                                     then(mapping_prev), Unit.COUNT, mapping_records, note=history))
        headline.append(self._figure(m.OPEN_EXCEPTIONS, "Open exceptions", float(len(open_now)), then(open_prev),
                                     Unit.COUNT, _exc_records(open_now), note=history))
        crit_now = [e for e in open_now if e.severity == "critical"]
        crit_prev = [e for e in open_prev if e.severity == "critical"]
        headline.append(self._figure(m.OPEN_CRITICAL, "Open critical exceptions", float(len(crit_now)),
                                     then(crit_prev), Unit.COUNT, _exc_records(crit_now), note=history))
        # resolution and effort
        resolution, _, efforts, effort_ids = self._resolution(excs, self.period)
        _, prev_res_times, prev_efforts, _ = self._resolution(excs, self.prev)
        resolved_ids = tuple(i for _, ids in resolution.exceptions for i in ids)
        res_note = _n(resolution.resolved, "resolved exception") + ", timed from first seen"
        headline.append(self._figure(m.MTTR_P50, "Time to resolve p50", resolution.mttr_p50,
                                     percentile(prev_res_times, 50), Unit.SECONDS, Records(exceptions=resolved_ids),
                                     basis=resolution.resolved, note=res_note))
        headline.append(self._figure(m.MTTR_P95, "Time to resolve p95", resolution.mttr_p95,
                                     percentile(prev_res_times, 95), Unit.SECONDS, Records(exceptions=resolved_ids),
                                     basis=resolution.resolved, note=res_note))
        effort = EffortStats(len(efforts), float(sum(efforts)), percentile(efforts, 50), percentile(efforts, 95),
                             tuple(effort_ids))
        headline.append(self._figure(m.EFFORT_P50, "Reconciliation effort p50", effort.p50,
                                     percentile(prev_efforts, 50), Unit.SECONDS, Records(exceptions=effort.exceptions),
                                     basis=len(efforts), note=_n(len(efforts), "resolved by an operator", "")))
        # retries
        kept = {e.id for e in excs}
        unfiltered = f == Filters(currency=f.currency)
        retry = _retry_stats([r for r in retry_rows if unfiltered or r.exception_id in kept])
        prev_retry = _retry_stats([r for r in prev_retry_rows if unfiltered or r.exception_id in kept])
        headline.append(self._figure(m.RETRY_FAILURES, "Failed retries and replays", float(retry.failed),
                                     float(prev_retry.failed), Unit.COUNT, Records(exceptions=retry.exceptions)))
        # disputes
        finance = f.team in (None, Team.FINANCE.value)
        none = DisputeStats((), (), ())
        disputes = self._disputes(self.period) if finance else none
        prev_disputes = self._disputes(self.prev) if finance else none
        prev_known = self._known(self.prev.since)
        headline.append(self._figure(m.DISPUTES, "Billing disputes (sync defects)",
                                     float(len(disputes.tickets)),
                                     float(len(prev_disputes.tickets)) if prev_known else None, Unit.COUNT,
                                     Records(customers=disputes.customers, exceptions=disputes.exceptions,
                                             tickets=disputes.tickets), note=self._history_note(self.prev.since)))
        # freshness
        freshness = self._freshness(f)
        ages = [x.age for x in freshness if x.age is not None]
        headline.append(self._figure(m.FRESHNESS_MAX, "Oldest system data", max(ages) if ages else None, None,
                                     Unit.SECONDS))
        return MetricsReport(
            period=self.period, previous_period=self.prev, generated_at=self.now, filters=f,
            headline=tuple(headline), monthly=self._monthly(facts), ageing=self._ageing(open_now),
            by_rule=_by_rule(open_now), latency_histogram=_histogram(cur), freshness=freshness,
            resolution=resolution, retries=retry, effort=effort, disputes=disputes,
            governance=self._governance(), failed_mappings=mapping_records)

    # -- parts ----------------------------------------------------------------------------
    def _open_at(self, excs: list[ExcRow], at: datetime, *, hide_accepted: bool) -> list[ExcRow]:
        acc = self.store.accepted
        out = []
        for e in excs:
            if e.first_seen > at or (e.closed_at is not None and e.closed_at <= at):
                continue
            if hide_accepted and (a := acc.get(e.id)) is not None and a.accepted_at >= e.first_seen \
                    and (a.expires_at is None or a.expires_at > at):
                continue
            out.append(e)
        return out

    def _resolution(self, excs: list[ExcRow], period: Period
                    ) -> tuple[ResolutionStats, list[float], list[float], list[str]]:
        acc, touch = self.store.accepted, self.store.touches
        by_how: dict[Resolution, list[str]] = {r: [] for r in Resolution}
        times: list[float] = []
        efforts: list[float] = []
        effort_ids: list[str] = []
        for e in excs:
            a = acc.get(e.id)
            t = touch.get(e.id)
            how: Resolution
            acted: datetime | None = None  # the operator's resolving action
            if a is not None and a.accepted_at >= e.first_seen and period.contains(a.accepted_at):
                how, done = Resolution.ACCEPT, a.accepted_at
                acted = t.accepted_at if t is not None and t.accepted_at is not None else a.accepted_at
            elif e.closed_at is not None and period.contains(e.closed_at):
                fixed = t.fixed_at if t is not None else None
                if fixed is not None and e.first_seen <= fixed <= e.closed_at + FIX_SLACK:
                    how, done, acted = Resolution.FIX, e.closed_at, fixed
                else:
                    how, done = Resolution.VANISHED, e.closed_at
            else:
                continue
            by_how[how].append(e.id)
            times.append(max(0.0, (done - e.first_seen).total_seconds()))
            if acted is not None and t is not None and t.first_at is not None:
                start = max(t.first_at, e.first_seen)
                if start <= acted:
                    efforts.append((acted - start).total_seconds())
                    effort_ids.append(e.id)
        times.sort()
        efforts.sort()
        stats = ResolutionStats(
            mttr_p50=percentile(times, 50), mttr_p95=percentile(times, 95), resolved=len(times),
            by_how=tuple((r, len(by_how[r])) for r in Resolution),
            exceptions=tuple((r, tuple(by_how[r])) for r in Resolution))
        return stats, times, efforts, effort_ids

    def _subscriptions_created(self) -> dict[str, list[datetime]]:
        """Billing customer id -> when each of its subscriptions was created (computed once)."""
        if self._created is None:
            self._created = {}
            billing = self.snapshot.systems.get(System.BILLING)
            for sub in billing.subscriptions.values() if billing is not None else ():
                if sub.customer_id and sub.created is not None:
                    self._created.setdefault(sub.customer_id, []).append(sub.created)
        return self._created

    def _activation(self, period: Period) -> tuple[list[float], list[str], int]:
        """(activation lags, their customers, entitlement updates in ``period`` further than
        :data:`ACTIVATION_WINDOW` from the newest subscription: left out, and counted)."""
        support = self.snapshot.systems.get(System.SUPPORT)
        if support is None:
            return [], [], 0
        created = self._subscriptions_created()
        lags: list[float] = []
        ids: list[str] = []
        late = 0
        for ent in support.entitlements.values():
            cid, updated = ent.customer_id, ent.updated
            if cid is None or updated is None or cid not in created or not period.contains(updated):
                continue
            before = [c for c in created[cid] if c <= updated]
            if not before:
                continue
            if updated - max(before) <= ACTIVATION_WINDOW:
                lags.append((updated - max(before)).total_seconds())
                ids.append(cid)
            else:
                late += 1
        lags.sort()
        return lags, ids, late

    def _disputes(self, period: Period) -> DisputeStats:
        support = self.snapshot.systems.get(System.SUPPORT)
        if support is None:
            return DisputeStats((), (), ())
        finance: dict[str, list[ExcRow]] = {}
        for e in self.store.exceptions:
            if e.owner == Team.FINANCE.value and e.customer_id:
                finance.setdefault(e.customer_id, []).append(e)
        tickets: list[str] = []
        customers: list[str] = []
        exc_ids: list[str] = []
        for case in support.cases.values():
            cid = case.customer_id
            if cid is None or cid not in finance or case.created is None or not BILLING_WORDS.search(case.subject):
                continue
            if case.created >= period.until:
                continue
            solved = case.solved_at or (case.updated if case.status in ("solved", "closed") else None)
            end = solved or self.now
            if end < period.since:
                continue
            linked = [e.id for e in finance[cid]
                      if e.first_seen <= end and (e.closed_at is None or e.closed_at >= case.created)]
            if linked:
                tickets.append(case.ref.id)
                customers.append(cid)
                exc_ids.extend(linked)
        return DisputeStats(tuple(tickets), _uniq(customers), _uniq(exc_ids))

    def _freshness(self, f: Filters) -> tuple[Freshness, ...]:
        target = self.sla.target(m.FRESHNESS_MAX)
        out = []
        for s in System:
            if f.system is not None and f.system != s.value:
                continue
            last = self.store.refreshed.get(s.value)
            age = (self.now - last).total_seconds() if last is not None else None
            out.append(Freshness(s.value, last, age, target, target is not None and not target.met_by(age)))
        return tuple(out)

    def _monthly(self, facts: list[Fact]) -> tuple[MonthPoint, ...]:
        out = []
        for label, start, end in _months(self.period.until):
            month = _in(facts, start, end)
            lags = sorted(x[2] for x in month if x[2] is not None)
            out.append(MonthPoint(label, _rate(month), percentile(lags, 95), len(month), len(lags)))
        return tuple(out)

    def _ageing(self, open_now: list[ExcRow]) -> tuple[AgeingRow, ...]:
        rows = []
        for team in Team:
            buckets: list[list[str]] = [[] for _ in AGE_BUCKETS]
            for e in open_now:
                if e.owner != team.value:
                    continue
                age = (self.at - e.first_seen).total_seconds()
                i = next(i for i, b in enumerate(AGE_BOUNDS_S) if b is None or age < b)
                buckets[i].append(e.id)
            rows.append(AgeingRow(team.value, tuple(len(b) for b in buckets), tuple(tuple(b) for b in buckets)))
        return tuple(rows)

    def _governance(self) -> tuple[GovernanceRow, ...]:
        out = []
        for flow in FLOWS:
            rules = tuple(r for r in RULES if any(r == p or (p.endswith(".") and r.startswith(p))
                                                  for p in FLOW_RULES[flow]))
            owners = sorted({RULES[r][0].value for r in rules})
            sla = tuple(k for k in FLOW_METRICS[flow] if self.sla.target(k) is not None)
            out.append(GovernanceRow(flow, rules, "+".join(owners) if owners else None, sla))
        return tuple(out)


def _rule_match(spec: str) -> Callable[[str], bool]:
    """A rule or family (services.core.exception_filter); a rule the catalogue does not know
    (one the history holds from another version) matches itself."""
    try:
        return rule_matcher(spec)
    except FilterError:
        return lambda rule: rule == spec


def _retry_stats(rows: list[RetryRow]) -> RetryStats:
    per: dict[str, list[int]] = {}
    for r in rows:
        ok_fail = per.setdefault(r.action_kind, [0, 0])
        if r.outcome == "succeeded":
            ok_fail[0] += r.count
        elif r.outcome in ("failed", "refused", "cancelled"):
            ok_fail[1] += r.count
    ok = sum(v[0] for v in per.values())
    bad = sum(v[1] for v in per.values())
    return RetryStats(attempts=sum(r.count for r in rows), succeeded=ok, failed=bad,
                      by_action=tuple((k, v[0], v[1]) for k, v in sorted(per.items())),
                      exceptions=_uniq(r.exception_id for r in rows))


def _by_rule(open_now: list[ExcRow]) -> tuple[RuleCount, ...]:
    per: dict[str, list[ExcRow]] = {}
    for e in open_now:
        per.setdefault(e.rule, []).append(e)
    return tuple(RuleCount(rule, es[0].owner, len(es), sum(1 for e in es if e.severity == "critical"),
                           tuple(e.id for e in es))
                 for rule, es in sorted(per.items(), key=lambda kv: (-len(kv[1]), kv[0])))


def _histogram(facts: list[Fact]) -> Histogram:
    n = len(HISTOGRAM_EDGES) - 1
    ids: list[list[str]] = [[] for _ in range(n)]
    for x in facts:
        lag = x[2]
        if lag is None:
            continue
        i = next((i for i in range(n) if lag < HISTOGRAM_EDGES[i + 1]), n - 1)
        ids[max(0, i)].append(x[3])
    return Histogram(HISTOGRAM_EDGES, tuple(len(b) for b in ids), tuple(tuple(b) for b in ids))


def _n(count: int, noun: str, plural: str = "s") -> str:
    """``"1 invoice"``, ``"1,204 invoices"``."""
    return f"{count:,} {noun}{plural if count != 1 else ''}"


def _exc_records(excs: list[ExcRow]) -> Records:
    return Records(customers=_uniq(e.customer_id for e in excs), exceptions=tuple(e.id for e in excs))


def _uniq(items: Iterable[str | None]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for x in items:
        if x:
            seen[x] = None
    return tuple(seen)
