"""The engine end to end on the demo environment over loopback: exactly the planted
mismatches, incremental cost, and every injected fault survived per system."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.core.domain import System
from services.core.errors import ProtocolError, RateLimitedError, UnavailableError
from services.core.sysdata import Progress
from services.demo.environment import DemoEnvironment, DemoOptions
from services.demo.faults import FaultConfig
from services.engine import Engine, RefreshMode
from services.io.http import HttpPolicy
from services.store.storage import Storage

ANCHOR = 1_780_000_000  # fixed: identical data on every run
NO_LIMITS = {s: FaultConfig() for s in System}
FAST = {s: HttpPolicy(max_retries=1, backoff_base=0.01, backoff_max=0.02, read_timeout=1.0, concurrency=4,
                      breaker_threshold=50) for s in System}


def manifest_set(env: DemoEnvironment) -> set[tuple[str, str | None, str]]:
    return {(m.rule, m.customer, m.object) for m in env.dataset.manifest}


async def make_engine(env: DemoEnvironment, tmp_path: Path, policies: dict[System, HttpPolicy] | None = None,
                      name: str = "t.db") -> Engine:
    storage = Storage.open_path(tmp_path / name)
    engine = Engine.from_profile(env.profile(), storage, policies=policies, clock=env.now)
    await engine.load()
    return engine


@pytest.fixture
async def demo(request: pytest.FixtureRequest) -> AsyncIterator[DemoEnvironment]:
    customers, seed, rate = getattr(request, "param", (150, 3, None))
    opts = DemoOptions(customers=customers, seed=seed, anchor=ANCHOR, mismatch_rate=rate, faults=dict(NO_LIMITS))
    env = await asyncio.to_thread(lambda: DemoEnvironment(opts).start())
    yield env
    await asyncio.to_thread(env.stop)


@pytest.mark.parametrize("demo", [(120, 1, None), (250, 2, None), (400, 9, None)], indirect=True)
async def test_reconcile_reports_exactly_the_planted_mismatches(demo: DemoEnvironment, tmp_path: Path) -> None:
    engine = await make_engine(demo, tmp_path)
    report = await engine.refresh(RefreshMode.FULL)
    assert report.ok, [o.error_text for o in report.failed]
    result, tracked = await engine.reconcile(now=demo.now())
    found = {(e.rule, e.customer_id, e.object_id) for e in result.exceptions}
    expected = manifest_set(demo)
    assert found - expected == set(), "false positives"
    assert expected - found == set(), "missed"
    assert {r for r, _, _ in found} == {r for r, _, _ in expected}
    assert len(tracked.opened) == len(found)
    await engine.aclose()
    engine.storage.close()


@pytest.mark.parametrize("demo", [(150, 5, 0.0)], indirect=True)
async def test_clean_dataset_has_no_exception(demo: DemoEnvironment, tmp_path: Path) -> None:
    engine = await make_engine(demo, tmp_path)
    assert (await engine.refresh(RefreshMode.FULL)).ok
    result, _ = await engine.reconcile(now=demo.now())
    assert result.exceptions == []
    await engine.aclose()
    engine.storage.close()


async def test_snapshot_survives_restart_and_incremental_cost_follows_changes(demo: DemoEnvironment,
                                                                             tmp_path: Path) -> None:
    engine = await make_engine(demo, tmp_path)
    assert (await engine.refresh(RefreshMode.FULL)).ok
    counts = {s: d.count() for s, d in engine.data.items()}
    await engine.aclose()
    engine.storage.close()

    # a new engine opens from the snapshot, then refreshes incrementally with nothing changed
    engine = await make_engine(demo, tmp_path)
    assert {s: d.count() for s, d in engine.data.items()} == counts
    quiet = await engine.refresh(RefreshMode.AUTO)
    assert quiet.ok
    assert {o.mode for o in quiet.outcomes.values()} == {"incremental"}
    idle_requests = {s: o.requests for s, o in quiet.outcomes.items()}
    # a constant per system, whatever the data size: billing 1 events page, support 1 search +
    # 1 export page, ERP login + context + one watermark query per model
    assert idle_requests[System.BILLING] <= 2, idle_requests
    assert idle_requests[System.SUPPORT] <= 3, idle_requests
    assert idle_requests[System.ERP] <= 12, idle_requests

    # K changes in billing and support through their APIs
    k = 12
    profile = demo.profile()
    billing = profile.connections[System.BILLING]
    support = profile.connections[System.SUPPORT]
    customers = list(engine.data[System.BILLING].customers)[:k]
    orgs = list(engine.data[System.SUPPORT].customers)[:k]
    async with httpx.AsyncClient(timeout=10) as client:
        for cid in customers:
            r = await client.post(f"{billing.url}/v1/customers/{cid}", data={"name": f"Renamed {cid}"},
                                  auth=(billing.secret("api_key"), ""))
            assert r.status_code == 200
        for oid in orgs:
            r = await client.put(f"{support.url}/api/v2/organizations/{oid}.json",
                                 json={"organization": {"notes": "touched"}},
                                 auth=(f"{support.settings['email']}/token", support.secret("api_token")))
            assert r.status_code == 200, r.text
    before = engine.snapshot()  # what the views (UI thread) and the rules (CPU thread) may still hold
    old_name = before.get(System.BILLING).customers[customers[0]].name
    changed = await engine.refresh(RefreshMode.AUTO)
    assert changed.ok
    assert engine.data[System.BILLING].customers[customers[0]].name == f"Renamed {customers[0]}"
    # copy on write: a snapshot handed out earlier never changes under its reader
    assert before.get(System.BILLING).customers[customers[0]].name == old_name
    assert before.get(System.BILLING) is not engine.data[System.BILLING]
    assert changed.outcomes[System.BILLING].changes >= k
    assert changed.outcomes[System.SUPPORT].changes >= k
    for system in (System.BILLING, System.SUPPORT):
        assert changed.outcomes[system].requests <= idle_requests[system] + 4  # K=12 fits in a page or two
    await engine.aclose()
    engine.storage.close()


FAULTS = {
    "5xx": {"error_rate": 1.0},
    "429": {"rate_limit": 0.5},
    "outage": {"outage": True},
    "malformed body": {"malformed_rate": 1.0},
    "slow beyond timeout": {"latency_ms": 1500},
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_each_fault_fails_one_system_and_keeps_its_snapshot(demo: DemoEnvironment, tmp_path: Path,
                                                                 fault: str) -> None:
    engine = await make_engine(demo, tmp_path, policies=FAST)
    assert (await engine.refresh(RefreshMode.FULL)).ok
    before = engine.storage.load_system(System.ERP)
    injector = demo.injectors[System.ERP]
    injector.config.update(FAULTS[fault])
    if fault == "429":  # take the one token the bucket holds so the very next call is refused
        injector.rate_check()
        engine.connectors[System.ERP].client.policy = HttpPolicy(max_retries=0, read_timeout=1.0)
    report = await engine.refresh(RefreshMode.FULL)
    erp = report.outcomes[System.ERP]
    assert not erp.ok
    assert erp.error_text.startswith("erp ")
    assert report.outcomes[System.BILLING].ok and report.outcomes[System.SUPPORT].ok
    if fault == "malformed body":
        assert isinstance(erp.error, ProtocolError)
    elif fault == "429":
        assert isinstance(erp.error, RateLimitedError) and erp.error.status == 429
        assert erp.error.retry_after is not None and erp.error.retry_after > 0  # the server's Retry-After, kept
    else:
        assert isinstance(erp.error, UnavailableError)
    after = engine.storage.load_system(System.ERP)
    assert after.count() == before.count()
    assert engine.storage.state(System.ERP).last_error  # type: ignore[union-attr]
    injector.config.update({k: FaultConfig().__dict__[k] for k in FAULTS[fault]})
    await engine.aclose()
    engine.storage.close()


async def test_schema_violating_object_is_quarantined_with_a_clear_reason(demo: DemoEnvironment,
                                                                          tmp_path: Path) -> None:
    """One organization that does not match the protocol is quarantined (named, with the
    field and the value) and stored with the snapshot; the rest of support is read."""
    engine = await make_engine(demo, tmp_path, policies=FAST)
    org = next(iter(demo.dataset.support.organizations.values()))
    saved = org["organization_fields"]["support_tier"]
    org["organization_fields"]["support_tier"] = "platinum"
    try:
        report = await engine.refresh(RefreshMode.FULL)
    finally:
        org["organization_fields"]["support_tier"] = saved
    support = report.outcomes[System.SUPPORT]
    assert support.ok and support.quarantined == 1
    (entry,) = engine.quarantined(System.SUPPORT)
    assert entry.record_id == str(org["id"]) and "platinum" in entry.reason
    assert str(org["id"]) not in engine.data[System.SUPPORT].customers
    assert list(engine.storage.quarantined(System.SUPPORT).values()) == [entry]
    assert report.outcomes[System.BILLING].ok
    await engine.aclose()
    engine.storage.close()


async def test_drop_after_commit_does_not_disturb_a_refresh(demo: DemoEnvironment, tmp_path: Path) -> None:
    engine = await make_engine(demo, tmp_path, policies=FAST)
    for injector in demo.injectors.values():
        injector.config.update({"drop_after_commit_rate": 1.0})
    assert (await engine.refresh(RefreshMode.FULL)).ok  # reads commit nothing, so nothing is dropped
    await engine.aclose()
    engine.storage.close()


async def test_cancelled_refresh_leaves_snapshot_whole(demo: DemoEnvironment, tmp_path: Path) -> None:
    engine = await make_engine(demo, tmp_path)
    assert (await engine.refresh(RefreshMode.FULL)).ok
    counts = {s: engine.storage.load_system(s).count() for s in System}
    started = asyncio.Event()

    def on_progress(_: Progress) -> None:
        started.set()

    task = asyncio.create_task(engine.refresh(RefreshMode.FULL, on_progress))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert {s: engine.storage.load_system(s).count() for s in System} == counts
    await engine.aclose()
    engine.storage.close()
