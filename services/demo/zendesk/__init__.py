"""Zendesk-compatible demo support server (Starlette), faithful to the official OpenAPI subset
in ``shared/specs/zendesk/syncdesk-subset.json``.

Serves organizations (list/create/show/update/search), organization fields, users
(list/create/show), tickets (list/create/show), search and the cursor-based incremental
ticket export over a :class:`~services.demo.store.SupportStore`, with Zendesk's
authentication, envelopes, pagination (cursor and offset), errors and rate-limit headers.
Every path is served with and without the ``.json`` suffix.

Lists are served from sorted id lists (bisect), the incremental export from a sorted
``(updated_at, id)`` index, both maintained on writes and rebuilt lazily when the store was
changed behind the server's back; so paging 100,000 organizations or 300,000 tickets stays
linear overall.

Rendering follows the subset's schemas: a property the spec does not declare nullable is
left out when its value is unknown (e.g. a ticket's ``priority`` or an unset custom
organization field) instead of being sent as ``null``.

Where things live: ``app`` (the Starlette app, the route table, authentication and fault
injection around it), ``auth``, ``api_base`` (what every resource's handlers share), one
module per resource (``organizations``, ``users``, ``tickets``, ``search``, ``incremental``),
``serializers`` (store records -> Zendesk JSON), ``pagination`` (cursor and offset),
``indexes`` (sorted ids, the export timeline, lookups), ``search_engine`` (the search syntax),
``bodies`` (request bodies), ``errors``, ``records`` and ``timestamps``.
"""
