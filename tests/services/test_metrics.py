"""services/metrics on a store written by hand (real SQLite, the real audit log): open
exceptions by owner and age bucket, how each was resolved (fix from the audit log, accept from
the accepted differences, vanished otherwise), time to resolve, operator effort, retry and
replay outcomes, the filters and ``--by`` groups, SLA targets and their breach flags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from services.core.reconcile import Snapshot
from services.metrics import model as m
from services.metrics.compute import compute_metrics
from services.metrics.export import report_dict
from services.metrics.invoices import percentile
from services.metrics.model import Comparison, Filters, GroupBy, Period, Resolution, SlaTarget
from services.metrics.sla import SlaConfig, SlaConfigError, parse_sla
from services.store.audit import AuditEntry, AuditLog
from services.store.storage import ACCEPTED, EXC, Storage

T = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
H, D = timedelta(hours=1), timedelta(days=1)


def _exc(id_: str, owner: str, first_seen: datetime, closed_at: datetime | None = None,
         severity: str = "medium", rule: str = "invoice.missing_in_erp") -> dict[str, object]:
    return dict(id=id_, rule=rule, severity=severity, owner=owner, customer_id=f"cus_{id_}", object_id=id_,
                summary="s", payload="{}", first_seen=first_seen, last_seen=closed_at or T, closed_at=closed_at)


def _entry(kind: str, exc: str, phase: str, outcome: str, at: datetime, attempt: int = 1) -> AuditEntry:
    return AuditEntry(operator="ann", role="finance", action_id=f"{kind}-{exc}-{attempt}", action_kind=kind,
                      phase=phase, outcome=outcome, exception_id=exc, customer_id=f"cus_{exc}",
                      request={"attempt": attempt, "calls": []}, at=at)


@pytest.fixture
def store(tmp_path: Path) -> tuple[Storage, Storage]:
    snap = Storage.open_path(tmp_path / "snapshot.db")
    audit_db = Storage.open_path(tmp_path / "audit.db", durable=True)
    with snap.engine.begin() as conn:
        conn.execute(insert(EXC), [
            _exc("e1", "finance", T - 30 * timedelta(minutes=1), severity="critical"),
            _exc("e2", "support", T - 2 * D, rule="entitlement.missing"),
            _exc("e3", "finance", T - 40 * D, rule="customer.unmapped_erp"),
            _exc("e4", "finance", T - 3 * D, closed_at=T - D),           # fixed by a retry
            _exc("e5", "finance", T - 10 * H, closed_at=T - 5 * H),       # vanished
            _exc("e6", "finance", T - 6 * H, rule="invoice.amount_mismatch"),  # accepted
            _exc("e7", "finance", T - 100 * D, closed_at=T - 60 * D, rule="retired.rule"),
        ])
    with audit_db.engine.begin() as conn:
        conn.execute(insert(ACCEPTED).values(exception_id="e6", fingerprint="f", reason="r", operator="ann",
                                             accepted_at=(T - H).isoformat(), expires_at=(T + 30 * D).isoformat()))
    log = AuditLog(audit_db)
    log.append_many([
        _entry("retry", "e4", "intent", "pending", T - 2 * D),
        _entry("retry", "e4", "outcome", "failed", T - 2 * D + H),
        _entry("retry", "e4", "intent", "pending", T - D - H, attempt=2),
        _entry("retry", "e4", "outcome", "succeeded", T - D - timedelta(seconds=5), attempt=2),
        _entry("flag", "e5", "outcome", "succeeded", T - 6 * H),         # a flag does not resolve
        _entry("post", "e1", "outcome", "failed", T - 20 * H, attempt=2),  # a re-run: a retry too
        _entry("post", "e1", "outcome", "succeeded", T - 30 * D, attempt=2),  # before both periods
        _entry("retry", "e3", "outcome", "failed", T - 10 * D),  # in the previous period
    ])
    yield snap, audit_db
    snap.close()
    audit_db.close()


PERIOD = Period(T - 7 * D, T + timedelta(seconds=1))


def test_open_exceptions_age_resolution_effort_and_retries(store: tuple[Storage, Storage]) -> None:
    snap, audit = store
    r = compute_metrics(Snapshot({}), snap, audit, period=PERIOD, now=T)
    open_ = r.figure(m.OPEN_EXCEPTIONS)
    assert open_ is not None and open_.value == 3 and set(open_.records.exceptions) == {"e1", "e2", "e3"}
    assert open_.previous == 1  # at the start of the period only e3 was seen
    ageing = {a.owner: a for a in r.ageing}
    assert ageing["finance"].counts == (1, 0, 0, 0, 1) and ageing["support"].counts == (0, 0, 1, 0, 0)
    assert ageing["finance"].exceptions[0] == ("e1",) and ageing["finance"].exceptions[4] == ("e3",)
    assert r.figure(m.OPEN_CRITICAL).value == 1  # type: ignore[union-attr]
    assert r.figure(m.FAILED_MAPPINGS).records.customers == ("cus_e3",)  # type: ignore[union-attr]
    assert {x.rule: x.count for x in r.by_rule} == {"invoice.missing_in_erp": 1, "entitlement.missing": 1,
                                                     "customer.unmapped_erp": 1}
    res = r.resolution
    assert dict(res.by_how) == {Resolution.FIX: 1, Resolution.ACCEPT: 1, Resolution.VANISHED: 1}
    assert dict(res.exceptions) == {Resolution.FIX: ("e4",), Resolution.ACCEPT: ("e6",),
                                    Resolution.VANISHED: ("e5",)}
    # times to resolve: e5 5 h, e6 5 h (accepted), e4 2 d (first seen -> closed)
    assert res.mttr_p50 == 5 * 3600 and res.mttr_p95 == 2 * 86400
    # effort: e4's first audit entry (T-2d) to its succeeded retry (T-1d-5s)
    assert r.effort.exceptions == ("e4",) and r.effort.p50 == 86400 - 5
    # retries and replays in the period: e4's two retry outcomes and e1's re-run post (failed)
    assert (r.retries.attempts, r.retries.succeeded, r.retries.failed) == (3, 1, 2)
    assert dict((k, (ok, bad)) for k, ok, bad in r.retries.by_action) == {"post": (0, 1), "retry": (1, 1)}
    retry_failures = r.figure(m.RETRY_FAILURES)
    assert retry_failures is not None and (retry_failures.value, retry_failures.previous) == (2, 1)


def test_filters_and_groups(store: tuple[Storage, Storage]) -> None:
    snap, audit = store
    support = compute_metrics(Snapshot({}), snap, audit, period=PERIOD, now=T, filters=Filters(team="support"))
    assert support.figure(m.OPEN_EXCEPTIONS).records.exceptions == ("e2",)  # type: ignore[union-attr]
    assert support.resolution.resolved == 0 and support.retries.attempts == 0
    assert support.figure(m.SUCCESS_RATE).value is None  # type: ignore[union-attr]  # not support's
    by_rule = compute_metrics(Snapshot({}), snap, audit, period=PERIOD, now=T, filters=Filters(rule="customer"))
    assert by_rule.figure(m.OPEN_EXCEPTIONS).records.exceptions == ("e3",)  # type: ignore[union-attr]
    by_rules = compute_metrics(Snapshot({}), snap, audit, period=PERIOD, now=T, group_by=GroupBy.RULE)
    open_by_rule = {g.key: next(f.value for f in g.figures if f.key == m.OPEN_EXCEPTIONS) for g in by_rules.groups}
    assert open_by_rule["customer.unmapped_erp"] == 1 and open_by_rule["invoice.missing_in_erp"] == 1
    assert open_by_rule["retired.rule"] == 0  # a rule the catalogue no longer has: grouped as itself
    grouped = compute_metrics(Snapshot({}), snap, audit, period=PERIOD, now=T, group_by=GroupBy.SYSTEM)
    open_by = {g.key: next(f.value for f in g.figures if f.key == m.OPEN_EXCEPTIONS) for g in grouped.groups}
    assert open_by == {"billing": 0, "erp": 2, "support": 1}
    data = report_dict(grouped)
    assert data["group_by"] == "system" and data["latency_histogram"]["edges"][-1] is None


def test_sla_targets_flag_breaches(store: tuple[Storage, Storage]) -> None:
    snap, audit = store
    sla = parse_sla({"sla": {"open_critical_exceptions": 1, "mttr_p95": 3600, "failed_account_mappings": False}})
    r = compute_metrics(Snapshot({}), snap, audit, period=PERIOD, now=T, sla=sla)
    crit, mttr = r.figure(m.OPEN_CRITICAL), r.figure(m.MTTR_P95)
    assert crit is not None and crit.target is not None and not crit.breached  # 1 <= 1
    assert mttr is not None and mttr.breached  # 2 d > 1 h
    assert r.figure(m.FAILED_MAPPINGS).target is None  # type: ignore[union-attr]
    assert {f.key for f in r.breaches} == {m.MTTR_P95}  # no system was ever read: no data is no breach
    defaults = compute_metrics(Snapshot({}), snap, audit, period=PERIOD, now=T)
    assert {f.key for f in defaults.breaches} == {m.OPEN_CRITICAL, m.FAILED_MAPPINGS}  # default targets: 0


def test_sla_config_defaults_overrides_and_errors() -> None:
    default = SlaConfig()
    assert default.target(m.SUCCESS_RATE) == SlaTarget(m.SUCCESS_RATE, Comparison.AT_LEAST, 99.5)
    assert default.target(m.POSTING_P95) == SlaTarget(m.POSTING_P95, Comparison.AT_MOST, 3600.0)
    custom = parse_sla({"sla": {"invoice_sync_success_rate": 98, "posting_latency_p95": False}})
    assert custom.target(m.SUCCESS_RATE) == SlaTarget(m.SUCCESS_RATE, Comparison.AT_LEAST, 98.0)
    assert custom.target(m.POSTING_P95) is None
    for bad, why in (({"sla": {"nope": 1}}, "unknown metric"), ({"sla": {"mttr_p95": -1}}, "non-negative"),
                     ({"sla": {"mttr_p95": "1h"}}, "non-negative"), ({"sla": {"mttr_p95": True}}, "non-negative"),
                     ({"sla": {"invoice_sync_success_rate": 101}}, "percentage"), ({"sla": 3}, "table")):
        with pytest.raises(SlaConfigError, match=why):
            parse_sla(bad)


def test_nearest_rank_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([1.0], 95) == 1.0
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 50) == 10.0 and percentile(values, 95) == 19.0 and percentile(values, 100) == 20.0


def test_the_audit_log_is_indexed_for_the_metrics(store: tuple[Storage, Storage]) -> None:
    from sqlalchemy import inspect, text

    _, audit = store
    names = {ix["name"] for ix in inspect(audit.engine).get_indexes("audit_entry")}
    assert {"ix_audit_entry_exception_id", "ix_audit_entry_at"} <= names  # migration 0006
    with audit.engine.connect() as conn:  # the period's retries are a range scan of the index, not the log
        plan = " ".join(str(r[-1]) for r in conn.execute(text(
            "EXPLAIN QUERY PLAN SELECT count(*) FROM audit_entry WHERE at >= '2026-01-01' AND at < '2026-02-01'")))
    assert "ix_audit_entry_at" in plan
