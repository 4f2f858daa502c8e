"""Benchmark of the console's responsiveness: prints figures, asserts nothing.

    QT_QPA_PLATFORM=offscreen python tests/bench/bench_ui.py stall --customers 10000
    QT_QPA_PLATFORM=offscreen python tests/bench/bench_ui.py filter --rows 100000
    QT_QPA_PLATFORM=offscreen python tests/bench/bench_ui.py launch --customers 10000

- stall: the longest gap between ticks of a 5 ms QTimer heartbeat on the UI thread while the
  real window, adapter and engine run a full refresh of N customers from a ``demo-server``
  process (no server rate limits, so the work is as dense as it gets), including the
  reconciliation and the in-place update of every view. Target ≤ 50 ms. The window shows the
  Overview (the landing page) throughout, and the run lasts until the Overview's figures,
  recomputed after the refresh (off the UI thread), are swapped into its tiles and charts: the
  longest ``set_report`` on the UI thread is printed too (G2 item 6).
- filter: time from a search text to the customer table showing the result, at 100,000 rows.
  Target ≤ 100 ms.
- launch: a fresh process opens the console from a stored N-customer snapshot: time from
  process start (the kernel's start time) to the window showing every customer and the stored
  exceptions, painted and taking input (the rest of the snapshot, for timelines and actions,
  is still being read in a worker thread; that time is printed too). Target ≤ 2 s. Measured
  as launches find the database: with the customer list the previous session stored (and
  once without it, the first launch after an upgrade).

Each sub-command ends with a ``BENCH {json}`` line (tests/bench/report.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")  # qasync: use PySide6 whatever the import order
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import qasync  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402
from sqlalchemy import delete  # noqa: E402

from app.runtime import tune_loop  # noqa: E402
from services.core.domain import System  # noqa: E402
from services.engine import Engine, RefreshMode  # noqa: E402
from services.io.config import load_profile  # noqa: E402
from services.io.http import HttpPolicy  # noqa: E402
from services.store.storage import OVERVIEW, Storage  # noqa: E402
from tests.bench.bench_engine import ANCHOR, DemoServer  # noqa: E402
from tests.bench.report import Number, emit  # noqa: E402

#: seconds after a swap of the Overview's figures whose heartbeat gaps count as its redraw (the paint follows)
REDRAW_S = 0.25
UNLIMITED = {s: HttpPolicy(rate_per_second=None, concurrency=8 if s is not System.ERP else 2) for s in System}


class Heartbeat:
    def __init__(self, interval_ms: int = 5) -> None:
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.clock = QElapsedTimer()
        self.since = QElapsedTimer()
        self.gaps: list[float] = []
        self.ends: list[float] = []  # when each gap ended, ms after start
        self.timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.clock.start()
        self.since.start()
        self.timer.start()

    def _tick(self) -> None:
        self.gaps.append(self.clock.restart())
        self.ends.append(self.since.elapsed())

    def longest(self, n: int = 3) -> str:
        """The ``n`` longest gaps: "length ms at the second they started" each."""
        top = sorted(zip(self.gaps, self.ends, strict=True), reverse=True)[:n]
        return ", ".join(f"{gap:.0f} ms at {(end - gap) / 1000:.2f} s" for gap, end in top)

    def stop(self) -> None:
        self.timer.stop()


def redraw_stall(beat: Heartbeat, swaps: list[tuple[float, float]]) -> float:
    """The Overview's redraw stall: the longest heartbeat gap overlapping a swap of its figures
    (``swaps``: when each started, s after the heartbeat started, and how long it took, ms) or
    the paint that follows it (:data:`REDRAW_S` after the swap)."""
    windows = [(at * 1000, at * 1000 + ms + REDRAW_S * 1000) for at, ms in swaps]
    return max((gap for gap, end in zip(beat.gaps, beat.ends, strict=True)
                if any(end - gap <= hi and end >= lo for lo, hi in windows)), default=0.0)


def _app() -> QApplication:
    from app.runtime import tune_interpreter

    tune_interpreter()  # as the console does (app/console.py)
    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    return app


def cmd_stall(args: argparse.Namespace) -> None:
    from app.console import _service_loop, _wire
    from services.metrics.model import MetricsReport
    from services.runner import InlineLoop, Runner, ServiceLoop
    from views.adapters import EngineAdapter
    from views.main_window import MainWindow

    work = Path(tempfile.mkdtemp(prefix="syncdesk-uibench-"))
    server = DemoServer(args.customers, 1, False, work)
    app = _app()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    tune_loop(loop)
    figures: dict[str, Number | None] = {"server_startup_s": server.startup}

    async def run() -> None:
        profile = load_profile(server.config, "demo")
        storage = Storage.open_path(work / "ui.db")
        # the demo's own "now" (its anchor, moved on since the server started), as the console runs
        # on a demo: the Overview's 30 days then hold the demo's recent invoices, postings and exceptions
        opened = time.monotonic() - server.startup
        engine = Engine.from_profile(profile, storage, policies=UNLIMITED,
                                     clock=lambda: datetime.fromtimestamp(ANCHOR + time.monotonic() - opened, UTC))
        window = MainWindow()
        runner: Runner = InlineLoop() if args.inline else _service_loop().start()
        adapter = EngineAdapter(engine, window, runner=runner)
        # the UI thread's slots (wrapped before they are connected): when each call started (perf_counter)
        # and how long it took (ms), to name where a stall is spent
        slot_calls: list[tuple[float, float, str]] = []

        def timed(name: str, slot: Callable[..., None]) -> Callable[..., None]:
            def run_slot(*a: Any) -> None:
                t0 = time.perf_counter()
                slot(*a)
                slot_calls.append((t0, (time.perf_counter() - t0) * 1000, name))
            return run_slot

        for name in ("set_state", "on_refresh_progress", "set_metrics", "on_refresh_started"):
            setattr(window, name, timed(name, getattr(window, name)))
        _wire(window, adapter)
        window.resize(1920, 1080)
        window.show()
        window.go_to_page(window.PAGES.index(args.page))
        assert (window.stack.currentWidget() is window.overview_page) is (args.page == "Overview")
        # every set_report the Overview gets: when it started (s after the refresh) and how long it took (ms)
        page = window.overview_page
        swaps: list[tuple[float, float]] = []
        original = page.set_report

        def timed_set_report(report: MetricsReport) -> None:
            t0 = time.perf_counter()
            original(report)
            swaps.append((t0 - started, (time.perf_counter() - t0) * 1000))

        page.set_report = timed_set_report  # type: ignore[method-assign]
        started = time.perf_counter()
        figures_in = asyncio.Event()  # the adapter emitted figures (or said why it could not)
        adapter.metrics_changed.connect(lambda _report: figures_in.set())
        adapter.metrics_failed.connect(lambda _text: figures_in.set())

        async def latest_figures(deadline_s: float) -> None:
            """Until the figures of the latest complete state are in (a newer state cancels the
            computation of the one before: wait again while one is still running)."""
            end = time.perf_counter() + deadline_s
            while not figures_in.is_set() or adapter.tasks.running("metrics"):
                figures_in.clear()
                await asyncio.wait_for(figures_in.wait(), max(0.1, end - time.perf_counter()))

        await adapter.load()
        await latest_figures(60)  # the figures of the loaded (empty) snapshot come first
        beat = Heartbeat()
        shown: list[float] = []
        adapter.state_changed.connect(lambda _state: shown.append(time.perf_counter()))
        beat.start()
        started = time.perf_counter()
        before = len(swaps)
        figures_in.clear()
        await adapter.start_refresh(RefreshMode.FULL)
        # the figures follow the refresh's last state, computed on the CPU thread (deadline: generous,
        # a loaded 2-core machine computes them in a few seconds)
        await latest_figures(120)
        await asyncio.sleep(0.3)  # let the views settle after the update
        beat.stop()
        if len(swaps) == before:
            raise SystemExit("the Overview got no figures after the refresh")
        took = time.perf_counter() - started
        gaps = sorted(beat.gaps)
        print(f"full refresh of {args.customers:,} customers with the window open: {took:.1f} s, "
              f"{len(window.state.rows) if window.state else 0:,} rows shown")
        print(f"services on {'the UI loop' if args.inline else 'the service thread'}; the views got the new state "
              f"at {shown[0] - started:.2f} s" if shown else "")
        after = swaps[before:]
        redraw = redraw_stall(beat, after)
        tiles = ", ".join(f"{t.label.text()} {t.value.text()}" for t in list(page.tiles.values())[:3])
        print(f"{args.page} page visible throughout; the Overview's figures swapped in {len(after)} time(s), "
              f"the last at {after[-1][0]:.2f} s; longest set_report {max(ms for _, ms in after):.0f} ms ({tiles}, …); "
              f"Overview redraw stall (longest gap from a swap to {REDRAW_S:.2f} s after it) {redraw:.0f} ms")
        print(f"longest gaps: {beat.longest()}")
        slowest = sorted((c for c in slot_calls if c[0] >= started), key=lambda c: -c[1])[:4]
        print("slowest UI slots during the refresh: "
              + ", ".join(f"{name} {ms:.0f} ms at {t0 - started:.2f} s" for t0, ms, name in slowest))
        print(f"UI heartbeat (5 ms): longest stall {gaps[-1]:.0f} ms, p99 {gaps[int(len(gaps) * 0.99)]:.0f} ms, "
              f"median {statistics.median(gaps):.0f} ms over {len(gaps):,} ticks")
        figures.update({
            "refresh_s": took, "rows_shown_count": len(window.state.rows) if window.state else 0,
            "state_shown_s": shown[0] - started if shown else None, "stall_max_ms": gaps[-1],
            "p99_ms": gaps[int(len(gaps) * 0.99)], "median_ms": statistics.median(gaps), "ticks_count": len(gaps),
            "overview_figures_s": after[-1][0], "overview_set_report_max_ms": max(ms for _, ms in after),
            "overview_swaps_count": len(after), "overview_redraw_stall_ms": redraw,
        })
        # then the refreshes of a session that stays open: the Overview takes new figures each time
        # (a chart that grew with every update would show here, not in the first refresh)
        later: list[tuple[float, float, float]] = []  # (redraw stall, longest set_report, longest stall), ms
        for _ in range(args.refreshes - 1):
            beat = Heartbeat()
            beat.start()
            started = time.perf_counter()
            before = len(swaps)
            figures_in.clear()
            await adapter.start_refresh(RefreshMode.INCREMENTAL)
            await latest_figures(120)
            await asyncio.sleep(0.3)
            beat.stop()
            after = swaps[before:]
            if after:
                later.append((redraw_stall(beat, after), max(ms for _, ms in after), max(beat.gaps)))
        if later:
            print(f"then {len(later)} incremental refreshes: Overview redraw stall "
                  + ", ".join(f"{r:.0f}" for r, _, _ in later) + " ms; set_report "
                  + ", ".join(f"{ms:.0f}" for _, ms, _ in later) + " ms; longest stall "
                  + ", ".join(f"{g:.0f}" for _, _, g in later) + " ms")
            figures.update({"later_refreshes_count": len(later),
                            "later_overview_redraw_stall_max_ms": max(r for r, _, _ in later),
                            "later_set_report_max_ms": max(ms for _, ms, _ in later),
                            "later_stall_max_ms": max(g for _, _, g in later)})
        await adapter.aclose()
        await runner.call(engine.aclose())
        if isinstance(runner, ServiceLoop):
            runner.stop()
        storage.close()

    try:
        loop.run_until_complete(run())
    finally:
        server.stop()
    emit("bench_ui.stall", {"customers": args.customers, "inline": args.inline, "heartbeat_ms": 5,
                            "page": args.page, "refreshes": args.refreshes}, figures,
         {"stall_max_ms": ("<=", 50), "overview_redraw_stall_ms": ("<=", 50)})


def cmd_filter(args: argparse.Namespace) -> None:
    from services.core.domain import Severity
    from services.core.overview import CustomerRow
    from views.customers import CustomersPage

    _app()
    rng = random.Random(7)
    words = ["Alpine", "Birch", "Canyon", "Delta", "Summit", "Harbor", "Quantum", "Nimbus", "Golden", "Urban"]
    kinds = ["Logistics", "Software", "Clinics", "Foods", "Apparel", "Energy", "Works", "Capital"]
    rows = []
    for i in range(args.rows):
        name = f"{rng.choice(words)} {rng.choice(kinds)} {i}"
        cid = f"cus_{i:010d}"
        row = CustomerRow(cid, name, email=f"ap@{name.split()[0].lower()}{i % 500}.example", tax_id=f"DE{i:09d}",
                          erp_party=str(i), erp_code=cid, support_org=str(360000000 + i), status="active",
                          plan="pro_monthly_usd", tier="premium", open_exceptions=i % 17 == 0,
                          worst=Severity.HIGH if i % 17 == 0 else None)
        row.search = "\x00".join([cid, name, row.email, row.tax_id, row.erp_party or "", cid,
                                  row.support_org or ""]).casefold()
        rows.append(row)
    page = CustomersPage()
    page.resize(1300, 800)
    page.show()
    t0 = time.perf_counter()
    page.set_rows(rows)
    QApplication.processEvents()
    first_ms = (time.perf_counter() - t0) * 1000
    print(f"{args.rows:,} rows: first set_rows + paint {first_ms:.0f} ms")
    figures: dict[str, Number | None] = {"first_set_rows_ms": first_ms}
    medians = []
    for query in ["alpine", "summit energy", "cus_00000", "de0000123", "360001", "zzz", ""]:
        times = []
        for _ in range(5):
            page.search_edit.setText(query)
            t0 = time.perf_counter()
            page.apply_filter()
            QApplication.processEvents()
            times.append((time.perf_counter() - t0) * 1000)
        print(f"  filter {query!r:18} -> {page.model.rowCount():>7,} rows: median {statistics.median(times):5.1f} ms, "
              f"max {max(times):5.1f} ms")
        key = "query_" + (re.sub(r"\W+", "_", query) or "empty")
        medians.append(statistics.median(times))
        figures |= {f"{key}_rows_count": page.model.rowCount(), f"{key}_median_ms": medians[-1],
                    f"{key}_max_ms": max(times)}
    figures["worst_query_median_ms"] = max(medians)
    emit("bench_ui.filter", {"rows": args.rows, "repeats_per_query": 5}, figures,
         {"worst_query_median_ms": ("<=", 100)})


def _build_snapshot(customers: int, db: Path) -> float:
    from tests.bench.bench_engine import full_refresh

    work = db.parent
    server = DemoServer(customers, 1, False, work)
    async def build() -> float:
        engine, took, _ = await full_refresh(server.config, db, False)
        # the stored exceptions a launch shows with the customers (as after a console's refresh)
        await engine.reconcile()
        await engine.aclose()
        engine.storage.close()
        return took

    try:
        took = asyncio.run(build())
    finally:
        server.stop()
    print(f"(built a {customers:,}-customer snapshot in {took:.0f} s)")
    return took


def cmd_launch(args: argparse.Namespace) -> None:
    cache = Path(tempfile.gettempdir()) / "syncdesk-uibench-cache"
    cache.mkdir(exist_ok=True)
    db = cache / f"launch-{args.customers}-reconciled.db"  # with its stored exceptions
    cfg = cache / f"demo-{args.customers}-1.toml"
    figures: dict[str, Number | None] = {}
    built = not db.exists() or not cfg.exists()
    if built:
        figures["snapshot_build_s"] = _build_snapshot(args.customers, db)

    def launch() -> tuple[float, str]:
        out = subprocess.run([sys.executable, __file__, "_launch_child", str(db), str(cfg)], capture_output=True,
                             text=True, timeout=120, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
        line = [x for x in out.stdout.splitlines() if x.startswith("interactive")]
        if not line:
            print(out.stdout, out.stderr)
            raise SystemExit("child failed")
        return float(line[0].split()[1]), line[0]

    # A session stores the customer list it shows (services/core/overview.py), so a launch finds
    # the list its predecessor left. Without one (first launch after an upgrade, or after
    # records were written and the session ended before it showed them) the list is built
    # from the snapshot: measured once, first, with the stored list removed.
    storage = Storage.open_path(db)
    with storage.engine.begin() as conn:
        conn.execute(delete(OVERVIEW))
    storage.close()
    took, line = launch()
    print(f"  without a stored customer list: {line}")
    first = _child_figures(line)
    figures |= {"no_stored_list_interactive_s": took, "no_stored_list_window_shown_s": first["window_shown_s"],
                "no_stored_list_complete_s": first["complete_s"]}
    results = []
    children = []
    for _ in range(args.repeat):
        took, line = launch()
        results.append(took)
        children.append(_child_figures(line))
        print("  " + line)
    print(f"launch to interactive with {args.customers:,} customers: median {statistics.median(results):.2f} s "
          f"(best {min(results):.2f} s) over {len(results)} launches")
    figures |= {
        "interactive_median_s": statistics.median(results), "interactive_best_s": min(results),
        "interactive_max_s": max(results),
        "window_shown_median_s": statistics.median(c["window_shown_s"] for c in children),
        "complete_median_s": statistics.median(c["complete_s"] for c in children),
        "customers_listed_count": children[-1]["customers_listed_count"],
        "exceptions_listed_count": children[-1]["exceptions_listed_count"],
    }
    emit("bench_ui.launch", {"customers": args.customers, "repeat": args.repeat,
                             "snapshot": "built" if built else "cached"}, figures,
         {"interactive_median_s": ("<=", 2)})


CHILD_LINE = re.compile(r"interactive (?P<interactive>[\d.]+) s after process start \(window shown at "
                        r"(?P<shown>[\d.]+) s; (?P<customers>[\d,]+) customers, (?P<exceptions>[\d,]+) exceptions "
                        r"listed; whole snapshot with timelines in at (?P<complete>[\d.]+) s\)")


def _child_figures(line: str) -> dict[str, float]:
    """The figures of a launch child's "interactive ..." line (printed by :func:`launch_child`)."""
    m = CHILD_LINE.fullmatch(line)
    if m is None:
        raise SystemExit(f"unexpected launch line: {line!r}")
    return {"interactive_s": float(m["interactive"]), "window_shown_s": float(m["shown"]),
            "customers_listed_count": int(m["customers"].replace(",", "")),
            "exceptions_listed_count": int(m["exceptions"].replace(",", "")), "complete_s": float(m["complete"])}


