"""What every resource's handlers share: the store, the clock, the indexes and the searcher,
the request's base URL and the id in its path."""

from __future__ import annotations

from starlette.requests import Request

from services.demo.store import SupportStore
from services.demo.zendesk.errors import record_not_found
from services.demo.zendesk.indexes import Indexes
from services.demo.zendesk.search_engine import Searcher
from services.demo.zendesk.timestamps import Clock


def _base(request: Request) -> str:
    """The request's base URL without a trailing slash (memoized on the scope)."""
    base = request.scope.get("syncdesk.base_url")
    if base is None:
        base = request.scope["syncdesk.base_url"] = str(request.base_url).rstrip("/")
    return str(base)


def _path_id(request: Request, name: str) -> int:
    raw = str(request.path_params[name])
    if raw.endswith(".json"):
        raw = raw[:-5]
    if not raw.isdigit():
        raise record_not_found()
    return int(raw)


class ApiBase:
    """Request handlers over one :class:`SupportStore` (one subclass per resource;
    :class:`~services.demo.zendesk.app.ZendeskApi` joins them)."""

    def __init__(self, store: SupportStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self.ix = Indexes(store)
        self.searcher = Searcher(store, self.ix, clock)
