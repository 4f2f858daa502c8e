"""The core: what the product knows and decides, with no I/O — the canonical domain model,
one system's data, the reconciliation rules, timelines and the per-customer overview."""
