"""Ground truth for services/metrics (G2.4): on the demo served over loopback, the invoice
sync success rate, the posting latency p50/p95/max and the records behind them equal what the
demo generator's own records say (services/demo/generator/truth.py) — exact for counts and
record ids, to the second for latencies — on several seeds; and a fix made through the actions
service moves the open counts and the resolution time (MTTR) as it should."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.actions.model import ActionKind, ActionRequest, ActionStatus
from services.demo.generator.ground_truth import INVOICE_GRACE
from services.demo.generator.truth import GeneratorTruth, truth_of
from services.metrics import model as m
from services.metrics.compute import compute_metrics
from services.metrics.model import Filters, MetricsReport, Period, Resolution
from tests.services.actions_rig import Rig, make_rig

COUNTED = {"open", "paid", "uncollectible"}


def nearest_rank(values: list[int], pct: int) -> int | None:
    """The textbook nearest-rank percentile, written here independently of services/metrics."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-pct * len(ordered) // 100))
    return ordered[rank - 1]


def expected(truth: GeneratorTruth, since: datetime, until: datetime, now: datetime
             ) -> tuple[set[str], set[str], list[int]]:
    """(counted invoices, those that reached the ERP correctly, posting lags in seconds) from
    the generator's records."""
    lo, hi, last = since.timestamp(), until.timestamp(), now.timestamp() - INVOICE_GRACE
    live: dict[str, list] = {}
    for p in truth.postings:
        if p.state != "cancelled":
            live.setdefault(p.invoice, []).append(p)
    counted: set[str] = set()
    ok: set[str] = set()
    lags: list[int] = []
    for inv in truth.invoices:
        fin = inv.finalized_at if inv.finalized_at is not None else inv.created
        if inv.status not in COUNTED or inv.total == 0 or fin > last or not lo <= fin < hi:
            continue
        counted.add(inv.id)
        copies = live.get(inv.id, [])
        if len(copies) != 1:
            continue
        copy = copies[0]
        if copy.state in ("posted", "paid") and copy.as_billed and copy.created - fin <= INVOICE_GRACE:
            ok.add(inv.id)
        if copy.posted_at is not None and copy.posting_time_kept:
            lags.append(copy.posted_at - fin)
    return counted, ok, lags


def report_of(rig: Rig, period: Period, now: datetime) -> MetricsReport:
    return compute_metrics(rig.engine.snapshot(), rig.engine.storage, rig.audit.storage, period=period, now=now)


@pytest.fixture(params=[1, 4, 9])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    r = await make_rig(tmp_path, customers=160, seed=request.param)
    yield r
    await r.close()


async def test_success_rate_and_posting_latency_equal_the_generators_truth(rig: Rig) -> None:
    truth = truth_of(rig.env.dataset)
    now = rig.env.now()
    anchor = datetime.fromtimestamp(truth.anchor, UTC)
    periods = ((anchor - timedelta(days=365), now), (anchor - timedelta(days=60), anchor - timedelta(days=20)))
    for since, until in periods:
        period = Period(since, until)
        report = report_of(rig, period, now)
        counted, ok, lags = expected(truth, since, until, now)
        assert counted, "the demo has invoices in the period"
        rate = report.figure(m.SUCCESS_RATE)
        assert rate is not None and rate.value is not None
        assert rate.value == pytest.approx(100.0 * len(ok) / len(counted), abs=1e-9)
        assert set(rate.records.invoices) == counted - ok
        if until == now:  # the year: recent invoices still posted (unpaid) keep their posting time
            assert len(lags) >= 5, "some postings keep their posting time"
        for key, pct in ((m.POSTING_P50, 50), (m.POSTING_P95, 95), (m.POSTING_MAX, 100)):
            fig = report.figure(key)
            want = nearest_rank(lags, pct)
            assert fig is not None
            if want is None:
                assert fig.value is None, (key, fig.value)
            else:
                assert fig.value is not None and abs(fig.value - want) < 1.0, (key, fig.value, want)
            # the records: the invoices at or above the figure, and exactly their customers
            owner = {i.id: i.customer for i in truth.invoices}
            assert set(fig.records.customers) == {owner[i] for i in fig.records.invoices}, key
        assert sum(report.latency_histogram.counts) == len(lags)
    # one currency: only its invoices count
    by_currency = {i.id: i.currency for i in truth.invoices}
    counted, ok, _ = expected(truth, periods[0][0], now, now)
    for currency in sorted({by_currency[i] for i in counted}):
        report = compute_metrics(rig.engine.snapshot(), rig.engine.storage, rig.audit.storage,
                                 period=Period(periods[0][0], now), now=now, filters=Filters(currency=currency.upper()))
        mine = {i for i in counted if by_currency[i] == currency}
        rate = report.figure(m.SUCCESS_RATE)
        assert rate is not None and rate.value == pytest.approx(100.0 * len(mine & ok) / len(mine), abs=1e-9)
        assert set(rate.records.invoices) == mine - ok


