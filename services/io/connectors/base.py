"""The connector contract: one class per protocol, over one shared ResilientClient.

A connector reads everything reconciliation and the timeline need, validates every answer
(pydantic models of the vendor's payloads) and maps it onto the canonical model:

- ``full_refresh`` returns a whole :class:`SystemData` and a resume cursor;
- ``incremental_refresh(cursor, known)`` returns a :class:`Delta` whose cost grows with the
  number of changes, not with the data size (``known`` is the current snapshot of the
  system, for lookups such as organization -> customer);
- ``list_ids`` returns the ids of every record it holds (cheaply where the protocol allows):
  the periodic id reconciliation that discovers deletions;
- malformed answers and schema-violating objects raise :class:`ProtocolError` naming the
  object; nothing is silently coerced.

Mapping conventions the reconciliation engine relies on (``services/core/reconcile.py``):

- records are keyed by the native id as text; ``ExternalRef(system, kind, id)`` with kind
  ``customer``/``price``/``subscription``/``invoice``/``event`` (billing),
  ``party.party``/``product.product``/``sale.subscription``/``account.invoice`` (ERP),
  ``organization``/``ticket`` (support);
- ``customer_id`` is always the billing customer id (ERP: party code, support: organization
  external_id), or ``None`` when the record is not linked;
- money is ``Money(Decimal major units, "USD")``; times are aware UTC datetimes.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from services.core.domain import System
from services.core.errors import ProtocolError
from services.core.sysdata import Kind, ProgressCallback, RefreshResult, SystemData, no_progress
from services.io.config import SystemConnection
from services.io.http import HttpPolicy, ResilientClient

Clock = Callable[[], datetime]
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


def from_unix(ts: int | float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


async def gather_or_cancel(*aws: Awaitable[T]) -> list[T]:
    """``asyncio.gather`` that cancels the siblings when one fails (no requests keep going)
    and raises that failure (a typed ConnectorError, not an ExceptionGroup)."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def parse_payload(system: System, model: type[M], data: Any, what: str) -> M:
    """Validate one vendor object of ``system``; a violation is a ProtocolError naming the object."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "(object)"
        raise ProtocolError(system, f"read {what}",
                            f"{what} does not match the protocol: {where}: {first.get('msg')}") from None


class Connector(abc.ABC):
    system: System

    def __init__(self, conn: SystemConnection, client: ResilientClient, clock: Clock = utc_now) -> None:
        self.conn = conn
        self.client = client
        self.clock = clock

    @classmethod
    @abc.abstractmethod
    def create(cls, conn: SystemConnection, *, policy: HttpPolicy | None = None,
               transport: Any = None, clock: Clock = utc_now) -> Connector:
        """Build the connector and its ResilientClient from a profile's connection."""

    @abc.abstractmethod
    async def full_refresh(self, progress: ProgressCallback = no_progress) -> RefreshResult: ...

    @abc.abstractmethod
    async def incremental_refresh(self, cursor: dict[str, Any], known: SystemData,
                                  progress: ProgressCallback = no_progress) -> RefreshResult: ...

    @abc.abstractmethod
    async def list_ids(self, progress: ProgressCallback = no_progress) -> dict[Kind, set[str]]: ...

    @property
    def requests_made(self) -> int:
        return self.client.stats.requests

    async def aclose(self) -> None:
        await self.client.aclose()

    def parse(self, model: type[M], data: Any, what: str) -> M:
        """Validate one vendor object; a violation is a ProtocolError naming the object."""
        return parse_payload(self.system, model, data, what)
