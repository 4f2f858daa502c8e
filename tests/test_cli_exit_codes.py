"""Exit codes and failure messages of the headless commands, per kind of failure, run as a
scheduled job runs them: ``python main.py ...`` in a subprocess against the demo servers over
loopback, with a ``config.toml`` profile written by ``services.io.config.write_profile``.

The contract (README's command table, app/headless.py, app/fix.py):

- ``reconcile`` / ``timeline``: 0 when refreshed and printed; 2 with ONE line on stderr (nothing
  on stdout) naming every failed system and the kind of failure when a system is unreachable,
  unavailable (5xx), keeps answering 429, answers garbage or rejects the credentials, or naming
  the problem when the configuration is wrong (no file, malformed TOML, no such profile, wrong
  kind, a credential not configured, a snapshot database or output file that cannot be used);
  130 when interrupted (Ctrl+C). Never a traceback, never a configured secret on either stream.
- ``fix``: 0 when every action succeeded (or there was nothing to fix), 1 when any failed, 2
  for a source error (3, some still queued, needs an outage between the refresh and the write:
  not covered here).
- ``audit verify``: 0 intact, 1 tampered (naming the first bad entry), 2 when there is no log.

The demo company is generated "as of" now: a configured profile runs on the real clock.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from services.core.domain import System
from services.demo.environment import DemoEnvironment, DemoOptions, wait_until_answering
from services.demo.faults import FaultConfig
from services.io.config import Profile, Secret, write_profile

#: every test runs `main.py` in subprocesses against demo servers (90 s for the file on 2 cores)
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CUSTOMERS = 60  # the smallest size with every rule planted (twice)
#: generous: a command is a Python start-up (~1 s) plus a refresh of 60 customers (~1 s), on
#: a loaded 2-core machine several times that
RUN_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoEnvironment]:
    env = DemoEnvironment(DemoOptions(customers=CUSTOMERS, seed=1, anchor=int(time.time()))).start()
    asyncio.run(wait_until_answering(env.urls))
    yield env
    env.stop()


@pytest.fixture
def servers(demo: DemoEnvironment) -> Iterator[DemoEnvironment]:
    """The module's demo, with each server's faults put back to its defaults afterwards."""
    saved = {s: FaultConfig(**vars(i.config)) for s, i in demo.injectors.items()}
    yield demo
    for system, injector in demo.injectors.items():
        injector.config = saved[system]


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, env: DemoEnvironment, change: Callable[[Profile], None] | None = None,
                 name: str = "p") -> tuple[Path, list[str]]:
    """The demo's profile (optionally changed) as a TOML file; returns it and every secret
    that must never be printed (the profile's and the demo's true ones)."""
    profile = env.profile(name)
    secrets = profile.all_secrets()
    if change is not None:
        change(profile)
    write_profile(path, profile)
    return path, sorted(set(secrets) | set(profile.all_secrets()))


def run_cli(*args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
    # SYNCDESK_HOME: the test's own (the autouse fixture sets it in os.environ)
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ})


def source(config: Path, name: str = "p") -> list[str]:
    return ["--config", str(config), "--profile", name, "-q"]


def command(cmd: str, config: Path, customer: str, *extra: str, name: str = "p") -> list[str]:
    """``reconcile`` or ``timeline CUSTOMER`` over the profile ``name`` of ``config``."""
    if cmd == "timeline":
        return ["timeline", customer, *source(config, name), *extra]
    return [cmd, *source(config, name), *extra]


def assert_no_secret(result: subprocess.CompletedProcess[str], secrets: list[str]) -> None:
    assert secrets, "the profile has credentials to look for"
    for secret in secrets:
        assert secret not in result.stdout, "a credential on stdout"
        assert secret not in result.stderr, "a credential on stderr"


def assert_one_line_failure(result: subprocess.CompletedProcess[str], cmd: str, *words: str,
                            secrets: Sequence[str] = ()) -> str:
    """Exit 2, nothing on stdout, exactly one line on stderr, starting ``cmd:`` and holding
    every word; no traceback, no secret."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith(f"{cmd}: "), line
    for word in words:
        assert word in line, (word, line)
    if secrets:
        assert_no_secret(result, list(secrets))
    return line


def a_customer(env: DemoEnvironment) -> str:
    return sorted(env.dataset.billing.customers)[0]


