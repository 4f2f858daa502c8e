"""The anchor of one audit database: a signed checkpoint with every commit group, the witnesses
outside the database, and what ``verify`` reads before it scans.

* every commit group of the log writes, **in the same transaction**, a checkpoint of the new
  head signed with the log's Ed25519 key, kept outside SYNCDESK_HOME (``services.store.audit_keys``);
* after the commit, the checkpoint also goes to the log's **witnesses** outside the database
  (the key store's entry of the log; optional witness directories), on a thread of its own so a
  slow witness never holds up the next group. Witnesses only move forward; one may trail the
  log by the last commit groups (a crash between commit and witness write);
* before signing over a head this process did not sign, a writer judges the log
  (``services.store.audit_judge``): a log it finds rolled back, rewritten or extended without
  the key is signed with a ``taint`` that every later checkpoint carries, so that a later
  append never covers the tampering;
* a log written before checkpoints existed (no identity, no checkpoint, unknown to the key
  store) is anchored at its first use: its head is signed once, its entries "anchored late".

The database holds ``audit_log_identity`` (the log id and public key) and ``audit_checkpoint``
(one signed checkpoint per commit group), created here when first needed.
"""

from __future__ import annotations

import atexit
import secrets
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from services.store.audit_checkpoint import (
    GENESIS,
    LOG_ID,
    Checkpoint,
    Malformed,
    Signed,
    Since,
    Taint,
    WitnessRecord,
    b64,
    body_text,
    fingerprint,
    load_private,
    parse_row,
    parse_witness,
    private_text,
    public_text,
    sign,
    utc_now,
    witness_text,
)
from services.store.audit_judge import Problem, WitnessRead, judge, span
from services.store.audit_keys import (
    KeyStore,
    KeyStoreError,
    WitnessDir,
    configured_witness_dirs,
    open_key_store,
    warn_once,
)

CHECKPOINT_DDL = ("CREATE TABLE IF NOT EXISTS audit_checkpoint (seq INTEGER PRIMARY KEY, hash TEXT NOT NULL, "
                  "body TEXT NOT NULL, signature TEXT NOT NULL)")
IDENTITY_DDL = ("CREATE TABLE IF NOT EXISTS audit_log_identity (id INTEGER PRIMARY KEY CHECK (id = 1), "
                "log_id TEXT NOT NULL, public_key TEXT NOT NULL, created_at TEXT NOT NULL)")


class DbView:
    """:class:`View` of the log in its database, on ``conn``."""

    def __init__(self, conn: Connection, last_seq: int, tail_hash: str, *, live: bool) -> None:
        self.conn, self.last_seq, self.tail_hash, self.live = conn, last_seq, tail_hash, live
        self.tables = has_table(conn, "audit_checkpoint")

    def _one(self, sql: str, *args: Any) -> Any:
        if not self.tables:
            return None
        row = self.conn.exec_driver_sql(sql, args).first()
        return row[0] if row is not None else None

    def checkpoint(self, seq: int) -> Signed | str | None:
        if not self.tables:
            return None
        row = self.conn.exec_driver_sql("SELECT hash, body, signature FROM audit_checkpoint WHERE seq = ?",
                                        (seq,)).first()
        return None if row is None else parse_row(*row)

    def max_checkpoint(self) -> int | None:
        value = self._one("SELECT max(seq) FROM audit_checkpoint")
        return int(value) if value is not None else None

    def latest_checkpoint_below(self, seq: int) -> int | None:
        value = self._one("SELECT max(seq) FROM audit_checkpoint WHERE seq < ?", seq)
        return int(value) if value is not None else None

    def last_matching_below(self, seq: int) -> int:
        value = self._one("SELECT max(c.seq) FROM audit_checkpoint c JOIN audit_entry e ON e.seq = c.seq "
                          "WHERE c.seq < ? AND c.hash = e.hash", seq)
        return int(value) if value is not None else 0

    def first_checkpoint_from(self, seq: int) -> int | None:
        value = self._one("SELECT min(seq) FROM audit_checkpoint WHERE seq >= ?", seq)
        return int(value) if value is not None else None

    def hash_at(self, seq: int) -> str | None:
        row = self.conn.exec_driver_sql("SELECT hash FROM audit_entry WHERE seq = ?", (seq,)).first()
        return row[0] if row is not None and isinstance(row[0], str) else None

    def exists(self, seq: int) -> bool:
        return self.conn.exec_driver_sql("SELECT 1 FROM audit_entry WHERE seq = ?", (seq,)).first() is not None


