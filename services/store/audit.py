"""The tamper-evident audit log: append-only, one entry per action intent and per outcome.

Each entry's ``hash`` is SHA-256 over its content and the previous entry's hash, so editing,
deleting or reordering any entry breaks the chain from that entry on; :meth:`AuditLog.verify`
names the first bad entry. Deleting the newest entries leaves a valid but shorter chain, so
the log also keeps its head (last sequence number and hash) in a file beside the database
(``<db>.head``) and ``verify`` compares the two.

That file, like the chain, can be rewritten by anyone able to write the database. What anchors
the log is ``services.store.audit_anchor``: every commit group also stores a checkpoint of the
head signed with the log's Ed25519 key (kept outside SYNCDESK_HOME, ``services.store.audit_keys``),
and the checkpoint goes to witnesses outside the database; ``verify`` judges the log against
them (rollback, rewrite, a cut end, entries added without the key). README: "The audit log: what
it detects, what it cannot".

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
import sqlite3
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import closing
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.exc import IntegrityError

from services.core.redaction import MASK, redact
from services.core.text_safety import csv_cell
from services.store.audit_anchor import Anchor, VerifyContext, is_file_sqlite
from services.store.audit_checkpoint import GENESIS, Since, when
from services.store.storage import AUDIT, Storage

SECRET_KEY = re.compile(r"(pass(word)?|secret|token|api[_-]?key|authori[sz]ation|session|cookie|credential)",
                        re.IGNORECASE)
FIELDS = ("seq", "at", "operator", "role", "action_id", "action_kind", "phase", "exception_id", "customer_id",
          "target_system", "request", "before", "after", "outcome", "error", "reason", "prev_hash")
#: the key of an entry's ``request`` naming the connection profile the action went through (set by
#: the action service). It lives inside ``request``, which the hash already covers: an entry written
#: before profiles were named simply has none, and its hash is what it always was.
PROFILE_KEY = "profile"


def entry_profile(entry: AuditEntry) -> str | None:
    """The profile an entry names (None for entries written before the profile was recorded)."""
    value = entry.request.get(PROFILE_KEY) if isinstance(entry.request, dict) else None
    return value if isinstance(value, str) else None


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


#: entries per page read by ``verify``
PAGE = 10_000
#: SQLite from this version reads a BLOB handed to its JSON functions as JSONB (before, it refuses one)
_JSONB_SINCE = (3, 45, 0)
#: a page of ``verify``: sequence numbers, previous hashes, hashes, hash inputs (bytes)
Links = tuple[list[Any], list[Any], list[Any], list[bytes]]


def _json_list(data: bytes) -> list[Any]:
    """A JSON array SQLite wrote; text that is not UTF-8 (which no writer stores) stays unequal to any hash."""
    return list(json.loads(data.decode("utf-8", "surrogateescape")))


def _encoded_page(rows: list[Any]) -> Links:
    """A page from ``(*FIELDS, hash)`` rows, the hash inputs encoded in Python."""
    seq_at, prev_at, encode = FIELDS.index("seq"), FIELDS.index("prev_hash"), _ENCODER.encode
    return ([r[seq_at] for r in rows], [r[prev_at] for r in rows], [r[-1] for r in rows],
            [encode(tuple(r[:-1])).encode() for r in rows])  # a tuple encodes as a list


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
    #: what protects the log beyond its hash chain (the signing key's place, the witnesses)
    protection: str = field(default="", compare=False)
    #: why that protection is weaker than it could be ("" when nothing to say)
    warning: str = field(default="", compare=False)
    #: "anchored since <time>" and, for a log written before signing, which entries were anchored late
    anchored: str = field(default="", compare=False)
    #: entries 1..late were written before the log was signed (0: none)
    late: int = field(default=0, compare=False)

    def __str__(self) -> str:
        if self.ok:
            late = f" ({self.anchored})" if self.late else ""
            return f"audit log intact: {self.checked} entries verified{late}"
        return f"audit log NOT intact: {self.problem}"


def anchored_text(since: Since | None) -> tuple[str, int]:
    if since is None:
        return "", 0
    if since.late:
        span = "entry 1 was" if since.late == 1 else f"entries 1–{since.late} were"
        return (f"anchored since {when(since.at).removeprefix('on ')}: {span} written before the log was signed "
                "and anchored late"), since.late
    return f"anchored since {when(since.at).removeprefix('on ')}: every entry is covered by a signed checkpoint", 0


def _finish(result: VerifyResult, ctx: VerifyContext | None, since: Since | None = None) -> VerifyResult:
    """``result`` with the protection in force and the anchoring said."""
    anchored, late = anchored_text(since)
    if ctx is None:
        return replace(result, protection="none beyond the hash chain (a database in memory or not SQLite)",
                       anchored=anchored, late=late)
    return replace(result, protection=ctx.protection, warning=ctx.warning or "", anchored=anchored, late=late)


def _read_head(path: Path) -> tuple[dict[str, Any] | None, str]:
    """The head file's ``{"seq": int >= 0, "hash": str}``, or why it is unreadable."""
    try:
        head = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None, "not JSON"
    if not isinstance(head, dict):
        return None, "not a JSON object"
    seq, digest = head.get("seq"), head.get("hash")
    if type(seq) is not int or seq < 0 or not isinstance(digest, str):
        return None, "its seq is not a whole number or its hash not a text"
    return {"seq": seq, "hash": digest}, ""


