"""``/v1/events``: list (by type, with ``*`` wildcards, or types) and retrieve, over the last 30
days."""

from __future__ import annotations

import fnmatch

from services.demo.store import BEvent
from services.demo.stripe.api_base import ApiBase
from services.demo.stripe.calls import _Call
from services.demo.stripe.errors import _invalid, _no_such
from services.demo.stripe.forms import _as_bool, _as_list, _as_str
from services.demo.stripe.lists import CreatedRange, _parse_created
from services.demo.stripe.responses import JSON
from services.demo.stripe.serializers.events import render_event

EVENT_RETENTION_SECONDS = 30 * 86400


class EventsApi(ApiBase):
    """The event endpoints."""

    def list_events(self, call: _Call) -> JSON:
        p = call.params
        if "type" in p and "types" in p:
            raise _invalid("You may only specify one of these parameters: type, types.", "types")
        rng = _parse_created(p["created"]) if "created" in p else CreatedRange()
        rng.tighten_lo(call.now - EVENT_RETENTION_SECONDS)
        pattern = _as_str(p["type"], "type") if "type" in p else None
        types = {_as_str(t, "types") for t in _as_list(p["types"], "types")} if "types" in p else None
        if types is not None and len(types) > 20:
            raise _invalid("You may pass at most 20 types.", "types")
        # every demo event is delivered (no webhook endpoint is pending): false finds none
        delivered = _as_bool(p["delivery_success"], "delivery_success") if "delivery_success" in p else True
        index = self.index("event")
        records, pos = index.records, index.pos

        def event(oid: str) -> BEvent:
            e: BEvent = records[pos[oid]]
            return e

        def match(oid: str) -> bool:
            if not delivered:
                return False
            t = event(oid).type
            if pattern is not None:
                return fnmatch.fnmatchcase(t, pattern) if "*" in pattern else t == pattern
            return types is None or t in types

        return self.list_page(call, "event", "/v1/events", None, rng, match,
                              lambda oid: render_event(self.store, event(oid)))

    def retrieve_event(self, call: _Call) -> JSON:
        oid = call.path_param("id")
        event: BEvent | None = self.index("event").record(oid)
        if event is None or event.created < call.now - EVENT_RETENTION_SECONDS:
            raise _no_such("event", oid)
        return self.respond(call, render_event(self.store, event))