def _process_age() -> float:
    """Seconds since this process started (Linux: /proc)."""
    ticks = os.sysconf(os.sysconf_names["SC_CLK_TCK"])
    start = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]) / ticks
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - start


def launch_child(db: str, cfg: str) -> None:
    from app.console import _service_loop, _wire
    from views.adapters import EngineAdapter
    from views.main_window import MainWindow

    app = _app()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    tune_loop(loop)

    async def run() -> None:
        profile = load_profile(Path(cfg), "demo")
        storage = await asyncio.to_thread(Storage.open_path, Path(db))
        engine = Engine.from_profile(profile, storage)
        window = MainWindow()
        runner = _service_loop().start()
        adapter = EngineAdapter(engine, window, runner=runner)
        _wire(window, adapter)
        window.show()
        shown = _process_age()
        first: list[float] = []

        def on_state(state: object) -> None:  # runs after the window's own slot has shown the state
            if not first:
                QApplication.processEvents()  # painted
                first.append(_process_age())
                first.append(window.customers_page.model.rowCount())
                first.append(window.exceptions_page.model.total_count())

        adapter.state_changed.connect(on_state)
        await adapter.load()
        QApplication.processEvents()
        complete = _process_age()
        print(f"interactive {first[0]:.2f} s after process start (window shown at {shown:.2f} s; "
              f"{first[1]:,} customers, {first[2]:,} exceptions listed; whole snapshot with timelines "
              f"in at {complete:.2f} s)")
        await adapter.aclose()
        await runner.call(engine.aclose())
        runner.stop()
        storage.close()

    loop.run_until_complete(run())


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_launch_child":
        launch_child(sys.argv[2], sys.argv[3])
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("stall")
    s.add_argument("--customers", type=int, default=10_000)
    s.add_argument("--inline", action="store_true", help="services on the UI loop (as before the service thread)")
    s.add_argument("--refreshes", type=int, default=1,
                   help="refreshes in the same session: the full one, then incremental ones (default 1)")
    s.add_argument("--page", default="Overview", choices=("Overview", "Customers", "Exceptions"),
                   help="the page shown during the refresh (default: the Overview, the landing page)")
    f = sub.add_parser("filter")
    f.add_argument("--rows", type=int, default=100_000)
    la = sub.add_parser("launch")
    la.add_argument("--customers", type=int, default=10_000)
    la.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    {"stall": cmd_stall, "filter": cmd_filter, "launch": cmd_launch}[args.cmd](args)


if __name__ == "__main__":
    main()