def has_table(conn: Connection, name: str) -> bool:
    return conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                (name,)).first() is not None


def tail_of(conn: Connection) -> tuple[int, str]:
    row = conn.exec_driver_sql("SELECT seq, hash FROM audit_entry ORDER BY seq DESC LIMIT 1").first()
    return (int(row[0]), str(row[1])) if row is not None else (0, GENESIS)


@dataclass(frozen=True)
class Identity:
    log_id: str
    private: Ed25519PrivateKey
    public: str  # base64


class _Publisher:
    """Writes the newest submitted checkpoint to the witnesses on a thread of its own, so that a
    slow witness (an fsync, a keyring round trip) never holds up the next commit group: a
    checkpoint submitted while another is being written replaces any older one still waiting.
    :meth:`flush` waits until nothing is left; every publisher is flushed when the process exits."""

    IDLE_S = 2.0  # the thread ends after this long without work (a new one starts on demand)

    def __init__(self, write: Callable[[Identity, Signed], None]) -> None:
        self._write = write
        self._cond = threading.Condition()
        self._next: tuple[Identity, Signed] | None = None
        self._busy = False
        self._thread: threading.Thread | None = None
        _publishers.add(self)

    def submit(self, ident: Identity, signed: Signed) -> None:
        with self._cond:
            if self._next is None or signed.checkpoint.seq >= self._next[1].checkpoint.seq:
                self._next = (ident, signed)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="audit-witness-writer", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._cond.wait_for(lambda: self._next is not None, self.IDLE_S):
                    self._thread = None
                    return
                assert self._next is not None
                item, self._next, self._busy = self._next, None, True
            try:
                self._write(*item)
            except Exception as exc:  # never lost silently, never raised into a thread
                warn_once(f"an audit witness could not be written ({exc}); verify will say so")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted checkpoint is written (False: not within ``timeout`` s)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._next is None and not self._busy, timeout)


_publishers: weakref.WeakSet[_Publisher] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:  # a process ending right after its last append still moves its witnesses
    for publisher in list(_publishers):
        publisher.flush(10.0)


@dataclass
class VerifyContext:
    """What ``verify`` needs besides the chain, read before it scans (as the head file is)."""

    protection: str
    warning: str | None = None
    log_id: str | None = None
    key: Ed25519PublicKey | None = None
    public: str | None = None
    witnesses: list[WitnessRead] = field(default_factory=list)
    problem: Problem | None = None  # no judgement possible (e.g. the key is not here)


