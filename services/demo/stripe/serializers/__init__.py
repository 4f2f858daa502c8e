"""Stripe JSON of the demo billing store's records, one module per resource family (pure
functions of the store)."""
