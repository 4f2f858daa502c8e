"""Benchmark of the customer lookup (services.core.lookup): prints figures, asserts nothing.

    python tests/bench/bench_lookup.py                      # 100,000 customers
    python tests/bench/bench_lookup.py --customers 10000 --repeat 50

A synthetic snapshot (no servers: the lookup only reads the snapshot) of N billing customers,
each with an ERP party and a support organization, names drawn from word lists with accents
in one name of eight; then the index is built and every kind of query is timed: a billing id,
an ERP party id, a support organization id, an e-mail domain, a unique id prefix, a unique
partial name (accents and case differing), a common word (thousands of matches), and a miss.

Targets at 100,000 customers: each lookup's median ≤ 100 ms (the command line resolves one
query per run; the console could look up as the user types); the index built in ≤ 3 s.
The last line is ``BENCH {json}`` (tests/bench/report.py).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from services.core.domain import Customer, Entitlement, ExternalRef, System, Tier  # noqa: E402
from services.core.lookup import CustomerIndex  # noqa: E402
from services.core.reconcile import Snapshot  # noqa: E402
from services.core.sysdata import SystemData  # noqa: E402
from tests.bench.report import Number, Target, emit  # noqa: E402

FIRST = ["Blue", "Iron", "Coastal", "Quarry", "Beacon", "Open", "Rapid", "Indigo", "Cobalt", "Summit", "Nordic",
         "Müller", "Zürich", "Øresund", "Crédit", "São"]
SECOND = ["Robotics", "Software", "Fabrication", "Design", "Apparel", "Systems", "Gardens", "Energy", "Logistics",
          "Straßenbau", "Médical", "Analytics"]
LEGAL = ["GmbH", "Corp.", "LLC", "Ltd", "AG", "SA", "UG", "LLP", "Inc."]
LOOKUP_TARGET: Target = ("<=", 100)


def snapshot(n: int, seed: int) -> tuple[Snapshot, list[tuple[str, str, str, str, str]]]:
    """N customers; answers the snapshot and (customer id, party id, org id, domain, name) of each."""
    rng = random.Random(seed)
    b, e, s = SystemData(System.BILLING), SystemData(System.ERP), SystemData(System.SUPPORT)
    facts = []
    for i in range(n):
        cid = f"cus_{rng.getrandbits(64):016x}"
        name = f"{rng.choice(FIRST)} {rng.choice(SECOND)} {i} {rng.choice(LEGAL)}"
        domain = f"c{i}.example"
        party, org = str(i + 1), str(360_000_000 + i)
        b.customers[cid] = Customer(ExternalRef(System.BILLING, "customer", cid), cid, name, f"billing@{domain}",
                                    f"DE{i:09d}", "DE")
        e.customers[party] = Customer(ExternalRef(System.ERP, "party.party", party), cid, name, f"ap@{domain}")
        s.customers[org] = Customer(ExternalRef(System.SUPPORT, "organization", org), cid, name)
        s.entitlements[org] = Entitlement(ExternalRef(System.SUPPORT, "organization", org), cid, Tier.PREMIUM)
        facts.append((cid, party, org, domain, name))
    return Snapshot({System.BILLING: b, System.ERP: e, System.SUPPORT: s}), facts


def timed(index: CustomerIndex, queries: list[str]) -> tuple[float, int]:
    """Median ms of one lookup over ``queries``, and the matches of the last one."""
    times = []
    count = 0
    for q in queries:
        t0 = time.perf_counter()
        count = len(index.find(q).matches)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), count


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeat", type=int, default=20, help="queries of each kind")
    args = p.parse_args()
    snap, facts = snapshot(args.customers, args.seed)
    rng = random.Random(args.seed + 1)
    t0 = time.perf_counter()
    index = CustomerIndex.from_snapshot(snap)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    index.prepare()
    prepare_s = time.perf_counter() - t0
    print(f"{args.customers:,} customers: index built in {build_s:.2f} s, partial search prepared in {prepare_s:.2f} s")
    picks = [rng.choice(facts) for _ in range(args.repeat)]

    def partial(name: str) -> str:  # "Müller Straßenbau 123 GmbH" -> "MULLER strassenbau 123"
        first, second, number, _legal = name.split(" ")
        return f"{first.upper()} {second.replace('ß', 'ss')} {number}"

    kinds = {
        "billing_id": [c[0] for c in picks],
        "erp_party_id": [c[1] for c in picks],
        "support_org_id": [c[2] for c in picks],
        "email_domain": [c[3] for c in picks],
        "id_prefix": [c[0][:12] for c in picks],
        "partial_name": [partial(c[4]) for c in picks],
        "common_word": ["robotics"] * args.repeat,
        "miss": [f"nobody {i}" for i in range(args.repeat)],
    }
    figures: dict[str, Number | None] = {"customers_count": args.customers, "index_build_s": build_s,
                                         "partial_prepare_s": prepare_s}
    targets: dict[str, Target] = {"index_build_s": ("<=", 3)}
    for kind, queries in kinds.items():
        median, count = timed(index, queries)
        print(f"  {kind:15} median {median:7.2f} ms  ({count} matches for the last query)")
        figures[f"{kind}_median_ms"] = median
        targets[f"{kind}_median_ms"] = LOOKUP_TARGET
    emit("bench_lookup", {"customers": args.customers, "seed": args.seed, "repeat": args.repeat}, figures, targets)


if __name__ == "__main__":
    main()