class VerifyCancelled(Exception):
    """:meth:`AuditLog.verify` stopped on request: nothing is concluded about the log."""

    def __init__(self, checked: int) -> None:
        super().__init__(f"audit verify cancelled after {checked} entries")
        self.checked = checked


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
        path = is_file_sqlite(storage.engine)
        #: signed checkpoints and witnesses (None: a database in memory or not SQLite, not anchored)
        self.anchor = Anchor(storage.engine, path) if path is not None else None

    # -- writing ----------------------------------------------------------------------------
    def append(self, entry: AuditEntry, conn: Connection | None = None) -> AuditEntry:
        """Append one entry (in ``conn``'s transaction when given, else in its own)."""
        return self.append_many([entry], conn)[0]

    def append_many(self, entries: list[AuditEntry], conn: Connection | None = None) -> list[AuditEntry]:
        """Append entries in order, in one transaction (a group commit), with the signed
        checkpoint of the new head. With ``conn``, call :meth:`note_committed` once it committed."""
        if not entries:
            return []
        if conn is not None:
            return self._append(entries, conn)
        for _ in range(20):
            try:
                with self.storage.engine.begin() as own:
                    done = self._append(entries, own)
            except IntegrityError:  # another writer took the sequence number: read the head again
                continue
            self.note_committed(done)
            return done
        raise RuntimeError("audit log: could not append after 20 attempts (heavy contention)")

    def _append(self, entries: list[AuditEntry], conn: Connection) -> list[AuditEntry]:
        last = conn.execute(select(AUDIT.c.seq, AUDIT.c.hash).order_by(AUDIT.c.seq.desc()).limit(1)).first()
        seq, prev = (last.seq, last.hash) if last else (0, GENESIS)
        before = (seq, prev)
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
        if self.anchor is not None:
            self.anchor.sign_group(conn, before, (seq, prev))
        return done

    def _write_head(self, entry: AuditEntry) -> None:
        if self.head_file is None:
            return
        tmp = self.head_file.with_suffix(".head.tmp")
        tmp.write_text(json.dumps({"seq": entry.seq, "hash": entry.hash}))
        os.replace(tmp, self.head_file)

    def note_committed(self, entries: list[AuditEntry], *, wait: bool = True) -> None:
        """After appending inside a caller's transaction, once it committed: move the head and
        write the signed checkpoint to the witnesses (``wait``: before returning; else on the
        anchor's publisher thread, see :meth:`flush`)."""
        if entries:
            self._write_head(entries[-1])
            if self.anchor is not None:
                self.anchor.committed(entries[-1].seq, wait=wait)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the witnesses hold every checkpoint committed through this log (False: not
        within ``timeout`` s). The process does it when it exits; ``verify`` before it reads them."""
        return self.anchor.flush(timeout) if self.anchor is not None else True

    # -- reading ----------------------------------------------------------------------------
    def _rows(self, batch: int = 20_000) -> Iterator[Any]:
        with self.storage.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch).execute(
                select(AUDIT).order_by(AUDIT.c.seq))
            yield from result

    def _read_ahead(self, pages: Callable[[Any], Generator[Links, None, None]],
                    waiting: Callable[[], None] | None = None) -> Iterator[Links]:
        """The pages ``pages(dbapi_connection)`` yields, read ahead by a worker thread on a
        connection of its own while the caller checks the previous ones; ``waiting()`` is called
        every 20 ms while the next page is not there yet (it may raise to stop)."""
        import queue
        import threading

        ahead: queue.Queue[Links | BaseException | None] = queue.Queue(maxsize=4)
        stop = threading.Event()

        def read() -> None:
            try:
                with self.storage.engine.connect() as conn, closing(pages(conn.connection.driver_connection)) as it:
                    for page in it:
                        if stop.is_set():
                            break
                        ahead.put(page)
                ahead.put(None)
            except BaseException as exc:  # handed to the reader
                ahead.put(exc)

        worker = threading.Thread(target=read, name="audit-verify-reader", daemon=True)
        worker.start()
        try:
            while True:
                try:
                    item = ahead.get(timeout=0.02)
                except queue.Empty:
                    if waiting is not None:
                        waiting()
                    continue
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while worker.is_alive():  # unblock a reader waiting on a full queue
                try:
                    ahead.get_nowait()
                except queue.Empty:
                    worker.join(0.01)

    def _sqlite_json(self) -> bool | None:
        """None unless the database is SQLite with JSON functions (built in since 3.38) that
        encode like :data:`_ENCODER`; else whether BLOBs must be kept from them (3.45 and later
        read a BLOB as JSONB)."""
        if self.storage.engine.url.get_backend_name() != "sqlite":
            return None
        sample = [1, "é \"q\" \\ \n\x00\x1f\u2028😀", None]
        with self.storage.engine.connect() as conn:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute("SELECT sqlite_version(), CAST(json_array(?, ?, ?) AS BLOB)", sample)
                version, encoded = cursor.fetchone()
            except sqlite3.Error:  # no JSON functions in this SQLite
                return None
            finally:
                cursor.close()
        if encoded != _ENCODER.encode(sample).encode():
            return None
        return tuple(int(part) for part in version.split(".")[:3]) >= _JSONB_SINCE

    def _sqlite_pages(self, raw: Any, guard: bool) -> Generator[Links, None, None]:
        """Pages of :data:`PAGE` entries in sequence order; SQLite builds every hash input.

        Each page is one row (one step of SQLite, which runs without the GIL, so this reader
        thread works while the caller hashes): the sequence numbers, previous hashes and hashes
        as JSON arrays (read back exactly by ``json.loads``), and the hash inputs — ``json_array``
        of ``FIELDS``, the bytes :func:`_values_hash` hashes — joined by newlines (never in
        ``json_array`` output: it escapes every control character; the count is checked).

        The caller accepts an entry only when the SHA-256 of its input is its stored hash, so
        that input is the very bytes hashed when the entry was written; and ``json_array``
        writes JSON that reads back as the values it was given, so the stored values are the
        ones written. A mismatch is settled by :meth:`_exact_match` (the Python encoding): an
        entry SQLite would encode differently is slower to check, never misjudged. A BLOB is
        not a value any writer stores: SQLite < 3.45 refuses it (that page is then read and
        encoded in Python, as it always was); with ``guard`` it becomes 0.5, a number where
        every hash input holds a string or null, so it cannot match either.
        """
        def value(f: str) -> str:
            return f"CASE WHEN typeof(\"{f}\") = 'blob' THEN 0.5 ELSE \"{f}\" END" if guard else f'"{f}"'

        # seq is the integer primary key (SQLite's rowid): never a BLOB
        record = f"json_array({', '.join('seq' if f == 'seq' else value(f) for f in FIELDS)})"
        sql = ("SELECT count(*), max(seq), CAST(json_group_array(seq) AS BLOB), CAST(json_group_array(p) AS BLOB), "
               "CAST(json_group_array(h) AS BLOB), CAST(group_concat(r, char(10)) AS BLOB) "
               f"FROM (SELECT seq, {value('prev_hash')} AS p, {value('hash')} AS h, {record} AS r "
               "FROM audit_entry WHERE seq >= ? ORDER BY seq LIMIT ?)")
        cursor = raw.cursor()
        try:
            low: int | None = -(2 ** 63)
            while low is not None:
                try:
                    cursor.execute(sql, (low, PAGE))
                    n, top, seqs, prevs, hashes, records = cursor.fetchone()
                    if not n:
                        return
                    inputs = records.split(b"\n")
                    page = (_json_list(seqs), _json_list(prevs), _json_list(hashes), inputs)
                    exact = len(inputs) == n
                except sqlite3.Error:  # SQLite < 3.45 refuses a BLOB (a tampered entry) in its JSON
                    exact = False
                if not exact:
                    cursor.execute(f"SELECT {', '.join([*FIELDS, 'hash'])} FROM audit_entry WHERE seq >= ? "
                                   "ORDER BY seq LIMIT ?", (low, PAGE))
                    rows = cursor.fetchall()
                    if not rows:
                        return
                    page, top = _encoded_page(rows), rows[-1][0]
                yield page
                low = top + 1 if top < 2 ** 63 - 1 else None
        finally:
            cursor.close()

    def _python_pages(self, raw: Any) -> Generator[Links, None, None]:
        """Pages in sequence order, every hash input encoded here (a database other than SQLite)."""
        cursor = raw.cursor()
        try:
            cursor.execute(f"SELECT {', '.join([*FIELDS, 'hash'])} FROM audit_entry ORDER BY seq")
            while rows := cursor.fetchmany(PAGE):
                yield _encoded_page(rows)
        finally:
            cursor.close()

    def _exact_input(self, seq: int) -> bytes | None:
        """Entry ``seq``'s hash input as :func:`entry_hash` encodes its stored values, read one
        by one (SQLite; None: a text value is not UTF-8, which no writer stores)."""
        pairs = ", ".join(f"typeof(\"{f}\"), CASE WHEN typeof(\"{f}\") = 'text' THEN CAST(\"{f}\" AS BLOB) "
                          f"ELSE \"{f}\" END" for f in FIELDS)
        with self.storage.engine.connect() as conn:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(f"SELECT {pairs} FROM audit_entry WHERE seq = ?", (seq,))
                row = cursor.fetchone()
            finally:
                cursor.close()
        if row is None:  # gone since it was read
            return None
        values: list[Any] = []
        for kind, value in zip(row[::2], row[1::2], strict=True):
            if kind == "text":
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError:
                    return None
            values.append(value)
        return _ENCODER.encode(values).encode()

    def _exact_match(self, seq: int, digest: Any) -> bool:
        data = self._exact_input(seq)
        return data is not None and hashlib.sha256(data).hexdigest() == digest

    def _last_seq(self) -> int:
        with self.storage.engine.connect() as conn:
            return int(conn.execute(select(func.max(AUDIT.c.seq))).scalar() or 0)

    def verify(self, progress: Callable[[int, int], None] | None = None,
               cancelled: Callable[[], bool] | None = None) -> VerifyResult:
        """Check every entry, the head file and the signed checkpoints and witnesses; name the
        first altered, removed, reordered or unsigned entry (or what could not be checked).

        ``progress(checked, total)`` is called when the check starts and after every page of
        :data:`PAGE` entries (every 40-90 ms on a 2-core machine); ``total`` is the last
        sequence number when it started, or ``checked`` once that is more. ``cancelled()``
        (e.g. ``threading.Event().is_set``) is polled before every page and every 20 ms while
        waiting for one; when it returns true :class:`VerifyCancelled` is raised. Both are
        called in the caller's thread. A log written before checkpoints were signed is
        anchored on its first verify (its current head signed once: ``late`` entries)."""
        if cancelled is not None and cancelled():
            raise VerifyCancelled(0)
        # the witnesses and the head first: written after each commit, they are then never ahead
        # of what the scan reads, even while entries are being appended
        ctx = self.anchor.context() if self.anchor is not None else None
        head: Any = None
        unreadable = ""
        if self.head_file is not None and self.head_file.exists():
            head, unreadable = _read_head(self.head_file)
        head_at = head["seq"] if head is not None and head["seq"] > 0 else None
        at_head: Any = None  # the stored hash of entry head_at, once the scan reaches it
        total = self._last_seq() if progress is not None else 0
        if progress is not None:
            progress(0, total)
        guard = self._sqlite_json()
        sqlite_inputs = guard is not None
        pages = (lambda raw: self._sqlite_pages(raw, bool(guard))) if sqlite_inputs else self._python_pages
        expected_seq, prev, checked = 1, GENESIS, 0
        done = [0]  # checked, for poll (a closure over checked would slow the loop)

        def poll() -> None:
            if cancelled is not None and cancelled():
                raise VerifyCancelled(done[0])

        sha256 = hashlib.sha256  # the hot loop: locals
        for seqs, prevs, hashes, inputs in self._read_ahead(pages, poll):
            poll()
            for seq, prev_hash, digest, data in zip(seqs, prevs, hashes, inputs, strict=True):
                if seq != expected_seq:
                    what = "removed" if seq > expected_seq else "duplicated or reordered"
                    gap = f"entry {expected_seq} is {what} (found entry {seq} in its place)"
                    return _finish(VerifyResult(False, checked, expected_seq, gap), ctx)
                if prev_hash != prev:
                    return _finish(VerifyResult(False, checked, seq,
                                                f"entry {seq} does not follow entry {seq - 1}: "
                                                "an earlier entry was altered, removed or reordered"), ctx)
                if sha256(data).hexdigest() != digest and not (sqlite_inputs and self._exact_match(seq, digest)):
                    return _finish(VerifyResult(False, checked, seq, f"entry {seq} was altered after it was written"),
                                   ctx)
                prev = digest
                expected_seq += 1
                checked += 1
            done[0] = checked
            if head_at is not None and seqs and seqs[0] <= head_at <= seqs[-1]:  # seqs: consecutive
                at_head = hashes[head_at - seqs[0]]
            if progress is not None:
                total = max(total, checked)
                progress(checked, total)
        head_problem: VerifyResult | None = None
        if unreadable:
            head_problem = VerifyResult(False, checked, None, f"the head file {self.head_file} is unreadable "
                                                              f"({unreadable})")
        elif head is not None:
            if head["seq"] > checked:
                head_problem = VerifyResult(False, checked, checked + 1,
                                            f"entries {checked + 1}–{head['seq']} were removed from the end of the log")
            elif head["seq"] == checked and head["hash"] != prev:
                head_problem = VerifyResult(False, checked, checked, f"entry {checked} differs from the recorded head")
            # entries appended since the head was written (or while verify ran): the chain must
            # still pass through it, else it was rewritten from there back
            elif head_at is not None and head_at < checked and head["hash"] != at_head:
                head_problem = VerifyResult(False, checked, head_at, f"entry {head_at} differs from the recorded head")
        since: Since | None = None
        anchor_problem: VerifyResult | None = None
        if self.anchor is not None and ctx is not None:
            found, since = self.anchor.judge_log(ctx, checked, prev)
            if found is not None:
                anchor_problem = VerifyResult(False, checked, found.first_bad, found.sentence)
        # the head file's word on an entry first (as before signing), then the checkpoints' and
        # witnesses', then what names no entry
        ranked = [r for r in (head_problem, anchor_problem) if r is not None]
        ranked.sort(key=lambda r: r.first_bad is None)
        return _finish(ranked[0] if ranked else VerifyResult(True, checked), ctx, since)

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
                writer.writerow({k: csv_cell(_canonical(v) if isinstance(v, dict) else v) for k, v in d.items()})
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
            self.log.note_committed(done, wait=False)  # the witnesses on their own thread: the next group goes on
            return done
        raise RuntimeError("audit log: could not append after 20 attempts (heavy contention)")
