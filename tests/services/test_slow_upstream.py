"""Hostile upstreams, part 2: servers that drip, truncate or leave a call hanging.

- a body sent one byte every 0.2 s never trips a per-read timeout; the policy's total deadline
  (``total_timeout``: connect + headers + whole body) ends each attempt, the attempt is retried
  (boundedly) and the call fails as a timeout — in the HTTP layer, in a connector, and in
  ``reconcile`` run as a job (exit 2, one line), configured per system in ``config.toml``;
- an answer whose connection closes half-way is a connection failure, retried: a refresh that
  meets it once succeeds, one that meets it every time fails with one line;
- the circuit breaker's trial call, cancelled (by hand, or by ``gather_or_cancel`` when a
  sibling fails), frees the trial: the next call is made, not refused until restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.core.domain import System
from services.core.errors import CircuitOpenError, UnavailableError
from services.demo.environment import DemoEnvironment, DemoOptions, wait_until_answering
from services.demo.serving import ThreadedServers
from services.engine import connector_for
from services.io.config import ConfigError, Profile, Secret, SystemConnection, write_profile
from services.io.connectors.base import gather_or_cancel
from services.io.http import DEFAULT_POLICIES, BreakerState, HttpPolicy, ResilientClient, policy_from_settings
from tests.services.hostile import Drip, Truncate

ROOT = Path(__file__).resolve().parents[2]
QUICK = HttpPolicy(rate_per_second=None, connect_timeout=2.0, read_timeout=5.0, total_timeout=1.0, max_retries=1,
                   backoff_base=0.01, backoff_max=0.02)


@pytest.fixture
def drip() -> Iterator[tuple[Drip, str]]:
    app = Drip(interval=0.2, size=400)  # 80 s for the whole body: far past any deadline below
    with ThreadedServers({"drip": app}) as servers:
        yield app, servers.url("drip")


async def test_a_dripping_body_ends_at_the_total_deadline_and_is_retried_boundedly(drip: tuple[Drip, str]) -> None:
    app, url = drip
    client = ResilientClient(System.BILLING, url, policy=QUICK)
    started = time.monotonic()
    try:
        with pytest.raises(UnavailableError, match=r"timed out \(no complete answer within 1 s\)"):
            await client.request("GET", "/v1/customers", operation="list customers")
    finally:
        await client.aclose()
    took = time.monotonic() - started
    # two attempts of 1 s each (and a short backoff); the per-read timeout (5 s) never fired
    assert took < 5.0, f"took {took:.1f} s"
    assert app.requests == 2 and client.stats.retries == 1


async def test_a_connector_against_a_dripping_server_fails_as_a_timeout(drip: tuple[Drip, str]) -> None:
    _, url = drip
    conn = SystemConnection(System.BILLING, "stripe", url, {}, {"api_key": Secret("sk_test_drip")})
    connector = connector_for(conn, policy=QUICK)
    started = time.monotonic()
    try:
        with pytest.raises(UnavailableError, match="timed out"):
            await connector.full_refresh()
    finally:
        await connector.aclose()
    assert time.monotonic() - started < 10.0


def test_total_timeout_and_retries_come_from_the_connection_settings() -> None:
    base = DEFAULT_POLICIES[System.BILLING]
    policy = policy_from_settings(base, {"total_timeout": "7.5", "max_retries": "2", "shared_rate": "false",
                                         "email": "not a policy key"})
    assert (policy.total_timeout, policy.max_retries, policy.shared_rate) == (7.5, 2, False)
    assert policy.rate_per_second == base.rate_per_second
    assert policy_from_settings(base, {}) is base
    for bad in ({"total_timeout": "soon"}, {"total_timeout": "0"}, {"max_retries": "-1"}, {"shared_rate": "maybe"}):
        with pytest.raises(ConfigError):
            policy_from_settings(base, bad, "billing connection")
    # every vendor's default has a total deadline
    assert all(p.total_timeout for p in DEFAULT_POLICIES.values())


@pytest.mark.slow
def test_reconcile_against_a_dripping_billing_server_exits_2_with_one_line(
        drip: tuple[Drip, str], tmp_path: Path) -> None:
    app, url = drip
    env = DemoEnvironment(DemoOptions(customers=20, seed=1, anchor=int(time.time()))).start()
    try:
        asyncio.run(wait_until_answering(env.urls))
        profile = env.profile("p")
        billing = profile.connections[System.BILLING]
        settings = {**billing.settings, "total_timeout": "1", "max_retries": "1"}
        profile = Profile("p", {**profile.connections, System.BILLING: SystemConnection(
            System.BILLING, billing.kind, url, settings, billing.secrets)})
        config = tmp_path / "config.toml"
        write_profile(config, profile)
        started = time.monotonic()
        result = subprocess.run([sys.executable, "main.py", "reconcile", "--config", str(config), "--profile", "p",
                                 "-q"], cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ})
        took = time.monotonic() - started
    finally:
        env.stop()
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("reconcile: billing") and "timed out" in line, line
    assert app.requests == 2  # the first page of events, retried once
    assert took < 60, f"took {took:.0f} s"  # a Python start-up, a refresh of the others, 2 x 1 s


async def test_a_truncated_answer_is_retried_and_a_refresh_gets_through() -> None:
    env = DemoEnvironment(DemoOptions(customers=20, seed=1))
    truncate = Truncate(env.apps[System.BILLING], times=2)
    with ThreadedServers({"billing": truncate}) as servers:
        key = Secret(env.dataset.credentials.stripe_api_key)
        policy = HttpPolicy(rate_per_second=None, max_retries=3, backoff_base=0.01, backoff_max=0.02)
        connector = connector_for(SystemConnection(System.BILLING, "stripe", servers.url("billing"), {},
                                                   {"api_key": key}), policy=policy, clock=env.now)
        try:
            result = await connector.full_refresh()
        finally:
            await connector.aclose()
    assert truncate.truncated == 2 and connector.client.stats.retries >= 2
    assert result.full is not None and len(result.full.invoices) == len(env.dataset.billing.invoices)


async def test_an_answer_truncated_every_time_fails_as_a_connection_failure() -> None:
    truncate = Truncate()
    with ThreadedServers({"billing": truncate}) as servers:
        client = ResilientClient(System.BILLING, servers.url("billing"), policy=QUICK)
        try:
            with pytest.raises(UnavailableError, match="connection failed"):
                await client.request("GET", "/v1/customers", operation="list customers")
        finally:
            await client.aclose()
    assert truncate.truncated == 2  # one retry, then the error


# -- the circuit breaker's trial call ---------------------------------------------------------


class Upstream:
    """A MockTransport handler: 503 while ``failing``; ``/hang`` waits until released."""

    def __init__(self) -> None:
        self.failing = True
        self.release = asyncio.Event()
        self.hanging = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.failing:
            return httpx.Response(503, json={})
        if request.url.path == "/hang":
            self.hanging.set()
            await self.release.wait()
        return httpx.Response(200, json={"ok": True})


def breaker_client(upstream: Upstream) -> tuple[ResilientClient, list[float]]:
    policy = HttpPolicy(rate_per_second=None, max_retries=0, breaker_threshold=1, breaker_cooldown=30.0)
    client = ResilientClient(System.ERP, "http://erp.test", policy=policy, transport=httpx.MockTransport(upstream))
    now = [1000.0]
    client.breaker.clock = lambda: now[0]  # the cool-down passes when the test says so
    return client, now


async def open_then_half_open(client: ResilientClient, upstream: Upstream, now: list[float]) -> None:
    with pytest.raises(UnavailableError):
        await client.request("GET", "/a", operation="a")
    assert client.breaker.state is BreakerState.OPEN
    upstream.failing = False
    now[0] += 31.0  # past the cool-down: the next call is the trial


async def test_a_cancelled_trial_call_frees_the_breaker_for_the_next_call() -> None:
    upstream = Upstream()
    client, now = breaker_client(upstream)
    try:
        await open_then_half_open(client, upstream, now)
        trial = asyncio.create_task(client.request("GET", "/hang", operation="trial"))
        await asyncio.wait_for(upstream.hanging.wait(), 10)  # the trial is in flight
        assert client.breaker.state is BreakerState.HALF_OPEN
        with pytest.raises(CircuitOpenError, match="trial call is under way"):  # meanwhile: refused, as designed
            await client.request("GET", "/b", operation="b")
        trial.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await trial
        # the cancelled trial told nothing: the next call is made (and, succeeding, closes it)
        response = await client.request("GET", "/c", operation="c")
        assert response.status_code == 200
        assert client.breaker.state is BreakerState.CLOSED
    finally:
        upstream.release.set()
        await client.aclose()


async def test_a_trial_cancelled_by_gather_or_cancel_does_not_jam_the_system() -> None:
    """The way it happened: a refresh's reads run under gather_or_cancel; in the half-open
    state one read is the trial, a sibling is refused at once, and the refusal cancels the
    trial. Every later call must still be possible (the replay of queued actions too)."""
    upstream = Upstream()
    client, now = breaker_client(upstream)
    try:
        await open_then_half_open(client, upstream, now)

        async def sibling() -> None:
            await upstream.hanging.wait()  # once the trial is in flight
            await client.request("GET", "/b", operation="sibling")

        with pytest.raises(CircuitOpenError):
            await gather_or_cancel(client.request("GET", "/hang", operation="trial"), sibling())
        for path in ("/c", "/d"):
            assert (await client.request("GET", path, operation="after")).status_code == 200
    finally:
        upstream.release.set()
        await client.aclose()


def test_the_breaker_settles_its_trial_after_every_outcome() -> None:
    upstream = Upstream()
    client, now = breaker_client(upstream)
    breaker = client.breaker
    breaker.record_failure()
    now[0] += 31.0
    assert breaker.before_call("x") is True  # the trial
    breaker.abandon_trial()
    assert breaker.before_call("y") is True  # freed: the next call is the trial
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.before_call("z") is False
    breaker.abandon_trial()  # a cancelled ordinary call changes nothing
    assert breaker.state is BreakerState.CLOSED


def test_the_demo_servers_log_through_the_application_logging(caplog: pytest.LogCaptureFixture) -> None:
    """uvicorn gets no stderr handler of its own: what it logs reaches the application's
    handlers (the log file, syncdesk.log), like every other logger."""
    with ThreadedServers({"drip": Drip(interval=0.01, size=2)}):
        for name in ("uvicorn", "uvicorn.error"):
            logger = logging.getLogger(name)
            assert logger.handlers == [] and logger.propagate, (name, logger.handlers)
        with caplog.at_level(logging.WARNING, logger="uvicorn.error"):
            logging.getLogger("uvicorn.error").warning("a server's warning")
    assert any(r.name == "uvicorn.error" and r.getMessage() == "a server's warning" for r in caplog.records)
