"""Store records as the handlers see them (plain dicts), and the allowed values of the ticket
fields that validation and search share."""

from __future__ import annotations

from typing import Any

TICKET_STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
TICKET_PRIORITIES = ("low", "normal", "high", "urgent")
TICKET_TYPES = ("problem", "incident", "question", "task")

Record = dict[str, Any]
