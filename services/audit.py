"""The tamper-evident audit log: append-only, one entry per action intent and per outcome.

Each entry's ``hash`` is SHA-256 over its content and the previous entry's hash, so editing,
deleting or reordering any entry breaks the chain from that entry on; :meth:`AuditLog.verify`
names the first bad entry. Deleting the newest entries leaves a valid but shorter chain, so
the log also keeps its head (last sequence number and hash) in a file beside the database
(``<db>.head``) and ``verify`` compares the two.

Sequence numbers are the primary key and are never reused: two writers racing for the same
number collide on the key and the loser retries, so the chain stays linear across processes.

No secret reaches an entry: request bodies go through :func:`redact_body` (credential-like
keys masked, every registered secret scrubbed from values).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from services.redaction import MASK, redact
from services.storage import AUDIT, Storage

GENESIS = "0" * 64
SECRET_KEY = re.compile(r"(pass(word)?|secret|token|api[_-]?key|authori[sz]ation|session|cookie|credential)",
                        re.IGNORECASE)
FIELDS = ("seq", "at", "operator", "role", "action_id", "action_kind", "phase", "exception_id", "customer_id",
          "target_system", "request", "before", "after", "outcome", "error", "reason", "prev_hash")


def redact_body(value: Any) -> Any:
    """A copy of ``value`` with credential-like keys masked and registered secrets scrubbed."""
    if isinstance(value, dict):
        return {k: (MASK if isinstance(k, str) and SECRET_KEY.search(k) else redact_body(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_body(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


#: one encoder for every entry (``json.dumps`` with options builds a new one per call)
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _canonical(value: Any) -> str:
    return _ENCODER.encode(value)


@dataclass
class AuditEntry:
    operator: str
    role: str
    action_id: str
    action_kind: str
    phase: str  # "intent" | "outcome"
    outcome: str  # intent: "pending" | "queued"; outcome: "succeeded" | "failed" | "refused" | "cancelled"
    exception_id: str | None = None
    customer_id: str | None = None
    target_system: str | None = None
    request: dict[str, Any] = field(default_factory=dict)  # {"calls": [{"method", "path", "body"}]}
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    reason: str | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    seq: int = 0
    prev_hash: str = ""
    hash: str = ""

    def row(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "at": self.at.astimezone(UTC).isoformat(timespec="microseconds"),
            "operator": self.operator, "role": self.role, "action_id": self.action_id,
            "action_kind": self.action_kind, "phase": self.phase, "exception_id": self.exception_id,
            "customer_id": self.customer_id, "target_system": self.target_system,
            "request": _canonical(redact_body(self.request)), "before": _canonical(redact_body(self.before)),
            "after": _canonical(redact_body(self.after)), "outcome": self.outcome,
            "error": redact(self.error) if self.error else None,
            "reason": redact(self.reason) if self.reason else None, "prev_hash": self.prev_hash,
        }


def entry_hash(row: dict[str, Any]) -> str:
    return _values_hash([row[f] for f in FIELDS])


def _values_hash(values: list[Any]) -> str:
    """The hash of an entry's ``FIELDS`` values, in that order."""
    return hashlib.sha256(_ENCODER.encode(values).encode()).hexdigest()


def _from_row(row: Any) -> AuditEntry:
    return AuditEntry(
        operator=row.operator, role=row.role, action_id=row.action_id, action_kind=row.action_kind,
        phase=row.phase, outcome=row.outcome, exception_id=row.exception_id, customer_id=row.customer_id,
        target_system=row.target_system, request=json.loads(row.request), before=json.loads(row.before),
        after=json.loads(row.after), error=row.error, reason=row.reason, at=datetime.fromisoformat(row.at),
        seq=row.seq, prev_hash=row.prev_hash, hash=row.hash)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad: int | None = None
    problem: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"audit log intact: {self.checked} entries verified"
        return f"audit log NOT intact: {self.problem}"


@dataclass
class AuditFilter:
    operator: str | None = None
    customer_id: str | None = None
    target_system: str | None = None
    action_kind: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None


