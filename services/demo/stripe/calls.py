"""One API call as a handler sees it (request, parameters, Request-Id, Idempotency-Key, the
server's "now"), and the handler type."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from services.demo.stripe.responses import JSON


@dataclass
class _Call:
    request: Request
    params: dict[str, Any]
    request_id: str
    idempotency_key: str | None
    now: int
    wrote: bool = False

    def path_param(self, name: str) -> str:
        return str(self.request.path_params[name])


Handler = Callable[[_Call], JSON]
