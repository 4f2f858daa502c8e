"""The benchmarks' ``BENCH {json}`` line (tests/bench/report.py): format, key order, ``met``.

Fast: no benchmark runs here (benchmarks are scripts, not tests).
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest

from tests.bench.report import PREFIX, bench_line, emit, parse, rounded

BENCH_DIR = Path(__file__).resolve().parent / "bench"


def test_line_is_prefix_and_one_line_of_sorted_json() -> None:
    line = bench_line("bench_ui.stall", {"customers": 300, "inline": False},
                      {"stall_max_ms": 22, "p99_ms": 17, "median_ms": 5.0}, {"stall_max_ms": ("<=", 50)})

    assert line.startswith("BENCH {")
    assert PREFIX == "BENCH "
    assert "\n" not in line
    payload = json.loads(line[len(PREFIX):])
    assert payload == {
        "bench": "bench_ui.stall",
        "params": {"customers": 300, "inline": False},
        "figures": {"median_ms": 5.0, "p99_ms": 17, "stall_max_ms": 22},
        "targets": {"stall_max_ms": 50},
        "target_ops": {"stall_max_ms": "<="},
        "met": {"stall_max_ms": True},
    }
    # byte for byte what json.dumps(sort_keys=True) makes: keys sorted at every level
    assert line == PREFIX + json.dumps(payload, sort_keys=True)
    assert line.index('"p99_ms"') < line.index('"stall_max_ms"')
    assert line.index('"figures"') < line.index('"met"') < line.index('"params"') < line.index('"targets"')
    assert parse(line) == payload


def test_keys_given_out_of_order_come_out_sorted() -> None:
    line = bench_line("b", {"z": 1, "a": 2}, {"zeta_s": 1.0, "alpha_s": 2.0, "mid_s": 3.0}, {})

    text = line[len(PREFIX):]
    assert text.index('"alpha_s"') < text.index('"mid_s"') < text.index('"zeta_s"')
    assert text.index('"a"') < text.index('"z"')


@pytest.mark.parametrize(("op", "target", "value", "met"), [
    ("<=", 50, 50, True), ("<=", 50, 50.5, False), ("<=", 50, 12, True),
    ("<", 60, 60, False), ("<", 60, 59.9, True),
    (">=", 2000, 2000, True), (">=", 2000, 1999, False), (">=", 0.9, 0.97, True),
    (">", 0, 0, False), (">", 0, 1, True),
])
def test_met_compares_the_figure_with_its_target(op: str, target: float, value: float, met: bool) -> None:
    payload = parse(bench_line("b", {}, {"x_ms": value}, {"x_ms": (op, target)}))

    assert payload["met"] == {"x_ms": met}
    assert payload["targets"] == {"x_ms": target}
    assert payload["target_ops"] == {"x_ms": op}


def test_met_only_for_measured_figures_with_a_target() -> None:
    payload = parse(bench_line(
        "bench_actions", {"skip": ["bulk"]},
        {"appends_per_s": 1500.0, "verify_s": 3.2, "appends_count": 1280},
        {"appends_per_s": (">=", 2000), "verify_s": ("<=", 10), "share_of_limit": (">=", 0.9)},
    ))

    # share_of_limit was not measured (bulk skipped): its target is listed, no verdict is invented
    assert payload["met"] == {"appends_per_s": False, "verify_s": True}
    assert set(payload["targets"]) == {"appends_per_s", "verify_s", "share_of_limit"}


def test_unmeasured_and_non_finite_figures_are_left_out() -> None:
    line = bench_line("b", {}, {"a_s": None, "b_s": math.nan, "c_s": math.inf, "d_s": 1.5}, {"b_s": ("<=", 1)})

    assert "NaN" not in line
    assert "Infinity" not in line
    payload = parse(line)
    assert payload["figures"] == {"d_s": 1.5}
    assert payload["met"] == {}


def test_floats_keep_four_significant_digits_and_ints_stay_ints() -> None:
    assert rounded(0.123456) == 0.1235
    assert rounded(0.000123456) == 0.0001235
    assert rounded(36.04) == 36.04
    assert rounded(1.65432) == 1.654
    assert rounded(19379.47) == 19379.0  # never fewer digits than the integer part
    assert rounded(0.0) == 0.0
    assert rounded(-2.345678) == -2.346
    assert rounded(188_000) == 188_000
    assert isinstance(rounded(188_000), int)
    payload = parse(bench_line("b", {}, {"share_of_limit": 0.981234, "p99_ms": 14.0123}, {}))
    assert payload["figures"] == {"share_of_limit": 0.9812, "p99_ms": 14.01}


def test_met_is_judged_on_the_rounded_figure_that_is_printed() -> None:
    payload = parse(bench_line("b", {}, {"x_s": 2.00001}, {"x_s": ("<=", 2)}))

    assert payload["figures"] == {"x_s": 2.0}
    assert payload["met"] == {"x_s": True}


def test_checks_are_booleans_and_absent_unless_given() -> None:
    assert "checks" not in parse(bench_line("b", {}, {}, {}))
    assert parse(bench_line("b", {}, {}, {}, {"refresh_ok": True, "chain_ok": False}))["checks"] == {
        "chain_ok": False, "refresh_ok": True}


@pytest.mark.parametrize("figure", [True, "12 ms", [1, 2]])
def test_a_figure_that_is_not_a_number_is_refused(figure: object) -> None:
    with pytest.raises(TypeError, match="must be a number"):
        bench_line("b", {}, {"x_ms": figure}, {})


def test_a_bad_target_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown comparison"):
        bench_line("b", {}, {"x_ms": 1}, {"x_ms": ("==", 1)})
    with pytest.raises(ValueError, match="not a finite number"):
        bench_line("b", {}, {"x_ms": 1}, {"x_ms": ("<=", math.nan)})


def test_a_non_finite_param_is_refused() -> None:
    with pytest.raises(ValueError, match="Out of range float"):
        bench_line("b", {"rate": math.nan}, {}, {})


def test_emit_prints_the_line_last_and_returns_it(capsys: pytest.CaptureFixture[str]) -> None:
    print("UI heartbeat (5 ms): longest stall 22 ms")
    line = emit("bench_ui.stall", {"customers": 300}, {"stall_max_ms": 22}, {"stall_max_ms": ("<=", 50)})

    out = capsys.readouterr().out
    assert out.endswith(line + "\n")
    assert out.splitlines() == ["UI heartbeat (5 ms): longest stall 22 ms", line]
    assert parse(out.splitlines()[-1])["met"] == {"stall_max_ms": True}


def test_parse_refuses_another_line() -> None:
    with pytest.raises(ValueError, match="not a BENCH line"):
        parse("peak RSS 511 MB")


def test_every_benchmark_script_emits_a_bench_line() -> None:
    scripts = sorted(BENCH_DIR.glob("bench_*.py"))
    assert {p.name for p in scripts} >= {"bench_actions.py", "bench_dataset.py", "bench_engine.py", "bench_ui.py"}
    for script in scripts:
        tree = ast.parse(script.read_text(encoding="utf-8"))
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                    and node.module == "tests.bench.report" for alias in node.names}
        called = {node.func.id for node in ast.walk(tree)
                  if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
        assert "emit" in imported, f"{script.name} does not import emit from tests.bench.report"
        assert "emit" in called, f"{script.name} never calls emit"