class AuditLog:
    def __init__(self, storage: Storage, head_file: Path | None = None) -> None:
        self.storage = storage
        db = storage.engine.url.database
        if head_file is None and storage.engine.url.get_backend_name() == "sqlite" and db and db != ":memory:":
            head_file = Path(f"{db}.head")
        self.head_file = head_file

    # -- writing ----------------------------------------------------------------------------
    def append(self, entry: AuditEntry, conn: Connection | None = None) -> AuditEntry:
        """Append one entry (in ``conn``'s transaction when given, else in its own)."""
        return self.append_many([entry], conn)[0]

    def append_many(self, entries: list[AuditEntry], conn: Connection | None = None) -> list[AuditEntry]:
        """Append entries in order, in one transaction (a group commit)."""
        if conn is not None:
            return self._append(entries, conn)
        for _ in range(20):
            try:
                with self.storage.engine.begin() as own:
                    done = self._append(entries, own)
            except IntegrityError:  # another writer took the sequence number: read the head again
                continue
            self._write_head(done[-1])
            return done
        raise RuntimeError("audit log: could not append after 20 attempts (heavy contention)")

    def _append(self, entries: list[AuditEntry], conn: Connection) -> list[AuditEntry]:
        last = conn.execute(select(AUDIT.c.seq, AUDIT.c.hash).order_by(AUDIT.c.seq.desc()).limit(1)).first()
        seq, prev = (last.seq, last.hash) if last else (0, GENESIS)
        done: list[AuditEntry] = []
        rows = []
        for e in entries:
            seq += 1
            e = replace(e, seq=seq, prev_hash=prev)
            row = e.row()
            row["hash"] = entry_hash(row)
            e.hash = prev = row["hash"]
            rows.append(row)
            done.append(e)
        conn.execute(insert(AUDIT), rows)
        return done

    def _write_head(self, entry: AuditEntry) -> None:
        if self.head_file is None:
            return
        tmp = self.head_file.with_suffix(".head.tmp")
        tmp.write_text(json.dumps({"seq": entry.seq, "hash": entry.hash}))
        os.replace(tmp, self.head_file)

    def note_committed(self, entries: list[AuditEntry]) -> None:
        """After appending inside a caller's transaction, once it committed: move the head."""
        if entries:
            self._write_head(entries[-1])

    # -- reading ----------------------------------------------------------------------------
    def _rows(self, batch: int = 20_000) -> Iterator[Any]:
        with self.storage.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch).execute(
                select(AUDIT).order_by(AUDIT.c.seq))
            yield from result

    def _chain_rows(self, batch: int = 20_000) -> Iterator[tuple[Any, ...]]:
        """``(*FIELDS, hash)`` tuples in sequence order, streamed through the DB-API cursor and
        read ahead by a worker thread (SQLite steps without the GIL while the caller hashes)."""
        import queue
        import threading

        columns = ", ".join([*FIELDS, "hash"])
        batches: queue.Queue[list[tuple[Any, ...]] | BaseException | None] = queue.Queue(maxsize=4)
        stop = threading.Event()

        def read() -> None:
            try:
                with self.storage.engine.connect() as conn:
                    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                    try:
                        cursor.execute(f"SELECT {columns} FROM audit_entry ORDER BY seq")
                        while not stop.is_set():
                            rows = cursor.fetchmany(batch)
                            if not rows:
                                break
                            batches.put(rows)
                    finally:
                        cursor.close()
                batches.put(None)
            except BaseException as exc:  # handed to the reader
                batches.put(exc)

        worker = threading.Thread(target=read, name="audit-verify-reader", daemon=True)
        worker.start()
        try:
            while True:
                item = batches.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield from item
        finally:
            stop.set()
            while worker.is_alive():  # unblock a reader waiting on a full queue
                try:
                    batches.get_nowait()
                except queue.Empty:
                    worker.join(0.01)

    def verify(self) -> VerifyResult:
        expected_seq, prev, checked = 1, GENESIS, 0
        seq_at, prev_at = FIELDS.index("seq"), FIELDS.index("prev_hash")
        encode, sha256 = _ENCODER.encode, hashlib.sha256  # the hot loop: locals
        for r in self._chain_rows():
            seq = r[seq_at]
            if seq != expected_seq:
                what = "removed" if seq > expected_seq else "duplicated or reordered"
                return VerifyResult(False, checked, expected_seq,
                                    f"entry {expected_seq} is {what} (found entry {seq} in its place)")
            if r[prev_at] != prev:
                return VerifyResult(False, checked, seq,
                                    f"entry {seq} does not follow entry {seq - 1}: "
                                    "an earlier entry was altered, removed or reordered")
            digest = r[-1]
            if sha256(encode(r[:-1]).encode()).hexdigest() != digest:  # == _values_hash: a tuple encodes as a list
                return VerifyResult(False, checked, seq, f"entry {seq} was altered after it was written")
            prev = digest
            expected_seq += 1
            checked += 1
        if self.head_file is not None and self.head_file.exists():
            try:
                head = json.loads(self.head_file.read_text())
            except ValueError:
                return VerifyResult(False, checked, None, f"the head file {self.head_file} is unreadable")
            if head.get("seq", 0) > checked:
                return VerifyResult(False, checked, checked + 1,
                                    f"entries {checked + 1}–{head['seq']} were removed from the end of the log")
            if head.get("seq") == checked and head.get("hash") != prev:
                return VerifyResult(False, checked, checked, f"entry {checked} differs from the recorded head")
        return VerifyResult(True, checked)

    def entries(self, flt: AuditFilter | None = None, limit: int | None = None) -> list[AuditEntry]:
        q = select(AUDIT).order_by(AUDIT.c.seq.desc())
        if flt is not None:
            for column, value in (("operator", flt.operator), ("customer_id", flt.customer_id),
                                  ("target_system", flt.target_system), ("action_kind", flt.action_kind),
                                  ("outcome", flt.outcome)):
                if value:
                    q = q.where(AUDIT.c[column] == value)
            if flt.since:
                q = q.where(AUDIT.c.at >= flt.since.astimezone(UTC).isoformat(timespec="microseconds"))
            if flt.until:
                q = q.where(AUDIT.c.at <= flt.until.astimezone(UTC).isoformat(timespec="microseconds"))
            if flt.text:
                like = f"%{flt.text}%"
                q = q.where(AUDIT.c.request.like(like) | AUDIT.c.error.like(like) | AUDIT.c.reason.like(like)
                            | AUDIT.c.exception_id.like(like))
        if limit:
            q = q.limit(limit)
        with self.storage.engine.connect() as conn:
            return [_from_row(r) for r in conn.execute(q)]

    def count(self) -> int:
        from sqlalchemy import func

        with self.storage.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(AUDIT)).scalar_one())

    # -- export -----------------------------------------------------------------------------
    def export(self, fmt: str, entries: Iterable[AuditEntry] | None = None) -> str:
        items = list(entries) if entries is not None else [_from_row(r) for r in self._rows()]
        if fmt == "json":
            return json.dumps([_export_dict(e) for e in items], indent=2, ensure_ascii=False) + "\n"
        if fmt == "csv":
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=[*FIELDS, "hash"])
            writer.writeheader()
            for e in items:
                d = _export_dict(e)
                writer.writerow({k: (_canonical(v) if isinstance(v, dict) else v) for k, v in d.items()})
            return buf.getvalue()
        raise ValueError(f"unknown export format {fmt!r} (csv or json)")


