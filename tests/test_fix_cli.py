"""``syncdesk fix`` and ``syncdesk audit verify|export`` on the built-in demo (in process)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from app.cli import main
from services.core import identity
from services.store.home import audit_path

DEMO = ["--demo", "--customers", "120", "--seed", "1", "-q"]


def test_fix_retries_missing_postings_and_the_log_verifies(syncdesk_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(identity, "os_login", lambda: "kim")  # the OS login the log records
    rc = main(["fix", *DEMO, "--rule", "invoice.missing_in_erp", "--role", "finance"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "fix: 2 actions: 2 succeeded, 0 failed" in out
    db = audit_path(demo=True)
    assert main(["audit", "verify", "--db", str(db)]) == 0
    assert "audit log intact: 4 entries verified" in capsys.readouterr().out
    target = syncdesk_home / "audit.json"
    assert main(["audit", "export", "--format", "json", "--output", str(target), "--db", str(db)]) == 0
    entries = json.loads(target.read_text())
    assert sorted((e["phase"], e["outcome"], e["operator"], e["role"]) for e in entries) == [
        ("intent", "pending", "kim", "finance")] * 2 + [("outcome", "succeeded", "kim", "finance")] * 2
    assert main(["audit", "export", "--format", "csv", "--db", str(db)]) == 0
    csv_text = capsys.readouterr().out
    assert csv_text.splitlines()[0].startswith("seq,at,operator,role,action_id")
    assert len(csv_text.splitlines()) == 5


def test_dry_run_writes_nothing(syncdesk_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["fix", *DEMO, "--rule", "customer.master_drift", "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "POST /v1/customers/cus_" in out and "dry run: 2 plans, 2 ready" in out
    assert audit_path(demo=True).exists()
    con = sqlite3.connect(audit_path(demo=True))
    try:
        assert con.execute("select count(*) from audit_entry").fetchone()[0] == 0
        assert con.execute("select count(*) from action_outbox").fetchone()[0] == 0
    finally:
        con.close()


def test_refusals_exit_non_zero(syncdesk_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fix", *DEMO, "--rule", "invoice.missing_in_erp", "--role", "auditor"]) == 2
    assert "auditors read, verify and export" in capsys.readouterr().err
    # the operator is the login: a name on the command line is not accepted any more
    with pytest.raises(SystemExit) as usage:
        main(["fix", *DEMO, "--rule", "invoice.missing_in_erp", "--operator", "cfo.jane"])
    assert usage.value.code == 2 and "--operator" in capsys.readouterr().err
    # support cannot act on a finance rule; a posted invoice is never corrected in place
    assert main(["fix", *DEMO, "--rule", "invoice.missing_in_erp", "--role", "support"]) == 1
    assert "refused" in capsys.readouterr().out
    rc = main(["fix", *DEMO, "--rule", "invoice.amount_mismatch", "--action", "correct", "--reason", "fix totals",
               "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 1
    statuses = sorted(r["status"] for r in report["results"])
    assert statuses == ["refused", "succeeded"]
    refused = next(r for r in report["results"] if r["status"] == "refused")
    assert "never edited in place" in refused["message"]
    # without --action, each exception gets the fix it allows: the posted invoice is credited and reposted
    rc = main(["fix", *DEMO, "--rule", "invoice.amount_mismatch", "--reason", "fix totals", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    outcomes = [(r["kind"], r["status"]) for r in report["results"]]
    assert outcomes == [("credit_repost", "succeeded")], [r["message"] for r in report["results"]]
    assert rc == 0


def test_accept_needs_an_expiry_and_hides_the_exception(syncdesk_home: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fix", *DEMO, "--rule", "invoice.orphan_in_erp", "--action", "accept", "--reason", "legacy"]) == 1
    assert "expiry" in capsys.readouterr().out
    rc = main(["fix", *DEMO, "--rule", "invoice.orphan_in_erp", "--action", "accept", "--reason", "legacy",
               "--expires", "30d"])
    assert rc == 0, capsys.readouterr().out


def test_audit_verify_without_a_log_and_usage_errors(syncdesk_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify"]) == 2
    assert "no audit log" in capsys.readouterr().err
    assert main(["fix", *DEMO]) == 2
    assert "--rule" in capsys.readouterr().err
