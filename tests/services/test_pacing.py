"""Pacing with the real limits on: the demo servers at their DEFAULT rate limits
(``services.demo.environment.DEFAULT_RATE_LIMITS``: billing 25 requests/s like Stripe's test
mode, support 700/minute like Zendesk Enterprise, the ERP unlimited like trytond) and the engine
with its DEFAULT HTTP policies (``services.io.http.DEFAULT_POLICIES``, what the console uses): a
full refresh large enough that billing needs several seconds, then bulk fixes writing to all
three systems, and not one 429.

Every other engine and action test switches the limits off on both sides; this is the one that
proves the client's limiter stays under the server's, as the server counts it (its own 429
counter) and as the requests arrive (their arrival times, recorded in front of the server's
rate limiter, checked against the server's token bucket: ``rate`` per second with one second
of burst, ``services.demo.faults.TokenBucket``).
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from services.actions.model import ActionKind, ActionRequest, ActionStatus, Operator, Role
from services.actions.service import ActionService
from services.core.domain import System
from services.demo.environment import DEFAULT_RATE_LIMITS, DemoEnvironment, DemoOptions, wait_until_answering
from services.demo.faults import CONTROL_PREFIX, FaultConfig
from services.engine import Engine, RefreshMode
from services.io.http import DEFAULT_POLICIES, HttpPolicy, rate_limiter
from services.store.audit import AuditLog
from services.store.storage import Storage

ANCHOR = 1_780_000_000
#: billing needs ~0.1 request per customer (customers, subscriptions, invoices, events in
#: pages of 100): 2,500 customers are ~260 requests, ~11 s at 25/s
CUSTOMERS = 2_500


class Arrivals:
    """ASGI wrapper in front of a demo server (and so in front of its rate limiter): the
    monotonic arrival time of every API request (control endpoints left out)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.times: list[float] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(CONTROL_PREFIX):
            with self._lock:
                self.times.append(time.monotonic())
        await self.app(scope, receive, send)

    def since(self, mark: int) -> list[float]:
        with self._lock:
            return sorted(self.times[mark:])


def bucket_overshoot(times: list[float], rate: float, burst: float) -> float:
    """How far the requests at ``times`` go beyond a token bucket of ``rate`` per second and
    ``burst`` tokens, starting full: the largest ``(j - i + 1) - burst - rate * (t_j - t_i)``
    over every run of requests i..j (<= 0: the bucket never runs dry, no request would be
    refused)."""
    worst = float("-inf")
    lowest = float("inf")  # min over i <= j of (i - rate * t_i)
    for j, t in enumerate(times):
        lowest = min(lowest, j - rate * t)
        worst = max(worst, (j - rate * t) - lowest + 1 - burst)
    return worst


@dataclass
class Limits:
    rate: float
    burst: float

    @classmethod
    def of(cls, system: System) -> Limits:
        rate = DEFAULT_RATE_LIMITS[system]
        assert rate is not None
        return cls(rate, max(1.0, rate))  # services.demo.faults.TokenBucket


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[DemoEnvironment, dict[System, Arrivals]]]:
    env = DemoEnvironment(DemoOptions(customers=CUSTOMERS, seed=3, anchor=ANCHOR))  # default faults and limits
    for system in System:
        assert env.injectors[system].config.rate_limit == DEFAULT_RATE_LIMITS[system]
    arrivals = {s: Arrivals(env.apps[s]) for s in System}
    env.apps.update(arrivals)
    env.start()
    asyncio.run(wait_until_answering(env.urls))
    yield env, arrivals
    env.stop()


@pytest.fixture
async def engine(demo: tuple[DemoEnvironment, dict[System, Arrivals]]) -> AsyncIterator[Engine]:
    env, _ = demo
    with tempfile.TemporaryDirectory(prefix="syncdesk-pacing-") as tmp:
        engine = Engine.from_profile(env.profile(), Storage.open_path(Path(tmp) / "snapshot.db"), clock=env.now)
        for system, connector in engine.connectors.items():
            assert connector.client.policy == DEFAULT_POLICIES[system]  # what the console uses
        await engine.load()
        yield engine
        await engine.aclose()
        engine.storage.close()


