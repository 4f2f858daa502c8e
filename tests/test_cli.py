"""The headless sub-commands, run as a user would run them."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest

from app.cli import main
from services.core.domain import RULES

ROOT = Path(__file__).resolve().parent.parent
ANCHOR = 1_780_000_000


def run_cli(*args: str, timeout: float = 120, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    if home is not None:
        env["SYNCDESK_HOME"] = str(home)
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_demo_manifest_prints_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo-manifest", "--customers", "250", "--seed", "4", "--anchor", str(ANCHOR)]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert {e["rule"] for e in entries} == set(RULES)
    for e in entries:
        assert set(e) >= {"rule", "customer", "object"}
        assert e["customer"] is None or e["customer"].startswith("cus_")
    assert main(["demo-manifest", "--customers", "250", "--seed", "4", "--anchor", str(ANCHOR)]) == 0
    assert json.loads(capsys.readouterr().out) == entries


def test_demo_manifest_clean_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo-manifest", "--customers", "80", "--mismatch-rate", "0"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_bad_arguments_explain_themselves() -> None:
    result = run_cli("demo-server", "--fault", "billing:nonsense=1")
    assert result.returncode == 2
    assert "unknown fault 'nonsense'" in result.stderr
    result = run_cli("demo-manifest", "--customers", "0")
    assert result.returncode == 2 and "at least 1" in result.stderr


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_demo_server_writes_config_serves_and_stops(tmp_path: Path, stop_signal: signal.Signals) -> None:
    config = tmp_path / "demo.toml"
    proc = subprocess.Popen([sys.executable, "main.py", "demo-server", "--customers", "30", "--port", "0",
                             "--write-config", str(config), "--fault", "support:latency_ms=1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "SYNCDESK_HOME": str(tmp_path / "home")})
    try:
        deadline = time.monotonic() + 60
        while not config.exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "config file never written"
            time.sleep(0.1)
        profile = tomllib.loads(config.read_text())["profiles"]["demo"]
        assert profile["billing"]["kind"] == "stripe"
        assert profile["erp"]["kind"] == "tryton" and profile["erp"]["database"]
        assert profile["support"]["kind"] == "zendesk"
        with httpx.Client(timeout=10) as client:
            b = profile["billing"]
            r = client.get(f"{b['url']}/v1/customers", params={"limit": 3}, auth=(b["api_key"], ""))
            assert r.status_code == 200 and len(r.json()["data"]) == 3
            e = profile["erp"]
            r = client.post(f"{e['url']}/{e['database']}/rpc/", json={
                "id": 1, "method": "common.db.login", "params": [e["login"], {"password": e["password"]}, "en"]})
            assert r.status_code == 200 and isinstance(r.json()["result"][0], int)
            s = profile["support"]
            token = base64.b64encode(f"{s['email']}/token:{s['api_token']}".encode()).decode()
            r = client.get(f"{s['url']}/api/v2/organizations.json", headers={"Authorization": f"Basic {token}"})
            assert r.status_code == 200 and r.json()["organizations"]
            faults = client.get(f"{s['url']}/_demo/faults").json()
            assert faults["latency_ms"] == 1
            client.post(f"{e['url']}/_demo/faults", json={"outage": True})
            assert client.post(f"{e['url']}/rpc/", json={"id": 1, "method": "common.server.version",
                                                          "params": []}).status_code == 503
        proc.send_signal(stop_signal)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "stopped" in err
        assert b["url"] in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_demo_server_port_in_use(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = run_cli("demo-server", "--customers", "5", "--port", str(port), timeout=60)
    assert result.returncode == 2
    assert "cannot listen" in result.stderr


def isolated_env(home: Path, user: Path) -> dict[str, str]:
    """SYNCDESK_HOME set, and the user's own folders (where platformdirs' default would be) moved to ``user``."""
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen", "SYNCDESK_HOME": str(home), "HOME": str(user),
            "XDG_DATA_HOME": str(user / ".local" / "share"), "XDG_CONFIG_HOME": str(user / ".config"),
            "XDG_CACHE_HOME": str(user / ".cache"), "XDG_STATE_HOME": str(user / ".local" / "state")}


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.mark.slow  # six commands in subprocesses, about 10-20 s
def test_every_command_honours_syncdesk_home(tmp_path: Path) -> None:
    """Each command that writes local files writes them in SYNCDESK_HOME, and nothing in the default
    (platformdirs) location: the user's data, config, cache and state folders stay empty."""
    from services.demo.dataset import generate
    from services.store.audit import AuditEntry, AuditLog
    from services.store.storage import Storage

    home, user = tmp_path / "custom-home", tmp_path / "user"
    home.mkdir()
    user.mkdir()
    env = isolated_env(home, user)
    customers = "30"
    customer = sorted(generate(int(customers), 1).billing.customers)[0]
    demo = ("--demo", "--customers", customers, "-q")
    # the built-in demo keeps its world, snapshot and audit log in SYNCDESK_HOME/demo
    world, snapshot, audit = "demo/world.json.gz", "demo/snapshot.db", "demo/audit.db"
    assert not [m for m in generate(int(customers), 1).manifest if m.rule == "invoice.missing_in_erp"]
    commands: list[tuple[list[str], set[str], int]] = [
        (["demo-manifest", "--customers", "10"], set(), 0),
        (["reconcile", *demo, "--format", "json"], {world, snapshot}, 0),
        (["timeline", customer, *demo, "--format", "json"], {world, snapshot}, 0),
        # nothing of that rule in this world: nothing to do, exit 5 (app.fix)
        (["fix", *demo, "--rule", "invoice.missing_in_erp", "--dry-run", "--format", "json"],
         {world, snapshot, audit}, 5),
        (["audit", "verify"], {audit}, 0),
        (["audit", "export", "--format", "json"], {audit}, 0),
    ]
    outputs: dict[str, str] = {}
    for args, writes, status in commands:
        for name in (world, snapshot, audit):
            (home / name).unlink(missing_ok=True)
        if args[0] == "audit":  # what `audit` must find by default (no profile configured: the demo's log)
            storage = Storage.open_path(home / audit, durable=True)
            AuditLog(storage).append_many([AuditEntry(operator="ana", role="finance", action_id=f"act-{i}",
                                                      action_kind="retry", phase="intent", outcome="pending")
                                           for i in range(2)])
            storage.close()
        (home / "logs" / "syncdesk.log").unlink(missing_ok=True)
        result = subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True,
                                timeout=120, env=env)
        assert result.returncode == status, (args, result.stderr)
        outputs[" ".join(args[:2])] = result.stdout
        written = {name for name in (world, snapshot, audit) if (home / name).exists()}
        assert written == writes, args
        assert (home / "logs" / "syncdesk.log").is_file(), args
        assert files_under(user) == [], (args, files_under(user))
    assert f'"customer": "{customer}"' in outputs[f"timeline {customer}"]
    assert "audit log intact: 2 entries verified" in outputs["audit verify"]
    assert [e["action_id"] for e in json.loads(outputs["audit export"])] == ["act-0", "act-1"]
    assert not (user / ".local" / "share" / "SyncDesk").exists()
