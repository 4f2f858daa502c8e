"""Local storage (sqlmodel; SQLite in SYNCDESK_HOME by default, any SQLAlchemy URL).

Tables (schema managed by Alembic, ``services/store/migrations``):

- ``snapshot_record``: every canonical record fetched, per (system, kind, key), as a JSON
  array (services.store.codec);
- ``system_state``: per system, when it was refreshed, from where, its resume cursor, the
  last error;
- ``sync_exception``: every exception ever raised, open or closed, with first/last seen;
- ``quarantined_record``: per system, the records its last refreshes could not read (kind,
  id, reason: ``services.core.sysdata.Quarantined``), written in the same transaction as the
  records;
- ``exception_mark``: per exception, its last failed fix and its flag for review (who, when,
  why: ``services.store.exception_history``).

A refresh commits whole per system (one transaction) or leaves the previous snapshot as it
was. Opening a database migrates it to the current schema; an SQLite file is copied to a
``.bak-<revision>`` file first; a database written by a newer SyncDesk is refused. Several
processes may open the same database at once (a console and scheduled commands): the
migration runs under a file lock (``<database>.lock``, the ``filelock`` package, so on every
platform) and the others wait for it, then find the schema current; a new SQLite file is
created readable by its owner only (0600) before SQLite writes its first byte, and so are its
``-wal``/``-shm`` files and backups (SQLite gives them the database file's mode).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock
from filelock import Timeout as LockTimeout
from sqlalchemy import Engine, Table, delete, event, func, insert, inspect, make_url, select, text
from sqlalchemy.exc import ArgumentError
from sqlmodel import Field, Session, SQLModel, create_engine

from services.core.domain import System
from services.core.errors import SyncDeskError
from services.core.redaction import redact
from services.core.sysdata import KIND_TYPES, Delta, Kind, Quarantined, SystemData
from services.store import codec

log = logging.getLogger(__name__)

#: rows per INSERT batch (see Storage._insert)
INSERT_BATCH = 500
#: rows per fetch-and-decode batch when a snapshot is loaded
LOAD_BATCH = 2_000

#: the newest migration (services/store/migrations/versions); an equal stored revision needs no Alembic
SCHEMA_HEAD = "0006"
#: seconds a process waits for another's migration of the same database before giving up
MIGRATION_LOCK_TIMEOUT = 300.0
#: seconds an SQLite statement waits for another connection's (or process's) write to finish
BUSY_TIMEOUT = 60.0

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class StorageError(SyncDeskError):
    """The local database cannot be opened or written."""


class SnapshotRecord(SQLModel, table=True):
    __tablename__ = "snapshot_record"
    system: str = Field(primary_key=True)
    kind: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    customer_id: str | None = Field(default=None, index=True)
    payload: str


class SystemState(SQLModel, table=True):
    __tablename__ = "system_state"
    system: str = Field(primary_key=True)
    source: str = ""
    refreshed_at: datetime | None = None
    full_refreshed_at: datetime | None = None
    cursor: str = "{}"
    record_count: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None


class ExceptionRow(SQLModel, table=True):
    __tablename__ = "sync_exception"
    id: str = Field(primary_key=True)
    rule: str = Field(index=True)
    severity: str
    owner: str
    customer_id: str | None = Field(default=None, index=True)
    object_id: str
    summary: str
    payload: str  # JSON: sides, fix actions
    first_seen: datetime
    last_seen: datetime
    closed_at: datetime | None = Field(default=None, index=True)


class AuditRow(SQLModel, table=True):
    __tablename__ = "audit_entry"
    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: str = Field(index=True)
    operator: str
    role: str
    action_id: str = Field(index=True)
    action_kind: str
    phase: str
    exception_id: str | None = Field(default=None, index=True)
    customer_id: str | None = Field(default=None, index=True)
    target_system: str | None = None
    request: str
    before: str
    after: str
    outcome: str
    error: str | None = None
    reason: str | None = None
    prev_hash: str
    hash: str


class OutboxRow(SQLModel, table=True):
    __tablename__ = "action_outbox"
    action_id: str = Field(primary_key=True)
    idempotency_key: str = Field(unique=True)
    kind: str
    status: str = Field(index=True)
    operator: str
    role: str
    exception_id: str | None = None
    customer_id: str | None = None
    target_system: str | None = None
    payload: str
    reason: str | None = None
    attempts: int = 0
    last_error: str | None = None
    result: str | None = None
    created_at: str
    updated_at: str


class AcceptedRow(SQLModel, table=True):
    __tablename__ = "accepted_difference"
    exception_id: str = Field(primary_key=True)
    fingerprint: str
    reason: str
    operator: str
    accepted_at: str
    expires_at: str


class OverviewCacheRow(SQLModel, table=True):
    """The customer list as the console last showed it (``services.core.overview.encode_rows``),
    so the next launch shows it without decoding the snapshot. One row; deleted in the same
    transaction as any change to the snapshot's records, so a row present is never stale."""

    __tablename__ = "overview_cache"
    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    payload: str


