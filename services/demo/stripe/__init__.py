"""Stripe-compatible demo billing server (API version 2023-08-16) over a :class:`BillingStore`.

Speaks the subset of the Stripe REST API SyncDesk uses (customers, subscriptions, invoices,
prices, products, events) with Stripe's conventions: secret-key auth (Basic or Bearer),
form-encoded bodies with bracket nesting, cursor pagination newest first, ``expand[]``,
``Idempotency-Key`` replay, the ``{"error": {...}}`` envelope and a ``Request-Id`` on every
response. Wrapped in :class:`FaultMiddleware` so faults can be injected on demand.

Records are rendered to Stripe JSON only when a request asks for them; list pages walk a
per-collection creation-order index (id -> position) so paging is O(page) and not O(N).

Where things live: ``app`` (the Starlette app, authentication, Request-Id, the route table),
``api_base`` (what every resource's handlers share), one module per resource family
(``customers``, ``catalog`` = prices and products, ``subscriptions``, ``invoices``, ``events``),
``serializers/`` (Stripe JSON of each family), and the conventions: ``errors``, ``responses``,
``forms`` (bracket parameters), ``metadata``, ``lists`` (cursor pagination), ``expand``,
``idempotency``. A new resource family adds a handlers module, a serializer module and its
routes in ``app``.
"""
