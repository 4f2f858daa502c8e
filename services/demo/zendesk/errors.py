"""Zendesk's error envelopes (``RecordNotFound``, ``RecordInvalid``, pagination and request
errors, 401) and the renderer the fault middleware answers with."""

from __future__ import annotations

import math
from typing import Any

from starlette.responses import JSONResponse, Response


class ApiError(Exception):
    """An error answered in Zendesk's envelope."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


def record_not_found() -> ApiError:
    return ApiError(404, {"error": "RecordNotFound", "description": "Not found"})


def record_invalid(details: dict[str, list[dict[str, str]]]) -> ApiError:
    return ApiError(422, {"error": "RecordInvalid", "description": "Record validation errors",
                          "details": details})


def invalid_value(field_name: str, title: str, message: str, error: str = "InvalidValue") -> ApiError:
    return record_invalid({field_name: [{"description": f"{title}: {message}", "error": error}]})


def pagination_error(title: str) -> ApiError:
    """400 in the spec's ``Errors`` shape (``InvalidPaginationParameter``)."""
    return ApiError(400, {"errors": [{"code": "InvalidPaginationParameter", "title": title}]})


def bad_request(description: str, error: str = "InvalidValue") -> ApiError:
    return ApiError(400, {"error": error, "description": description})


def not_authenticated() -> ApiError:
    return ApiError(401, {"error": "Couldn't authenticate you"},
                    {"WWW-Authenticate": 'Basic realm="Web Password"'})


_ERROR_NAMES = {429: "TooManyRequests", 500: "InternalServerError", 502: "BadGateway",
                503: "ServiceUnavailable", 504: "GatewayTimeout"}


def render_error(status: int, message: str, retry_after: float | None) -> Response:
    """The :data:`~services.demo.faults.ErrorRenderer` of this server."""
    headers: dict[str, str] = {}
    if status == 429 or retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after or 0.0)))
    name = _ERROR_NAMES.get(status, "Error")
    return JSONResponse({"error": name, "description": message}, status_code=status, headers=headers)
