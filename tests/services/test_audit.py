"""The audit log's hash chain: ``verify`` proves every entry intact or names the first bad one.

Entries carry awkward text (quotes, backslashes, control characters, NUL, non-ASCII, U+2028,
emoji) so the canonical encoding is exercised where encoders differ most.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import services.store.audit
from services.store.audit import GENESIS, AuditEntry, AuditLog, Links, VerifyCancelled, VerifyResult, entry_hash
from services.store.storage import Storage

AWKWARD = ["plain", "é \"q\" \\ \n\t\r\b\f", "nul\x00inside", "\x01\x1f\x7f", "line\u2028sep\u2029", "😀 ünï",
           "{\"looks\": [\"like json\"]}", "\\u0041 not an escape", "", " "]
N = 30


def _entry(i: int) -> AuditEntry:
    text = AWKWARD[i % len(AWKWARD)]
    return AuditEntry(operator=f"op{i % 3}", role="finance", action_id=f"act-{i}", action_kind="retry",
                      phase="intent" if i % 2 else "outcome", outcome="pending" if i % 2 else "failed",
                      exception_id=f"invoice.missing_in_erp:in_{i}" if i % 4 else None,
                      customer_id=f"cus_{i}" if i % 5 else None, target_system="erp" if i % 6 else None,
                      request={"calls": [{"method": "POST", "path": "/db/rpc/", "body": {"note": text, "n": i}}]},
                      before={"erp": None, "text": text}, after={"b": i, "a": [1.5, True]},
                      error=f"boom: {text}" if i % 3 == 0 else None, reason=text or None,
                      at=datetime(2026, 1, 2, tzinfo=UTC) + timedelta(seconds=i))


SQLITE_VERSION = tuple(int(p) for p in sqlite3.sqlite_version.split(".")[:3])


SQLITE_INPUTS = ["sqlite", "sqlite-guarded"]  # SQLite builds the hash inputs
INPUTS = [*SQLITE_INPUTS, "python"]


@pytest.fixture(autouse=True, params=INPUTS)
def inputs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with SQLite building the hash inputs (keeping BLOBs out of its JSON
    functions as 3.45 and later need, or not where it refuses them) and with Python encoding
    them (a database other than SQLite), in pages of 7 entries so that page edges are crossed."""
    monkeypatch.setattr(services.store.audit, "PAGE", 7)
    if request.param == "sqlite-guarded":
        monkeypatch.setattr(services.store.audit, "_JSONB_SINCE", (0, 0, 0))
    elif request.param == "python":
        monkeypatch.setattr(AuditLog, "_sqlite_json", lambda self: None)
    return str(request.param)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"
    storage = Storage.open_path(path, durable=True)
    log = AuditLog(storage)
    log.append_many([_entry(i) for i in range(N // 2)])
    for i in range(N // 2, N):
        log.append(_entry(i))
    storage.close()
    return path


def verify(db: Path) -> VerifyResult:
    storage = Storage.open_path(db, durable=True)
    try:
        return AuditLog(storage).verify()
    finally:
        storage.close()


def run(db: Path, *sql: str, params: tuple[object, ...] = ()) -> None:
    with sqlite3.connect(db) as con:
        for statement in sql:
            con.execute(statement, params if "?" in statement else ())


# -- the hash input format ----------------------------------------------------------------------------
def test_the_hash_input_format_is_unchanged() -> None:
    """A hash computed by the first release: existing logs must keep verifying."""
    e = AuditEntry(operator="ana", role="finance", action_id="act-1", action_kind="retry", phase="intent",
                   outcome="pending", exception_id="invoice.missing_in_erp:in_1", customer_id="cus_1",
                   target_system="erp",
                   request={"calls": [{"method": "POST", "path": "/db/rpc/",
                                       "body": {"reference": "in_1", "note": "é \"q\" \\ \n\t\x00 \u2028 😀"}}]},
                   before={"erp": None}, after={"b": 1, "a": [1.5, True]}, error=None, reason="line1\nline2",
                   at=datetime(2026, 1, 2, 3, 4, 5, 6789, tzinfo=UTC), seq=1, prev_hash=GENESIS)
    assert entry_hash(e.row()) == "7f8a795af8f26cf7df79c5a96ef78c3e1131b2dc967f539f1f4f0e724b2a8bb4"


def test_an_intact_log_verifies(db: Path) -> None:
    result = verify(db)
    assert result.ok and result.checked == N and result.first_bad is None
    assert str(result) == f"audit log intact: {N} entries verified"


def test_an_empty_log_verifies(tmp_path: Path) -> None:
    storage = Storage.open_path(tmp_path / "empty.db", durable=True)
    try:
        assert AuditLog(storage).verify() == VerifyResult(True, 0)
    finally:
        storage.close()


# -- altered -------------------------------------------------------------------------------------
CONTENT = ["at", "operator", "role", "action_id", "action_kind", "phase", "exception_id", "customer_id",
           "target_system", "request", "before", "after", "outcome", "error", "reason"]


@pytest.mark.parametrize("column", CONTENT)
def test_every_field_is_covered(db: Path, column: str) -> None:
    run(db, f'update audit_entry set "{column}" = \'x\' where seq = 7')
    result = verify(db)
    assert not result.ok and result.first_bad == 7 and result.checked == 6
    assert result.problem == "entry 7 was altered after it was written"


@pytest.mark.parametrize("column", ["exception_id", "customer_id", "target_system", "error", "reason"])
def test_a_null_is_not_an_empty_or_null_text(db: Path, column: str) -> None:
    with sqlite3.connect(db) as con:
        (value,) = con.execute(f'select "{column}" from audit_entry where seq = 12').fetchone()
    if value is None:
        run(db, f'update audit_entry set "{column}" = \'null\' where seq = 12')
    else:
        run(db, f'update audit_entry set "{column}" = NULL where seq = 12')
    result = verify(db)
    assert not result.ok and result.first_bad == 12 and "altered" in result.problem


@pytest.mark.parametrize(("seq", "change"), [
    (3, "set reason = reason || char(0)"),  # a NUL appended
    (2, "set reason = replace(reason, char(10), char(13))"),  # newline -> carriage return
    (2, "set reason = replace(reason, '\"', '''')"),  # a quote
    (6, "set reason = replace(reason, 'ü', 'u')"),  # non-ASCII
    (5, "set reason = replace(reason, char(8232), char(8233))"),  # U+2028 -> U+2029
    (1, "set reason = upper(reason)"),
    (8, "set request = replace(request, '\\\\u0041', 'A')"),  # an escape in the stored JSON text
    (10, "set error = error || ' '"),
    (11, "set at = replace(at, '+00:00', 'Z')"),
])
def test_small_edits_of_awkward_text_are_detected(db: Path, seq: int, change: str) -> None:
    with sqlite3.connect(db) as con:
        before = con.execute("select * from audit_entry where seq = ?", (seq,)).fetchone()
        con.execute(f"update audit_entry {change} where seq = ?", (seq,))
        assert con.execute("select * from audit_entry where seq = ?", (seq,)).fetchone() != before, "no-op tamper"
    result = verify(db)
    assert not result.ok and result.first_bad == seq and "altered" in result.problem


BLOB_SEQ = 10  # _entry(9): every nullable column is set (9 % 4, 9 % 5, 9 % 6 != 0; 9 % 3 == 0; reason " ")


def test_the_blob_entry_has_no_null_column(db: Path) -> None:
    """The blob cases below cover every column only because entry 10 has none NULL: hold that."""
    columns = [*CONTENT, "hash"]
    with sqlite3.connect(db) as con:
        kinds = con.execute("select " + ", ".join(f'typeof("{c}")' for c in columns)
                            + " from audit_entry where seq = ?", (BLOB_SEQ,)).fetchone()
    assert "null" not in kinds, dict(zip(columns, kinds, strict=True))


@pytest.mark.parametrize("column", [*CONTENT, "hash"])
def test_the_same_bytes_stored_as_a_blob_are_detected(db: Path, column: str) -> None:
    """A value turned into a BLOB holding its own UTF-8 bytes is an edit too."""
    run(db, f'update audit_entry set "{column}" = cast("{column}" as blob) where seq = {BLOB_SEQ}')
    with sqlite3.connect(db) as con:
        (kind,) = con.execute(f'select typeof("{column}") from audit_entry where seq = {BLOB_SEQ}').fetchone()
    assert kind == "blob", f"{column} of entry {BLOB_SEQ} is {kind}: no BLOB was stored"
    result = verify(db)
    assert not result.ok and result.first_bad == BLOB_SEQ and "altered" in result.problem


def test_a_blob_that_is_jsonb_for_the_same_text_is_detected(db: Path) -> None:
    """SQLite >= 3.45 reads a BLOB handed to its JSON functions as JSONB: header 0x37 + b"op0" is JSONB
    for the text "op0", entry 4's operator."""
    with sqlite3.connect(db) as con:
        assert con.execute("select operator from audit_entry where seq = 4").fetchone() == ("op0",)
        con.execute("update audit_entry set operator = ? where seq = 4", (bytes([0x37]) + b"op0",))
    result = verify(db)
    assert not result.ok and result.first_bad == 4 and "altered" in result.problem


def test_a_rehashed_entry_breaks_the_link_to_the_next(db: Path) -> None:
    with sqlite3.connect(db) as con:
        row = dict(zip([d[0] for d in con.execute("select * from audit_entry").description],
                       con.execute("select * from audit_entry where seq = 5").fetchone(), strict=True))
        row["operator"] = "mallory"
        con.execute("update audit_entry set operator = 'mallory', hash = ? where seq = 5", (entry_hash(row),))
    result = verify(db)
    assert not result.ok and result.first_bad == 6 and result.checked == 5
    assert result.problem == ("entry 6 does not follow entry 5: an earlier entry was altered, removed or "
                              "reordered")


def test_an_altered_prev_hash_is_detected(db: Path) -> None:
    run(db, "update audit_entry set prev_hash = ? where seq = 9", params=("f" * 64,))
    result = verify(db)
    assert not result.ok and result.first_bad == 9 and "does not follow entry 8" in result.problem


def test_the_first_of_several_bad_entries_is_named(db: Path) -> None:
    run(db, "update audit_entry set reason = 'x' where seq in (21, 13, 27)")
    result = verify(db)
    assert not result.ok and result.first_bad == 13 and result.checked == 12


def test_the_first_and_last_entries_are_covered(db: Path) -> None:
    run(db, "update audit_entry set role = 'admin' where seq = 1")
    first = verify(db)
    assert not first.ok and first.first_bad == 1 and first.checked == 0
    run(db, "update audit_entry set role = 'finance' where seq = 1",
        f"update audit_entry set role = 'x' where seq = {N}")
    last = verify(db)
    assert not last.ok and last.first_bad == N and last.checked == N - 1


# -- removed, reordered, inserted, truncated ------------------------------------------------------------
def test_a_removed_entry_is_named(db: Path) -> None:
    run(db, "delete from audit_entry where seq = 4")
    result = verify(db)
    assert not result.ok and result.first_bad == 4 and "removed" in result.problem
    assert result.problem == "entry 4 is removed (found entry 5 in its place)"


def test_reordered_entries_are_named(db: Path) -> None:
    run(db, "update audit_entry set seq = -5 where seq = 5", "update audit_entry set seq = 5 where seq = 6",
        "update audit_entry set seq = 6 where seq = -5")
    result = verify(db)
    assert not result.ok and result.first_bad == 5 and result.checked == 4


def test_an_inserted_entry_is_detected(db: Path) -> None:
    """An entry slipped in between 7 and 8 (the later ones renumbered), with a correct hash of its own."""
    with sqlite3.connect(db) as con:
        cols = [d[0] for d in con.execute("select * from audit_entry").description]
        row = dict(zip(cols, con.execute("select * from audit_entry where seq = 7").fetchone(), strict=True))
        for seq in range(N, 7, -1):
            con.execute("update audit_entry set seq = seq + 1 where seq = ?", (seq,))
        row.update(seq=8, prev_hash=row["hash"], operator="mallory", action_id="forged")
        row["hash"] = entry_hash(row)
        con.execute(f"insert into audit_entry ({', '.join(map(repr, cols))}) values "
                    f"({', '.join('?' * len(cols))})", [row[c] for c in cols])
    result = verify(db)
    assert not result.ok and result.first_bad == 9 and result.checked == 8
    assert "does not follow entry 8" in result.problem


def test_a_duplicated_sequence_number_is_named(db: Path) -> None:
    run(db, "update audit_entry set seq = 100 where seq = 10")
    result = verify(db)
    assert not result.ok and result.first_bad == 10 and "removed" in result.problem


def test_a_truncated_tail_is_named_from_the_head_file(db: Path) -> None:
    run(db, "delete from audit_entry where seq > 25")
    result = verify(db)
    assert not result.ok and result.first_bad == 26 and result.checked == 25
    assert result.problem == f"entries 26–{N} were removed from the end of the log"


def test_a_rewritten_last_entry_differs_from_the_head(db: Path) -> None:
    with sqlite3.connect(db) as con:
        cols = [d[0] for d in con.execute("select * from audit_entry").description]
        row = dict(zip(cols, con.execute("select * from audit_entry where seq = ?", (N,)).fetchone(), strict=True))
        row["reason"] = "rewritten"
        con.execute("update audit_entry set reason = 'rewritten', hash = ? where seq = ?", (entry_hash(row), N))
    result = verify(db)
    assert not result.ok and result.first_bad == N and "recorded head" in result.problem


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_an_unreadable_head_file_is_reported(db: Path, text: str) -> None:
    Path(f"{db}.head").write_text(text)
    result = verify(db)
    assert not result.ok and result.first_bad is None and "unreadable" in result.problem


# -- how the inputs are built ---------------------------------------------------------------------------
def test_sqlite_builds_the_inputs_here(db: Path, inputs: str) -> None:
    """The fast path is the one taken on this machine's SQLite (>= 3.38 with JSON)."""
    storage = Storage.open_path(db, durable=True)
    try:
        guard = AuditLog(storage)._sqlite_json()
    finally:
        storage.close()
    if inputs == "python":
        assert guard is None
    else:
        assert guard is (inputs == "sqlite-guarded" or SQLITE_VERSION >= (3, 45, 0))


@pytest.mark.parametrize("inputs", SQLITE_INPUTS, indirect=True)  # Python's driver cannot decode it: it raises
def test_text_that_is_not_utf8_is_an_alteration(db: Path, inputs: str) -> None:
    assert inputs in SQLITE_INPUTS
    run(db, "update audit_entry set reason = cast(x'66ff6f' as text) where seq = 8")
    result = verify(db)
    assert not result.ok and result.first_bad == 8 and "altered" in result.problem


@pytest.mark.parametrize("inputs", SQLITE_INPUTS, indirect=True)  # only where SQLite builds the inputs
def test_an_input_sqlite_encodes_differently_is_settled_by_the_python_encoding(
        db: Path, inputs: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Should SQLite ever escape a character otherwise than Python, that entry is encoded again
    in Python: still intact when it is, still named when it was altered."""
    assert inputs in SQLITE_INPUTS
    pages = AuditLog._sqlite_pages

    def differently(self: AuditLog, raw: object, guard: bool) -> Generator[Links, None, None]:
        for seqs, prevs, hashes, data in pages(self, raw, guard):
            yield seqs, prevs, hashes, [d.replace(b"\\n", b"\\u000a") for d in data]

    monkeypatch.setattr(AuditLog, "_sqlite_pages", differently)
    assert verify(db).ok
    run(db, "update audit_entry set reason = reason || 'x' where seq = 12")  # reason holds a newline
    result = verify(db)
    assert not result.ok and result.first_bad == 12 and "altered" in result.problem


def test_pages_of_the_default_size(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()
    assert services.store.audit.PAGE > N
    assert verify(db).ok
    run(db, "update audit_entry set reason = 'x' where seq = 17")
    result = verify(db)
    assert not result.ok and result.first_bad == 17


# -- progress and cancellation ---------------------------------------------------------------------------
def open_log(db: Path) -> tuple[Storage, AuditLog]:
    storage = Storage.open_path(db, durable=True)
    return storage, AuditLog(storage)


def test_progress_is_reported_page_by_page(db: Path) -> None:
    storage, log = open_log(db)
    calls: list[tuple[int, int]] = []
    try:
        assert log.verify(progress=lambda checked, total: calls.append((checked, total))).ok
    finally:
        storage.close()
    assert calls == [(0, N), (7, N), (14, N), (21, N), (28, N), (N, N)]


def test_progress_of_a_bad_log_stops_where_it_stopped(db: Path) -> None:
    run(db, "update audit_entry set reason = 'x' where seq = 17")
    storage, log = open_log(db)
    calls: list[tuple[int, int]] = []
    try:
        result = log.verify(progress=lambda checked, total: calls.append((checked, total)))
    finally:
        storage.close()
    assert not result.ok and result.first_bad == 17
    assert calls == [(0, N), (7, N), (14, N)]


@pytest.mark.parametrize("pages", [0, 1, 3])
def test_verify_can_be_cancelled_between_pages(db: Path, pages: int) -> None:
    storage, log = open_log(db)
    calls: list[int] = []
    try:
        with pytest.raises(VerifyCancelled) as raised:
            log.verify(progress=lambda checked, _total: calls.append(checked), cancelled=lambda: len(calls) > pages)
        assert raised.value.checked == 7 * pages
        assert calls == [7 * i for i in range(pages + 1)]
        assert not [t for t in threading.enumerate() if t.name == "audit-verify-reader"], "the reader stopped"
        assert log.verify(cancelled=lambda: False).ok  # and the log can be verified again
    finally:
        storage.close()


def test_verify_cancelled_before_it_starts_reads_nothing(db: Path) -> None:
    storage, log = open_log(db)
    calls: list[int] = []
    try:
        with pytest.raises(VerifyCancelled) as raised:
            log.verify(progress=lambda checked, _total: calls.append(checked), cancelled=lambda: True)
    finally:
        storage.close()
    assert raised.value.checked == 0 and calls == []


def test_a_log_that_grows_during_verify_verifies(db: Path) -> None:
    """Entries appended while verify reads (the console keeps acting): a later page sees them."""
    storage, log = open_log(db)
    try:
        grown: list[int] = []

        def append_some(checked: int, _total: int) -> None:
            if checked == 14:
                log.append_many([_entry(N + i) for i in range(10)])
                grown.append(checked)

        result = log.verify(progress=append_some)
    finally:
        storage.close()
    assert grown and result.ok and N <= result.checked <= N + 10


def test_a_chain_rewritten_and_extended_past_the_head_is_detected(db: Path) -> None:
    """Rewriting every entry (hashes recomputed) and appending one more leaves the head behind
    the end of the log; the chain must still pass through the head's hash."""
    with sqlite3.connect(db) as con:
        cols = [d[0] for d in con.execute("select * from audit_entry").description]
        rows = [dict(zip(cols, r, strict=True)) for r in con.execute("select * from audit_entry order by seq")]
        rows.append({**rows[-1], "seq": N + 1})
        prev = GENESIS
        for row in rows:
            row.update(prev_hash=prev, operator="mallory")
            row["hash"] = prev = entry_hash(row)
        con.execute("delete from audit_entry")
        con.executemany(f"insert into audit_entry ({', '.join(map(repr, cols))}) values ({', '.join('?' * len(cols))})",
                        [[r[c] for c in cols] for r in rows])
    result = verify(db)
    assert not result.ok and result.first_bad == N and result.problem == f"entry {N} differs from the recorded head"


def test_a_head_behind_the_log_is_fine(db: Path) -> None:
    """A writer that stopped between its commit and moving the head: the head names an earlier entry."""
    with sqlite3.connect(db) as con:
        (digest,) = con.execute("select hash from audit_entry where seq = 12").fetchone()
    Path(f"{db}.head").write_text(f'{{"seq": 12, "hash": "{digest}"}}')
    assert verify(db) == VerifyResult(True, N)
