"""``python main.py metrics`` (G2.3) on the demo: JSON with every part and the records behind
each figure, CSV per figure and per group (``--by``), the table, the period options, and the
usage errors (exit 2, one line)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from app.cli import main
from services.metrics import model as m


def test_metrics_json_has_every_figure_with_its_records(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["metrics", "--demo", "--customers", "80", "-q", "--format", "json", "--since", "2020-01-01"]) == 0
    data = json.loads(capsys.readouterr().out)
    keys = {f["key"] for f in data["headline"]}
    assert {m.SUCCESS_RATE, m.POSTING_P95, m.OPEN_EXCEPTIONS, m.MTTR_P50, m.DISPUTES, m.FAILED_MAPPINGS} <= keys
    fig = {f["key"]: f for f in data["headline"]}
    assert fig[m.OPEN_EXCEPTIONS]["value"] == len(fig[m.OPEN_EXCEPTIONS]["records"]["exceptions"]) > 0
    assert fig[m.SUCCESS_RATE]["target"] == {"metric": m.SUCCESS_RATE, "comparison": ">=", "value": 99.5}
    assert data["period"]["since"].startswith("2020-01-01T00:00:00")
    assert len(data["monthly"]) == 12
    assert [a["owner"] for a in data["ageing"]] == ["finance", "support"]
    assert sum(sum(a["counts"]) for a in data["ageing"]) == fig[m.OPEN_EXCEPTIONS]["value"]
    assert {g["flow"] for g in data["governance"]} == set(m.FLOWS)
    assert {f["system"] for f in data["freshness"]} == {"billing", "erp", "support"}
    assert set(data["breaches"]) == {f["key"] for f in data["headline"] if f["breached"]}


def test_metrics_csv_by_team_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m.csv"
    assert main(["metrics", "--demo", "--customers", "80", "-q", "--format", "csv", "--by", "team",
                 "--output", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert {r["group"] for r in rows} == {"", "finance", "support"}
    head = [r for r in rows if r["group"] == ""]
    assert len(rows) == 3 * len(head)
    support_open = next(r for r in rows if r["group"] == "support" and r["metric"] == m.OPEN_EXCEPTIONS)
    finance_open = next(r for r in rows if r["group"] == "finance" and r["metric"] == m.OPEN_EXCEPTIONS)
    total_open = next(r for r in head if r["metric"] == m.OPEN_EXCEPTIONS)
    assert float(support_open["value"]) + float(finance_open["value"]) == float(total_open["value"])
    assert main(["metrics", "--demo", "-q", "--rule", "invoice"]) == 0
    table = capsys.readouterr().out
    assert "Invoice sync success rate" in table and "open exceptions by owner and age" in table
    assert "entitlement." not in table  # only the invoice family


def test_metrics_usage_errors_are_exit_2(syncdesk_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["metrics", "--demo", "--customers", "60", "-q", "--since", "2026-12-10", "--until", "2026-12-01"]) == 2
    assert "--since 2026-12-10 is not before" in capsys.readouterr().err
    (syncdesk_home / "config.toml").write_text("[sla]\nposting_latency_p95 = -5\n", encoding="utf-8")
    assert main(["metrics", "--demo", "-q"]) == 2
    assert "posting_latency_p95: a non-negative number" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["metrics", "--demo", "--since", "yesterday"])
