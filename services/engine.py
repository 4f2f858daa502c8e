"""The engine: snapshot + connectors + reconciliation, as one async service.

- ``load()`` reads the local snapshot (in a worker thread) so the console opens at once;
- ``refresh(mode)`` refreshes every system concurrently; each system commits whole or
  not at all, a failing system is reported and does not stop the others (whatever it
  raised: an unexpected error is a failed :class:`SystemOutcome` too, never an exception out
  of ``refresh``), cancellation (``task.cancel()``) leaves every system's snapshot as it was
  or fully updated; records a system sent that could not be read are quarantined, not fatal
  (:meth:`Engine.quarantined`, ``SystemData.quarantined``), and stored with its snapshot;
- what a record was before it changed (a support tier) is recorded as a fact whenever the
  engine sees both versions — an incremental or full refresh over stored data, an action's
  read-back (:meth:`Engine.apply_records`) — and kept across full refreshes
  (services.core.history);
- ``reconcile()`` evaluates the rules off the event-loop thread and merges the findings
  into the exception history.

It knows nothing of Qt; the console's adapter turns its progress callbacks into signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.compute import run_cpu
from services.core.domain import SyncException, System
from services.core.errors import ConnectorError, SyncDeskError
from services.core.history import carry_history, record_changes
from services.core.overview import CustomerRow, OverviewFormatError, decode_rows
from services.core.reconcile import ReconcileConfig, ReconcileResult, Snapshot, reconcile
from services.core.redaction import redact, register_secret
from services.core.sysdata import (
    Delta,
    Kind,
    Progress,
    ProgressCallback,
    Quarantined,
    RefreshResult,
    SystemData,
    no_progress,
)
from services.io.config import Profile, SystemConnection
from services.io.connectors.base import Clock, Connector, utc_now
from services.io.http import DEFAULT_POLICIES, HttpPolicy, policy_from_settings
from services.store.exception_history import ExceptionTracker, TrackResult
from services.store.home import syncdesk_home
from services.store.storage import Storage

log = logging.getLogger(__name__)

#: what a customer list needs from each system (services.core.overview): billing's customers, plans
#: and subscriptions, the ERP's parties, support's organizations and tiers
OVERVIEW_KINDS: dict[System, tuple[Kind, ...]] = {
    System.BILLING: (Kind.CUSTOMER, Kind.PLAN, Kind.SUBSCRIPTION),
    System.ERP: (Kind.CUSTOMER,),
    System.SUPPORT: (Kind.CUSTOMER, Kind.ENTITLEMENT),
}

CONNECTOR_CLASSES: dict[str, str] = {
    "stripe": "services.io.connectors.stripe:StripeConnector",
    "tryton": "services.io.connectors.tryton:TrytonConnector",
    "zendesk": "services.io.connectors.zendesk:ZendeskConnector",
}


#: the request budget every process of the machine shares (services.io.rate_budget), in SYNCDESK_HOME
RATE_BUDGET_FILE = "rate-budget.db"


def connector_for(conn: SystemConnection, *, policy: HttpPolicy | None = None, transport: Any = None,
                  clock: Clock = utc_now) -> Connector:
    """The connector of ``conn`` over ``policy`` (default: the vendor's), with what the
    connection's settings change of it (``total_timeout = 20``...: ``policy_from_settings``)."""
    module_name, _, cls_name = CONNECTOR_CLASSES[conn.kind].partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    for secret in conn.secrets.values():  # masked wherever an upstream echoes it (services.core.redaction)
        register_secret(secret.reveal())
    effective = policy_from_settings(policy or DEFAULT_POLICIES[conn.system], conn.settings,
                                     f"{conn.system.value} connection")
    connector: Connector = cls.create(conn, policy=effective, transport=transport, clock=clock)
    return connector


class RefreshFailed(SyncDeskError):
    """A refresh of one system failed for a reason that is not a connector error (a bug, a
    local database that cannot be written): the system is reported failed, the others go on."""


class RefreshMode(enum.StrEnum):
    FULL = "full"
    INCREMENTAL = "incremental"
    AUTO = "auto"  # incremental when a cursor exists, else full


@dataclass
class SystemOutcome:
    system: System
    ok: bool
    mode: str = ""
    records: int = 0
    changes: int = 0
    requests: int = 0
    seconds: float = 0.0
    error: ConnectorError | SyncDeskError | None = None
    #: records the system holds that could not be read (after this refresh)
    quarantined: int = 0

    @property
    def error_text(self) -> str:
        return redact(str(self.error)) if self.error else ""


@dataclass
class RefreshReport:
    outcomes: dict[System, SystemOutcome] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes.values())

    @property
    def failed(self) -> list[SystemOutcome]:
        return [o for o in self.outcomes.values() if not o.ok]