class QuarantineRow(SQLModel, table=True):
    """A record a refresh could not read (``services.core.sysdata.Quarantined``)."""

    __tablename__ = "quarantined_record"
    system: str = Field(primary_key=True)
    kind: str = Field(primary_key=True)
    record_id: str = Field(primary_key=True)
    reason: str


class ExceptionMarkRow(SQLModel, table=True):
    """What was done about an exception that stays visible with it
    (``services.store.exception_history``): its last failed fix, its flag for review."""

    __tablename__ = "exception_mark"
    exception_id: str = Field(primary_key=True)
    kind: str = Field(primary_key=True)  # "failed" | "flagged"
    object_id: str = Field(index=True)
    rule: str
    at: datetime
    actor: str
    role: str
    action: str
    action_id: str
    text: str


REC: Table = SnapshotRecord.__table__  # type: ignore[attr-defined]
STATE: Table = SystemState.__table__  # type: ignore[attr-defined]
EXC: Table = ExceptionRow.__table__  # type: ignore[attr-defined]
AUDIT: Table = AuditRow.__table__  # type: ignore[attr-defined]
OUTBOX: Table = OutboxRow.__table__  # type: ignore[attr-defined]
ACCEPTED: Table = AcceptedRow.__table__  # type: ignore[attr-defined]
OVERVIEW: Table = OverviewCacheRow.__table__  # type: ignore[attr-defined]
QUARANTINE: Table = QuarantineRow.__table__  # type: ignore[attr-defined]
MARK: Table = ExceptionMarkRow.__table__  # type: ignore[attr-defined]


@dataclass
class StateInfo:
    system: System
    source: str
    refreshed_at: datetime | None
    full_refreshed_at: datetime | None
    cursor: dict[str, Any]
    record_count: int
    last_error: str | None
    last_error_at: datetime | None


def _aware(dt: datetime | None) -> datetime | None:
    """SQLite drops the time zone; every stored time is UTC."""
    if dt is not None and dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt


def _alembic_config(connection: Any) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def database_url(path: Path) -> str:
    return f"sqlite:///{path}"


