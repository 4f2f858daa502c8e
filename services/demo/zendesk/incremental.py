"""``/api/v2/incremental/tickets/cursor``: the cursor-based incremental ticket export, in
``(updated_at, id)`` order, leaving out the most recent minute."""

from __future__ import annotations

import bisect
from datetime import timedelta
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.demo.zendesk.api_base import ApiBase, _base
from services.demo.zendesk.errors import bad_request, pagination_error
from services.demo.zendesk.pagination import _int_param, decode_cursor, encode_cursor
from services.demo.zendesk.serializers import render_ticket
from services.demo.zendesk.sideloads import requested, ticket_sideloads
from services.demo.zendesk.timestamps import micros

EXPORT_MAX_PER_PAGE = 1_000
#: the incremental export leaves out the most recent minute
EXPORT_LAG = timedelta(seconds=60)


class IncrementalApi(ApiBase):
    """The incremental ticket export."""

    async def incremental_tickets(self, request: Request) -> Response:
        per_page = min(max(_int_param(request, "per_page", EXPORT_MAX_PER_PAGE), 1), EXPORT_MAX_PER_PAGE)
        cursor, start_raw = request.query_params.get("cursor"), request.query_params.get("start_time")
        now = self.clock()
        cutoff = (micros(now - EXPORT_LAG), 0)
        if cursor:
            direction, us, rid = self._export_cursor(cursor)
            position = (us, rid)
        elif start_raw is not None:
            try:
                start = int(start_raw)
            except ValueError as exc:
                raise bad_request("start_time must be a unix timestamp") from exc
            if start > int((now - EXPORT_LAG).timestamp()):
                raise bad_request("Too recent start_time. Use a start_time older than 1 minute")
            direction, position = "a", (start * 1_000_000, 0)
        else:
            raise bad_request("start_time or cursor is required", "InvalidPaginationParameter")
        with self.store.lock:
            keys, chunk, lo, hi = self._export_window(direction, position, cutoff, per_page)
            if self.ix.timeline.is_stale(chunk):
                self.ix.timeline.rebuild()
                keys, chunk, lo, hi = self._export_window(direction, position, cutoff, per_page)
            tickets = []
            for us, rid in chunk:
                item = render_ticket(self.store, self.store.tickets[rid], _base(request))
                item["generated_timestamp"] = us // 1_000_000
                tickets.append(item)
            extra = ticket_sideloads(self.store, [self.store.tickets[rid] for _us, rid in chunk],
                                     requested(request), _base(request))
            more_before = lo > 0
            more_after = hi < len(keys) and keys[hi] < cutoff
        last = chunk[-1] if chunk else (position if direction == "a" else None)
        first = chunk[0] if chunk else (position if direction == "b" else None)
        after_cursor = encode_cursor("a", *last) if last is not None else None
        before_cursor = encode_cursor("b", *first) if first is not None and more_before else None
        kept = {"per_page": str(per_page)} if "per_page" in request.query_params else {}
        if "include" in request.query_params:  # the next pages sideload the same records
            kept["include"] = ",".join(sorted(requested(request)))
        base = f"{_base(request)}{request.url.path}"

        def url(c: str | None) -> str | None:
            return f"{base}?{urlencode({'cursor': c, **kept})}" if c else None

        return JSONResponse({
            "tickets": tickets,
            "after_url": url(after_cursor),
            "after_cursor": after_cursor,
            "before_url": url(before_cursor),
            "before_cursor": before_cursor,
            "end_of_stream": not (more_before if direction == "b" else more_after),
            **extra,
        })

    def _export_window(self, direction: str, position: tuple[int, int], cutoff: tuple[int, int],
                       per_page: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]], int, int]:
        keys = self.ix.timeline.current()
        limit = bisect.bisect_left(keys, cutoff)
        if direction == "a":
            lo = bisect.bisect_right(keys, position)
            hi = min(lo + per_page, limit)
        else:
            hi = min(bisect.bisect_left(keys, position), limit)
            lo = max(0, hi - per_page)
        lo = min(lo, hi)
        return keys, keys[lo:hi], lo, hi

    @staticmethod
    def _export_cursor(cursor: str) -> tuple[str, int, int]:
        direction, us, rid = decode_cursor(cursor, 3)
        if direction not in ("a", "b") or not us.lstrip("-").isdigit() or not rid.lstrip("-").isdigit():
            raise pagination_error("cursor is not valid")
        return direction, int(us), int(rid)
