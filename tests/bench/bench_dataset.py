"""Time and memory of the demo dataset generator at scale.

Run: ``.venv/bin/python tests/bench/bench_dataset.py [customers] [seed]`` (default 100000).
Prints wall time, CPU time, peak RSS and record counts, then a ``BENCH {json}`` line
(tests/bench/report.py). Target: < 60 s wall time for 100,000 customers. Not collected by pytest.
"""

from __future__ import annotations

import resource
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from services.demo.dataset import generate
from tests.bench.report import emit


def main() -> None:
    customers = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0, c0 = time.perf_counter(), time.process_time()
    ds = generate(customers, seed, anchor=1_750_000_000 // 60 * 60)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    b = ds.billing
    print(f"customers={customers} seed={seed}")
    print(f"wall={wall:.1f}s cpu={cpu:.1f}s peak_rss={rss / 1024:.0f} MiB (before: {rss0 / 1024:.0f} MiB)")
    print(f"billing: customers={len(b.customers)} subscriptions={len(b.subscriptions)} "
          f"invoices={len(b.invoices)} ({len(b.invoices) / max(1, customers):.1f}/customer) "
          f"events={len(b.events)}")
    print("erp:", {m: len(t) for m, t in ds.erp.tables.items() if t})
    s = ds.support
    print(f"support: organizations={len(s.organizations)} users={len(s.users)} tickets={len(s.tickets)}")
    manifest = dict(sorted(Counter(m.rule for m in ds.manifest).items()))
    print("manifest:", manifest)
    figures: dict[str, float | int | None] = {
        "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss / 1024, "rss_before_mb": rss0 / 1024,
        "billing_customers_count": len(b.customers), "billing_subscriptions_count": len(b.subscriptions),
        "billing_invoices_count": len(b.invoices), "billing_invoices_per_customer": len(b.invoices) / max(1, customers),
        "billing_events_count": len(b.events),
        "support_organizations_count": len(s.organizations), "support_users_count": len(s.users),
        "support_tickets_count": len(s.tickets), "manifest_count": sum(manifest.values()),
    }
    figures |= {f"erp_{m}_count": len(t) for m, t in ds.erp.tables.items() if t}
    figures |= {f"manifest_{rule}_count": n for rule, n in manifest.items()}
    emit("bench_dataset", {"customers": customers, "seed": seed}, figures, {"wall_s": ("<", 60)})


if __name__ == "__main__":
    main()
