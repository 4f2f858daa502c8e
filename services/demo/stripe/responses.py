"""The wire format of the demo Stripe server: its API version, JSON bodies and responses that
carry a ``Request-Id`` and the ``Stripe-Version``."""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

from starlette.responses import Response

API_VERSION = "2023-08-16"

JSON = dict[str, Any]


def _new_request_id() -> str:
    alphabet = string.ascii_letters + string.digits
    return "req_" + "".join(secrets.choice(alphabet) for _ in range(14))


def _json_bytes(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _json_response(status: int, body: Any, request_id: str | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    hdrs = {"Request-Id": request_id or _new_request_id(), "Stripe-Version": API_VERSION}
    hdrs.update(headers or {})
    return Response(_json_bytes(body), status_code=status, media_type="application/json", headers=hdrs)
