"""One API call as a handler sees it (request, parameters as sent and as typed by the spec,
Request-Id, Idempotency-Key, the server's "now"), and the handler type."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from services.demo.stripe.responses import JSON


@dataclass
class _Call:
    request: Request
    #: the parameters as parsed from the form / query (text, lists, dicts)
    params: dict[str, Any]
    request_id: str
    idempotency_key: str | None
    now: int
    wrote: bool = False
    #: the same parameters checked against the operation's spec and typed (``params.validate``)
    typed: dict[str, Any] = field(default_factory=dict)

    def path_param(self, name: str) -> str:
        return str(self.request.path_params[name])


Handler = Callable[[_Call], JSON]