class Engine:
    def __init__(self, storage: Storage, connectors: dict[System, Connector], *,
                 config: ReconcileConfig | None = None, clock: Clock = utc_now,
                 id_check_every: timedelta = timedelta(hours=6)) -> None:
        self.storage = storage
        self.connectors = connectors
        self.config = config or ReconcileConfig()
        self.clock = clock
        self.id_check_every = id_check_every
        self.data: dict[System, SystemData] = {}
        self.tracker = ExceptionTracker(storage)
        self.last_result: ReconcileResult | None = None
        self._locks = {s: asyncio.Lock() for s in System}
        #: held while the rules read ``data`` in a worker thread and while ``data`` is changed
        #: in place, so a reconciliation never sees a dictionary change under it
        self._data_lock = asyncio.Lock()
        #: one snapshot write at a time: SQLite has a single writer anyway, and two systems
        #: encoding 100,000 records at once in two threads would only contend for the GIL
        #: with the UI thread
        self._write_lock = asyncio.Lock()
        #: predicates hiding open exceptions from :meth:`open_exceptions` (e.g. accepted
        #: differences, registered by the action service); the tracker keeps them open
        self.hide_hooks: list[Callable[[SyncException], bool]] = []
        #: bumped whenever ``data`` changes (load, refresh, applied records): caches key on it
        self.data_version = 0
        self._overview_task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        #: why nothing may be written through this engine (a read-only profile); None: writes allowed
        self.read_only: str | None = None

    @classmethod
    def from_profile(cls, profile: Profile, storage: Storage, *, policies: dict[System, HttpPolicy] | None = None,
                     config: ReconcileConfig | None = None, clock: Clock = utc_now,
                     shared_budget: bool = True) -> Engine:
        """The engine over ``profile``'s connections. ``shared_budget``: systems with a rate
        limit pace by a budget shared with the other SyncDesk processes of this machine
        (``SYNCDESK_HOME/rate-budget.db``), unless their policy says ``shared_rate=False``."""
        connectors = {s: connector_for(c, policy=(policies or {}).get(s), clock=clock)
                      for s, c in profile.connections.items()}
        if shared_budget:
            path = syncdesk_home() / RATE_BUDGET_FILE
            for connector in connectors.values():
                connector.client.share_rate_budget(path)
        engine = cls(storage, connectors, config=config, clock=clock)
        if profile.read_only:
            engine.read_only = (f"profile {profile.name!r} is read-only (read_only = true in config.toml): "
                                "SyncDesk never writes to its systems")
        return engine

    async def aclose(self) -> None:
        self._closing.set()
        if self._overview_task is not None:
            await asyncio.gather(self._overview_task, return_exceptions=True)
        await asyncio.gather(*(c.aclose() for c in self.connectors.values()), return_exceptions=True)

    # -- the stored customer list (a launch shows it before decoding the snapshot) --------
    async def cached_overview(self) -> list[CustomerRow] | None:
        """The customer list stored for the current records (exceptions not attached), or
        None when there is none (records changed since, or an older format)."""
        def read() -> list[CustomerRow] | None:
            text = self.storage.load_overview()
            if text is None:
                return None
            try:
                return decode_rows(text)
            except OverviewFormatError as exc:
                log.warning("ignoring the stored customer list: %s", exc)
                return None

        return await run_cpu(read)

    def remember_overview(self, payload: str, version: int) -> None:
        """Store a customer list (``services.core.overview.encode_rows``) built from the data at
        ``version``, in the background (latest wins); skipped if the data has changed since
        (the records' next write deletes it anyway)."""
        if self._overview_task is not None and not self._overview_task.done():
            self._overview_task.cancel()
        self._overview_task = asyncio.get_running_loop().create_task(self._save_overview(payload, version),
                                                                     name="save-overview")

    #: seconds between publishing a state and storing its customer list: the views paint the
    #: new state meanwhile (a write at the same time competes with the paint for the GIL)
    OVERVIEW_SAVE_DELAY = 1.0

    async def _save_overview(self, payload: str, version: int) -> None:
        try:
            with contextlib.suppress(TimeoutError):  # or at once when the engine closes
                await asyncio.wait_for(self._closing.wait(), self.OVERVIEW_SAVE_DELAY)
            # under the write lock: no record write (which deletes the stored list) can come
            # between the version check and this write
            async with self._write_lock:
                if version == self.data_version:
                    await asyncio.to_thread(self.storage.save_overview, payload)
        except asyncio.CancelledError:
            raise
        except Exception:  # a cache: failing to store it only makes the next launch slower
            log.warning("could not store the customer list", exc_info=True)

    # -- snapshot -----------------------------------------------------------------------
    async def load(self, overview: Snapshot | None = None) -> None:
        """Read every system's snapshot from storage (worker thread). ``overview``: what
        :meth:`load_overview` read already; only the other kinds are read and added to it."""
        def read() -> dict[System, SystemData]:
            loaded: dict[System, SystemData] = {}
            for system in System:
                state = self.storage.state(system)
                if state is None or state.refreshed_at is None:
                    continue
                base = overview.systems.get(system) if overview is not None else None
                if base is None:
                    loaded[system] = self.storage.load_system(system)
                    continue
                read_first = OVERVIEW_KINDS[system]
                rest = self.storage.load_system(system, [k for k in Kind if k not in read_first])
                for kind in Kind:
                    if kind not in read_first:
                        base.table(kind).update(rest.table(kind))
                loaded[system] = base
            return loaded

        self.data = await run_cpu(read)
        self.data_version += 1

    async def load_overview(self) -> Snapshot:
        """The part of the stored snapshot a customer list needs (:data:`OVERVIEW_KINDS`: about
        a quarter of the records), read in a worker thread, for a console that opens before the
        whole snapshot is in. Not installed as the engine's data: rules, timelines and actions
        need everything (:meth:`load`)."""
        def read() -> dict[System, SystemData]:
            loaded: dict[System, SystemData] = {}
            for system in System:
                state = self.storage.state(system)
                if state is not None and state.refreshed_at is not None:
                    loaded[system] = self.storage.load_system(system, OVERVIEW_KINDS[system])
            return loaded

        return Snapshot(await run_cpu(read))

    def snapshot(self) -> Snapshot:
        return Snapshot(dict(self.data))

    def quarantined(self, system: System | None = None) -> list[Quarantined]:
        """The records the systems sent that could not be read (all systems, or ``system``),
        by system, kind and id: what the last refreshes left out (kept with the snapshot, so
        a restart shows them too). Each has ``system``, ``kind``, ``record_id``, ``reason``
        and ``line()``, the sentence ``reconcile`` prints."""
        systems = [system] if system is not None else list(System)
        out: list[Quarantined] = []
        for s in systems:
            data = self.data.get(s)
            if data is not None:
                out.extend(sorted(data.quarantined.values(), key=lambda q: (q.kind, q.record_id)))
        return out

    def snapshot_age(self, system: System) -> timedelta | None:
        state = self.storage.state(system)
        if state is None or state.refreshed_at is None:
            return None
        return self.clock() - state.refreshed_at

    # -- refresh ------------------------------------------------------------------------
    async def refresh(self, mode: RefreshMode = RefreshMode.AUTO, progress: ProgressCallback = no_progress,
                      systems: list[System] | None = None) -> RefreshReport:
        targets = [s for s in (systems or list(self.connectors)) if s in self.connectors]
        results = await asyncio.gather(*(self._refresh_one(s, mode, progress) for s in targets))
        return RefreshReport({o.system: o for o in results})

    async def _refresh_one(self, system: System, mode: RefreshMode, progress: ProgressCallback) -> SystemOutcome:
        connector = self.connectors[system]
        started = time.perf_counter()
        before = connector.requests_made
        async with self._locks[system]:
            use_full = mode is RefreshMode.FULL
            try:
                state = await asyncio.to_thread(self.storage.state, system)
                cursor = state.cursor if state else {}
                known = self.data.get(system)
                use_full = use_full or not cursor or known is None or (
                    state is not None and state.refreshed_at is None)
                if use_full:
                    result = await connector.full_refresh(progress)
                else:
                    assert known is not None
                    result = await connector.incremental_refresh(cursor, known, progress)
                    if result.delta is not None and state is not None and self._id_check_due(state.full_refreshed_at):
                        await self._add_deletions(connector, known, result.delta, progress)
                outcome = await self._commit(system, connector, result)
            except ConnectorError as exc:
                log.warning("%s refresh failed: %s", system.value, exc)
                await self._record_error(system, str(exc))
                return SystemOutcome(system, False, "full" if use_full else "incremental",
                                     requests=connector.requests_made - before,
                                     seconds=time.perf_counter() - started, error=exc)
            except Exception as exc:  # not a connector's error: a bug or the local disk; fail this system only
                log.exception("%s refresh failed unexpectedly", system.value)
                error = RefreshFailed(redact(f"{system.value} refresh: unexpected error "
                                             f"({type(exc).__name__}: {exc})"))
                await self._record_error(system, str(error))
                return SystemOutcome(system, False, "full" if use_full else "incremental",
                                     requests=connector.requests_made - before,
                                     seconds=time.perf_counter() - started, error=error)
        outcome.requests = connector.requests_made - before
        outcome.seconds = time.perf_counter() - started
        progress(Progress(system, "done", outcome.records, outcome.records,
                          f"{outcome.mode}: {outcome.changes} changes"))
        return outcome

    async def _record_error(self, system: System, message: str) -> None:
        try:
            await asyncio.to_thread(self.storage.record_error, system, message, self.clock())
        except Exception:  # the failure is reported anyway; the database may be what failed
            log.exception("%s: could not store the refresh error", system.value)

    def _id_check_due(self, last_full: datetime | None) -> bool:
        return last_full is None or self.clock() - last_full > self.id_check_every

    async def _add_deletions(self, connector: Connector, known: SystemData, delta: Delta,
                             progress: ProgressCallback) -> None:
        """The periodic id reconciliation: whatever we hold that the system no longer lists."""
        ids = await connector.list_ids(progress)
        for kind, present in ids.items():
            gone = set(known.table(kind)) - present - set(delta.upserts.table(kind))
            if gone:
                delta.deletions.setdefault(kind, set()).update(gone)

    async def _commit(self, system: System, connector: Connector, result: RefreshResult) -> SystemOutcome:
        source = connector.conn.url
        at = result.fetched_at
        if result.full is not None:
            data = result.full
            before = self.data.get(system)

            def replace() -> None:
                # what the records were is history no system lists: keep it (services.core.history)
                record_changes(before, data.entitlements, data, at)
                carry_history(before, data)
                self.storage.replace_system(data, result.cursor, source, at)

            async with self._write_lock:
                await run_cpu(replace)
                self.data[system] = data
                self.data_version += 1
            return SystemOutcome(system, True, "full", records=data.count(), changes=data.count(),
                             quarantined=len(data.quarantined))
        assert result.delta is not None
        delta = result.delta
        record_changes(self.data.get(system), delta.upserts.entitlements, delta.upserts, at)
        async with self._write_lock:
            await run_cpu(self.storage.apply_delta, system, delta, result.cursor, source, at)
            async with self._data_lock:
                current = (self.data.get(system) or SystemData(system)).applied(delta)  # copy on write
                self.data[system] = current
                self.data_version += 1
        return SystemOutcome(system, True, "incremental", records=current.count(), changes=delta.count(),
                             quarantined=len(current.quarantined))

    # -- reconciliation -------------------------------------------------------------------
    async def reconcile(self, now: datetime | None = None) -> tuple[ReconcileResult, TrackResult]:
        snapshot = self.snapshot()
        when = now or self.clock()

        def run() -> tuple[ReconcileResult, TrackResult]:
            result = reconcile(snapshot, self.config, when)
            return result, self.tracker.update(result)

        async with self._data_lock:
            result, tracked = await run_cpu(run)
        self.last_result = result
        return result, tracked

    async def evaluate(self, now: datetime | None = None) -> ReconcileResult:
        """The rules over the current data (off the loop), without touching the exception
        history: for checks such as an action's verification."""
        snapshot = self.snapshot()
        async with self._data_lock:
            return await run_cpu(reconcile, snapshot, self.config, now or self.clock())

    async def close_exceptions(self, exc_ids: list[str]) -> list[str]:
        """Close exceptions verified gone (by an action) without a full reconciliation."""
        return await asyncio.to_thread(self.tracker.close, exc_ids, self.clock())

    async def open_exceptions(self, *, include_hidden: bool = False) -> list[SyncException]:
        """Open exceptions, without those a hide hook hides (accepted differences) unless
        ``include_hidden``."""
        found = await asyncio.to_thread(self.tracker.open_exceptions)
        if include_hidden or not self.hide_hooks:
            return found
        return [e for e in found if not any(hook(e) for hook in self.hide_hooks)]

    async def exception_history(self) -> list[SyncException]:
        """Every exception the history keeps, open and closed (oldest first)."""
        return await asyncio.to_thread(self.tracker.all_exceptions)

    async def exception(self, exc_id: str) -> SyncException | None:
        """One exception by id (open or closed), or ``None``."""
        return await asyncio.to_thread(self.tracker.get, exc_id)

    async def apply_records(self, system: System, upserts: SystemData) -> None:
        """Fold records just re-read from ``system`` (an action's verification) into the
        in-memory data and the stored snapshot, without moving the refresh cursor or the
        refresh time: the next refresh reads them again anyway. A tier they change is recorded
        as a fact in ``upserts`` first (services.core.history): the next refresh would not see
        the old one."""
        async with self._locks[system], self._write_lock:
            # a tier the action changed: the refresh will not see the old one any more, record it now
            record_changes(self.data.get(system), upserts.entitlements, upserts, self.clock())
            async with self._data_lock:
                current = (self.data.get(system) or SystemData(system)).applied(Delta(upserts))
                self.data[system] = current
                self.data_version += 1
            await asyncio.to_thread(self.storage.upsert_records, upserts)
