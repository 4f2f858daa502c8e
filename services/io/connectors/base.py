"""The connector contract: one class per protocol, over one shared ResilientClient.

A connector reads everything reconciliation and the timeline need, validates every answer
(pydantic models of the vendor's payloads) and maps it onto the canonical model:

- ``full_refresh`` returns a whole :class:`SystemData` and a resume cursor;
- ``incremental_refresh(cursor, known)`` returns a :class:`Delta` whose cost grows with the
  number of changes, not with the data size (``known`` is the current snapshot of the
  system, for lookups such as organization -> customer);
- ``list_ids`` returns the ids of every record it holds (cheaply where the protocol allows):
  the periodic id reconciliation that discovers deletions;
- malformed answers raise :class:`ProtocolError`; nothing is silently coerced;
- one object of a listing that cannot be read (a wrong type, a missing field, a time out of
  range, an id listed twice with different content) does not fail the refresh: it is
  *quarantined* (``services.core.sysdata.Intake``: left out, listed with its kind, id and
  reason in ``SystemData.quarantined``) and the refresh goes on. Reading one object on its
  own (an action's read) still raises :class:`RecordUnreadable`, a :class:`ProtocolError`.

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
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, StrictInt, ValidationError

from services.core.domain import System
from services.core.errors import ConnectorError, ProtocolError
from services.core.sysdata import Intake, Kind, ProgressCallback, RefreshResult, SystemData, no_progress
from services.io.config import SystemConnection
from services.io.http import HttpPolicy, ResilientClient

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

#: the Unix times a datetime can hold (0001-01-01 to 9999-12-31 UTC)
MIN_UNIX = -62_135_596_800
MAX_UNIX = 253_402_300_799
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


def from_unix(ts: int | float | None) -> datetime | None:
    """A Unix time as an aware UTC datetime; a :class:`ValueError` naming the value when it is
    no time at all (out of the years 1 to 9999)."""
    if ts is None:
        return None
    try:
        return datetime.fromtimestamp(ts, UTC)
    except (OverflowError, OSError, ValueError):
        pass
    try:  # platforms whose fromtimestamp refuses times before 1970
        return _EPOCH + timedelta(seconds=ts)
    except (OverflowError, ValueError):
        raise ValueError(f"{ts} is not a time (out of range)") from None


def _unix_time(value: int) -> int:
    if not MIN_UNIX <= value <= MAX_UNIX:
        raise ValueError(f"{value} is out of range for a time")
    return value


#: a Unix time in seconds that a datetime can hold (a payload field)
UnixTime = Annotated[StrictInt, AfterValidator(_unix_time)]


class RecordUnreadable(ProtocolError):
    """One object does not match the protocol; ``reason`` says where and how (``created:
    Value error, 4611686018427387904 is out of range for a time``)."""

    def __init__(self, system: System, operation: str, message: str, *, reason: str) -> None:
        self.reason = reason
        super().__init__(system, operation, message)


def unreadable_reason(exc: BaseException) -> str:
    """Why one record could not be read, in plain words (a quarantine entry's reason)."""
    if isinstance(exc, RecordUnreadable):
        return exc.reason
    if isinstance(exc, ConnectorError):
        return exc.message
    if not isinstance(exc, ValueError | TypeError | ArithmeticError | LookupError):
        # not a value of the system's that we refuse: most likely a bug of ours; keep the trace
        log.warning("an unexpected error reading a record", exc_info=exc)
    return f"{type(exc).__name__}: {exc}"


def quarantine(intake: Intake | None, system: System, kind: Kind | str, record_id: object, exc: Exception) -> None:
    """Put one record of ``system`` that could not be read in ``intake``'s quarantine, or,
    without an intake (a single read), raise: a connector error as it is, anything else as a
    :class:`RecordUnreadable`."""
    name = kind.value if isinstance(kind, Kind) else kind
    if intake is None:
        if isinstance(exc, ConnectorError):
            raise exc
        reason = unreadable_reason(exc)
        raise RecordUnreadable(system, f"read {name}", f"{name} {record_id}: {reason}", reason=reason) from None
    intake.bad(name, record_id, unreadable_reason(exc))


def raw_id(obj: Any) -> object:
    """The ``id`` of a raw vendor object, whatever it is (None when there is none)."""
    return obj.get("id") if isinstance(obj, dict) else None


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
    """Validate one vendor object of ``system``; a violation is a :class:`RecordUnreadable`
    (a ProtocolError) naming the object, the field and the value."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "(object)"
        value = first.get("input")
        got = ""
        if value is None or isinstance(value, str | int | float | bool):
            shown = repr(value)
            got = f" (got {shown[:60]}{'…' if len(shown) > 60 else ''})"
        elif isinstance(getattr(value, "reason", None), str):  # a value that did not decode (Tryton's)
            got = f" (got {value.reason})"
        if first.get("type") == "missing" or (value is not None and str(value) in str(first.get("msg"))):
            got = ""
        reason = f"{where}: {first.get('msg')}{got}"
        raise RecordUnreadable(system, f"read {what}", f"{what} does not match the protocol: {reason}",
                               reason=reason) from None


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