async def test_the_planted_billing_disputes_are_linked_to_their_finance_exceptions(rig: Rig) -> None:
    truth = truth_of(rig.env.dataset)
    assert truth.disputes, "the demo plants billing disputes"
    now = rig.env.now()
    report = report_of(rig, Period(now - timedelta(days=30), now), now)
    found = report.disputes
    assert {str(t) for t, _ in truth.disputes} <= set(found.tickets)
    assert {c for _, c in truth.disputes} <= set(found.customers)
    figure = report.figure(m.DISPUTES)
    assert figure is not None and figure.value == len(found.tickets)
    finance_open = {e.customer_id: e.id for e in await rig.engine.open_exceptions() if e.owner.value == "finance"}
    assert set(found.customers) <= set(finance_open)
    assert {finance_open[c] for _, c in truth.disputes} <= set(found.exceptions)


async def test_activation_latency_equals_the_generators_truth(rig: Rig) -> None:
    truth = truth_of(rig.env.dataset)
    now = rig.env.now()
    since = datetime.fromtimestamp(truth.anchor, UTC) - timedelta(days=60)
    report = report_of(rig, Period(since, now), now)
    created: dict[str, list[int]] = {}
    for customer, at in truth.subscriptions:
        created.setdefault(customer, []).append(at)
    lags: dict[str, int] = {}
    for customer, updated in truth.activations:
        newest = max((c for c in created.get(customer, ()) if c <= updated), default=None)
        if newest is not None and since.timestamp() <= updated < now.timestamp() and updated - newest <= 7 * 86400:
            lags[customer] = updated - newest
    assert len(lags) >= 5, "customers subscribed in the period"
    p50, p95 = report.figure(m.ACTIVATION_P50), report.figure(m.ACTIVATION_P95)
    assert p50 is not None and p95 is not None
    assert sorted(p50.records.customers) == sorted(lags)
    for fig, pct in ((p50, 50), (p95, 95)):
        want = nearest_rank(list(lags.values()), pct)
        assert fig.value is not None and want is not None and abs(fig.value - want) < 1.0, (fig.key, fig.value, want)


async def test_a_fix_moves_the_open_counts_and_the_resolution_time(rig: Rig) -> None:
    now = rig.env.now()
    period = Period(now - timedelta(days=30), now + timedelta(days=1))
    before = report_of(rig, period, rig.env.now())
    exc = await rig.one("invoice.missing_in_erp")
    plan = await rig.service.plan(ActionRequest(ActionKind.RETRY, exc.id))
    assert plan.ok, plan.explanation
    result = await rig.service.execute(plan)
    assert result.status is ActionStatus.SUCCEEDED, result.message
    closed = await rig.engine.exception(exc.id)
    assert closed is not None and closed.closed_at is not None
    after = report_of(rig, period, rig.env.now())
    opened = before.figure(m.OPEN_EXCEPTIONS)
    still = after.figure(m.OPEN_EXCEPTIONS)
    assert opened is not None and still is not None and opened.value is not None
    assert still.value == opened.value - 1 and exc.id not in still.records.exceptions
    finance_before = next(r for r in before.ageing if r.owner == "finance")
    finance_after = next(r for r in after.ageing if r.owner == "finance")
    assert sum(finance_after.counts) == sum(finance_before.counts) - 1
    assert before.resolution.resolved == 0 and before.figure(m.MTTR_P50).value is None  # type: ignore[union-attr]
    assert after.resolution.resolved == 1
    assert dict(after.resolution.by_how)[Resolution.FIX] == 1
    assert dict(after.resolution.exceptions)[Resolution.FIX] == (exc.id,)
    mttr = after.figure(m.MTTR_P50)
    assert mttr is not None and mttr.value is not None
    assert mttr.value == pytest.approx((closed.closed_at - exc.first_seen).total_seconds(), abs=1e-3)
    assert after.effort.resolved_by_operator == 1 and after.effort.exceptions == (exc.id,)
    assert after.effort.p50 is not None and 0 <= after.effort.p50 <= mttr.value
