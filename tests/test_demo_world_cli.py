"""The built-in demo remembers, and every profile has its own audit log — on the command line,
as a user walks it (issue G6, items 1 and 2).

- a finance analyst's ``fix --demo`` is seen by the next ``reconcile --demo``, whose refresh
  is incremental; the auditor verifies the demo's log, which holds that fix;
- ``demo reset`` asks, then starts a new world (the audit log kept, the reset recorded);
- a damaged world, or other ``--customers``, is told in one line that names ``demo reset``;
- ``audit verify|export --demo | --profile NAME`` read that profile's log, and only it;
- a screenshot run touches neither the user's demo world nor any audit log of theirs.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app.cli import main
from app.demo import DemoError, start_demo
from services.demo.environment import DemoEnvironment, DemoOptions
from services.io.config import write_profile
from services.store.audit import AuditEntry, AuditLog
from services.store.home import audit_path, demo_dir
from services.store.storage import Storage

ROOT = Path(__file__).resolve().parent.parent
#: one command on a small demo takes a few seconds; the bound only turns a hang into a failure
COMMAND_BUDGET = 180.0


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """``python main.py ARGS`` in a process of its own (SYNCDESK_HOME: the test's, inherited)."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=COMMAND_BUDGET, env=env)


def entries(path: Path) -> list[AuditEntry]:
    storage = Storage.open_path(path, durable=True)
    try:
        return list(reversed(AuditLog(storage).entries()))
    finally:
        storage.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def open_rule(rows: list[dict[str, Any]], rule: str) -> list[str]:
    return sorted(r["object"] for r in rows if r["rule"] == rule)


# -- the demo remembers -----------------------------------------------------------------------------
def test_a_demo_fix_is_seen_by_the_next_command_whose_refresh_is_incremental(syncdesk_home: Path) -> None:
    first = run("reconcile", "--demo", "--customers", "60", "--format", "json")
    assert first.returncode == 0, first.stderr
    missing = open_rule(json.loads(first.stdout), "invoice.missing_in_erp")
    assert missing, "the demo plants missing ERP invoices"
    assert "billing full" in first.stderr  # nothing stored yet: the first refresh is full

    fix = run("fix", "--demo", "--rule", "invoice.missing_in_erp", "--reason", "posting lost", "-q")
    assert fix.returncode == 0, fix.stdout + fix.stderr
    assert f"fix: {len(missing)} actions: {len(missing)} succeeded" in fix.stdout

    again = run("reconcile", "--demo", "--format", "json")
    assert again.returncode == 0, again.stderr
    assert open_rule(json.loads(again.stdout), "invoice.missing_in_erp") == []
    refreshed = next(line for line in again.stderr.splitlines() if line.startswith("refreshed:"))
    for system in ("billing", "erp", "support"):
        assert f"{system} incremental" in refreshed, refreshed

    # the auditor verifies the demo's log: it holds the fix, intent and outcome of each action
    verify = run("audit", "verify", "--demo")
    assert verify.returncode == 0, verify.stderr
    exported = run("audit", "export", "--demo", "--format", "json")
    assert exported.returncode == 0, exported.stderr
    log = json.loads(exported.stdout)
    assert f"audit log intact: {len(log)} entries verified" in verify.stdout
    fixed = {e["exception_id"].split(":", 1)[1] for e in log
             if e["action_kind"] == "retry" and e["outcome"] == "succeeded"}
    assert fixed == set(missing)
    # no profile configured: plain `audit verify` reads the log the console uses, the demo's
    plain = run("audit", "verify")
    assert plain.returncode == 0 and plain.stdout == verify.stdout
    assert (demo_dir() / "audit.db").is_file() and not (syncdesk_home / "audit.db").exists()


def test_demo_reset_asks_then_starts_a_new_world_keeping_the_audit_log(
        syncdesk_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fix", "--demo", "--customers", "60", "--rule", "invoice.missing_in_erp", "-q"]) == 0
    world = demo_dir() / "world.json.gz"
    snapshot = demo_dir() / "snapshot.db"
    before, logged = digest(world), entries(audit_path(demo=True))
    assert snapshot.is_file() and len(logged) >= 2
    capsys.readouterr()

    # not on a terminal and no --yes: nothing is done
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["demo", "reset"]) == 2
    assert "confirm with --yes" in capsys.readouterr().err
    assert digest(world) == before

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    # on a terminal it asks; "n" keeps everything
    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
    assert main(["demo", "reset"]) == 1
    asked = capsys.readouterr().err
    assert "60 customers, seed 1" in asked and "audit log is kept" in asked
    assert digest(world) == before and snapshot.is_file()

    # "y": a new world of the same size, an empty snapshot, the log kept with the reset in it
    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
    assert main(["demo", "reset"]) == 0
    assert "a new demo world: 60 customers, seed 1" in capsys.readouterr().out
    assert digest(world) != before and not snapshot.exists()
    after = entries(audit_path(demo=True))
    assert [e.hash for e in after[: len(logged)]] == [e.hash for e in logged]
    # recorded as actions are: an intent before anything was deleted, then the outcome
    intent, reset = after[len(logged):]
    assert (intent.action_kind, intent.phase, intent.outcome) == ("demo_reset", "intent", "pending")
    assert (reset.action_kind, reset.phase, reset.outcome) == ("demo_reset", "outcome", "succeeded")
    assert intent.action_id == reset.action_id and reset.operator == logged[-1].operator
    assert reset.before["world"].startswith("60 customers, seed 1") and reset.after["customers"] == 60
    assert main(["audit", "verify", "--demo"]) == 0
    assert f"audit log intact: {len(after)} entries verified" in capsys.readouterr().out

    # the planted missing invoices are back: it is a new world
    assert main(["reconcile", "--demo", "--format", "json", "-q"]) == 0
    assert open_rule(json.loads(capsys.readouterr().out), "invoice.missing_in_erp")
    # --customers/--seed choose the new world's; --yes does not ask
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["demo", "reset", "--customers", "30", "--seed", "2", "--yes"]) == 0
    assert "30 customers, seed 2" in capsys.readouterr().out


