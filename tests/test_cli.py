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
from services.domain import RULES

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


def test_every_command_honours_syncdesk_home(tmp_path: Path) -> None:
    home = tmp_path / "custom-home"
    result = run_cli("demo-manifest", "--customers", "10", home=home)
    assert result.returncode == 0, result.stderr
    assert (home / "logs" / "syncdesk.log").exists()
