"""One resilient HTTP layer for every connector.

Each external system gets one long-lived :class:`ResilientClient` (one ``httpx.AsyncClient``)
with:

- explicit connect/read timeouts, and a total deadline for each attempt (connect + headers +
  whole body: a server that drips its answer a byte at a time cannot hold a call past
  ``total_timeout``; the attempt fails as a timeout and is retried like one, boundedly);
- bounded retries with exponential backoff and full jitter (tenacity), **only for safe
  requests** (GET/HEAD/PUT/DELETE, a POST carrying an ``Idempotency-Key``, or a call the
  connector marks safe such as a Tryton read); a 429 is retried for every request, since the
  server did not process it, honouring ``Retry-After``;
- a concurrency limit (semaphore) and a request-rate limit (aiolimiter leaky bucket, or a
  budget shared by every process of the machine: :mod:`services.io.rate_budget`);
- a circuit breaker: after N consecutive failures of the system (timeouts, connection
  errors, 5xx) calls fail fast with :class:`CircuitOpenError` for a cool-down, then one trial
  call decides (a trial that ends without an answer — cancelled — frees the trial for the
  next call); listeners hear every state change (health lights, outbox replay);
- typed errors (services.core.errors) naming the system, the operation and the vendor's message;
- one log line per request with the vendor's request id; credentials live in the client's
  auth and never reach a log line.
"""

from __future__ import annotations

import asyncio
import email.utils
import enum
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from services.core.domain import System
from services.core.errors import (
    AuthenticationError,
    CircuitOpenError,
    ConnectorError,
    NotFoundError,
    ProtocolError,
    RateLimitedError,
    RemoteValidationError,
    UnavailableError,
)
from services.io.config import ConfigError
from services.io.rate_budget import SharedRateLimiter

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})

#: (response) -> (vendor message, vendor code or None); each connector supplies its own.
ErrorParser = Callable[[httpx.Response], tuple[str, str | None]]


@dataclass(frozen=True)
class HttpPolicy:
    connect_timeout: float = 5.0
    #: the longest wait for any one read of the answer (httpx's per-read timeout)
    read_timeout: float = 30.0
    #: the longest one attempt may take, from connecting to the last byte of the body (None:
    #: no total limit). The per-read timeout alone lets a server that sends a byte every few
    #: seconds hold a call for ever
    total_timeout: float | None = 60.0
    max_retries: int = 4
    backoff_base: float = 0.2
    backoff_max: float = 8.0
    max_retry_after: float = 60.0
    concurrency: int = 4
    #: requests per second the vendor allows (None = no client-side limit)
    rate_per_second: float | None = None
    #: share of the vendor's rate we use, so timing jitter never trips the server's limit
    rate_headroom: float = 0.95
    #: how many seconds' worth of requests may leave at once after a pause (the limiter's
    #: burst). A vendor's bucket holds about one second's worth; a client burst as large
    #: leaves nothing for requests that arrive bunched (scheduling and network jitter: a
    #: hiccup of tens of ms after a burst was enough for a 429 at Zendesk's 700/min), so the
    #: client's is half of that: the same sustained rate, ~0.5 s of jitter absorbed
    rate_burst_seconds: float = 0.5
    breaker_threshold: int = 5
    breaker_cooldown: float = 30.0
    #: with a rate: share the budget with the other processes of this machine talking to the
    #: same system (:meth:`ResilientClient.share_rate_budget`; the engine turns it on)
    shared_rate: bool = True


#: Defaults that fit each vendor: Stripe test mode 25 requests/s (live: 100/s); Zendesk
#: Enterprise 700 requests/minute; Tryton is one process on one core: 2 concurrent calls.
DEFAULT_POLICIES: dict[System, HttpPolicy] = {
    System.BILLING: HttpPolicy(rate_per_second=25.0, concurrency=8),
    System.ERP: HttpPolicy(concurrency=2, read_timeout=65.0, total_timeout=130.0),
    System.SUPPORT: HttpPolicy(rate_per_second=700 / 60, concurrency=4),
}


