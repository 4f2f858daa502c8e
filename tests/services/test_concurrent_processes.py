"""Several SyncDesk processes on one machine at once.

- first runs: processes that open the same new database at the same moment (a console and two
  scheduled commands on an empty SYNCDESK_HOME) all succeed: the migration runs under a file
  lock, once; the files are created 0600 (the database, its ``-wal`` and ``-shm``);
- the request budget: processes that pace by the shared budget (``services.io.rate_budget``)
  stay together under one rate, as a vendor counts it; two ``reconcile`` runs against the demo
  at its default Stripe limit get no 429 between them.

The processes are started together and released at once by a "go" file each waits for (after
its imports), so their critical sections overlap.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.core.domain import System
from services.demo.environment import DemoEnvironment, DemoOptions, wait_until_answering
from services.io import rate_budget
from services.io.config import write_profile
from services.io.rate_budget import SharedRateLimiter
from services.store.storage import SCHEMA_HEAD

ROOT = Path(__file__).resolve().parents[2]
#: generous: N Python start-ups at once on a loaded 2-core machine
START_TIMEOUT = 120.0

OPEN_AT_ONCE = """
import sys, time
from pathlib import Path
from services.store.storage import Storage
go, db = Path(sys.argv[1]), Path(sys.argv[2])
Path(sys.argv[3]).touch()  # ready
deadline = time.monotonic() + 120
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit("never released")
    time.sleep(0.002)
Storage.open_path(db).close()
print("ok")
"""

RESERVE = """
import asyncio, json, sys, time
from pathlib import Path
from services.io.rate_budget import SharedRateLimiter
go, budget, count, rate = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
limiter = SharedRateLimiter(budget, "billing http://api.test", rate, burst=1.0)
Path(sys.argv[5]).touch()  # ready
deadline = time.monotonic() + 120
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit("never released")
    time.sleep(0.002)
async def main():
    stamps = []
    for _ in range(count):
        await limiter.acquire()
        stamps.append(time.time())
    print(json.dumps(stamps))
asyncio.run(main())
"""


def start_together(code: str, args: list[list[str]], tmp: Path) -> list[subprocess.CompletedProcess[str]]:
    """Run ``python -c code *a`` for each ``a`` (``{go}`` and ``{ready}`` filled in), release
    them together once all are ready, and wait for each."""
    go = tmp / "go"
    procs: list[subprocess.Popen[str]] = []
    readies: list[Path] = []
    for i, a in enumerate(args):
        ready = tmp / f"ready-{i}"
        readies.append(ready)
        argv = [x.replace("{go}", str(go)).replace("{ready}", str(ready)) for x in a]
        procs.append(subprocess.Popen([sys.executable, "-c", code, *argv], cwd=ROOT, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ}))
    deadline = time.monotonic() + START_TIMEOUT
    while not all(r.exists() for r in readies):
        assert time.monotonic() < deadline, "the processes did not start"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
        time.sleep(0.01)
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=START_TIMEOUT)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


def test_processes_opening_a_new_database_at_once_all_succeed_and_it_is_private(tmp_path: Path) -> None:
    db = tmp_path / "home" / "snapshot-p.db"
    results = start_together(OPEN_AT_ONCE, [["{go}", str(db), "{ready}"]] * 4, tmp_path)
    for r in results:
        assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
    import sqlite3

    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == SCHEMA_HEAD
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"snapshot_record", "quarantined_record", "system_state"} <= tables
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        if path.exists() or path == db:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, (path, oct(path.stat().st_mode))


def bucket_overshoot(times: list[float], rate: float, burst: float) -> float:
    """How far ``times`` go beyond a token bucket of ``rate``/s holding ``burst`` (<= 0: never
    beyond); as tests/services/test_pacing.py checks the servers' buckets."""
    worst, lowest = float("-inf"), float("inf")
    for j, t in enumerate(sorted(times)):
        lowest = min(lowest, j - rate * t)
        worst = max(worst, (j - rate * t) - lowest + 1 - burst)
    return worst


