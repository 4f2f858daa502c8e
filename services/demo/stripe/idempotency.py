"""``Idempotency-Key``: the answers kept for 24 hours, and their replay (same endpoint and same
parameters only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from services.demo.stripe.calls import _Call
from services.demo.stripe.errors import StripeError
from services.demo.stripe.responses import API_VERSION

IDEMPOTENCY_TTL_SECONDS = 24 * 3600


@dataclass(slots=True)
class _IdemEntry:
    method: str
    path: str
    params: dict[str, Any]
    status: int
    body: bytes
    created: int


def _idempotent_replay(idempotency: dict[str, _IdemEntry], call: _Call,
                       key: str) -> Response | None:
    """The stored answer to replay for ``key`` (``None`` when the key is new); entries
    older than the TTL are dropped first. A key reused on another endpoint or with other
    parameters is an ``idempotency_error``."""
    cutoff = call.now - IDEMPOTENCY_TTL_SECONDS
    if idempotency and next(iter(idempotency.values())).created < cutoff:
        for k in [k for k, e in idempotency.items() if e.created < cutoff]:
            del idempotency[k]
    entry = idempotency.get(key)
    if entry is None:
        return None
    if entry.method != call.request.method or entry.path != call.request.url.path:
        raise StripeError(400, f"Keys for idempotent requests can only be used for the same endpoint "
                               f"they were first used for ('{entry.method} {entry.path}'). Try using a "
                               f"key other than '{key}' if you meant to execute a different request.",
                          type_="idempotency_error")
    if entry.params != call.params:
        raise StripeError(400, f"Keys for idempotent requests can only be used with the same parameters "
                               f"they were first used with. Try using a key other than '{key}' if you "
                               f"meant to execute a different request.", type_="idempotency_error")
    return Response(entry.body, status_code=entry.status, media_type="application/json",
                    headers={"Request-Id": call.request_id, "Stripe-Version": API_VERSION,
                             "Idempotency-Key": key, "Idempotent-Replayed": "true"})
