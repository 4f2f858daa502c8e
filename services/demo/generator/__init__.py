"""The demo company generator, one phase per module; ``services.demo.dataset.generate`` runs them.

The phases, in the order ``generate`` runs them (all draw from the one ``random.Random(seed)``
of :class:`~services.demo.generator.state._Gen`, so their order is part of the determinism):

1. ``catalog`` — billing products and prices, one per plan, interval and currency.
2. ``billing`` — customers and their subscriptions simulated over the last twelve months
   (trials, upgrades, downgrades, quantity changes, renewals, cancellations) and the billing
   events of the last 30 days; ``billing_invoices`` makes each invoice and its payment story
   (charges, failures, retries, voids, write-offs) — the money of a billing invoice lives there.
3. ``plants`` — which customer carries which planted mismatch, and how each plant changes
   what the mirrors get.
4. ``erp`` — the ERP mirror: company, currencies, countries, products, parties and sale
   subscriptions; ``erp_invoices`` makes the ERP's customer invoices from the billing ones,
   ``erp_credits`` the ERP credit notes the integration books for billing's credit notes and
   full refunds (and the two credit plants, chosen without the main random stream).
5. ``support`` — the helpdesk mirror: organizations with entitlements, users, tickets.

Beside them: ``seed`` (the parameters from ``resources/demo_seed.toml``), ``ground_truth``
(the rule ids, statuses and grace periods of the contract in ``services/demo/dataset.py``),
``state`` (the generation state and id maker) and ``dates`` (civil-date arithmetic).
"""
