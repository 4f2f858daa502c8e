"""Zendesk's two paginations: cursor (``page[size]``, ``page[after]``, ``page[before]``, with
``meta`` and ``links``) and offset (``page``, ``per_page``, capped at 10,000 records, 1,000 for
search), and the opaque cursors."""

from __future__ import annotations

import base64
import binascii
import bisect
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

from services.demo.zendesk.errors import ApiError, bad_request, pagination_error

#: cursor and offset pagination limits (Zendesk's)
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 100
OFFSET_RECORD_CAP = 10_000
SEARCH_RESULT_CAP = 1_000


def encode_cursor(*parts: int | str) -> str:
    raw = ":".join(str(p) for p in parts).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise pagination_error("cursor is not valid") from exc
    parts = raw.split(":")
    if len(parts) != arity:
        raise pagination_error("cursor is not valid")
    return parts


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise bad_request(f"{name} must be an integer") from exc


def _page_url(request: Request, changes: dict[str, str | int | None]) -> str:
    params: dict[str, str] = dict(request.query_params)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    base = f"{str(request.base_url).rstrip('/')}{request.url.path}"
    return f"{base}?{urlencode(params, safe='[]:')}" if params else base


@dataclass
class Page:
    ids: list[int]
    body: dict[str, Any]


def uses_cursor(request: Request) -> bool:
    return any(k in request.query_params for k in ("page[size]", "page[after]", "page[before]"))


def cursor_page(request: Request, ids: list[int]) -> Page:
    """Cursor pagination over ascending ``ids`` (bisect: each page is O(log n + size))."""
    size = _int_param(request, "page[size]", DEFAULT_PAGE_SIZE)
    if size > MAX_PAGE_SIZE:
        raise pagination_error(f"page[size] must be less than or equal to {MAX_PAGE_SIZE}")
    if size < 1:
        raise pagination_error("page[size] must be a positive integer")
    after, before = request.query_params.get("page[after]"), request.query_params.get("page[before]")
    if after and before:
        raise pagination_error("page[after] and page[before] cannot be used together")
    if before:
        end = bisect.bisect_left(ids, _cursor_id(before))
        start = max(0, end - size)
    else:
        start = bisect.bisect_right(ids, _cursor_id(after)) if after else 0
        end = min(len(ids), start + size)
    chunk = ids[start:end]
    more_after, more_before = end < len(ids), start > 0
    after_cursor = encode_cursor("id", chunk[-1]) if chunk else None
    before_cursor = encode_cursor("id", chunk[0]) if chunk else None
    body: dict[str, Any] = {
        "meta": {"has_more": more_before if before else more_after,
                 "after_cursor": after_cursor, "before_cursor": before_cursor},
        "links": {
            "next": _page_url(request, {"page[size]": size, "page[after]": after_cursor,
                                        "page[before]": None}) if more_after and chunk else None,
            "prev": _page_url(request, {"page[size]": size, "page[before]": before_cursor,
                                        "page[after]": None}) if more_before and chunk else None,
        },
    }
    return Page(chunk, body)


def _cursor_id(cursor: str) -> int:
    kind, value = decode_cursor(cursor, 2)
    if kind != "id" or not value.lstrip("-").isdigit():
        raise pagination_error("cursor is not valid")
    return int(value)


def offset_page(request: Request, ids: list[int], *, search: bool = False) -> Page:
    """Offset pagination (``page``, ``per_page``) over the first 10,000 records (lists) or
    1,000 results (search: a page reaching past them is refused, as Zendesk does)."""
    page = _int_param(request, "page", 1)
    per_page = min(max(_int_param(request, "per_page", DEFAULT_PAGE_SIZE), 1), MAX_PAGE_SIZE)
    if page < 1:
        raise bad_request("page must be a positive integer")
    start = (page - 1) * per_page
    if search and start + per_page > SEARCH_RESULT_CAP:
        raise _search_cap_error()
    cap = SEARCH_RESULT_CAP if search else OFFSET_RECORD_CAP
    if start >= cap:
        raise _offset_cap_error()
    end = min(len(ids), start + per_page, cap)
    chunk = ids[start:end]
    body: dict[str, Any] = {
        "next_page": _page_url(request, {"page": page + 1, "per_page": per_page})
        if end < len(ids) else None,
        "previous_page": _page_url(request, {"page": page - 1, "per_page": per_page})
        if page > 1 else None,
        "count": len(ids),
    }
    return Page(chunk, body)


def _offset_cap_error() -> ApiError:
    return pagination_error(
        f"Offset pagination is limited to the first {OFFSET_RECORD_CAP} records; "
        "use cursor pagination (page[size]) to retrieve more")


def _search_cap_error() -> ApiError:
    return ApiError(422, {"error": "invalid",
                          "description": "Invalid search: Requested response size was greater than "
                                         f"Search Response Limits ({SEARCH_RESULT_CAP})"})


def list_page(request: Request, ids: list[int]) -> Page:
    return cursor_page(request, ids) if uses_cursor(request) else offset_page(request, ids)
