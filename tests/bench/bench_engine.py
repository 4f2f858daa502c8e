"""Benchmark of the engine: prints figures, asserts nothing (not a timed test).

    python tests/bench/bench_engine.py refresh --customers 10000            # no server rate limit
    python tests/bench/bench_engine.py refresh --customers 10000 --limited  # Stripe 25/s, Zendesk 700/min
    python tests/bench/bench_engine.py reconcile --customers 100000         # from a stored snapshot

The demo servers run in a separate ``demo-server`` process, so the figures (and the peak RSS)
are SyncDesk's own. ``reconcile`` builds its snapshot once with a full refresh and keeps it in
``--cache`` (default: a folder under the system temp dir) for later runs.

Targets: ``refresh`` of 10,000 customers without server limits, SyncDesk peak RSS ≤ 600 MB;
with ``--limited``, each limited system's requests/s from its first to its last request
≥ 90 % of the allowed rate, and no 429. ``reconcile`` of 100,000 customers: median ≤ 3 s;
it also times the customer lookup over that snapshot (services.core.lookup; its own bench with
targets is tests/bench/bench_lookup.py).
The last line is ``BENCH {json}`` (tests/bench/report.py).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from services.core.domain import System  # noqa: E402
from services.core.lookup import CustomerIndex  # noqa: E402
from services.core.overview import RowFilter, build_customer_rows  # noqa: E402
from services.core.reconcile import reconcile  # noqa: E402
from services.core.timeline import TimelineIndex  # noqa: E402
from services.engine import Engine, RefreshMode  # noqa: E402
from services.io.config import load_profile  # noqa: E402
from services.io.http import DEFAULT_POLICIES, HttpPolicy  # noqa: E402
from services.store.storage import Storage  # noqa: E402
from tests.bench.report import Number, Target, emit  # noqa: E402

ANCHOR = 1_780_000_000
RSS_TARGET: Target = ("<=", 600)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class DemoServer:
    def __init__(self, customers: int, seed: int, limited: bool, workdir: Path,
                 billing_rate: float | None = None) -> None:
        self.config = workdir / f"demo-{customers}-{seed}.toml"
        self.config.unlink(missing_ok=True)
        cmd = [sys.executable, str(ROOT / "main.py"), "demo-server", "--customers", str(customers), "--seed",
               str(seed), "--anchor", str(ANCHOR), "--port", "0", "--write-config", str(self.config)]
        if not limited:
            cmd += ["--fault", "billing:rate_limit=off", "--fault", "support:rate_limit=off"]
        elif billing_rate:
            cmd += ["--fault", f"billing:rate_limit={billing_rate}"]
        env = {**os.environ, "SYNCDESK_HOME": str(workdir / "server-home")}
        started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        while not self.config.exists():
            if self.proc.poll() is not None:
                raise RuntimeError("demo-server exited")
            time.sleep(0.2)
        self.startup = time.perf_counter() - started

    def stats(self, url: str) -> dict[str, object]:
        result: dict[str, object] = httpx.get(f"{url}/_demo/stats", timeout=30).json()
        return result

    def stop(self) -> None:
        """Stop the server; it saves its world first (about a minute for 100,000 customers)."""
        self.proc.terminate()
        try:
            self.proc.wait(300)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)


async def full_refresh(profile_path: Path, db: Path, limited: bool, billing_rate: float | None = None,
                       only: list[System] | None = None,
                       figures: dict[str, Number | None] | None = None) -> tuple[Engine, float, bool]:
    """A full refresh; its per-system figures go into ``figures`` when given."""
    profile = load_profile(profile_path, "demo")
    storage = Storage.open_path(db)
    if limited:
        policies = dict(DEFAULT_POLICIES)
        if billing_rate:
            policies[System.BILLING] = HttpPolicy(rate_per_second=billing_rate, concurrency=8)
    else:
        policies = {s: HttpPolicy(rate_per_second=None, concurrency=8 if s is not System.ERP else 2)
                    for s in System}
    engine = Engine.from_profile(profile, storage, policies=policies)
    started = time.perf_counter()
    report = await engine.refresh(RefreshMode.FULL, systems=only)
    took = time.perf_counter() - started
    for o in report.outcomes.values():
        print(f"  {o.system.value:8} {'ok' if o.ok else 'FAILED ' + o.error_text:4} {o.records:>9,} records "
              f"{o.requests:>6,} requests {o.seconds:7.1f} s  ({o.requests / max(o.seconds, 1e-9):5.1f} req/s)")
        if figures is not None:
            name = o.system.value
            figures |= {f"{name}_records_count": o.records, f"{name}_requests_count": o.requests,
                        f"{name}_s": o.seconds, f"{name}_requests_per_s": o.requests / max(o.seconds, 1e-9)}
    return engine, took, report.ok


def cmd_refresh(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="syncdesk-bench-"))
    print(f"full refresh of {args.customers:,} customers, server rate limits "
          f"{'ON (billing 25/s, support 700/min)' if args.limited else 'off'}")
    server = DemoServer(args.customers, args.seed, args.limited, work, args.billing_rate)
    print(f"  demo-server generated and answering in {server.startup:.1f} s (separate process)")
    only = [System(x) for x in args.only] if args.only else None
    figures: dict[str, Number | None] = {"server_startup_s": server.startup}
    targets: dict[str, Target] = {"peak_rss_mb": RSS_TARGET}
    try:
        engine, took, ok = asyncio.run(full_refresh(server.config, work / "bench.db", args.limited,
                                                    args.billing_rate, only, figures))
        peak = rss_mb()
        print(f"  total wall time {took:.1f} s; SyncDesk peak RSS {peak:.0f} MB")
        figures |= {"refresh_s": took, "peak_rss_mb": peak}
        profile = load_profile(server.config, "demo")
        for system in (System.BILLING, System.SUPPORT):
            st = server.stats(profile.connections[system].url)
            injected = st.get("injected", {})
            total = st.get("total", 0)
            allowed = (args.billing_rate if system is System.BILLING and args.billing_rate
                       else DEFAULT_POLICIES[system].rate_per_second)
            first, last = st.get("first_at"), st.get("last_at")
            window = ""
            name = system.value
            if isinstance(total, int):
                figures[f"{name}_server_requests_count"] = total
            if isinstance(injected, dict):
                figures[f"{name}_429_count"] = injected.get("429", 0)
                if args.limited and (only is None or system in only):
                    targets[f"{name}_429_count"] = ("<=", 0)
            if args.limited and allowed:
                figures[f"{name}_allowed_per_s"] = allowed
            if isinstance(first, float) and isinstance(last, float) and last > first and isinstance(total, int):
                rate = (total - 1) / (last - first)
                window = f"; {rate:.1f} requests/s from its first to its last request ({last - first:.1f} s)"
                figures |= {f"{name}_window_requests_per_s": rate, f"{name}_window_s": last - first}
                if args.limited and allowed:
                    window += f" = {rate / allowed:.0%} of the allowed rate"
                    figures[f"{name}_share_of_limit"] = rate / allowed
                    targets[f"{name}_share_of_limit"] = (">=", 0.9)
            print(f"  {system.value:8} server saw {total:,} requests; 429s sent: "
                  f"{injected.get('429', 0) if isinstance(injected, dict) else '?'}"
                  + (f"; allowed {allowed:.1f}/s" if args.limited and allowed else "") + window)
        engine.storage.close()
    finally:
        server.stop()
    params = {"customers": args.customers, "seed": args.seed, "limited": args.limited,
              "billing_rate": args.billing_rate, "only": sorted(args.only) if args.only else None}
    emit("bench_engine.refresh", params, figures, targets, {"refresh_ok": ok})


def cmd_reconcile(args: argparse.Namespace) -> None:
    cache = Path(args.cache or Path(tempfile.gettempdir()) / "syncdesk-bench-cache")
    cache.mkdir(parents=True, exist_ok=True)
    db = cache / f"snapshot-{args.customers}-{args.seed}-{ANCHOR}.db"
    marker = db.with_suffix(".ok")
    params: dict[str, object] = {"customers": args.customers, "seed": args.seed, "repeat": args.repeat,
                                 "cache": str(cache), "snapshot": "cached" if marker.exists() else "built"}
    targets: dict[str, Target] = {"reconcile_median_s": ("<=", 3)}
    if not marker.exists():
        print(f"building the {args.customers:,}-customer snapshot once (full refresh, no rate limits)…")
        db.unlink(missing_ok=True)
        server = DemoServer(args.customers, args.seed, False, cache)
        print(f"  demo-server ready in {server.startup:.1f} s")
        try:
            engine, took, ok = asyncio.run(full_refresh(server.config, db, False))
            engine.storage.close()
            peak = rss_mb()
            print(f"  full refresh {took:.1f} s; peak RSS {peak:.0f} MB")
            built = {"server_startup_s": server.startup, "snapshot_refresh_s": took, "peak_rss_mb": peak}
            if not ok:
                emit("bench_engine.reconcile", params, built, targets, {"refresh_ok": False})
                raise SystemExit("a system failed: the snapshot is incomplete and not kept")
            marker.write_text(json.dumps({"refresh_seconds": took}))
        finally:
            server.stop()
        print("run again to measure reconciliation in a fresh process")
        emit("bench_engine.reconcile", params, built, targets, {"refresh_ok": True})
        return
    storage = Storage.open_path(db)
    started = time.perf_counter()
    engine = Engine(storage, {})
    asyncio.run(engine.load())
    load_s = time.perf_counter() - started
    snap = engine.snapshot()
    counts = {s.value: d.count() for s, d in snap.systems.items()}
    loaded_rss = rss_mb()
    print(f"snapshot of {args.customers:,} customers loaded in {load_s:.1f} s: {counts}; RSS {loaded_rss:.0f} MB")
    figures: dict[str, Number | None] = {"load_s": load_s, "rss_after_load_mb": loaded_rss}
    figures |= {f"{name}_records_count": n for name, n in counts.items()}
    gc.collect()
    gc.freeze()  # as the console does after each publish: the snapshot is long-lived
    times = []
    result = None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        result = reconcile(snap)
        times.append(time.perf_counter() - t0)
    assert result is not None
    median = sorted(times)[len(times) // 2]
    print(f"reconcile: {len(result.exceptions):,} exceptions; best {min(times):.2f} s, "
          f"median {median:.2f} s over {args.repeat} runs (one core)")
    figures |= {"exceptions_count": len(result.exceptions), "reconcile_best_s": min(times),
                "reconcile_median_s": median}
    t0 = time.perf_counter()
    rows = build_customer_rows(snap, result.exceptions)
    rows_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    RowFilter(rows).order("name")
    sort_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    TimelineIndex(snap)
    tl_s = time.perf_counter() - t0
    print(f"customer rows {rows_s:.2f} s, name order {sort_s:.2f} s, timeline index {tl_s:.2f} s")
    t0 = time.perf_counter()
    index = CustomerIndex.from_snapshot(snap, result.exceptions)
    lookup_index_s = time.perf_counter() - t0
    middle = rows[len(rows) // 2]
    lookups: dict[str, float] = {}
    for what, query in (("id", middle.customer_id), ("party", middle.erp_party or middle.customer_id),
                        ("name", " ".join(middle.name.split()[:2]).upper())):
        t0 = time.perf_counter()
        index.find(query)
        lookups[what] = (time.perf_counter() - t0) * 1000
    print(f"customer lookup: index {lookup_index_s:.2f} s; by id {lookups['id']:.2f} ms, by ERP party id "
          f"{lookups['party']:.2f} ms, by partial name {lookups['name']:.1f} ms (first: builds its search text)")
    figures |= {"lookup_index_s": lookup_index_s, "lookup_id_ms": lookups["id"], "lookup_party_ms": lookups["party"],
                "lookup_name_first_ms": lookups["name"]}
    peak = rss_mb()
    print(f"peak RSS {peak:.0f} MB")
    figures |= {"customer_rows_s": rows_s, "name_order_s": sort_s, "timeline_index_s": tl_s, "peak_rss_mb": peak}
    storage.close()
    emit("bench_engine.reconcile", params, figures, targets)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("refresh")
    r.add_argument("--customers", type=int, default=10_000)
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--limited", action="store_true", help="keep the servers' default rate limits")
    r.add_argument("--billing-rate", type=float, help="with --limited: the billing server's limit (requests/s)")
    r.add_argument("--only", nargs="*", choices=[s.value for s in System], help="refresh only these systems")
    c = sub.add_parser("reconcile")
    c.add_argument("--customers", type=int, default=100_000)
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--repeat", type=int, default=3)
    c.add_argument("--cache", help="folder for the cached snapshot")
    args = p.parse_args()
    {"refresh": cmd_refresh, "reconcile": cmd_reconcile}[args.cmd](args)


if __name__ == "__main__":
    main()
