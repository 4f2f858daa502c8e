"""Stripe's error envelope (``{"error": {...}}``): the error raised by handlers, its usual
shapes (invalid, unknown or missing parameter, no such object) and the renderer the fault
middleware answers with."""

from __future__ import annotations

from starlette.responses import Response

from services.demo.stripe.responses import JSON, _json_response


class StripeError(Exception):
    """An error answered in Stripe's envelope."""

    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> JSON:
        err: JSON = {"type": self.type, "message": self.message}
        if self.code is not None:
            err["code"] = self.code
            err["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param is not None:
            err["param"] = self.param
        return {"error": err}


def _invalid(message: str, param: str | None = None, code: str | None = None) -> StripeError:
    return StripeError(400, message, param=param, code=code)


def _unknown_param(name: str) -> StripeError:
    return _invalid(f"Received unknown parameter: {name}", name, "parameter_unknown")


def _missing_param(name: str) -> StripeError:
    return _invalid(f"Missing required param: {name}.", name, "parameter_missing")


def _no_such(kind: str, oid: str, *, param: str = "id", status: int = 404) -> StripeError:
    return StripeError(status, f"No such {kind}: '{oid}'", code="resource_missing", param=param)


def render_error(status: int, message: str, retry_after: float | None) -> Response:
    """The :data:`ErrorRenderer` for :class:`FaultMiddleware`: Stripe's error envelope.

    429 is ``invalid_request_error`` with ``code: rate_limit`` (the 2023-08-16 spec's error
    ``type`` enum has no rate-limit type; the SDKs map status 429 to ``RateLimitError``)."""
    headers: dict[str, str] = {}
    if status == 429:
        err = StripeError(429, message, code="rate_limit")
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, int(-(-retry_after // 1))))
    elif status >= 500:
        err = StripeError(status, message, type_="api_error")
    else:
        err = StripeError(status, message)
    return _json_response(status, err.body(), headers=headers)