def test_other_customers_or_a_damaged_world_are_told_with_the_reset_to_run(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reconcile", "--demo", "--customers", "30", "-q", "--format", "json"]) == 0
    capsys.readouterr()
    assert main(["reconcile", "--demo", "--customers", "31", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "the demo world has 30 customers, seed 1" in err and "syncdesk demo reset --customers 31 --seed 1" in err
    with pytest.raises(DemoError) as refused:  # what a console shows, and offers the reset for
        start_demo(31, None)
    assert refused.value.reason == "mismatch" and str(refused.value) in err
    # leaving them out opens the world as it is
    assert main(["reconcile", "--demo", "-q", "--format", "json"]) == 0
    capsys.readouterr()

    world = demo_dir() / "world.json.gz"
    world.write_bytes(world.read_bytes()[:1000])  # cut short, as by a full disk
    damaged = digest(world)
    for command in (["reconcile", "--demo", "-q"], ["fix", "--demo", "--rule", "invoice.missing_in_erp", "-q"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert "is damaged" in err and "syncdesk demo reset" in err and "audit log is kept" in err
        assert digest(world) == damaged  # never replaced without the user's word
    with pytest.raises(DemoError) as unreadable:
        start_demo()
    assert unreadable.value.reason == "unreadable"
    assert main(["demo", "reset", "--yes"]) == 0
    assert main(["reconcile", "--demo", "-q", "--format", "json"]) == 0


# -- one audit log per profile --------------------------------------------------------------------
def test_each_profile_has_its_own_audit_log(syncdesk_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = syncdesk_home / "config.toml"
    # served "as of" now: the profile's clock is the real one
    with DemoEnvironment(DemoOptions(customers=60, seed=1)) as served:
        write_profile(config, served.profile("north"))
        # no log yet: said so
        assert main(["audit", "verify", "--profile", "north"]) == 2
        assert "no audit log of profile 'north'" in capsys.readouterr().err
        assert main(["fix", "--profile", "north", "--rule", "invoice.missing_in_erp", "-q"]) == 0
    assert "fix: 2 actions: 2 succeeded" in capsys.readouterr().out
    north = audit_path("north")
    assert north == syncdesk_home / "audit-north.db" and north.is_file()
    north_entries = entries(north)
    assert north_entries and all(e.action_kind in ("retry", "role_policy") for e in north_entries)
    assert not audit_path(demo=True).exists()  # nothing written to the demo's log

    assert main(["audit", "verify", "--profile", "north"]) == 0
    assert f"{len(north_entries)} entries verified" in capsys.readouterr().out
    # the console's profile (the only one configured) is the default
    assert main(["audit", "verify"]) == 0
    assert f"{len(north_entries)} entries verified" in capsys.readouterr().out
    # the demo has a log of its own, and another profile none
    assert main(["audit", "verify", "--demo"]) == 2
    assert "no audit log of the built-in demo" in capsys.readouterr().err
    assert main(["audit", "export", "--profile", "south", "--format", "json"]) == 2
    assert "no audit log of profile 'south'" in capsys.readouterr().err
    # the log every profile shared before is pointed at, not read
    legacy = syncdesk_home / "audit.db"
    Storage.open_path(legacy, durable=True).close()
    assert main(["audit", "verify", "--profile", "south"]) == 2
    assert f"audit verify --db {legacy}" in capsys.readouterr().err
    assert main(["audit", "export", "--profile", "north", "--format", "json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert [e["action_id"] for e in exported] == [e.action_id for e in north_entries]


# -- screenshots are not operator actions -----------------------------------------------------------
@pytest.mark.gui
def test_a_screenshot_run_leaves_the_users_demo_world_and_audit_log_unchanged(
        syncdesk_home: Path, tmp_path: Path) -> None:
    fix = run("fix", "--demo", "--customers", "60", "--rule", "invoice.missing_in_erp", "-q")
    assert fix.returncode == 0 and "2 succeeded" in fix.stdout, fix.stdout + fix.stderr
    files = [demo_dir() / "world.json.gz", demo_dir() / "snapshot.db", audit_path(demo=True)]
    before = {p.name: digest(p) for p in files}
    logged = entries(audit_path(demo=True))

    # 250 customers: the screenshot's world has an entitlement to push, so it does act (below)
    shot = run("screenshot", "--demo", "--customers", "250", "--out", str(tmp_path / "shots"))
    assert shot.returncode == 0, shot.stderr
    # 7 pages × light, dark × 2 sizes, and the 2 money cases × light, dark at 1920×1080
    assert len(list((tmp_path / "shots").glob("*.png"))) == 32
    assert "screenshot demo fix: succeeded" in (syncdesk_home / "logs" / "syncdesk.log").read_text()

    assert {p.name: digest(p) for p in files} == before
    assert [e.hash for e in entries(audit_path(demo=True))] == [e.hash for e in logged]
    # and no other log appeared in the user's home
    assert sorted(p.name for p in syncdesk_home.rglob("audit*.db")) == ["audit.db"]
