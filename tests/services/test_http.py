"""The resilient HTTP layer against httpx.MockTransport: retries, 429, breaker, typed errors."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from services.core.domain import System
from services.core.errors import (
    AuthenticationError,
    CircuitOpenError,
    NotFoundError,
    ProtocolError,
    RateLimitedError,
    RemoteValidationError,
    UnavailableError,
)
from services.io.http import BreakerState, CircuitBreaker, HttpPolicy, ResilientClient, parse_retry_after

FAST = HttpPolicy(max_retries=3, backoff_base=0.001, backoff_max=0.005, concurrency=2, breaker_threshold=3,
                  breaker_cooldown=60)


def client_for(handler: object, policy: HttpPolicy = FAST, **kw: object) -> ResilientClient:
    return ResilientClient(System.BILLING, "http://test", policy=policy,
                           transport=httpx.MockTransport(handler), **kw)  # type: ignore[arg-type]


def sequence(*responses: httpx.Response | Exception) -> tuple[list[httpx.Request], object]:
    seen: list[httpx.Request] = []
    items = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = items.pop(0) if len(items) > 1 else items[0]
        if isinstance(item, Exception):
            raise item
        return item

    return seen, handler


async def test_get_retries_5xx_then_succeeds() -> None:
    seen, handler = sequence(httpx.Response(500), httpx.Response(502), httpx.Response(200, json={"ok": 1}))
    async with client_for(handler) as c:
        r = await c.request("GET", "/v1/x", operation="list x")
    assert r.json() == {"ok": 1}
    assert len(seen) == 3
    assert c.stats.retries == 2


async def test_unsafe_post_is_not_retried_on_5xx_or_timeout() -> None:
    seen, handler = sequence(httpx.Response(500))
    async with client_for(handler) as c:
        with pytest.raises(UnavailableError):
            await c.request("POST", "/v1/x", operation="create x", data={"a": "1"})
    assert len(seen) == 1
    seen, handler = sequence(httpx.ReadTimeout("slow"))
    async with client_for(handler) as c:
        with pytest.raises(UnavailableError, match="timed out"):
            await c.request("POST", "/v1/x", operation="create x")
    assert len(seen) == 1


async def test_post_with_idempotency_key_is_retried() -> None:
    seen, handler = sequence(httpx.ConnectError("refused"), httpx.Response(200, json={}))
    async with client_for(handler) as c:
        await c.request("POST", "/v1/x", operation="create x", headers={"Idempotency-Key": "k1"})
    assert len(seen) == 2
    assert all(r.headers["Idempotency-Key"] == "k1" for r in seen)


async def test_429_is_retried_for_any_request_and_honours_retry_after() -> None:
    seen, handler = sequence(httpx.Response(429, headers={"Retry-After": "0.3"}), httpx.Response(200, json={}))
    async with client_for(handler) as c:
        t0 = time.monotonic()
        await c.request("POST", "/v1/x", operation="create x")
        assert time.monotonic() - t0 >= 0.29
    assert len(seen) == 2
    assert c.stats.rate_limited == 1


async def test_429_exhausted_is_typed_with_retry_after() -> None:
    _, handler = sequence(httpx.Response(429, headers={"Retry-After": "0"}, json={"error": {"message": "slow"}}))
    async with client_for(handler) as c:
        with pytest.raises(RateLimitedError) as info:
            await c.request("GET", "/v1/x", operation="list x")
    assert info.value.retry_after == 0
    assert info.value.system is System.BILLING
    assert c.breaker.state is BreakerState.CLOSED  # a 429 says nothing about health


@pytest.mark.parametrize(("status", "error"), [(401, AuthenticationError), (403, AuthenticationError),
                                                (404, NotFoundError), (400, RemoteValidationError),
                                                (422, RemoteValidationError), (418, ProtocolError)])
async def test_4xx_are_typed_and_not_retried(status: int, error: type[Exception]) -> None:
    seen, handler = sequence(httpx.Response(status, json={"error": {"message": "vendor says no", "code": "c1"}}))

    def parser(r: httpx.Response) -> tuple[str, str | None]:
        e = r.json()["error"]
        return e["message"], e["code"]

    async with client_for(handler, error_parser=parser) as c:
        with pytest.raises(error) as info:
            await c.request("GET", "/v1/customers/cus_1", operation="retrieve customer")
    assert len(seen) == 1
    text = str(info.value)
    assert "billing retrieve customer: vendor says no" in text
    assert f"HTTP {status}" in text
    assert "c1" in text


async def test_garbled_error_body_keeps_status() -> None:
    _, handler = sequence(httpx.Response(404, content=b"\xff\xfe not json"))

    def parser(r: httpx.Response) -> tuple[str, str | None]:
        return r.json()["error"], None

    async with client_for(handler, error_parser=parser) as c:
        with pytest.raises(NotFoundError, match="HTTP 404"):
            await c.request("GET", "/x", operation="get")


async def test_breaker_opens_fails_fast_then_half_open_trial_closes_it() -> None:
    now = [0.0]
    seen, handler = sequence(httpx.Response(503))
    c = client_for(handler, policy=HttpPolicy(max_retries=0, breaker_threshold=3, breaker_cooldown=10))
    c.breaker.clock = lambda: now[0]
    states: list[BreakerState] = []
    c.breaker.listeners.append(states.append)
    for _ in range(3):
        with pytest.raises(UnavailableError):
            await c.request("GET", "/x", operation="get")
    assert c.breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError, match="next try in 10 s"):
        await c.request("GET", "/x", operation="get")
    assert len(seen) == 3  # the fast failure sent nothing
    now[0] = 11.0
    c._client._transport = httpx.MockTransport(lambda r: httpx.Response(200, json={}))  # type: ignore[attr-defined]
    await c.request("GET", "/x", operation="get")
    assert c.breaker.state is BreakerState.CLOSED
    assert states == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]
    await c.aclose()


def test_breaker_failed_trial_reopens() -> None:
    now = [0.0]
    b = CircuitBreaker(System.ERP, threshold=1, cooldown=5, clock=lambda: now[0])
    b.record_failure()
    assert b.state is BreakerState.OPEN
    now[0] = 6
    b.before_call("op")
    assert b.state is BreakerState.HALF_OPEN
    with pytest.raises(CircuitOpenError, match="trial"):
        b.before_call("op")
    b.record_failure()
    assert b.state is BreakerState.OPEN


async def test_rate_limit_paces_requests() -> None:
    _, handler = sequence(httpx.Response(200, json={}))
    policy = HttpPolicy(rate_per_second=20, rate_headroom=1.0, concurrency=4)
    async with client_for(handler, policy=policy) as c:
        t0 = time.monotonic()
        for _ in range(30):
            await c.request("GET", "/x", operation="get")
        elapsed = time.monotonic() - t0
    # a burst of half a second's worth (10), then the other 20 at 20/s: at least 1 s
    assert elapsed >= 0.95


async def test_no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    _, handler = sequence(httpx.Response(500), httpx.Response(200, json={}, headers={"Request-Id": "req_42"}))
    async with client_for(handler, headers={"Authorization": "Bearer sk_test_SECRET123"}) as c:
        await c.request("GET", "/v1/x", operation="list x")
    assert "req_42" in caplog.text
    assert "sk_test_SECRET123" not in caplog.text


def test_parse_retry_after() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
