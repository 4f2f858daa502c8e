"""SLA targets per metric, from the ``[sla]`` table of config.toml (defaults below).

    [sla]
    invoice_sync_success_rate = 99.5     # percent, at least
    posting_latency_p95 = 3600           # seconds, at most
    activation_latency_p95 = 3600        # seconds, at most
    mttr_p95 = 604800                    # seconds, at most
    failed_account_mappings = 0          # count, at most
    open_critical_exceptions = 0         # count, at most
    data_freshness_max_age = 86400       # seconds, at most

A key set to ``false`` removes that target. Whether a figure meets its target is
:meth:`services.metrics.model.SlaTarget.met_by`; a breach is a flag in the report."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.metrics import model as m
from services.metrics.model import Comparison, SlaTarget


class SlaConfigError(ValueError):
    pass


#: metric -> (comparison, default target)
DEFAULTS: dict[str, tuple[Comparison, float]] = {
    m.SUCCESS_RATE: (Comparison.AT_LEAST, 99.5),
    m.POSTING_P95: (Comparison.AT_MOST, 3600.0),
    m.ACTIVATION_P95: (Comparison.AT_MOST, 3600.0),
    m.MTTR_P95: (Comparison.AT_MOST, 7 * 86400.0),
    m.FAILED_MAPPINGS: (Comparison.AT_MOST, 0.0),
    m.OPEN_CRITICAL: (Comparison.AT_MOST, 0.0),
    m.FRESHNESS_MAX: (Comparison.AT_MOST, 86400.0),
}


def _defaults() -> dict[str, SlaTarget]:
    return {k: SlaTarget(k, c, v) for k, (c, v) in DEFAULTS.items()}


@dataclass(frozen=True)
class SlaConfig:
    targets: dict[str, SlaTarget] = field(default_factory=_defaults)

    def target(self, metric: str) -> SlaTarget | None:
        return self.targets.get(metric)


def parse_sla(data: dict[str, Any]) -> SlaConfig:
    """The targets of a parsed config.toml (its ``[sla]`` table over the defaults)."""
    table = data.get("sla", {})
    if not isinstance(table, dict):
        raise SlaConfigError("[sla] must be a table")
    targets = _defaults()
    for key, value in table.items():
        if key not in DEFAULTS:
            raise SlaConfigError(f"[sla]: unknown metric {key!r} (known: {', '.join(sorted(DEFAULTS))})")
        if value is False:
            targets.pop(key, None)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise SlaConfigError(f"[sla] {key}: a non-negative number or false, not {value!r}")
        if key == m.SUCCESS_RATE and value > 100:
            raise SlaConfigError(f"[sla] {key}: a percentage (0..100), not {value!r}")
        targets[key] = SlaTarget(key, DEFAULTS[key][0], float(value))
    return SlaConfig(targets)


def load_sla(path: Path | None) -> SlaConfig:
    """The targets in ``path`` (defaults when ``path`` is None or does not exist)."""
    if path is None or not path.exists():
        return SlaConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SlaConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_sla(data)
