"""Operator actions: preflight and preview (plan), the write-ahead outbox, execution,
verification after write, and replay after a restart or an outage. ``service.py`` holds
:class:`ActionService` and, in its docstring, the map of the other modules here."""
