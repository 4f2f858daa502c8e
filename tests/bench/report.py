"""The machine-readable last line every benchmark script prints: ``BENCH {json}``.

A benchmark prints its human-readable figures as it goes, then, as the very last line of its
stdout, :func:`emit` writes ``BENCH `` and one line of JSON (keys sorted)::

    BENCH {"bench": "bench_ui.stall", "figures": {"stall_max_ms": 36.0, ...},
           "met": {"stall_max_ms": true}, "params": {"customers": 10000, ...},
           "target_ops": {"stall_max_ms": "<="}, "targets": {"stall_max_ms": 50}}

- ``bench``: ``<script>.<sub-command>`` (the script's name alone when it has no sub-commands);
- ``params``: the sizes and options of the run;
- ``figures``: numbers, the unit in the key's name (``_s``, ``_ms``, ``_mb``, ``_per_s``,
  ``_count``, ``share_of_limit`` as a fraction); floats keep four significant digits (never
  fewer than the integer part); a figure that is ``None`` or not finite was not measured and is
  left out;
- ``targets``: the target the script's docstring states for a figure, and ``target_ops`` how the
  figure must compare to it (``<=``, ``<``, ``>=``, ``>``);
- ``met``: for each figure that has a target and was measured, whether it meets it;
- ``checks`` (only when given): yes/no facts of the run (``chain_ok``, ``refresh_ok`` ...).

Targets are stated for the scripts' default sizes; ``met`` compares whatever size was run.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Mapping

PREFIX = "BENCH "

Number = int | float
Target = tuple[str, Number]
"""``(op, value)``: the figure must be ``op value``, e.g. ``("<=", 50)``."""

OPS: dict[str, Callable[[Number, Number], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt,
}


def rounded(value: Number) -> Number:
    """An int as it is; a float to four significant digits, never dropping integer digits."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"a figure must be a number, not {value!r}")
    if isinstance(value, int) or value == 0:
        return value
    digits = max(0, 3 - math.floor(math.log10(abs(value))))
    return round(value, digits)


def _finite(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"a figure must be a number, not {value!r}")
    return math.isfinite(value)


def bench_line(bench: str, params: Mapping[str, object], figures: Mapping[str, Number | None],
               targets: Mapping[str, Target], checks: Mapping[str, bool] | None = None) -> str:
    """The ``BENCH {json}`` line (without a newline); see the module docstring."""
    kept = {k: rounded(v) for k, v in figures.items() if v is not None and _finite(v)}
    for name, (op, value) in targets.items():
        if op not in OPS:
            raise ValueError(f"target {name!r}: unknown comparison {op!r} (one of {', '.join(OPS)})")
        if not math.isfinite(value):
            raise ValueError(f"target {name!r}: {value!r} is not a finite number")
    met = {name: OPS[op](kept[name], value) for name, (op, value) in targets.items() if name in kept}
    payload: dict[str, object] = {
        "bench": bench,
        "params": dict(params),
        "figures": kept,
        "targets": {name: value for name, (_op, value) in targets.items()},
        "target_ops": {name: op for name, (op, _value) in targets.items()},
        "met": met,
    }
    if checks is not None:
        payload["checks"] = {k: bool(v) for k, v in checks.items()}
    return PREFIX + json.dumps(payload, sort_keys=True, allow_nan=False)


def emit(bench: str, params: Mapping[str, object], figures: Mapping[str, Number | None],
         targets: Mapping[str, Target], checks: Mapping[str, bool] | None = None) -> str:
    """Print the ``BENCH {json}`` line (call it last) and return it."""
    line = bench_line(bench, params, figures, targets, checks)
    print(line, flush=True)
    return line


def parse(line: str) -> dict[str, object]:
    """The JSON of a ``BENCH`` line (for whoever reads the benchmarks' output)."""
    if not line.startswith(PREFIX):
        raise ValueError(f"not a BENCH line: {line[:40]!r}")
    result: dict[str, object] = json.loads(line[len(PREFIX):])
    return result