def assert_paced(env: DemoEnvironment, arrivals: dict[System, Arrivals], marks: dict[System, int],
                 rejected_before: dict[System, int]) -> dict[System, str]:
    """No 429 from any server since the marks, and billing's and support's request rate within
    their limits as the servers define them (a token bucket of one second: ``rate`` per second
    sustained, a second's worth at once), over every run of consecutive requests; returns a
    line per system for the failure messages."""
    figures: dict[System, str] = {}
    for system in System:
        times = arrivals[system].since(marks[system])
        refused = env.injectors[system].injected["429"] - rejected_before[system]
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        figures[system] = (f"{system.value}: {len(times)} requests in {span:.1f} s"
                           + (f" ({(len(times) - 1) / span:.1f}/s)" if span else "") + f", {refused} x 429")
        assert refused == 0, figures[system]
        if DEFAULT_RATE_LIMITS[system] is not None:
            limits = Limits.of(system)
            over = bucket_overshoot(times, limits.rate, limits.burst)
            assert over <= 0, (f"{figures[system]}: {over:.1f} requests beyond {limits.rate:.2f}/s "
                               f"(burst {limits.burst:.0f})")
    return figures


def marks_of(env: DemoEnvironment, arrivals: dict[System, Arrivals]) -> tuple[dict[System, int], dict[System, int]]:
    return ({s: len(a.times) for s, a in arrivals.items()},
            {s: env.injectors[s].injected["429"] for s in System})


@pytest.mark.slow
async def test_full_refresh_at_default_limits_meets_no_429(demo: tuple[DemoEnvironment, dict[System, Arrivals]],
                                                           engine: Engine) -> None:
    env, arrivals = demo
    marks, rejected = marks_of(env, arrivals)
    report = await engine.refresh(RefreshMode.FULL)
    assert report.ok, [o.error_text for o in report.failed]
    figures = assert_paced(env, arrivals, marks, rejected)

    billing = report.outcomes[System.BILLING]
    # big enough that pacing matters: billing runs for several seconds at its limit
    assert billing.requests >= 200, figures
    times = arrivals[System.BILLING].since(marks[System.BILLING])
    assert len(times) == billing.requests, "every billing request reached the server once (no retry)"
    # and the limiter does not starve it either: at least a third of the allowed rate over the
    # run (typically ~95 %; a third leaves room for a loaded 2-core machine)
    limits = Limits.of(System.BILLING)
    achieved = (len(times) - 1) / (times[-1] - times[0])
    assert achieved >= limits.rate / 3, figures
    for system, outcome in report.outcomes.items():
        client = engine.connectors[system].client
        assert client.stats.rate_limited == 0, (system, figures)
        assert outcome.requests == len(arrivals[system].since(marks[system])), (system, figures)


@pytest.mark.slow
async def test_bulk_fixes_at_default_limits_meet_no_429(demo: tuple[DemoEnvironment, dict[System, Arrivals]],
                                                        engine: Engine, tmp_path: Path) -> None:
    """Bulk fixes into every system at once, as an operator's "fix all" does: ERP postings
    (retry), billing and support master-data pushes, support tier pushes; each action reads,
    writes and re-reads through the engine's own clients."""
    env, arrivals = demo
    assert (await engine.refresh(RefreshMode.AUTO)).ok
    await engine.reconcile()
    rules = {"invoice.missing_in_erp": "retry", "customer.master_drift": "push",
             "entitlement.tier_mismatch": "push", "entitlement.missing": "push"}
    exceptions = [e for e in await engine.open_exceptions() if e.rule in rules]
    by_rule = {rule: sum(1 for e in exceptions if e.rule == rule) for rule in rules}
    assert all(n >= 2 for n in by_rule.values()), by_rule
    # two operators at once (finance and support exceptions), each with their own console's audit log
    audits = [AuditLog(Storage.open_path(tmp_path / f"audit-{n}.db", durable=True)) for n in (1, 2)]
    service = ActionService(engine, audits[0], Operator("pat.pacing", Role.FINANCE), clock=engine.clock)
    support = ActionService(engine, audits[1], Operator("sue.pacing", Role.SUPPORT), clock=engine.clock)
    try:
        marks, rejected = marks_of(env, arrivals)
        finance_reqs = [ActionRequest(ActionKind(rules[e.rule]), e.id) for e in exceptions
                        if e.rule in ("invoice.missing_in_erp", "customer.master_drift")]
        support_reqs = [ActionRequest(ActionKind(rules[e.rule]), e.id) for e in exceptions
                        if e.rule.startswith("entitlement.")]
        results = await asyncio.gather(service.bulk(finance_reqs), support.bulk(support_reqs))
        done = [r for bulk in results for r in bulk.results]
        figures = assert_paced(env, arrivals, marks, rejected)
        assert len(done) == len(exceptions)
        not_ok = [(r.exception_id, r.status.value, r.message) for r in done if r.status is not ActionStatus.SUCCEEDED]
        assert not not_ok, (not_ok, figures)
        # the writes did reach every system, at pace
        for system in System:
            assert len(arrivals[system].since(marks[system])) >= len(exceptions) // 4, figures
    finally:
        await support.aclose()
        await service.aclose()
        for audit in audits:
            audit.storage.close()