#: what a connection's settings in config.toml may change of its policy, and how each is read
POLICY_SETTINGS: dict[str, Callable[[str], Any]] = {
    "connect_timeout": float,
    "read_timeout": float,
    "total_timeout": float,
    "max_retries": int,
    "rate_per_second": float,
    "concurrency": int,
    "shared_rate": lambda v: {"true": True, "false": False}[v.strip().lower()],
}


def policy_from_settings(base: HttpPolicy, settings: Mapping[str, str], where: str = "") -> HttpPolicy:
    """``base`` with the policy keys a connection's settings give (``total_timeout = 20``,
    ``read_timeout``, ``connect_timeout``, ``max_retries``, ``rate_per_second``,
    ``concurrency``, ``shared_rate = false``); other settings are the connector's. A value
    that does not read, or a timeout, rate or concurrency that is not positive, is a
    :class:`ConfigError`."""
    changes: dict[str, Any] = {}
    for key, read in POLICY_SETTINGS.items():
        if key not in settings:
            continue
        raw = settings[key]
        try:
            value = read(str(raw))
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"{where or 'connection'}: {key} = {raw!r} is not valid") from None
        if key not in ("max_retries", "shared_rate") and not (value > 0 and math.isfinite(value)):
            raise ConfigError(f"{where or 'connection'}: {key} must be positive, got {raw!r}")
        if key == "max_retries" and not 0 <= value <= 20:
            raise ConfigError(f"{where or 'connection'}: max_retries must be 0 to 20, got {raw!r}")
        changes[key] = value
    return replace(base, **changes) if changes else base


def rate_limiter(policy: HttpPolicy) -> AsyncLimiter | None:
    """The client-side pacing of ``policy``: ``rate_per_second x rate_headroom`` sustained, at
    most ``rate_burst_seconds`` of it (at least one request) at once; None without a rate."""
    if not policy.rate_per_second:
        return None
    rate = policy.rate_per_second * policy.rate_headroom
    burst = max(1.0, rate * policy.rate_burst_seconds)
    return AsyncLimiter(burst, burst / rate)


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Consecutive-failure circuit breaker with a cool-down and a single trial call."""

    def __init__(self, system: System, threshold: int, cooldown: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.system = system
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self._trial_in_flight = False
        self.listeners: list[Callable[[BreakerState], None]] = []

    def _set(self, state: BreakerState) -> None:
        if state is not self.state:
            log.warning("%s: circuit %s -> %s", self.system.value, self.state.value, state.value)
            self.state = state
            for listener in list(self.listeners):
                try:
                    listener(state)
                except Exception:
                    log.exception("circuit listener failed")

    def before_call(self, operation: str) -> bool:
        """Raise :class:`CircuitOpenError` when the call may not be made; return whether it is
        the half-open state's trial call (its caller must settle it: a ``record_*`` outcome,
        or :meth:`abandon_trial` when it ends without one)."""
        if self.state is BreakerState.OPEN:
            remaining = self.cooldown - (self.clock() - self.opened_at)
            if remaining > 0:
                raise CircuitOpenError(self.system, operation,
                                       f"not attempted: the system failed {self.failures} times in a row; "
                                       f"next try in {remaining:.0f} s")
            self._set(BreakerState.HALF_OPEN)
        if self.state is BreakerState.HALF_OPEN:
            if self._trial_in_flight:
                raise CircuitOpenError(self.system, operation, "not attempted: a trial call is under way")
            self._trial_in_flight = True
            return True
        return False

    def abandon_trial(self) -> None:
        """The trial call ended without telling anything (cancelled, or failed before an
        answer for a reason of ours): the next call becomes the trial. Without this a
        cancelled trial would leave every later call refused ("a trial call is under way")."""
        if self.state is BreakerState.HALF_OPEN:
            self._trial_in_flight = False

    def record_success(self) -> None:
        self._trial_in_flight = False
        self.failures = 0
        self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._trial_in_flight = False
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN or self.failures >= self.threshold:
            self.opened_at = self.clock()
            self._set(BreakerState.OPEN)

    def record_neutral(self) -> None:
        """A call that tells nothing about the system's health (e.g. a 4xx)."""
        if self._trial_in_flight:
            self.record_success()


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def default_error_parser(response: httpx.Response) -> tuple[str, str | None]:
    text = response.text.strip()
    return (text[:300] or response.reason_phrase or f"HTTP {response.status_code}"), None


