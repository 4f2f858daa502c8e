"""``/api/v2/search``: the search endpoint (offset paging, at most 1,000 results, run off the
event loop); the syntax itself is in :mod:`services.demo.zendesk.search_engine`."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.demo.zendesk.api_base import ApiBase, _base
from services.demo.zendesk.errors import bad_request
from services.demo.zendesk.pagination import offset_page
from services.demo.zendesk.search_engine import sort_hits
from services.demo.zendesk.serializers import render_organization, render_ticket, render_user


class SearchApi(ApiBase):
    """The search endpoint."""

    async def search(self, request: Request) -> Response:
        query = request.query_params.get("query")
        if query is None or not query.strip():
            raise bad_request("Query must not be blank", "invalid")
        offset_page(request, [], search=True)  # refuse bad paging before searching
        sort_by, sort_order = request.query_params.get("sort_by"), request.query_params.get("sort_order")

        def run() -> tuple[list[dict[str, Any]], dict[str, Any]]:
            with self.store.lock:
                hits = sort_hits(self.store, self.searcher.search(query), sort_by, sort_order)
                page = offset_page(request, list(range(len(hits))), search=True)
                return [self._render_hit(*hits[i], _base(request)) for i in page.ids], page.body

        results, meta = await run_in_threadpool(run)
        return JSONResponse({"results": results, "facets": None, **meta})

    def _render_hit(self, kind: str, rid: int, base_url: str) -> dict[str, Any]:
        if kind == "organization":
            out = render_organization(self.store, self.store.organizations[rid], base_url)
        elif kind == "user":
            out = render_user(self.store, self.store.users[rid], base_url)
        else:
            out = render_ticket(self.store, self.store.tickets[rid], base_url)
        out["result_type"] = kind
        return out
