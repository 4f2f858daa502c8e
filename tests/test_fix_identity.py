"""``syncdesk fix``: who acts is who is logged in.

- a role the login does not hold (``[roles]`` in SYNCDESK_HOME/config.toml) is refused with
  exit 2 before anything is started or written; so is any act of a login that holds only the
  auditor role or is not listed at all — a bulk fix and a ``--resume`` alike;
- a malformed ``[roles]`` table is exit 2 naming the key;
- the audit log records the login: a policy that changed since the log last saw it is one
  ``role_policy`` entry before the first action (once per change), the actions carry the login,
  and ``USER``/``LOGNAME`` in the environment change nothing (a real process, its real login).

The login is faked in-process through the documented seam (``services.core.identity.os_login``).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from services.core import identity
from services.demo.environment import DemoEnvironment, DemoOptions, wait_until_answering
from services.io.config import write_profile
from services.store.home import audit_path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ["--demo", "--customers", "120", "--seed", "1", "-q"]
MISSING = ["--rule", "invoice.missing_in_erp"]
ROLES = '[roles]\nalice = "finance"\nbob = "auditor"\ncarol = "support"\n'


def as_login(monkeypatch: pytest.MonkeyPatch, login: str) -> None:
    monkeypatch.setattr(identity, "os_login", lambda: login)


def audit_rows(db: Path) -> list[sqlite3.Row]:
    assert db.exists(), f"no audit log at {db}"
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return list(con.execute("select * from audit_entry order by seq"))
    finally:
        con.close()


def test_a_role_the_login_lacks_is_refused_with_exit_2_and_nothing_written(
        syncdesk_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    config = syncdesk_home / "config.toml"
    config.write_text(ROLES)
    as_login(monkeypatch, "carol")
    assert main(["fix", *DEMO, *MISSING, "--role", "finance"]) == 2
    err = capsys.readouterr().err
    assert err == (f"fix: carol does not hold the finance role (granted by the [roles] table of {config}: support); "
                   "nothing was done\n")
    as_login(monkeypatch, "mallory")  # not listed: read-only
    assert main(["fix", *DEMO, *MISSING, "--role", "finance"]) == 2
    assert f"mallory is not listed in the [roles] table of {config}, so it holds no role that can act" in \
        capsys.readouterr().err
    assert not audit_path(demo=True).exists(), "nothing was opened, let alone written"


def test_an_auditor_only_login_cannot_run_a_bulk_fix(syncdesk_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    (syncdesk_home / "config.toml").write_text(ROLES)
    for login, why in (("bob", "bob holds only the auditor role"), ("mallory", "mallory is not listed")):
        as_login(monkeypatch, login)
        for role in ([], ["--role", "auditor"]):  # its default role is auditor; asking for it changes nothing
            assert main(["fix", *DEMO, *MISSING, *role]) == 2
            err = capsys.readouterr().err
            assert why in err and f"{login} is an auditor: auditors read, verify and export; they never act" in err
    assert not audit_path(demo=True).exists()
    # the same command by a finance login runs (the refusal was the role, nothing else)
    as_login(monkeypatch, "alice")
    assert main(["fix", *DEMO, *MISSING]) == 0
    assert "fix: 2 actions: 2 succeeded" in capsys.readouterr().out


@pytest.fixture
def served() -> Iterator[DemoEnvironment]:
    env = DemoEnvironment(DemoOptions(customers=60, seed=2, anchor=int(time.time()))).start()
    asyncio.run(wait_until_answering(env.urls))
    yield env
    env.stop()


def test_an_auditor_only_login_cannot_resume(served: DemoEnvironment, syncdesk_home: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    config = syncdesk_home / "config.toml"
    write_profile(config, served.profile("demo"))
    config.write_text(config.read_text() + ROLES)
    audit_db = syncdesk_home / "resume-audit.db"
    resume = ["fix", "--config", str(config), "--profile", "demo", "-q", "--resume", "--audit-db", str(audit_db)]
    as_login(monkeypatch, "bob")
    assert main(resume) == 2
    assert "bob is an auditor: auditors read, verify and export; they never act" in capsys.readouterr().err
    assert not audit_db.exists()
    as_login(monkeypatch, "alice")  # the resume itself works for a finance login: nothing was pending
    assert main(resume) == 0
    assert "fix: 0 actions" in capsys.readouterr().out


def test_a_malformed_roles_table_is_exit_2_naming_the_key(syncdesk_home: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    config = syncdesk_home / "config.toml"
    config.write_text('[roles]\nalice = "finanse"\n')
    assert main(["fix", *DEMO, *MISSING]) == 2
    assert capsys.readouterr().err == (f"fix: {config}: [roles] 'alice': unknown role 'finanse' "
                                       "(roles: finance, support, auditor)\n")
    assert not audit_path(demo=True).exists()


def test_the_log_records_the_login_and_each_change_of_policy_once(
        syncdesk_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    config = syncdesk_home / "config.toml"
    db = audit_path(demo=True)

    def kinds() -> list[str]:
        return [r["action_kind"] for r in audit_rows(db)]

    as_login(monkeypatch, "alice")
    assert main(["fix", *DEMO, *MISSING]) == 0  # no [roles] table: the default, nothing to record
    first = kinds()
    assert first == ["retry"] * 4
    config.write_text(ROLES)
    assert main(["fix", *DEMO, "--rule", "customer.master_drift"]) == 0
    second = kinds()
    # the change is written before the first action of the run that saw it
    assert second[:5] == [*first, "role_policy"] and second[5:] and set(second[5:]) == {"push"}, second
    # the same policy again: not recorded again (the demo world kept the first run's postings, so
    # nothing is left to retry: exit 5, and the policy is still checked before anything else)
    assert main(["fix", *DEMO, *MISSING]) == 5
    assert kinds().count("role_policy") == 1
    config.write_text(ROLES.replace('carol = "support"', 'carol = ["support", "finance"]'))
    assert main(["fix", *DEMO, *MISSING]) == 5
    capsys.readouterr()
    rows = audit_rows(db)
    policy = [r for r in rows if r["action_kind"] == "role_policy"]
    assert [(r["operator"], r["role"], r["phase"], r["reason"]) for r in policy] == [
        ("alice", "finance", "policy", "role policy changed: alice = finance; bob = auditor; carol = support "
                                       "(was: no [roles] table (the local login holds every role))"),
        ("alice", "finance", "policy", "role policy changed: alice = finance; bob = auditor; carol = support, "
                                       "finance (was: alice = finance; bob = auditor; carol = support)")]
    assert {r["operator"] for r in rows} == {"alice"}  # every entry: the login
    assert main(["audit", "verify", "--db", str(db)]) == 0
    assert f"{len(rows)} entries verified" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="platform: POSIX password database")
def test_a_real_process_records_its_login_whatever_the_environment_says(syncdesk_home: Path) -> None:
    import pwd

    login = pwd.getpwuid(os.getuid()).pw_name
    env = {**os.environ, "USER": "cfo.jane", "LOGNAME": "cfo.jane", "USERNAME": "cfo.jane"}
    run = subprocess.run([sys.executable, "main.py", "fix", "--demo", "--customers", "60", "--seed", "1", "-q",
                          *MISSING], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    rows = audit_rows(audit_path(demo=True))
    assert rows and {r["operator"] for r in rows} == {login} != {"cfo.jane"}
