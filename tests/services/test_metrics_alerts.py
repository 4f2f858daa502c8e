"""``reconcile --alert-webhook URL`` (G2.8): after the run, a Slack-compatible JSON message is
POSTed to a local receiver on 127.0.0.1 when the run found new critical exceptions or an SLA
target is breached — with bounded retries, never a credential or the webhook's secret path in
it or in an error; nothing is sent when there is nothing to report."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.cli import main
from services.core.domain import Severity, SyncException, Team
from services.demo.store import DemoCredentials
from services.metrics.alerts import AlertError, alert_message, post_alert
from services.metrics.model import Comparison, Figure, SlaTarget, Unit

SECRET_PATH = "/services/T0001/B0002/sEcReTtOkEn42"


class Receiver:
    """A webhook receiver on 127.0.0.1: answers the statuses in ``script`` in turn (then 200),
    keeps every body it was sent."""

    def __init__(self, script: list[int]) -> None:
        self.script = list(script)
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                receiver.paths.append(self.path)
                status = receiver.script.pop(0) if receiver.script else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{SECRET_PATH}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver([])
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def _texts(body: dict[str, Any]) -> str:
    return json.dumps(body)


def _no_secrets(text: str) -> None:
    creds = DemoCredentials()
    for secret in (creds.stripe_api_key, creds.zendesk_token, creds.tryton_password):
        assert secret not in text
    assert "sEcReTtOkEn42" not in text


def test_a_run_with_new_critical_exceptions_posts_one_slack_message(
        receiver: Receiver, syncdesk_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (syncdesk_home / "config.toml").write_text("[sla]\n" + "".join(
        f"{k} = false\n" for k in ("invoice_sync_success_rate", "posting_latency_p95", "activation_latency_p95",
                                   "mttr_p95", "failed_account_mappings", "open_critical_exceptions",
                                   "data_freshness_max_age")), encoding="utf-8")
    code = main(["reconcile", "--demo", "--customers", "80", "-q", "--format", "json", "--alert-webhook",
                 receiver.url])
    out = capsys.readouterr().out
    assert code == 0
    critical = [e for e in json.loads(out) if e["severity"] == "critical"]
    assert critical, "the demo plants critical mismatches"
    assert len(receiver.bodies) == 1 and receiver.paths == [SECRET_PATH]
    body = receiver.bodies[0]
    assert set(body) == {"text", "blocks"}
    assert f"{len(critical)} new critical exception" in body["text"]
    assert all(b["text"]["type"] == "plain_text" for b in body["blocks"])
    listed = body["blocks"][1]["text"]["text"]
    assert all(e["id"] in listed for e in critical[:10])
    assert "SLA" not in body["text"]
    _no_secrets(_texts(body))
    # the next run finds nothing new and no target is set: nothing is sent
    assert main(["reconcile", "--demo", "-q", "--alert-webhook", receiver.url]) == 0
    assert len(receiver.bodies) == 1


def test_an_sla_breach_alone_is_alerted_and_a_failing_receiver_is_retried(
        receiver: Receiver, syncdesk_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reconcile", "--demo", "--customers", "80", "-q"]) == 0  # the exceptions are known now
    (syncdesk_home / "config.toml").write_text("[sla]\nfailed_account_mappings = 0\n", encoding="utf-8")
    receiver.script = [503]  # first attempt refused, the retry goes through
    capsys.readouterr()
    assert main(["reconcile", "--demo", "-q", "--alert-webhook", receiver.url]) == 0
    assert len(receiver.bodies) == 2 and receiver.bodies[0] == receiver.bodies[1]
    body = receiver.bodies[1]
    assert "new critical" not in body["text"] and "SLA breach" in body["text"]
    assert "Failed account mappings" in body["text"]
    _no_secrets(_texts(body))


def test_an_undelivered_alert_is_exit_2_without_the_webhooks_secret(
        receiver: Receiver, capsys: pytest.CaptureFixture[str]) -> None:
    receiver.script = [500, 500, 500, 500]
    code = main(["reconcile", "--demo", "--customers", "80", "-q", "--alert-webhook", receiver.url])
    err = capsys.readouterr().err
    assert code == 2
    assert len(receiver.bodies) == 3  # bounded: three attempts
    assert "alert not delivered to http://127.0.0.1" in err and "HTTP 500" in err
    _no_secrets(err)


def test_a_client_error_is_not_retried_and_a_dead_receiver_fails_fast() -> None:
    import asyncio

    calls: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(404)

    with pytest.raises(AlertError, match="HTTP 404"):
        asyncio.run(post_alert("https://hooks.example.com/x/y", {"text": "t"}, backoff=0,
                               transport=httpx.MockTransport(answer)))
    assert len(calls) == 1
    with pytest.raises(AlertError, match="connection failed") as err:
        asyncio.run(post_alert("http://127.0.0.1:9/hook/sEcReTtOkEn42", {"text": "t"}, attempts=2, backoff=0,
                               wait=2.0))
    assert "sEcReTtOkEn42" not in str(err.value)


def test_the_message_is_plain_text_and_masks_credentials() -> None:
    from datetime import UTC, datetime

    from services.core.redaction import register_secret

    register_secret("sk_live_hush_hush_123456")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    exc = SyncException(id="invoice.amount_mismatch:in_1", rule="invoice.amount_mismatch", severity=Severity.CRITICAL,
                        owner=Team.FINANCE, customer_id="cus_1", object_id="in_1",
                        summary="<!channel> key sk_live_hush_hush_123456", sides=[], first_seen=now, last_seen=now)
    breach = Figure("invoice_sync_success_rate", "Invoice sync success rate", 97.0, 99.0, Unit.PERCENT,
                    SlaTarget("invoice_sync_success_rate", Comparison.AT_LEAST, 99.5), True)
    msg = alert_message("prod", [exc], [breach])
    text = json.dumps(msg)
    assert "sk_live_hush_hush_123456" not in text
    assert msg["blocks"][0]["type"] == "header"
    assert all(b["text"]["type"] == "plain_text" for b in msg["blocks"])
    assert "97.00 %" in msg["text"] and ">= 99.50 %" in msg["text"] and "1 new critical exception" in msg["text"]