def test_processes_sharing_the_budget_stay_together_under_one_rate(tmp_path: Path) -> None:
    rate, count = 15.0, 30  # two processes: 60 requests, 4 s at the shared rate (2 s each alone)
    budget = tmp_path / "rate-budget.db"
    results = start_together(RESERVE, [["{go}", str(budget), str(count), str(rate), "{ready}"]] * 2, tmp_path)
    for r in results:
        assert r.returncode == 0, r.stderr
    per_process = [json.loads(r.stdout) for r in results]
    merged = sorted(t for stamps in per_process for t in stamps)
    # the two ran at the same time (each one's requests interleave with the other's) ...
    assert min(per_process[0]) < max(per_process[1]) and min(per_process[1]) < max(per_process[0])
    # ... and together kept one rate: a bucket of one request and a second's worth of slack for
    # timer and scheduling jitter (each alone at the full rate would overshoot it by ~30)
    over = bucket_overshoot(merged, rate, burst=2.0)
    assert over <= 0, f"{over:.1f} requests beyond {rate}/s"
    span = merged[-1] - merged[0]
    assert span >= (len(merged) - 2) / rate * 0.95, f"{len(merged)} requests in {span:.2f} s"
    assert stat.S_IMODE(budget.stat().st_mode) == 0o600


# -- whole commands ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited_demo() -> Iterator[DemoEnvironment]:
    """The demo at its default rate limits (Stripe's 25 requests/s), "as of" now."""
    env = DemoEnvironment(DemoOptions(customers=400, seed=4, anchor=int(time.time()))).start()
    asyncio.run(wait_until_answering(env.urls))
    yield env
    env.stop()


def reconcile_at_once(env: DemoEnvironment, tmp_path: Path, n: int,
                      *extra: str) -> list[subprocess.CompletedProcess[str]]:
    config = tmp_path / "config.toml"
    write_profile(config, env.profile("p"))
    home = tmp_path / "home"  # empty: every process is a first run
    procs = [subprocess.Popen([sys.executable, "main.py", "reconcile", "--config", str(config), "--profile", "p",
                               "-q", "--format", "json", *extra], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env={**os.environ, "SYNCDESK_HOME": str(home)})
             for _ in range(n)]
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


@pytest.mark.slow
def test_three_commands_started_at_once_on_an_empty_home_all_succeed(limited_demo: DemoEnvironment,
                                                                     tmp_path: Path) -> None:
    results = reconcile_at_once(limited_demo, tmp_path, 3)
    for r in results:
        assert "Traceback" not in r.stderr, r.stderr
        assert r.returncode == 0, (r.returncode, r.stderr)
        assert isinstance(json.loads(r.stdout), list)
    for db in (tmp_path / "home").glob("*.db"):
        assert stat.S_IMODE(db.stat().st_mode) == 0o600, db


@pytest.mark.slow
def test_two_full_refreshes_at_once_share_the_billing_budget_and_meet_no_429(limited_demo: DemoEnvironment,
                                                                              tmp_path: Path) -> None:
    injector = limited_demo.injectors[System.BILLING]
    assert injector.config.rate_limit == 25.0  # the demo's default, Stripe test mode's
    refused_before, seen_before = injector.injected["429"], sum(injector.requests.values())
    results = reconcile_at_once(limited_demo, tmp_path, 2, "--full")
    for r in results:
        assert r.returncode == 0, (r.returncode, r.stderr)
    seen = sum(injector.requests.values()) - seen_before
    span = (injector.last_at or 0.0) - (injector.first_at or 0.0)
    figures = f"{seen} billing requests, the server's clock span {span:.1f} s"
    # enough that two unshared budgets (2 x 23.75/s) would have overrun the server's 25/s bucket
    assert seen >= 100, figures
    assert injector.injected["429"] - refused_before == 0, figures


def test_a_busy_budget_file_is_waited_for_not_abandoned(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Another process holding the budget's write lock longer than the busy timeout (a loaded
    machine) makes a reservation wait; it never drops to pacing alone (which would let the two
    processes together exceed the rate)."""
    path = tmp_path / "rate-budget.db"
    limiter = SharedRateLimiter(path, "billing http://x", rate=10.0)
    limiter._reserve()  # creates the file and its table
    holder = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    released = threading.Event()

    def release_later() -> None:
        released.wait(rate_budget.BUSY_TIMEOUT_MS / 1000 * 1.5)  # longer than one busy timeout
        holder.execute("COMMIT")

    t = threading.Thread(target=release_later)
    t.start()
    try:
        started = time.monotonic()
        limiter._reserve()
        waited = time.monotonic() - started
    finally:
        released.set()
        t.join()
        holder.close()
        rate_budget.close_all()
    assert limiter._shared, "fell back to pacing alone"
    assert waited >= rate_budget.BUSY_TIMEOUT_MS / 1000
    assert "cannot be used" not in caplog.text