# -- all fine -------------------------------------------------------------------------------
def test_reconcile_all_fine_exits_0_and_json_holds_exactly_the_planted_mismatches(
        servers: DemoEnvironment, tmp_path: Path) -> None:
    config, secrets = write_config(tmp_path / "config.toml", servers)
    result = run_cli("reconcile", *source(config), "--format", "json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # -q: no progress, and nothing went wrong
    rows = json.loads(result.stdout)
    assert isinstance(rows, list) and rows
    for row in rows:
        assert set(row) >= {"id", "rule", "customer", "object", "severity", "owner", "summary", "first_seen",
                            "age_seconds", "fix_actions", "sides"}
    found = {(r["rule"], r["customer"], r["object"]) for r in rows}
    assert found == {(m.rule, m.customer, m.object) for m in servers.dataset.manifest}
    assert_no_secret(result, secrets)

    # the next run is incremental from the stored snapshot; the table says how many, and the
    # summary on stderr (no -q) names each system's refresh
    table = run_cli("reconcile", "--config", str(config), "--profile", "p")
    assert table.returncode == 0, table.stderr
    assert table.stdout.rstrip().endswith(f"{len(rows)} open exceptions")
    assert "Traceback" not in table.stderr
    assert "billing incremental" in table.stderr.splitlines()[-1]
    assert_no_secret(table, secrets)


def test_reconcile_csv_to_a_file(servers: DemoEnvironment, tmp_path: Path) -> None:
    config, secrets = write_config(tmp_path / "config.toml", servers)
    target = tmp_path / "out" / "exceptions.csv"
    target.parent.mkdir()
    result = run_cli("reconcile", *source(config), "--format", "csv", "--output", str(target))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert {(r["rule"], r["customer"] or None, r["object"]) for r in rows} == {
        (m.rule, m.customer, m.object) for m in servers.dataset.manifest}
    assert all(json.loads(r["sides"]) for r in rows)
    assert not any(secret in target.read_text(encoding="utf-8") for secret in secrets)


def test_timeline_all_fine_exits_0(servers: DemoEnvironment, tmp_path: Path) -> None:
    config, secrets = write_config(tmp_path / "config.toml", servers)
    customer = a_customer(servers)
    result = run_cli("timeline", customer, *source(config), "--format", "json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["customer"] == customer
    assert out["entries"] and all(e["system"] in {"billing", "erp", "support"} for e in out["entries"])
    assert_no_secret(result, secrets)
    table = run_cli("timeline", customer, *source(config))
    assert table.returncode == 0, table.stderr
    assert f"({customer})" in table.stdout.splitlines()[0]


# -- a system unreachable, unavailable, or rejecting the credentials -------------------------
@pytest.mark.parametrize("cmd", ["reconcile", "timeline"])
@pytest.mark.parametrize("system", list(System))
def test_unreachable_system_exits_2_naming_it(servers: DemoEnvironment, tmp_path: Path, cmd: str,
                                              system: System) -> None:
    port = closed_port()

    def unreachable(p: Profile) -> None:
        p.connections[system].url = f"http://127.0.0.1:{port}"

    config, secrets = write_config(tmp_path / "config.toml", servers, unreachable)
    result = run_cli(*command(cmd, config, a_customer(servers)))
    line = assert_one_line_failure(result, cmd, f"{system.value} (http://127.0.0.1:{port}) is unreachable",
                                   "connection failed", secrets=secrets)
    others = [s.value for s in System if s is not system]
    assert not any(f"{o} (" in line for o in others), line  # the systems that answered are not blamed


WRONG = {System.BILLING: "api_key", System.ERP: "password", System.SUPPORT: "api_token"}


@pytest.mark.parametrize("cmd", ["reconcile", "timeline"])
@pytest.mark.parametrize("system", list(System))
def test_rejected_credential_exits_2_naming_the_system(servers: DemoEnvironment, tmp_path: Path, cmd: str,
                                                       system: System) -> None:
    """Stripe and Zendesk answer 401; Tryton refuses the login."""
    def wrong(p: Profile) -> None:
        p.connections[system].secrets[WRONG[system]] = Secret(f"wrong-{system.value}-credential-7Qx9")

    config, secrets = write_config(tmp_path / "config.toml", servers, wrong)
    assert f"wrong-{system.value}-credential-7Qx9" in secrets
    result = run_cli(*command(cmd, config, a_customer(servers)))
    assert_one_line_failure(result, cmd, f"{system.value} (", "rejected the credentials", "HTTP 401",
                            secrets=secrets)


#: a server fault -> the words the one line must hold
SERVER_FAULTS: dict[str, tuple[System, dict[str, object], str, tuple[str, ...]]] = {
    "outage": (System.ERP, {"outage": True}, "outage", ("erp (", "is unavailable", "HTTP 503")),
    "garbled answers": (System.SUPPORT, {"malformed_rate": 1.0}, "malformed",
                        ("support (", "answered something unexpected", "not JSON")),
    # every answer a 429: retried (Retry-After: 1 s) until the retries run out, ~4 s
    "throttled": (System.BILLING, {"throttle_rate": 1.0}, "429",
                  ("billing (", "kept answering 429 (rate limited)", "HTTP 429")),
}


@pytest.mark.parametrize(("cmd", "fault"), [
    ("reconcile", "outage"), ("timeline", "outage"), ("reconcile", "garbled answers"),
    pytest.param("reconcile", "throttled")])
def test_server_faults_exit_2_naming_the_system_and_the_kind(servers: DemoEnvironment, tmp_path: Path, cmd: str,
                                                             fault: str) -> None:
    system, change, counter, words = SERVER_FAULTS[fault]
    config, secrets = write_config(tmp_path / "config.toml", servers)
    injector = servers.injectors[system]
    injector.reset_stats()
    injector.config.update(change)
    result = run_cli(*command(cmd, config, a_customer(servers)))
    assert_one_line_failure(result, cmd, *words, secrets=secrets)
    assert injector.injected[counter] >= 1  # the server did answer with the fault


def test_every_failed_system_is_named_on_the_one_line(servers: DemoEnvironment, tmp_path: Path) -> None:
    port = closed_port()

    def two_failures(p: Profile) -> None:
        p.connections[System.BILLING].url = f"http://127.0.0.1:{port}"
        p.connections[System.SUPPORT].secrets["api_token"] = Secret("not-the-token-3141")

    config, secrets = write_config(tmp_path / "config.toml", servers, two_failures)
    result = run_cli("reconcile", *source(config))
    assert_one_line_failure(result, "reconcile", "billing (", "is unreachable", "support (",
                            "rejected the credentials", secrets=secrets)


def test_without_quiet_the_reason_is_still_the_last_and_only_reason_line(servers: DemoEnvironment,
                                                                        tmp_path: Path) -> None:
    def wrong(p: Profile) -> None:
        p.connections[System.BILLING].secrets["api_key"] = Secret("sk_test_wrongwrongwrong")

    config, secrets = write_config(tmp_path / "config.toml", servers, wrong)
    result = run_cli("reconcile", "--config", str(config), "--profile", "p")  # progress on stderr
    assert result.returncode == 2 and result.stdout == ""
    assert "Traceback" not in result.stderr
    reasons = [line for line in result.stderr.splitlines() if line.startswith("reconcile:")]
    assert len(reasons) == 1 and result.stderr.splitlines()[-1] == reasons[0]
    assert "billing (" in reasons[0] and "rejected the credentials" in reasons[0]
    # the warnings logged on the way reach the log file, not the operator's terminal
    assert "WARNING" not in result.stderr
    assert_no_secret(result, secrets)


# -- configuration problems --------------------------------------------------------------------
@pytest.mark.parametrize("cmd", ["reconcile", "timeline"])
def test_configuration_problems_exit_2_with_one_line(servers: DemoEnvironment, tmp_path: Path, cmd: str) -> None:
    config, secrets = write_config(tmp_path / "config.toml", servers)
    customer = a_customer(servers)
    text = config.read_text()

    missing_profile = run_cli(*command(cmd, config, customer, name="nope"))
    assert_one_line_failure(missing_profile, cmd, "no profile 'nope'", "(have: p)", secrets=secrets)

    malformed = tmp_path / "malformed.toml"
    malformed.write_text(text.replace("[profiles.p.erp]", "[profiles.p.erp"))
    assert_one_line_failure(run_cli(*command(cmd, malformed, customer)), cmd, str(malformed), "not valid TOML",
                            secrets=secrets)

    unknown_kind = tmp_path / "kind.toml"
    unknown_kind.write_text(text.replace('kind = "zendesk"', 'kind = "freshdesk"'))
    assert_one_line_failure(run_cli(*command(cmd, unknown_kind, customer)), cmd, "support",
                            "kind must be 'zendesk', got 'freshdesk'", secrets=secrets)

    absent = tmp_path / "absent.toml"
    assert_one_line_failure(run_cli(*command(cmd, absent, customer)), cmd, "configuration file not found",
                            str(absent))

    # a credential neither in the file, the environment nor the keyring: told before any call
    # (the ERP's password is only read at login; it used to end in a traceback)
    no_password = tmp_path / "no-password.toml"
    erp_password = servers.dataset.credentials.tryton_password
    no_password.write_text("\n".join(line for line in text.splitlines()
                                     if not line.startswith("password")) + "\n")
    assert erp_password not in no_password.read_text()
    assert_one_line_failure(run_cli(*command(cmd, no_password, customer)), cmd, "erp", "'password'",
                            "not configured", secrets=secrets)

    env_var = tmp_path / "env-var.toml"
    env_var.write_text("\n".join('api_key_env = "SYNCDESK_TEST_UNSET_VARIABLE"' if line.startswith("api_key")
                                  else line for line in text.splitlines()) + "\n")
    assert "SYNCDESK_TEST_UNSET_VARIABLE" not in os.environ
    assert_one_line_failure(run_cli(*command(cmd, env_var, customer)), cmd, "billing",
                            "SYNCDESK_TEST_UNSET_VARIABLE", "is not set", secrets=secrets)


def test_no_source_chosen_is_a_usage_error() -> None:
    result = run_cli("reconcile", "-q")
    assert_one_line_failure(result, "reconcile", "--profile NAME")


def test_snapshot_database_and_output_file_problems_exit_2(servers: DemoEnvironment, tmp_path: Path,
                                                           syncdesk_home: Path) -> None:
    config, secrets = write_config(tmp_path / "config.toml", servers)
    not_a_db = tmp_path / "garbage.db"
    not_a_db.write_bytes(b"this is not an SQLite database, just text " * 100)
    result = run_cli("reconcile", *source(config), "--db", f"sqlite:///{not_a_db}")
    assert_one_line_failure(result, "reconcile", "cannot open the snapshot database", str(not_a_db),
                            "file is not a database", secrets=secrets)
    # the profile's own snapshot in SYNCDESK_HOME, damaged the same way
    own = syncdesk_home / "snapshot-p.db"
    own.write_bytes(not_a_db.read_bytes())
    result = run_cli("timeline", a_customer(servers), *source(config))
    assert_one_line_failure(result, "timeline", "cannot open the snapshot database", str(own), secrets=secrets)
    own.unlink()
    result = run_cli("reconcile", *source(config), "--db", "postgresql://syncdesk:db-pass-9Zq@127.0.0.1:1/x")
    line = assert_one_line_failure(result, "reconcile", "cannot open the snapshot database", secrets=secrets)
    assert "db-pass-9Zq" not in line  # the database URL's password is never shown

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    result = run_cli("reconcile", *source(config), "--output", str(blocked / "out.json"))
    assert_one_line_failure(result, "reconcile", "cannot write", str(blocked / "out.json"), secrets=secrets)


def test_timeline_of_an_unknown_customer_exits_2(servers: DemoEnvironment, tmp_path: Path) -> None:
    config, secrets = write_config(tmp_path / "config.toml", servers)
    result = run_cli("timeline", "cus_DoesNotExist00", *source(config))
    assert_one_line_failure(result, "timeline", "no customer 'cus_DoesNotExist00'", secrets=secrets)


# -- interrupted ------------------------------------------------------------------------------
@pytest.mark.parametrize("cmd", ["reconcile", "timeline"])
def test_ctrl_c_mid_refresh_exits_130_without_a_traceback(servers: DemoEnvironment, tmp_path: Path,
                                                          cmd: str) -> None:
    config, _ = write_config(tmp_path / "config.toml", servers)
    billing = servers.injectors[System.BILLING]
    billing.config.update({"latency_ms": 3000})  # the refresh is in flight for seconds
    billing.reset_stats()
    proc = subprocess.Popen([sys.executable, "main.py", *command(cmd, config, a_customer(servers))], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ})
    try:
        # wait (up to a generous minute: start-up on a loaded machine) for the refresh to reach billing
        deadline = time.monotonic() + 60
        while billing.stats()["total"] == 0:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the command never reached the billing server"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "Traceback" not in err, err
    assert proc.returncode == 130, (proc.returncode, err)
    assert out == ""
    assert err.splitlines() == [f"{cmd}: cancelled"]


# -- fix and audit verify ----------------------------------------------------------------------
@pytest.fixture
def fix_demo() -> Iterator[DemoEnvironment]:
    """A demo of its own: fixing writes to the ERP, which the other tests must not see."""
    env = DemoEnvironment(DemoOptions(customers=CUSTOMERS, seed=2, anchor=int(time.time()))).start()
    asyncio.run(wait_until_answering(env.urls))
    yield env
    env.stop()


def test_fix_exit_codes_and_audit_verify(fix_demo: DemoEnvironment, tmp_path: Path) -> None:
    config, secrets = write_config(tmp_path / "config.toml", fix_demo)
    audit_db = tmp_path / "audit.db"

    def fix(rule: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return run_cli("fix", *source(config), "--rule", rule, "--audit-db", str(audit_db),
                       *extra)

    def planted(rule: str) -> int:
        return sum(1 for m in fix_demo.dataset.manifest if m.rule == rule)

    missing, drift = planted("invoice.missing_in_erp"), planted("customer.master_drift")
    assert missing >= 1 and drift >= 1

    # no audit log yet: a usage error
    assert_one_line_failure(run_cli("audit", "verify", "--db", str(audit_db)), "audit", "no audit log")

    # a date before the ERP's latest posted invoice: Tryton refuses to number it -> failed -> exit 1
    failed = fix("invoice.missing_in_erp", "--value", json.dumps({"invoice_date": "2000-01-01"}))
    assert "Traceback" not in failed.stderr, failed.stderr
    assert failed.returncode == 1, (failed.stdout, failed.stderr)
    assert f"fix: {missing} actions: 0 succeeded, {missing} failed" in failed.stdout
    assert sum(line.startswith("failed ") for line in failed.stdout.splitlines()) == missing
    assert_no_secret(failed, secrets)

    # every action succeeds (pushing the ERP's master data to the copies) -> exit 0
    ok = fix("customer.master_drift")
    assert ok.returncode == 0, (ok.stdout, ok.stderr)
    assert f"fix: {drift} actions: {drift} succeeded, 0 failed" in ok.stdout
    assert_no_secret(ok, secrets)

    # nothing left to fix: nothing was done, exit 5, and one line says why and who resolved them
    again = fix("customer.master_drift")
    assert again.returncode == 5, (again.stdout, again.stderr)
    assert again.stdout == ""
    (line,) = again.stderr.splitlines()
    assert line.startswith("fix: nothing to do: ") and "none of rule customer.master_drift" in line
    assert f"{drift} resolved before" in line and "(finance, push)" in line

    # the source unreachable: exit 2 with one line, nothing attempted
    port = closed_port()

    def unreachable(p: Profile) -> None:
        p.connections[System.ERP].url = f"http://127.0.0.1:{port}"

    bad_config, bad_secrets = write_config(tmp_path / "unreachable.toml", fix_demo, unreachable)
    down = run_cli("fix", *source(bad_config), "--rule", "customer.master_drift", "--audit-db", str(audit_db))
    assert_one_line_failure(down, "fix", "erp (", "is unreachable", secrets=bad_secrets)

    # the log those runs wrote verifies...
    verify = run_cli("audit", "verify", "--db", str(audit_db))
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.startswith("audit log intact:")
    with sqlite3.connect(audit_db) as con:
        entries = con.execute("select count(*) from audit_entry").fetchone()[0]
    assert entries == 2 * (missing + drift)  # an intent and an outcome per action; nothing for the others
    assert f"{entries} entries verified" in verify.stdout

    # ...until one entry is altered behind its back: exit 1, the first bad entry named
    with sqlite3.connect(audit_db) as con:
        con.execute("update audit_entry set operator = 'mallory' where seq = 2")
    con.close()
    tampered = run_cli("audit", "verify", "--db", str(audit_db))
    assert "Traceback" not in tampered.stderr
    assert tampered.returncode == 1, tampered.stdout
    assert tampered.stdout == ""
    lines = tampered.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("audit log NOT intact:"), lines
    assert "entry 2 was altered" in lines[0]
