"""How actions are written down: canonical JSON, the stored timestamps, and the idempotency key.

The key is a hash of (rule, object, action kind, operator-chosen values, the exception's
first-seen time): a double click, a re-run of the same fix on the same occurrence, a replay after
a crash all map to the same outbox row (``idempotency_key`` is unique; what
:meth:`~services.actions.service.ActionService.execute` does with it: the module docstring of
:mod:`services.actions.service`). A disagreement that comes back later has a new first-seen time,
hence a new key.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from services.actions.model import ActionRequest
from services.core.domain import SyncException


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def _parse_dt(text: str) -> datetime:
    dt = datetime.fromisoformat(text)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def _key(exc: SyncException, req: ActionRequest) -> str:
    material = [exc.rule, exc.object_id, req.kind.value, req.value or {}, _iso(exc.first_seen)]
    return "sd-" + hashlib.sha256(_canonical(material).encode()).hexdigest()[:40]