@dataclass
class RequestStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    failures: int = 0
    by_operation: Counter[str] = field(default_factory=Counter)


class ResilientClient:
    def __init__(self, system: System, base_url: str, *, policy: HttpPolicy | None = None,
                 headers: dict[str, str] | None = None, auth: httpx.Auth | None = None,
                 error_parser: ErrorParser = default_error_parser,
                 request_id_headers: tuple[str, ...] = ("Request-Id", "X-Request-Id", "X-Zendesk-Request-Id"),
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.system = system
        self.policy = policy or DEFAULT_POLICIES[system]
        p = self.policy
        self.error_parser = error_parser
        self.request_id_headers = request_id_headers
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=headers,
            auth=auth,
            timeout=httpx.Timeout(p.read_timeout, connect=p.connect_timeout),
            limits=httpx.Limits(max_connections=p.concurrency, max_keepalive_connections=p.concurrency),
            transport=transport,
            follow_redirects=False,
        )
        self._semaphore = asyncio.Semaphore(p.concurrency)
        self._limiter: AsyncLimiter | SharedRateLimiter | None = rate_limiter(p)
        self.breaker = CircuitBreaker(system, p.breaker_threshold, p.breaker_cooldown)
        self.stats = RequestStats()

    @property
    def base_url(self) -> str:
        return str(self._client.base_url)

    def with_policy(self, **changes: Any) -> HttpPolicy:
        return replace(self.policy, **changes)

    def share_rate_budget(self, path: Path) -> bool:
        """Pace by a budget every process of this machine shares (the SQLite file ``path``,
        keyed by system and base URL) instead of this process's own limiter: two commands or
        a console and a command at once then stay together under the vendor's limit. Only
        with a rate and ``shared_rate`` on; returns whether it is now shared."""
        p = self.policy
        if not p.rate_per_second or not p.shared_rate:
            return False
        rate = p.rate_per_second * p.rate_headroom
        self._limiter = SharedRateLimiter(path, f"{self.system.value} {self.base_url}", rate,
                                          burst=max(1.0, rate * p.rate_burst_seconds))
        return True

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> ResilientClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the request ------------------------------------------------------------------
    async def request(self, method: str, url: str, *, operation: str, safe: bool | None = None,
                      params: Any = None, data: Any = None, json: Any = None,
                      headers: dict[str, str] | None = None) -> httpx.Response:
        """Send one logical request (with retries where safe); return a 2xx response or raise."""
        method = method.upper()
        if safe is None:
            safe = method in SAFE_METHODS or any(k.lower() == "idempotency-key" for k in (headers or {}))
        self.stats.by_operation[operation] += 1

        def retryable(exc: BaseException) -> bool:
            if isinstance(exc, RateLimitedError):
                return True
            return bool(safe) and isinstance(exc, UnavailableError) and not isinstance(exc, CircuitOpenError)

        exp_wait = wait_random_exponential(multiplier=self.policy.backoff_base, max=self.policy.backoff_max)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
                return min(exc.retry_after, self.policy.max_retry_after)
            return float(exp_wait(state))

        def before_sleep(state: RetryCallState) -> None:
            self.stats.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            log.info("%s %s: retry %d after %s", self.system.value, operation, state.attempt_number, exc)

        retrying = AsyncRetrying(stop=stop_after_attempt(self.policy.max_retries + 1), wait=wait,
                                 retry=retry_if_exception(retryable), before_sleep=before_sleep, reraise=True)
        async for attempt in retrying:
            with attempt:
                return await self._once(method, url, operation, params, data, json, headers)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(self, method: str, url: str, operation: str, params: Any, data: Any, json: Any,
                    headers: dict[str, str] | None) -> httpx.Response:
        trial = self.breaker.before_call(operation)
        try:
            return await self._attempt(method, url, operation, params, data, json, headers)
        except BaseException:
            # every outcome that told the breaker something has settled the trial already;
            # anything else (a cancellation above all: gather_or_cancel cancels the siblings
            # of a failed request) must free it, or the system stays refused until restart
            if trial:
                self.breaker.abandon_trial()
            raise

    async def _attempt(self, method: str, url: str, operation: str, params: Any, data: Any, json: Any,
                       headers: dict[str, str] | None) -> httpx.Response:
        total = self.policy.total_timeout
        async with self._semaphore:
            if self._limiter is not None:
                await self._limiter.acquire()
            started = time.perf_counter()
            self.stats.requests += 1
            try:
                # the total deadline covers connect, headers and the whole body (httpx reads
                # the body before returning); the wait for the semaphore and the limiter above
                # is ours, not the server's, and is left out
                async with asyncio.timeout(total):
                    response = await self._client.request(method, url, params=params, data=data, json=json,
                                                          headers=headers)
            except TimeoutError:
                self.breaker.record_failure()
                self.stats.failures += 1
                raise UnavailableError(self.system, operation,
                                       f"timed out (no complete answer within {total or 0:g} s)") from None
            except httpx.TimeoutException as exc:
                self.breaker.record_failure()
                self.stats.failures += 1
                raise UnavailableError(self.system, operation, f"timed out ({type(exc).__name__})") from None
            except (httpx.TransportError, httpx.DecodingError) as exc:
                self.breaker.record_failure()
                self.stats.failures += 1
                raise UnavailableError(self.system, operation,
                                       f"connection failed ({type(exc).__name__})") from None
        ms = (time.perf_counter() - started) * 1000
        request_id = next((response.headers[h] for h in self.request_id_headers if h in response.headers), None)
        log.debug("%s %s %s %s -> %d in %.0f ms%s", self.system.value, operation, method,
                  response.request.url.path, response.status_code, ms,
                  f" (request {request_id})" if request_id else "")
        self._raise_for_status(response, operation, request_id)
        return response

    def _raise_for_status(self, response: httpx.Response, operation: str, request_id: str | None) -> None:
        status = response.status_code
        if status < 400:
            self.breaker.record_success()
            return
        try:
            message, code = self.error_parser(response)
        except Exception:  # a garbled error body must not hide the status
            message, code = default_error_parser(response)
        kwargs: dict[str, Any] = {"status": status, "request_id": request_id, "vendor_code": code}
        error: ConnectorError
        if status == 429:
            self.breaker.record_neutral()
            self.stats.rate_limited += 1
            raise RateLimitedError(self.system, operation, message,
                                   retry_after=parse_retry_after(response.headers.get("Retry-After")), **kwargs)
        if status >= 500:
            self.breaker.record_failure()
            self.stats.failures += 1
            raise UnavailableError(self.system, operation, message, **kwargs)
        self.breaker.record_neutral()
        if status in (401, 403):
            error = AuthenticationError(self.system, operation, message, **kwargs)
        elif status == 404:
            error = NotFoundError(self.system, operation, message, **kwargs)
        elif status in (400, 409, 422):
            error = RemoteValidationError(self.system, operation, message, **kwargs)
        else:
            error = ProtocolError(self.system, operation, message, **kwargs)
        raise error

    @staticmethod
    def json_body(response: httpx.Response, system: System, operation: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ProtocolError(system, operation, f"answer is not JSON: {response.text[:80]!r}",
                                status=response.status_code) from None