class Storage:
    """One database. Methods are synchronous: call them from a worker thread
    (``asyncio.to_thread``) so the UI thread never waits on disk."""

    def __init__(self, url: str, *, durable: bool = False) -> None:
        """``durable``: every commit reaches the disk before it returns (SQLite
        ``synchronous=FULL``), for the audit log and the outbox; the snapshot, a cache that can
        be fetched again, uses ``NORMAL``."""
        self.url = url
        sqlite = url.startswith("sqlite")
        if sqlite:
            _create_private(url)
        self.engine: Engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT}
                                            if sqlite else {})
        if sqlite:
            sync = "FULL" if durable else "NORMAL"
            event.listen(self.engine, "connect", lambda conn, rec: _sqlite_pragmas(conn, sync))
        self._migrate()

    @classmethod
    def open_path(cls, path: Path, *, durable: bool = False) -> Storage:
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(database_url(path), durable=durable)

    def close(self) -> None:
        self.engine.dispose()

    # -- schema -----------------------------------------------------------------------
    def _stored_revision(self) -> str | None:
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def _migrate(self) -> None:
        # The common case, an up-to-date database, is told apart without Alembic (importing it
        # is a tenth of the console's start-up); tests/services/test_storage_schema.py keeps
        # SCHEMA_HEAD equal to the migrations' head.
        if self._stored_revision() == SCHEMA_HEAD:
            return
        db = self.engine.url.database
        if self.engine.url.get_backend_name() != "sqlite" or not db or db == ":memory:":
            self._upgrade()
            return
        # another process may be creating or migrating the same file right now: one at a
        # time, and whoever comes second finds the schema current
        lock = FileLock(f"{db}.lock", timeout=MIGRATION_LOCK_TIMEOUT, mode=0o600)
        try:
            with lock:
                self._upgrade()
        except LockTimeout:
            raise StorageError(f"the database {self._where()} is being migrated by another SyncDesk process "
                               f"(no answer within {MIGRATION_LOCK_TIMEOUT:.0f} s; {db}.lock)") from None

    def _upgrade(self) -> None:
        from alembic import command
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        script = ScriptDirectory(str(MIGRATIONS))
        head = script.get_current_head()
        with self.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
        if current == head:
            return
        known = {rev.revision for rev in script.walk_revisions()}
        if current is not None and current not in known:
            raise StorageError(f"the database {self._where()} was written by a newer SyncDesk "
                               f"(schema {current}); refusing to open it")
        if current is not None:
            self._backup(current)
        with self.engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "head")
        log.info("database %s migrated %s -> %s", self._where(), current or "(empty)", head)

    def _where(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def _backup(self, revision: str) -> None:
        db = self.engine.url.database
        if self.engine.url.get_backend_name() == "sqlite" and db and db != ":memory:":
            target = Path(f"{db}.bak-{revision}")
            _create_private(database_url(target))
            self.engine.dispose()
            # SQLite's online backup, not a file copy: in WAL mode the newest commits may still
            # be in the -wal file, which a copy of the main file would silently leave out
            source, copy = sqlite3.connect(db), sqlite3.connect(target)
            try:
                source.backup(copy)
            finally:
                copy.close()
                source.close()
            log.info("backed up the database to %s before migrating", target)

    # -- snapshot ---------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine) as s:
            yield s

    def replace_system(self, data: SystemData, cursor: dict[str, Any], source: str, at: datetime) -> None:
        """A full refresh: the system's records are replaced whole, in one transaction."""
        rows = [_row(data.system, kind, key, rec) for kind, key, rec in data.items()]
        with self.engine.begin() as conn:
            conn.execute(delete(OVERVIEW))
            conn.execute(delete(REC).where(REC.c.system == data.system.value))
            self._insert(conn, rows)
            conn.execute(delete(QUARANTINE).where(QUARANTINE.c.system == data.system.value))
            self._insert_quarantined(conn, data.quarantined.values())
            self._save_state(conn, data.system, source, at, cursor, full=True, count=len(rows))

    def apply_delta(self, system: System, delta: Delta, cursor: dict[str, Any], source: str,
                    at: datetime) -> None:
        """An incremental refresh: upserts and deletions, in one transaction."""
        rows = [_row(system, kind, key, rec) for kind, key, rec in delta.upserts.items()]
        with self.engine.begin() as conn:
            conn.execute(delete(OVERVIEW))
            for kind, keys in delta.deletions.items():
                for chunk in _chunks(sorted(keys), 500):
                    conn.execute(delete(REC).where(
                        REC.c.system == system.value, REC.c.kind == kind.value,
                        REC.c.key.in_(chunk)))
            for row in rows:  # upsert = delete + insert keeps this portable across databases
                conn.execute(delete(REC).where(
                    REC.c.system == row["system"], REC.c.kind == row["kind"],
                    REC.c.key == row["key"]))
            self._insert(conn, rows)
            settled = delta.settled() | set(delta.upserts.quarantined)
            for kind_name, record_id in settled:
                conn.execute(delete(QUARANTINE).where(
                    QUARANTINE.c.system == system.value, QUARANTINE.c.kind == kind_name,
                    QUARANTINE.c.record_id == record_id))
            self._insert_quarantined(conn, delta.upserts.quarantined.values())
            count = conn.execute(select(func.count()).select_from(REC).where(
                REC.c.system == system.value)).scalar_one()
            self._save_state(conn, system, source, at, cursor, full=False, count=int(count))

    @staticmethod
    def _insert(conn: Any, rows: list[dict[str, Any]]) -> None:
        """Insert in batches. One ``executemany`` of 200,000 rows is a C loop that lets go of
        the GIL around every SQLite step and takes it straight back, so the UI thread waiting
        for it starves for seconds; between batches Python runs and the GIL is handed over."""
        for start in range(0, len(rows), INSERT_BATCH):
            conn.execute(insert(REC), rows[start:start + INSERT_BATCH])

    @staticmethod
    def _insert_quarantined(conn: Any, entries: Iterable[Quarantined]) -> None:
        rows = [{"system": q.system.value, "kind": q.kind, "record_id": q.record_id, "reason": redact(q.reason)}
                for q in entries]
        if rows:
            conn.execute(insert(QUARANTINE), rows)

    def quarantined(self, system: System) -> dict[tuple[str, str], Quarantined]:
        """The records of ``system`` its refreshes could not read, by (kind, id)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(QUARANTINE.c.kind, QUARANTINE.c.record_id, QUARANTINE.c.reason)
                                .where(QUARANTINE.c.system == system.value)
                                .order_by(QUARANTINE.c.kind, QUARANTINE.c.record_id)).all()
        return {(k, r): Quarantined(system, k, r, reason) for k, r, reason in rows}

    def upsert_records(self, data: SystemData) -> None:
        """Insert or replace single records (re-read after an action) without touching the
        system's refresh state."""
        rows = [_row(data.system, kind, key, rec) for kind, key, rec in data.items()]
        if not rows:
            return
        with self.engine.begin() as conn:
            conn.execute(delete(OVERVIEW))
            for row in rows:
                conn.execute(delete(REC).where(REC.c.system == row["system"], REC.c.kind == row["kind"],
                                               REC.c.key == row["key"]))
            conn.execute(insert(REC), rows)

    # -- the customer-list cache -----------------------------------------------------------
    def save_overview(self, payload: str) -> None:
        """Store the customer list shown for the current records (see :class:`OverviewCacheRow`)."""
        with self.engine.begin() as conn:
            conn.execute(delete(OVERVIEW))
            conn.execute(insert(OVERVIEW).values(id=1, payload=payload))

    def load_overview(self) -> str | None:
        """The stored customer list, or None when the records changed since it was stored."""
        with self.engine.connect() as conn:
            return conn.execute(select(OVERVIEW.c.payload).where(OVERVIEW.c.id == 1)).scalar()

    def record_error(self, system: System, message: str, at: datetime) -> None:
        """Remember a failed refresh without touching the system's records."""
        message = redact(message)  # an upstream's words: never a credential in the snapshot
        with self.engine.begin() as conn:
            existing = conn.execute(select(STATE.c.system).where(STATE.c.system == system.value)).first()
            if existing is None:
                conn.execute(insert(STATE).values(system=system.value, last_error=message,
                                                        last_error_at=at))
            else:
                conn.execute(STATE.update().where(STATE.c.system == system.value)
                             .values(last_error=message, last_error_at=at))

    def _save_state(self, conn: Any, system: System, source: str, at: datetime, cursor: dict[str, Any],
                    *, full: bool, count: int) -> None:
        values: dict[str, Any] = {"source": source, "refreshed_at": at, "cursor": json.dumps(cursor),
                                  "record_count": count, "last_error": None, "last_error_at": None}
        if full:
            values["full_refreshed_at"] = at
        existing = conn.execute(select(STATE.c.system).where(STATE.c.system == system.value)).first()
        if existing is None:
            conn.execute(insert(STATE).values(system=system.value, **values))
        else:
            conn.execute(STATE.update().where(STATE.c.system == system.value).values(**values))

    def state(self, system: System) -> StateInfo | None:
        with self.session() as s:
            row = s.get(SystemState, system.value)
            if row is None:
                return None
            return StateInfo(system, row.source, _aware(row.refreshed_at), _aware(row.full_refreshed_at),
                             json.loads(row.cursor or "{}"), row.record_count, row.last_error,
                             _aware(row.last_error_at))

    def load_system(self, system: System, kinds: Iterable[Kind] = tuple(Kind)) -> SystemData:
        """The system's stored records (only ``kinds``, when given). The decoded records are
        long-lived: they are frozen out of the cyclic collector's sight (``gc.freeze``), or the
        first young-generation pass after the load would walk every one of them."""
        data = SystemData(system, quarantined=self.quarantined(system))
        with self.engine.connect() as conn, codec.gc_paused(freeze=True):
            for kind in kinds:
                result = conn.execute(select(REC.c.key, REC.c.payload).where(
                    REC.c.system == system.value, REC.c.kind == kind.value))
                table, cls = data.table(kind), KIND_TYPES[kind]
                # in batches, like _insert: a single fetchall or json.loads of 50,000 rows would
                # hold the GIL (or win it back at once) for long enough to freeze the UI thread
                for pairs in result.partitions(LOAD_BATCH):
                    records = codec.loads_many(cls, [p for _, p in pairs])
                    table.update(zip((sys.intern(k) for k, _ in pairs), records, strict=True))
        return data


def _create_private(url: str) -> None:
    """Create the SQLite file of ``url`` readable by its owner only (0600), before SQLite does
    (SQLite would create it with the process's default mode, and its ``-wal``/``-shm`` files
    take the database file's mode). An existing file is left as it is."""
    try:
        db = make_url(url).database
    except ArgumentError:
        return  # create_engine will say what is wrong with the URL
    if not db or db == ":memory:" or db.startswith("file:"):
        return
    path = Path(db)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # another process created it meanwhile
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _row(system: System, kind: Kind, key: str, record: Any) -> dict[str, Any]:
    return {"system": system.value, "kind": kind.value, "key": key,
            "customer_id": getattr(record, "customer_id", None), "payload": codec.dumps(record)}


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _sqlite_pragmas(dbapi_connection: Any, synchronous: str) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
