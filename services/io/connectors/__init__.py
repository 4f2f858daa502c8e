"""Connectors: one per protocol (Stripe billing, Tryton ERP, Zendesk support)."""
