"""Benchmark of services/metrics: prints figures, asserts nothing.

    python tests/bench/bench_metrics.py                          # 100,000 customers, 1,000,000 audit entries
    python tests/bench/bench_metrics.py --customers 10000 --audit 100000

A synthetic snapshot (no servers: the metrics read the loaded snapshot) of N billing customers
with ``--invoices`` finalized invoices each over the last year, their ERP copies (one in fifty
missing, one in a hundred of another amount, the recent ones still posted with their posting
time), a support organization per customer; an exception history of one exception per twenty
customers (half of them closed, some accepted); an audit log of ``--audit`` entries over the
year (rows written directly: the metrics never verify the chain), a tenth of them about those
exceptions, one in twenty a re-run. Then :func:`services.metrics.compute.compute_metrics` is
timed for the last 30 days (and its previous period, the 12 monthly points), and again with
``--by team``.

Target at 100,000 customers and 1,000,000 audit entries: the report in ≤ 1 s from the loaded
snapshot (``compute_s``). The last line is ``BENCH {json}`` (tests/bench/report.py).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402

from services.core.domain import (  # noqa: E402
    Customer,
    Entitlement,
    ExternalRef,
    Invoice,
    InvoiceStatus,
    Money,
    System,
    Tier,
)
from services.core.reconcile import Snapshot  # noqa: E402
from services.core.sysdata import SystemData  # noqa: E402
from services.metrics.compute import compute_metrics  # noqa: E402
from services.metrics.model import GroupBy, Period  # noqa: E402
from services.metrics.sources import audit_time  # noqa: E402
from services.store.storage import ACCEPTED, AUDIT, EXC, STATE, Storage  # noqa: E402
from tests.bench.report import Number, Target, emit  # noqa: E402

NOW = datetime(2026, 12, 1, tzinfo=UTC)
DAY = 86400
COMPUTE_TARGET: Target = ("<=", 1)


def snapshot(n: int, per_customer: int, rng: random.Random) -> Snapshot:
    b, e, s = SystemData(System.BILLING), SystemData(System.ERP), SystemData(System.SUPPORT)
    prices = [Money(Decimal(p), "EUR") for p in ("49.00", "99.00", "249.00", "990.00")]
    other = Money(Decimal("1.00"), "EUR")
    start = NOW.timestamp() - 365 * DAY
    party = 0
    for i in range(n):
        cid = f"cus_{i:08d}"
        b.customers[cid] = Customer(ExternalRef(System.BILLING, "customer", cid), cid, f"Customer {i}")
        org = str(360_000_000 + i)
        s.entitlements[org] = Entitlement(ExternalRef(System.SUPPORT, "organization", org), cid, Tier.PREMIUM,
                                          updated=NOW - timedelta(seconds=rng.randint(0, 365 * DAY)))
        total = prices[i % len(prices)]
        for k in range(per_customer):
            iid = f"in_{i:08d}_{k:02d}"
            fin = datetime.fromtimestamp(start + rng.random() * 365 * DAY, UTC)
            paid = fin < NOW - timedelta(days=20)
            b.invoices[iid] = Invoice(ExternalRef(System.BILLING, "invoice", iid), cid,
                                      InvoiceStatus.PAID if paid else InvoiceStatus.OPEN, total, finalized_at=fin,
                                      created=fin)
            x = rng.random()
            if x < 0.02:
                continue  # never reached the ERP
            party += 1
            created = fin + timedelta(seconds=rng.randint(60, 600))
            e.invoices[str(party)] = Invoice(
                ExternalRef(System.ERP, "account.invoice", str(party)), cid,
                InvoiceStatus.PAID if paid else InvoiceStatus.POSTED, other if x < 0.03 else total,
                billing_invoice_id=iid, created=created, posted_at=None if paid else created)
    return Snapshot({System.BILLING: b, System.ERP: e, System.SUPPORT: s})


def history(storage: Storage, n: int, rng: random.Random) -> list[str]:
    rows = []
    for i in range(0, n, 20):
        first = NOW - timedelta(seconds=rng.randint(3600, 200 * DAY))
        closed = first + timedelta(seconds=rng.randint(60, 20 * DAY)) if i % 40 == 0 else None
        rows.append(dict(id=f"invoice.missing_in_erp:in_{i:08d}_00", rule="invoice.missing_in_erp",
                         severity="critical" if i % 100 == 0 else "medium", owner="finance",
                         customer_id=f"cus_{i:08d}", object_id=f"in_{i:08d}_00", summary="s", payload="{}",
                         first_seen=first, last_seen=closed or NOW,
                         closed_at=closed if closed and closed < NOW else None))
    with storage.engine.begin() as conn:
        conn.execute(insert(EXC), rows)
        conn.execute(insert(STATE), [dict(system=s.value, refreshed_at=NOW - timedelta(minutes=5)) for s in System])
    return [r["id"] for r in rows]


def audit_log(storage: Storage, entries: int, exception_ids: list[str], rng: random.Random) -> None:
    start = NOW.timestamp() - 365 * DAY
    times = sorted(start + rng.random() * 365 * DAY for _ in range(entries))
    batch: list[dict[str, object]] = []
    kinds = ("retry", "post", "push", "create", "flag", "accept")
    with storage.engine.begin() as conn:
        for seq, t in enumerate(times, 1):
            mine = rng.random() < 0.1
            exc = rng.choice(exception_ids) if mine else f"other:{rng.randint(0, 200_000)}"
            attempt = 2 if rng.random() < 0.05 else 1
            intent = seq % 2 == 1
            batch.append(dict(
                seq=seq, at=audit_time(datetime.fromtimestamp(t, UTC)), operator="ann", role="finance",
                action_id=f"a{seq // 2}", action_kind=kinds[seq % len(kinds)], phase="intent" if intent else "outcome",
                exception_id=exc, customer_id=None, target_system="erp",
                request=f'{{"attempt":{attempt},"calls":[],"idempotency_key":"k{seq}"}}', before="{}", after="{}",
                outcome="pending" if intent else ("succeeded" if rng.random() < 0.9 else "failed"), error=None,
                reason=None, prev_hash="", hash=f"{seq:064x}"))
            if len(batch) >= 50_000:
                conn.execute(insert(AUDIT), batch)
                batch = []
        if batch:
            conn.execute(insert(AUDIT), batch)
        conn.execute(insert(ACCEPTED), [dict(exception_id=x, fingerprint="f", reason="r", operator="ann",
                                              accepted_at=(NOW - timedelta(days=3)).isoformat(),
                                              expires_at=(NOW + timedelta(days=30)).isoformat())
                                         for x in exception_ids[::17]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--invoices", type=int, default=4, help="finalized invoices per customer over the year")
    ap.add_argument("--audit", type=int, default=1_000_000, help="audit entries")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    snap = snapshot(args.customers, args.invoices, rng)
    build_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        store = Storage.open_path(Path(tmp) / "snapshot.db")
        audit = Storage.open_path(Path(tmp) / "audit.db")
        t0 = time.perf_counter()
        ids = history(store, args.customers, rng)
        audit_log(audit, args.audit, ids, rng)
        write_s = time.perf_counter() - t0
        print(f"{args.customers:,} customers, {len(snap.get(System.BILLING).invoices):,} billing invoices, "
              f"{len(ids):,} exceptions, {args.audit:,} audit entries (built in {build_s:.1f} s, "
              f"written in {write_s:.1f} s)")
        period = Period(NOW - timedelta(days=30), NOW)
        t0 = time.perf_counter()
        if os.environ.get("BENCH_PROFILE"):
            import cProfile
            cProfile.runctx("compute_metrics(snap, store, audit, period=period, now=NOW)", globals(), locals(),
                            sort="cumtime")
        report = compute_metrics(snap, store, audit, period=period, now=NOW)
        compute_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        grouped = compute_metrics(snap, store, audit, period=period, now=NOW, group_by=GroupBy.TEAM)
        grouped_s = time.perf_counter() - t0
        store.close()
        audit.close()
    for f in report.headline:
        print(f"  {f.label:34} {f.value!s:>22}  (previous {f.previous})")
    print(f"report in {compute_s:.3f} s; with --by team in {grouped_s:.3f} s ({len(grouped.groups)} groups); "
          f"retries {report.retries.attempts:,}, resolved {report.resolution.resolved:,}")
    figures: dict[str, Number | None] = {
        "customers_count": args.customers, "audit_entries_count": args.audit, "compute_s": compute_s,
        "compute_by_team_s": grouped_s, "snapshot_build_s": build_s, "store_write_s": write_s,
        "retries_count": report.retries.attempts, "resolved_count": report.resolution.resolved,
    }
    emit("bench_metrics", {"customers": args.customers, "invoices_per_customer": args.invoices,
                           "audit_entries": args.audit, "seed": args.seed},
         figures, {"compute_s": COMPUTE_TARGET})


if __name__ == "__main__":
    main()
