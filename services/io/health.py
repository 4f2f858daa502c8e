"""Reachability checks for the three systems (cheap, authenticated where possible)."""

from __future__ import annotations

import asyncio
import base64
import enum
from dataclasses import dataclass

import httpx

from services.core.domain import System
from services.io.config import SystemConnection

TIMEOUT = httpx.Timeout(5.0, connect=3.0)


class Health(enum.StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"
    NOT_CONFIGURED = "not configured"


@dataclass(frozen=True, slots=True)
class HealthResult:
    state: Health
    detail: str
    latency_ms: float | None = None


def _request(conn: SystemConnection) -> tuple[str, str, dict[str, str], dict[str, object] | None]:
    if conn.kind == "stripe":
        return "GET", f"{conn.url}/v1/customers?limit=1", {
            "Authorization": f"Bearer {conn.secret('api_key')}", "Stripe-Version": "2023-08-16"}, None
    if conn.kind == "zendesk":
        token = base64.b64encode(f"{conn.settings['email']}/token:{conn.secret('api_token')}".encode()).decode()
        return "GET", f"{conn.url}/api/v2/organization_fields.json", {"Authorization": f"Basic {token}"}, None
    if conn.kind == "tryton":
        return "POST", f"{conn.url}/rpc/", {}, {"id": 0, "method": "common.server.version", "params": []}
    raise ValueError(f"unknown system kind {conn.kind!r}")


async def probe(client: httpx.AsyncClient, conn: SystemConnection) -> HealthResult:
    """One request that tells whether the system answers and accepts our credentials."""
    method, url, headers, body = _request(conn)
    try:
        response = await client.request(method, url, headers=headers, json=body, timeout=TIMEOUT)
    except httpx.TimeoutException:
        return HealthResult(Health.DOWN, "timed out")
    except httpx.TransportError as exc:
        return HealthResult(Health.DOWN, f"unreachable: {type(exc).__name__}")
    ms = response.elapsed.total_seconds() * 1000 if response.is_closed else None
    if response.status_code in (401, 403):
        return HealthResult(Health.DOWN, f"credentials rejected (HTTP {response.status_code})", ms)
    if response.status_code == 429:
        return HealthResult(Health.DEGRADED, "rate limited (HTTP 429)", ms)
    if response.status_code >= 500:
        return HealthResult(Health.DOWN, f"server error (HTTP {response.status_code})", ms)
    if response.status_code >= 400:
        return HealthResult(Health.DEGRADED, f"unexpected answer (HTTP {response.status_code})", ms)
    return HealthResult(Health.OK, f"answering (HTTP {response.status_code})", ms)


class HealthMonitor:
    """Probes every system of a profile over one long-lived client."""

    def __init__(self, connections: dict[System, SystemConnection]) -> None:
        self.connections = connections
        self._client = httpx.AsyncClient(timeout=TIMEOUT, limits=httpx.Limits(max_connections=6))

    async def check_all(self) -> dict[System, HealthResult]:
        results: dict[System, HealthResult] = {s: HealthResult(Health.NOT_CONFIGURED, "no connection configured")
                                               for s in System}
        systems = [s for s in System if s in self.connections]
        answers = await asyncio.gather(*(probe(self._client, self.connections[s]) for s in systems))
        results.update(zip(systems, answers, strict=True))
        return results

    async def aclose(self) -> None:
        await self._client.aclose()
