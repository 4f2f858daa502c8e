"""Built-in demo environment: Stripe-, Tryton- and Zendesk-compatible servers over a
deterministic fictional company with planted mismatches."""
