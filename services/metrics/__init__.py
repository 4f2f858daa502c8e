"""Metrics of the design ("Metrics (what leaders ask for)"), Qt-free: the report's model
(model.py), its computation (compute.py) from the invoices of the snapshot (invoices.py) and
from the store read with SQL aggregates (sources.py), SLA targets (sla.py), the report as plain
data and text (export.py), and webhook alerts for schedules (alerts.py)."""
