"""Benchmarks of the action path ([F5]).

    python -m tests.bench.bench_actions [--appends 20000] [--writers 64] [--entries 1000000]
                                        [--rate 20] [--invoices 80]

1. Audit append rate: ``--writers`` concurrent tasks append ``--appends`` entries in total
   through :class:`GroupCommitter` on a durable database (SQLite ``synchronous=FULL``: each
   group commit reaches the disk). Target >= 2,000 appends/s.
2. Verify time for ``--entries`` entries (the log is built with large ``append_many``
   batches first; building is not timed). Target <= 10 s for 1,000,000. Then verify again
   with a progress callback, cancelled after 1 s: the longest gap between progress calls and
   the time from cancelling to ``VerifyCancelled`` (anything longer than 200 ms must show
   progress and stop promptly).
3. Bulk retry throughput: the demo ERP limited to ``--rate`` requests/s (429 beyond), the
   client paced at the same rate; ``--invoices`` missing postings retried in bulk; the ERP
   requests/s achieved during the run as a share of the limit. Target >= 90 %.

``--skip`` leaves a part out. The last line is ``BENCH {json}`` (tests/bench/report.py) with
the figures of the parts that ran. Also runs as ``python tests/bench/bench_actions.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from services.actions.model import ActionKind, ActionRequest, ActionStatus
from services.actions.service import ActionService
from services.core.domain import System
from services.demo.environment import DemoEnvironment, DemoOptions
from services.demo.faults import FaultConfig
from services.engine import Engine, RefreshMode
from services.io.http import HttpPolicy
from services.store.audit import AuditEntry, AuditLog, GroupCommitter, VerifyCancelled
from services.store.storage import Storage
from tests.bench.report import Number, Target, emit
from tests.services.actions_rig import ANCHOR, FINANCE, delete_posted_invoices

Figures = dict[str, Number | None]
TARGETS: dict[str, Target] = {
    "appends_per_s": (">=", 2000), "verify_s": ("<=", 10), "progress_gap_max_ms": ("<=", 200),
    "cancel_to_stop_ms": ("<=", 200), "share_of_limit": (">=", 0.9),
}


def _entry(i: int) -> AuditEntry:
    return AuditEntry(operator="bench", role="finance", action_id=f"a{i}", action_kind="retry", phase="intent",
                      outcome="pending", exception_id=f"invoice.missing_in_erp:in_{i}", customer_id=f"cus_{i % 997}",
                      target_system="erp",
                      request={"calls": [{"method": "POST", "path": "/db/rpc/", "body": {"reference": f"in_{i}"}}]},
                      before={"erp": None}, after={}, reason="bench", at=datetime.now(UTC))


async def bench_appends(tmp: Path, total: int, writers: int, checks: dict[str, bool]) -> Figures:
    storage = Storage.open_path(tmp / "appends.db", durable=True)
    committer = GroupCommitter(AuditLog(storage))
    per = total // writers

    async def writer(w: int) -> None:
        for i in range(per):
            await committer.append(_entry(w * per + i))

    started = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    took = time.perf_counter() - started
    rate = per * writers / took
    ok = AuditLog(storage).verify().ok
    print(f"audit appends: {per * writers} entries by {writers} concurrent writers in {took:.2f} s = "
          f"{rate:,.0f}/s durable ({committer.batches} group commits; chain ok: {ok})  [target >= 2,000/s]")
    storage.close()
    checks["chain_ok"] = ok
    return {"appends_count": per * writers, "writers_count": writers, "appends_s": took, "appends_per_s": rate,
            "group_commits_count": committer.batches}


def bench_verify(tmp: Path, entries: int, checks: dict[str, bool]) -> Figures:
    storage = Storage.open_path(tmp / "verify.db", durable=False)
    log = AuditLog(storage)
    started = time.perf_counter()
    batch = 20_000
    for start in range(0, entries, batch):
        log.append_many([_entry(i) for i in range(start, min(entries, start + batch))])
    built = time.perf_counter() - started
    started = time.perf_counter()
    result = log.verify()
    took = time.perf_counter() - started
    print(f"audit verify: {result.checked:,} entries in {took:.2f} s ({result}; building took {built:.0f} s)  "
          "[target <= 10 s for 1,000,000]")
    stop = threading.Event()
    ticks: list[float] = []
    requested: list[float] = []

    def cancel() -> None:
        requested.append(time.perf_counter())
        stop.set()

    timer = threading.Timer(1.0, cancel)
    ticks.append(time.perf_counter())
    timer.start()
    cancel_ms: float | None = None  # from the request to VerifyCancelled
    checked_at_cancel: int | None = None
    try:
        log.verify(progress=lambda _checked, _total: ticks.append(time.perf_counter()), cancelled=stop.is_set)
        stopped = "finished before the cancel at 1 s"
    except VerifyCancelled as exc:
        cancel_ms = (time.perf_counter() - requested[0]) * 1000
        checked_at_cancel = exc.checked
        stopped = (f"cancelled after {exc.checked:,} entries, "
                   f"{cancel_ms:.0f} ms after the request")
    gap = max(b - a for a, b in itertools.pairwise(ticks))
    print(f"audit verify with progress: {len(ticks) - 1} progress calls, longest gap {gap * 1000:.0f} ms; {stopped}  "
          "[both <= 200 ms]")
    timer.cancel()
    storage.close()
    checks["verify_ok"] = result.ok
    checks["verify_cancelled"] = cancel_ms is not None
    return {"verify_entries_count": result.checked, "verify_s": took, "verify_build_s": built,
            "progress_calls_count": len(ticks) - 1, "progress_gap_max_ms": gap * 1000,
            "cancel_to_stop_ms": cancel_ms, "checked_at_cancel_count": checked_at_cancel}


async def bench_bulk(tmp: Path, rate: float, invoices: int) -> Figures:
    faults = {s: FaultConfig() for s in System}
    faults[System.ERP] = FaultConfig(rate_limit=rate)
    opts = DemoOptions(customers=200, seed=7, anchor=ANCHOR, faults=faults)

    def start() -> DemoEnvironment:
        env = DemoEnvironment(opts)
        delete_posted_invoices(env, invoices)
        return env.start()

    env = await asyncio.to_thread(start)
    # the client paces itself at the vendor's published rate (its policy), as in production
    policies = {s: HttpPolicy(concurrency=4, rate_per_second=rate if s is System.ERP else None) for s in System}
    engine = Engine.from_profile(env.profile(), Storage.open_path(tmp / "snap.db"), policies=policies, clock=env.now)
    audit = AuditLog(Storage.open_path(tmp / "bulk-audit.db", durable=True))
    try:
        await engine.load()
        env.injectors[System.ERP].config.rate_limit = None  # the initial full refresh is not measured
        assert (await engine.refresh(RefreshMode.FULL)).ok
        await engine.reconcile()
        env.injectors[System.ERP].config.rate_limit = rate
        service = ActionService(engine, audit, FINANCE, clock=env.now)
        missing = [e for e in await engine.open_exceptions() if e.rule == "invoice.missing_in_erp"]
        await asyncio.sleep(1.0)  # let the server's bucket fill: we measure the steady state
        env.injectors[System.ERP].reset_stats()
        started = time.perf_counter()
        result = await service.bulk([ActionRequest(ActionKind.RETRY, e.id) for e in missing])
        took = time.perf_counter() - started
        stats = env.injectors[System.ERP].stats()
        achieved = stats["total"] / took
        ok = sum(1 for r in result.results if r.status is ActionStatus.SUCCEEDED)
        print(f"bulk retry: {len(missing)} missing postings in {took:.1f} s, {ok} succeeded; {stats['total']} ERP "
              f"requests = {achieved:.1f}/s of the configured {rate:.0f}/s = {achieved / rate:.0%} "
              f"(429s: {stats['injected'].get('429', 0)}; {len(missing) / took:.2f} actions/s)  [target >= 90 %]")
        await service.aclose()
        return {"bulk_actions_count": len(missing), "bulk_s": took, "bulk_succeeded_count": ok,
                "erp_requests_count": stats["total"], "erp_requests_per_s": achieved, "erp_limit_per_s": rate,
                "share_of_limit": achieved / rate, "erp_429_count": stats["injected"].get("429", 0),
                "actions_per_s": len(missing) / took}
    finally:
        await engine.aclose()
        engine.storage.close()
        audit.storage.close()
        await asyncio.to_thread(env.stop)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--appends", type=int, default=20_000)
    p.add_argument("--writers", type=int, default=64)
    p.add_argument("--entries", type=int, default=1_000_000)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--invoices", type=int, default=80)
    p.add_argument("--skip", action="append", default=[], choices=("appends", "verify", "bulk"))
    args = p.parse_args()
    figures: Figures = {}
    checks: dict[str, bool] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        # the benchmark's audit logs sign their checkpoints with keys of their own, never the user's
        os.environ["SYNCDESK_AUDIT_KEY_DIR"] = str(tmp / "audit-keys")
        os.environ.pop("SYNCDESK_AUDIT_WITNESS", None)
        if "appends" not in args.skip:
            figures |= asyncio.run(bench_appends(tmp, args.appends, args.writers, checks))
        if "verify" not in args.skip:
            figures |= bench_verify(tmp, args.entries, checks)
        if "bulk" not in args.skip:
            figures |= asyncio.run(bench_bulk(tmp, args.rate, args.invoices))
    params = {"appends": args.appends, "writers": args.writers, "entries": args.entries, "rate": args.rate,
              "invoices": args.invoices, "skip": sorted(set(args.skip))}
    emit("bench_actions", params, figures, TARGETS, checks)


if __name__ == "__main__":
    main()
