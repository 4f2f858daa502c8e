"""Fault injection and rate limiting for the demo servers (pure ASGI middleware).

Every demo server is wrapped in :class:`FaultMiddleware`. Its behaviour is switchable at
run time through a control endpoint on the same server, outside authentication::

    GET  /_demo/faults          -> current FaultConfig as JSON
    POST /_demo/faults          -> JSON object with the fields to change; answers the new config
    GET  /_demo/stats           -> request counts: total, by "METHOD path", injected faults
    POST /_demo/stats/reset     -> zero the counters

Modes (all combinable):
- ``latency_ms``: added delay before each request is handled;
- ``error_rate``: fraction of requests answered with a 5xx in the vendor's error envelope;
- ``rate_limit``: requests per second allowed (token bucket, one second of burst); excess
  requests get the vendor's 429 with ``Retry-After``;
- ``outage``: every request answered 503;
- ``malformed_rate``: fraction of requests answered 200 with a truncated, unparsable JSON body;
- ``throttle_rate``: fraction of requests answered 429 (``Retry-After: 1``) at random, whatever
  the load (``rate_limit`` only answers 429 when the load exceeds it);
- ``drop_after_commit_rate``: fraction of *committed writes* whose connection is dropped
  after the write is applied and before the response is complete. A server marks a request
  as a committed write by setting ``request.state.write = True`` (``scope["state"]["write"]``).

The vendor's envelopes come from an ``ErrorRenderer`` that each server supplies.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: (status, message, retry_after_seconds or None) -> vendor-shaped response
ErrorRenderer = Callable[[int, str, float | None], Response]

CONTROL_PREFIX = "/_demo/"


class DroppedConnection(Exception):
    """Raised inside the ASGI app after the response started: the server closes the socket."""


@dataclass
class FaultConfig:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    rate_limit: float | None = None
    outage: bool = False
    drop_after_commit_rate: float = 0.0
    malformed_rate: float = 0.0
    throttle_rate: float = 0.0

    def update(self, changes: dict[str, Any]) -> None:
        known = {f.name: f for f in fields(self)}
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown fault setting {key!r}; known: {', '.join(known)}")
            if key == "outage":
                if not isinstance(value, bool):
                    raise ValueError("outage must be true or false")
            elif key == "rate_limit":
                if value is not None and (not isinstance(value, int | float) or value <= 0):
                    raise ValueError("rate_limit must be a positive number or null")
            else:
                if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"{key} must be a non-negative number")
                if key.endswith("_rate") and value > 1:
                    raise ValueError(f"{key} is a fraction between 0 and 1")
            setattr(self, key, value)


class TokenBucket:
    """Requests-per-second limiter with one second of burst. Thread-safe."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self) -> tuple[bool, float, int]:
        """Try to take one token: (allowed, seconds until a token is available, remaining)."""
        with self._lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True, 0.0, int(self.tokens)
            return False, (1.0 - self.tokens) / self.rate, 0


class FaultInjector:
    """The switchable state shared by the middleware and the command line."""

    def __init__(self, system: str, config: FaultConfig | None = None, seed: int = 0) -> None:
        self.system = system
        self.config = config or FaultConfig()
        self._rng = random.Random(seed)
        self._bucket: TokenBucket | None = None
        self._bucket_rate: float | None = None
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        #: wall-clock time (time.time()) of the first and the latest counted request
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.injected: Counter[str] = Counter()

    def roll(self, probability: float) -> bool:
        if probability <= 0:
            return False
        with self._lock:
            return self._rng.random() < probability

    def rate_check(self) -> tuple[bool, float, int, int | None]:
        """(allowed, retry_after, remaining, limit per minute or None)."""
        rate = self.config.rate_limit
        if rate is None:
            return True, 0.0, 0, None
        with self._lock:
            if self._bucket is None or self._bucket_rate != rate:
                self._bucket = TokenBucket(rate)
                self._bucket_rate = rate
            bucket = self._bucket
        allowed, wait, remaining = bucket.take()
        return allowed, wait, remaining, int(rate * 60)

    def stats(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "total": sum(self.requests.values()),
            "requests": dict(self.requests),
            "injected": dict(self.injected),
            "first_at": self.first_at,
            "last_at": self.last_at,
        }

    def reset_stats(self) -> None:
        self.requests.clear()
        self.injected.clear()
        self.first_at = self.last_at = None


