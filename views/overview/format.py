"""How the Overview words a figure (Qt-free): its value in its unit, its change against the
previous period (better or worse, by the figure's target), its SLA target.

Durations are seconds, rates percentages 0..100 (``services.metrics.model``); every text is
plain and short enough for a tile."""

from __future__ import annotations

import math

from services.metrics.model import Comparison, Figure, SlaTarget, Unit

NO_DATA = "no data"
MINUS = "\u2212"  # a real minus sign: "−3 min"


def duration_text(seconds: float) -> str:
    """``"42 s"``, ``"12 min"``, ``"3 h 5 min"``, ``"2 d 4 h"``."""
    s = round(abs(seconds))
    if s < 60:
        return f"{s} s"
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def percent_text(value: float) -> str:
    """``"99.62 %"`` near 100 (where the decimals matter), else ``"87.5 %"``."""
    if 99.0 <= value < 100.0:
        return f"{math.floor(value * 100) / 100:.2f} %"  # never rounded up to "100.00 %"
    return f"{value:.1f} %"


def value_text(value: float | None, unit: Unit) -> str:
    if value is None:
        return NO_DATA
    if unit is Unit.PERCENT:
        return percent_text(value)
    if unit is Unit.SECONDS:
        return duration_text(value)
    return f"{round(value):,}"


def higher_is_better(figure: Figure) -> bool:
    """By the figure's target; without one, rates are better high, durations and counts low."""
    if figure.target is not None:
        return figure.target.comparison is Comparison.AT_LEAST
    return figure.unit is Unit.PERCENT


def change(figure: Figure) -> tuple[str, int]:
    """(text, direction) of the change against the previous period: direction +1 better,
    -1 worse, 0 unchanged or unknown. ``"↑ +0.40 pts, better"``, ``"↓ −12 min, better"``."""
    if figure.value is None or figure.previous is None:
        return ("no previous figure" if figure.value is not None else "", 0)
    delta = figure.value - figure.previous
    if figure.unit is Unit.PERCENT:
        amount = f"{abs(delta):.2f} pts" if abs(delta) < 1 else f"{abs(delta):.1f} pts"
        same = abs(delta) < 0.005
    elif figure.unit is Unit.SECONDS:
        amount = duration_text(delta)
        same = abs(delta) < 0.5
    else:
        amount = f"{round(abs(delta)):,}"
        same = round(delta) == 0
    if same:
        return ("= same as the previous period", 0)
    up = delta > 0
    better = up == higher_is_better(figure)
    sign = "+" if up else MINUS
    return (f"{'↑' if up else '↓'} {sign}{amount}, {'better' if better else 'worse'}", 1 if better else -1)


def target_text(target: SlaTarget | None, unit: Unit) -> str:
    """``"target ≤ 1 h"``, ``"target ≥ 99.50 %"``; "" without a target."""
    if target is None:
        return ""
    sign = "≤" if target.comparison is Comparison.AT_MOST else "≥"
    return f"target {sign} {value_text(target.value, unit)}"


def sla_text(figure: Figure) -> str:
    """``"SLA breached: target ≤ 1 h"`` / ``"SLA met: target ≤ 1 h"`` / ``""``."""
    target = target_text(figure.target, figure.unit)
    if not target:
        return ""
    return f"{'SLA breached' if figure.breached else 'SLA met'}: {target}"
