"""Request bodies: the ``{"<root>": {...}}`` JSON envelope and its typed fields (422
``RecordInvalid`` on a wrong type)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from services.demo.zendesk.errors import bad_request, invalid_value


async def _wrapped_body(request: Request, root: str) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"null")
    except ValueError as exc:
        raise bad_request("The request body is not valid JSON", "InvalidJSON") from exc
    if not isinstance(data, dict) or not isinstance(data.get(root), dict):
        raise bad_request(f"Parameter {root} is required and must be an object", "ParameterMissing")
    return dict(data[root])


def _opt_str(body: dict[str, Any], key: str, title: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and key == "external_id":
        return str(value)
    if not isinstance(value, str):
        raise invalid_value(key, title, "is invalid")
    return value


def _str_list(body: dict[str, Any], key: str, title: str) -> list[str]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid_value(key, title, "must be a list of strings")
    return [v.strip() for v in value if v.strip()]


def _opt_int(body: dict[str, Any], key: str, title: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.isdigit():
            return int(value)
        raise invalid_value(key, title, "is invalid")
    return value


def _opt_bool(body: dict[str, Any], key: str, title: str, default: bool) -> bool:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid_value(key, title, "is invalid")
    return value