def _export_dict(e: AuditEntry) -> dict[str, Any]:
    d = asdict(e)
    d["at"] = e.at.astimezone(UTC).isoformat(timespec="microseconds")
    return {k: d[k] for k in (*FIELDS, "hash")}


ExtraWrite = Any  # Callable[[Connection], None]: more writes in the same transaction (e.g. the outbox row)


class GroupCommitter:
    """Group commit for the audit log: concurrent ``append`` calls are coalesced into one
    durable transaction (one fsync for many entries). Each caller resumes only after its own
    entry — and the extra writes it passed, such as its outbox row — are committed.

    A batch whose transaction fails is retried entry by entry, so one bad entry (e.g. a
    duplicate idempotency key in its outbox row) fails alone.
    """

    def __init__(self, log: AuditLog, max_batch: int = 512) -> None:
        import asyncio

        self.log = log
        self.max_batch = max_batch
        self._queue: asyncio.Queue[tuple[AuditEntry, ExtraWrite | None, asyncio.Future[AuditEntry]]] = (
            asyncio.Queue())
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0

    async def append(self, entry: AuditEntry, extra: ExtraWrite | None = None) -> AuditEntry:
        import asyncio

        future: asyncio.Future[AuditEntry] = asyncio.get_running_loop().create_future()
        await self._queue.put((entry, extra, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="audit-group-commit")
        return await future

    async def _run(self) -> None:
        import asyncio

        while not self._queue.empty():
            batch = [self._queue.get_nowait()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                done = await asyncio.to_thread(self._commit, [(e, x) for e, x, _ in batch])
            except Exception:
                for entry, extra, fut in batch:  # isolate the failing entry
                    try:
                        one = await asyncio.to_thread(self._commit, [(entry, extra)])
                        if not fut.done():
                            fut.set_result(one[0])
                    except Exception as exc:
                        if not fut.done():
                            fut.set_exception(exc)
                continue
            self.batches += 1
            for (_, _, fut), entry in zip(batch, done, strict=True):
                if not fut.done():
                    fut.set_result(entry)

    def _commit(self, items: list[tuple[AuditEntry, ExtraWrite | None]]) -> list[AuditEntry]:
        for _ in range(20):
            try:
                with self.log.storage.engine.begin() as conn:
                    for _entry, extra in items:
                        if extra is not None:
                            extra(conn)
                    done = self.log._append([e for e, _ in items], conn)
            except IntegrityError as exc:
                if "audit_entry" in str(exc.orig) or "seq" in str(exc.orig):
                    continue  # another process took the sequence number; read the head again
                raise
            self.log.note_committed(done)
            return done
        raise RuntimeError("audit log: could not append after 20 attempts (heavy contention)")