class FaultMiddleware:
    """ASGI middleware applying a :class:`FaultInjector` in front of a vendor app."""

    def __init__(self, app: ASGIApp, injector: FaultInjector, render_error: ErrorRenderer,
                 rate_headers: bool = False) -> None:
        self.app = app
        self.injector = injector
        self.render_error = render_error
        #: Zendesk-style X-Rate-Limit / X-Rate-Limit-Remaining on every response
        self.rate_headers = rate_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(CONTROL_PREFIX):
            await self._control(scope, receive, send)
            return

        inj = self.injector
        cfg = inj.config
        inj.requests[f"{scope['method']} {path}"] += 1
        inj.last_at = time.time()
        if inj.first_at is None:
            inj.first_at = inj.last_at
        if cfg.latency_ms > 0:
            await asyncio.sleep(cfg.latency_ms / 1000.0)
        if cfg.outage:
            inj.injected["outage"] += 1
            await self.render_error(503, f"{inj.system} is unavailable (demo outage)", None)(
                scope, receive, send)
            return
        allowed, retry_after, remaining, per_minute = inj.rate_check()
        if not allowed:
            inj.injected["429"] += 1
            response = self.render_error(429, "Too many requests; slow down.", retry_after)
            if self.rate_headers and per_minute is not None:
                response.headers["X-Rate-Limit"] = str(per_minute)
                response.headers["X-Rate-Limit-Remaining"] = "0"
            await response(scope, receive, send)
            return
        if inj.roll(cfg.throttle_rate):
            inj.injected["429"] += 1
            await self.render_error(429, "Too many requests (demo throttle); slow down.", 1.0)(scope, receive, send)
            return
        if inj.roll(cfg.error_rate):
            inj.injected["5xx"] += 1
            await self.render_error(500, "An unexpected error occurred (demo fault).", None)(
                scope, receive, send)
            return

        if inj.roll(cfg.malformed_rate):
            inj.injected["malformed"] += 1
            await Response(b'{"object": "list", "data": [{"id": ', status_code=200,
                           media_type="application/json")(scope, receive, send)
            return

        drop = cfg.drop_after_commit_rate
        captured: list[Message] = []

        async def capture(message: Message) -> None:
            captured.append(message)

        scope.setdefault("state", {})
        await self.app(scope, receive, capture)
        if drop > 0 and scope["state"].get("write") and inj.roll(drop):
            inj.injected["drop_after_commit"] += 1
            for message in captured:
                if message["type"] == "http.response.start":
                    await send(message)
                    break
            raise DroppedConnection(f"{inj.system}: write committed, connection dropped (demo fault)")
        for message in captured:
            if self.rate_headers and per_minute is not None and message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-rate-limit", str(per_minute).encode()))
                headers.append((b"x-rate-limit-remaining", str(remaining).encode()))
                message = {**message, "headers": headers}
            await send(message)

    async def _control(self, scope: Scope, receive: Receive, send: Send) -> None:
        inj = self.injector
        path, method = scope["path"], scope["method"]
        response: Response
        if path == "/_demo/faults" and method == "GET":
            response = JSONResponse(asdict(inj.config))
        elif path == "/_demo/faults" and method in ("POST", "PUT", "PATCH"):
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            try:
                changes = json.loads(body or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("expected a JSON object")
                inj.config.update(changes)
            except ValueError as exc:
                response = JSONResponse({"error": str(exc)}, status_code=400)
            else:
                response = JSONResponse(asdict(inj.config))
        elif path == "/_demo/stats" and method == "GET":
            response = JSONResponse(inj.stats())
        elif path == "/_demo/stats/reset" and method == "POST":
            inj.reset_stats()
            response = JSONResponse(inj.stats())
        else:
            response = JSONResponse({"error": "unknown control endpoint"}, status_code=404)
        await response(scope, receive, send)