@pytest.mark.slow
async def test_bulk_retries_against_an_erp_with_a_limit_meet_no_429(tmp_path: Path) -> None:
    """trytond has no request limit of its own (the demo ERP's default: none, and none in the
    client's default policy); behind a proxy that allows 20 requests/s, with the client told
    so, a bulk of postings (each a look-up, create, post and re-read: ~7 calls) stays under it."""
    limit = 20.0
    faults = {s: FaultConfig(rate_limit=DEFAULT_RATE_LIMITS[s]) for s in System}
    faults[System.ERP] = FaultConfig(rate_limit=limit)
    env = DemoEnvironment(DemoOptions(customers=400, seed=5, anchor=ANCHOR, mismatch_rate=0.05, faults=faults))
    arrivals = {s: Arrivals(env.apps[s]) for s in System}
    env.apps.update(arrivals)
    env.start()
    policies = dict(DEFAULT_POLICIES)
    policies[System.ERP] = replace(DEFAULT_POLICIES[System.ERP], rate_per_second=limit)
    engine = Engine.from_profile(env.profile(), Storage.open_path(tmp_path / "snapshot.db"), policies=policies,
                                 clock=env.now)
    audit = AuditLog(Storage.open_path(tmp_path / "audit.db", durable=True))
    service = ActionService(engine, audit, Operator("pat.pacing", Role.FINANCE), clock=engine.clock)
    try:
        await wait_until_answering(env.urls)
        await engine.load()
        assert (await engine.refresh(RefreshMode.FULL)).ok
        await engine.reconcile()
        missing = [e for e in await engine.open_exceptions() if e.rule == "invoice.missing_in_erp"]
        assert len(missing) >= 15
        marks, rejected = marks_of(env, arrivals)
        bulk = await service.bulk([ActionRequest(ActionKind.RETRY, e.id) for e in missing])
        erp_times = arrivals[System.ERP].since(marks[System.ERP])
        refused = env.injectors[System.ERP].injected["429"] - rejected[System.ERP]
        figure = f"erp: {len(erp_times)} requests in {erp_times[-1] - erp_times[0]:.1f} s, {refused} x 429"
        assert refused == 0, figure
        assert bucket_overshoot(erp_times, limit, limit) <= 0, figure
        assert len(erp_times) >= 5 * len(missing), figure  # several seconds at the limit
        assert bulk.succeeded == len(missing), [(r.exception_id, r.message) for r in bulk.results]
        assert_paced(env, arrivals, marks, rejected)
    finally:
        await service.aclose()
        audit.storage.close()
        await engine.aclose()
        engine.storage.close()
        env.stop()


async def test_the_client_limiter_keeps_a_small_burst_and_the_full_rate() -> None:
    """The limiter the policies build: after a pause at most half a second's worth leaves at
    once (the vendor's bucket holds a second's worth, the rest absorbs jitter), then the rate."""
    policy = HttpPolicy(rate_per_second=20.0, rate_headroom=1.0)
    limiter = rate_limiter(policy)
    assert limiter is not None
    stamps: list[float] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(30):
        await limiter.acquire()
        stamps.append(loop.time() - started)
    # 0.5 s x 20/s = 10 at once (no await in between: microseconds), the 11th one interval later
    # (the limiter and these stamps read the same loop clock; its timers fire late, never early)
    assert stamps[9] < 0.049 <= stamps[10]
    # the other 20 at 20/s: one second
    assert stamps[-1] >= (30 - 10) / 20 - 0.001
    assert rate_limiter(HttpPolicy(rate_per_second=None)) is None
    tiny = rate_limiter(HttpPolicy(rate_per_second=2.0, rate_headroom=1.0))
    assert tiny is not None and tiny.max_rate == 1.0  # never less than one request