class Anchor:
    """The signed checkpoints and witnesses of one SQLite audit database.

    Writers call :meth:`sign_group` inside the transaction that appends a group, then
    :meth:`committed` after it commits; ``verify`` calls :meth:`context` before its scan and
    :meth:`judge_log` after. Thread-safe."""

    def __init__(self, engine: Engine, db: Path) -> None:
        self.engine = engine
        self.db = db.resolve()  # one name per file, whatever path or link it was opened by
        self._lock = threading.RLock()
        self._store: KeyStore | None = None
        self._dirs: list[Path] | None = None
        self._ident: Identity | None = None
        self._last: Signed | None = None  # the newest checkpoint this process committed
        self._pending: dict[int, Signed] = {}  # signed in a transaction not yet committed
        self._registered: str | None = None
        self._publisher = _Publisher(self._publish_logged)

    def store(self) -> KeyStore:
        if self._store is None:
            self._store = open_key_store(self.db)
        return self._store

    def witness_dirs(self) -> list[Path]:
        if self._dirs is None:
            self._dirs = configured_witness_dirs()
        return self._dirs

    # -- writing ------------------------------------------------------------------------------
    def sign_group(self, conn: Connection, prev: tuple[int, str], last: tuple[int, str]) -> None:
        """In the transaction that appended entries ``prev[0] + 1 .. last[0]`` (``prev``: the
        head before them, ``(0, GENESIS)`` for none): sign and store the checkpoint of ``last``."""
        with self._lock:
            cached = self._last
            if cached is not None and self._ident is not None and prev == (cached.checkpoint.seq,
                                                                            cached.checkpoint.hash):
                since, taint = cached.checkpoint.since, cached.checkpoint.taint  # our own head: nothing to check
            else:
                since, taint = self._examine(conn, prev)
            assert self._ident is not None
            signed = sign(Checkpoint(self._ident.log_id, last[0], last[1], utc_now(), since, taint),
                          self._ident.private)
            _insert(conn, signed)
            self._pending[last[0]] = signed

    def anchor_now(self) -> None:
        """Sign the current head of an unsigned log (written by an earlier SyncDesk) once."""
        seq = None
        with self.engine.begin() as conn:
            # the database's write lock first (creating the tables takes it), then ours: the
            # order of a writer, which holds the write lock when it signs
            conn.exec_driver_sql(CHECKPOINT_DDL)
            conn.exec_driver_sql(IDENTITY_DDL)
            with self._lock:
                named, _, checkpoints = _identity_of(conn)
                if named is None and not checkpoints:  # else anchored meanwhile, by another thread or process
                    self._examine(conn, tail_of(conn))
                    seq = max(self._pending, default=None)
        if seq is not None:
            self.committed(seq)

    def _examine(self, conn: Connection, prev: tuple[int, str]) -> tuple[Since, Taint | None]:
        """Before signing over a head this process did not sign: who the log is, and what of it
        is vouched for (a log rolled back, rewritten or extended without the key is a taint)."""
        conn.exec_driver_sql(CHECKPOINT_DDL)
        conn.exec_driver_sql(IDENTITY_DDL)
        n, tail = prev
        store = self.store()
        row = conn.exec_driver_sql("SELECT log_id FROM audit_log_identity WHERE id = 1").first()
        named = row[0] if row is not None and isinstance(row[0], str) and LOG_ID.fullmatch(row[0]) else None
        log_id = store.log_for_path(self.db) or named
        text = store.signing_key(log_id) if log_id is not None else None
        now = utc_now()
        if text is None:  # a new log, one written before signing, or one whose key is not here: anchor it now
            ident = self._new_identity(store)
            _write_identity(conn, ident, now)
            since = Since(n, now)
            if n > 0:
                signed = sign(Checkpoint(ident.log_id, n, tail, now, since), ident.private)
                _insert(conn, signed)
                self._pending[n] = signed
            return since, None
        try:
            private = load_private(text)
        except (Malformed, ValueError) as exc:
            raise KeyStoreError(f"the signing key of audit log {log_id} in {store.description} is unreadable: "
                                f"{exc}") from exc
        assert log_id is not None
        self._ident = ident = Identity(log_id, private, public_text(private.public_key()))
        if named != log_id:
            _write_identity(conn, ident, now)
        judgement = judge(DbView(conn, n, tail, live=False), private.public_key(), log_id,
                          self._witness_reads(log_id, writing=True))
        numbered = sorted((p for p in judgement.problems if p.first_bad is not None),
                          key=lambda p: (p.first_bad or 0, -p.reach))
        taint = judgement.taint
        if numbered and (taint is None or (numbered[0].first_bad or 0) < taint.seq):
            taint = Taint(numbered[0].first_bad or 0, numbered[0].sentence, n + 1, now)
            warn_once(f"audit log {self.db}: {taint.sentence()}")
        return judgement.since or Since(n, now), taint

    def _new_identity(self, store: KeyStore) -> Identity:
        private = Ed25519PrivateKey.generate()
        log_id = secrets.token_hex(16)
        store.create_signing_key(log_id, private_text(private))
        self._ident = ident = Identity(log_id, private, public_text(private.public_key()))
        self._last = None
        return ident

    def committed(self, seq: int, *, wait: bool = True) -> None:
        """After the transaction holding checkpoint ``seq`` committed: it is the head this
        process knows, and goes to the witnesses, by the publisher thread; ``wait``: until
        written. A failing witness is logged, never raised: the entries are committed."""
        with self._lock:
            signed = self._pending.pop(seq, None)
            for stale in [s for s in self._pending if s < seq]:
                del self._pending[stale]
            if signed is None:
                return
            if self._last is None or signed.checkpoint.seq >= self._last.checkpoint.seq:
                self._last = signed
            ident = self._ident
        if ident is None or signed.checkpoint.log_id != ident.log_id:
            return
        self._publisher.submit(ident, signed)
        if wait:
            self._publisher.flush()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the witnesses hold every checkpoint committed here (False: not within ``timeout`` s)."""
        return self._publisher.flush(timeout)

    def _publish_logged(self, ident: Identity, signed: Signed) -> None:
        try:
            self._publish(ident, signed)
        except (KeyStoreError, OSError) as exc:
            warn_once(f"audit log {self.db}: a witness could not be written ({exc}); verify will say so")

    def _publish(self, ident: Identity, signed: Signed) -> None:
        """Write ``signed`` to every witness that does not hold a later checkpoint of the log
        already (a witness never moves back); the default witness names the directories written to."""
        store = self.store()
        log_id, seq = ident.log_id, signed.checkpoint.seq
        if self._registered != log_id:
            store.register_path(self.db, log_id)
            self._registered = log_id
        current = _parsed(store.witness(log_id))
        enrolled = set(current.also) if current is not None else set()
        also = set(enrolled)
        failed: list[str] = []
        for folder in sorted({*map(str, self.witness_dirs()), *enrolled}):
            witness = WitnessDir(Path(folder))
            try:
                if not _ahead_of(_parsed(witness.read(log_id)), log_id, seq):
                    witness.write(log_id, witness_text(WitnessRecord(signed, ident.public)))
                also.add(folder)
            except KeyStoreError as exc:
                failed.append(str(exc))
        ahead = current is not None and _ahead_of(current, log_id, seq)
        if not ahead or also != enrolled:
            keep = current.signed if current is not None and ahead else signed
            store.write_witness(log_id, witness_text(WitnessRecord(keep, ident.public, tuple(sorted(also)))))
        if failed:
            raise KeyStoreError("; ".join(failed))

    def _witness_reads(self, log_id: str, *, writing: bool = False) -> list[WitnessRead]:
        """The default witness (required: written with the first checkpoint), each witness
        directory the default witness names (required: written to before), and each configured
        one (required once written to; before that a missing file only means "not yet")."""
        store = self.store()
        reads = [_read_witness(store.witness_where(log_id), True, lambda: store.witness(log_id))]
        default = reads[0].record
        enrolled = set(default.also) if default is not None else set()
        for folder in sorted({*map(str, self.witness_dirs()), *enrolled}):
            witness = WitnessDir(Path(folder))
            reads.append(_read_witness(witness.where(log_id), folder in enrolled, lambda w=witness: w.read(log_id)))
        if writing:  # a writer re-creates a missing witness: only a present one is checked against
            reads = [r for r in reads if r.error != "missing"]
        return reads

    # -- verifying ----------------------------------------------------------------------------
    def context(self) -> VerifyContext:
        """Who the log is and its witnesses, read before the chain is scanned. An unsigned log
        (no checkpoint, no identity, no key-store entry for this path) is anchored now, once."""
        try:
            return self._context()
        except KeyStoreError as exc:
            store = self._store
            return VerifyContext(store.description if store is not None else "no key store",
                                 problem=Problem(None, f"the audit log's key store could not be used: {exc}"))

    def _context(self) -> VerifyContext:
        self.flush()
        store = self.store()
        with self.engine.connect() as conn:
            ptr = store.log_for_path(self.db)
            named, public, checkpoints = _identity_of(conn)
            n, _ = tail_of(conn)
        if ptr is None and named is None and not checkpoints and n > 0:
            try:
                self.anchor_now()
            except (DBAPIError, KeyStoreError, OSError) as exc:
                return VerifyContext(f"key in {store.description}", store.warning, problem=Problem(
                    1, f"{span(1, n, 'is', 'are')} not covered by a signed checkpoint, and the log could not be "
                       f"anchored now: {exc}"))
            with self.engine.connect() as conn:
                ptr = store.log_for_path(self.db)
                named, public, checkpoints = _identity_of(conn)
        log_id = ptr or named
        protection = f"signed checkpoints (Ed25519), key in {store.description}"
        ctx = VerifyContext(protection, store.warning)
        if log_id is None:
            if checkpoints:  # checkpoints but no identity, and this path unknown to the key store
                ctx.problem = Problem(None, "the log has signed checkpoints but no identity: its identity record "
                                            "was removed and the key store does not know this log")
            return ctx  # an empty log that was never written to: nothing to anchor yet
        ctx.log_id = log_id
        text = store.signing_key(log_id)
        if text is None:
            ctx.problem = Problem(None, f"the signing key of audit log {log_id} is not in {store.description}: its "
                                        "checkpoints cannot be checked here (check a signed export where the key "
                                        "is, with `syncdesk audit verify-export`)")
            return ctx
        try:
            key = load_private(text).public_key()
        except (Malformed, ValueError) as exc:
            ctx.problem = Problem(None, f"the signing key of audit log {log_id} is unreadable ({exc})")
            return ctx
        ctx.key, ctx.public = key, public_text(key)
        ctx.protection += f" (public key {fingerprint(ctx.public)})"
        if ptr is not None and named is not None and named != ptr:
            ctx.problem = Problem(None, f"this database is audit log {named}, but the log anchored at {self.db} is "
                                        f"{ptr}: the log was replaced")
            return ctx
        if public is not None and public != ctx.public:
            ctx.problem = Problem(None, "the public key recorded in the database is not the log's key: its identity "
                                        "record was altered")
            return ctx
        ctx.witnesses = self._witness_reads(log_id)
        ctx.protection += "; witnesses: " + ", ".join(w.where for w in ctx.witnesses)
        return ctx

    def judge_log(self, ctx: VerifyContext, last_seq: int, tail_hash: str) -> tuple[Problem | None, Since | None]:
        """The first problem of the log whose chain ``verify`` found intact up to ``last_seq``."""
        if ctx.problem is not None:
            return ctx.problem, None
        if ctx.key is None or ctx.log_id is None:
            if last_seq > 0:  # appended by another process since the context was read: not judged here
                return Problem(None, "the log was written while it was being verified; verify it again"), None
            return None, None
        with self.engine.connect() as conn:
            judgement = judge(DbView(conn, last_seq, tail_hash, live=True), ctx.key, ctx.log_id, ctx.witnesses)
        return judgement.first(), judgement.since


def _identity_of(conn: Connection) -> tuple[str | None, str | None, bool]:
    """The log id and public key the database names, and whether it has checkpoints."""
    named = public = None
    if has_table(conn, "audit_log_identity"):
        row = conn.exec_driver_sql("SELECT log_id, public_key FROM audit_log_identity WHERE id = 1").first()
        if row is not None:
            named = row[0] if isinstance(row[0], str) and LOG_ID.fullmatch(row[0]) else None
            public = row[1] if isinstance(row[1], str) else None
    checkpoints = has_table(conn, "audit_checkpoint") and conn.exec_driver_sql(
        "SELECT 1 FROM audit_checkpoint LIMIT 1").first() is not None
    return named, public, checkpoints


def _read_witness(where: str, required: bool, read: Any) -> WitnessRead:
    try:
        text = read()
    except KeyStoreError as exc:
        return WitnessRead(where, required, error=f"it could not be read: {exc}")
    if text is None:
        return WitnessRead(where, required, error="missing")
    try:
        return WitnessRead(where, required, parse_witness(text))
    except Malformed as exc:
        return WitnessRead(where, required, error=str(exc))


def _parsed(text: str | None) -> WitnessRecord | None:
    if text is None:
        return None
    try:
        return parse_witness(text)
    except Malformed:
        return None


def _ahead_of(record: WitnessRecord | None, log_id: str, seq: int) -> bool:
    return record is not None and record.signed.checkpoint.log_id == log_id and record.signed.checkpoint.seq >= seq


def _insert(conn: Connection, signed: Signed) -> None:
    """A checkpoint row; one left at the same entry by an earlier (cut or rolled back) log is replaced."""
    conn.exec_driver_sql("INSERT OR REPLACE INTO audit_checkpoint (seq, hash, body, signature) VALUES (?, ?, ?, ?)",
                         (signed.checkpoint.seq, signed.checkpoint.hash,
                          body_text(signed.checkpoint), b64(signed.signature)))


def _write_identity(conn: Connection, ident: Identity, at: str) -> None:
    conn.exec_driver_sql("INSERT OR REPLACE INTO audit_log_identity (id, log_id, public_key, created_at) "
                         "VALUES (1, ?, ?, ?)", (ident.log_id, ident.public, at))


def is_file_sqlite(engine: Engine) -> Path | None:
    """The database file of a SQLite ``engine`` (None: another database, or in memory)."""
    db = engine.url.database
    if engine.url.get_backend_name() == "sqlite" and db and db != ":memory:" and not db.startswith("file::memory"):
        return Path(db)
    return None


__all__ = ["Anchor", "DbView", "VerifyContext", "is_file_sqlite"]
