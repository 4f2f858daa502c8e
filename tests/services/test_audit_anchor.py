"""The audit log against an attacker who can write SYNCDESK_HOME: rollback, rewrite, a cut end,
entries added without the key, forged signatures, deleted or garbled witnesses.

Each case edits the files as an attacker would (the SQLite database with ``sqlite3``, the head
file and the witness files directly) and asserts what ``verify`` says: not intact, the first bad
or missing entry, one sentence. The signing key and the default witness live in the test's key
directory (``SYNCDESK_AUDIT_KEY_DIR``, set for every test by tests/conftest.py), never in
SYNCDESK_HOME and never in the user's keyring or config folder.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import keyring
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from keyring.backend import KeyringBackend

from services.store.audit import GENESIS, AuditEntry, AuditLog, GroupCommitter, VerifyResult, entry_hash
from services.store.audit_checkpoint import b64, parse_witness
from services.store.audit_export import signed_export, verify_export
from services.store.storage import Storage

ROOT = Path(__file__).resolve().parents[2]
N = 30
#: a CLI command in a subprocess: interpreter start and imports, well under this when idle
COMMAND_BUDGET = 120.0


def _entry(i: int, reason: str = "review") -> AuditEntry:
    return AuditEntry(operator=f"op{i % 3}", role="finance", action_id=f"act-{i}", action_kind="retry",
                      phase="intent" if i % 2 else "outcome", outcome="pending" if i % 2 else "succeeded",
                      exception_id=f"invoice.missing_in_erp:in_{i}", customer_id=f"cus_{i}", target_system="erp",
                      request={"calls": [{"method": "POST", "path": "/db/rpc/", "body": {"n": i}}]},
                      before={"erp": None}, after={"b": i}, reason=reason,
                      at=datetime(2026, 1, 2, tzinfo=UTC) + timedelta(seconds=i))


def append(db: Path, entries: list[AuditEntry], *, one_by_one: bool = False) -> None:
    """Append through a fresh AuditLog (as a new process would)."""
    storage = Storage.open_path(db, durable=True)
    try:
        log = AuditLog(storage)
        if one_by_one:
            for e in entries:
                log.append(e)
        else:
            log.append_many(entries)
    finally:
        storage.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """30 entries: one group of 15, then 15 appended one by one (a checkpoint at 15, 16, …, 30)."""
    path = tmp_path / "home" / "audit.db"
    append(path, [_entry(i) for i in range(N // 2)])
    append(path, [_entry(i) for i in range(N // 2, N)], one_by_one=True)
    return path


def verify(db: Path) -> VerifyResult:
    storage = Storage.open_path(db, durable=True)
    try:
        return AuditLog(storage).verify()
    finally:
        storage.close()


def log_id(db: Path) -> str:
    with sqlite3.connect(db) as con:
        return str(con.execute("select log_id from audit_log_identity").fetchone()[0])


def witness_file(keys: Path, db: Path) -> Path:
    return keys / f"{log_id(db)}.witness.json"


def head_file(db: Path) -> Path:
    return Path(f"{db}.head")


# -- the attacker's tools: plain sqlite3 and file edits ------------------------------------------------
def sql(db: Path, *statements: str, params: tuple[Any, ...] = ()) -> None:
    with sqlite3.connect(db) as con:
        for statement in statements:
            con.execute(statement, params if "?" in statement else ())


def read_rows(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as con:
        cursor = con.execute("select * from audit_entry order by seq")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]


def write_rows(db: Path, rows: list[dict[str, Any]]) -> None:
    """Replace every entry by ``rows``, their chain recomputed (valid hashes throughout), and
    write a matching head file: what an attacker with the database and no key can do."""
    prev = GENESIS
    for seq, row in enumerate(rows, start=1):
        row.update(seq=seq, prev_hash=prev)
        row["hash"] = prev = entry_hash(row)
    with sqlite3.connect(db) as con:
        con.execute("delete from audit_entry")
        if rows:
            names = list(rows[0])
            con.executemany(f"insert into audit_entry ({', '.join(map(repr, names))}) values "
                            f"({', '.join('?' * len(names))})", [[r[n] for n in names] for r in rows])
    head_file(db).write_text(json.dumps({"seq": len(rows), "hash": prev}) if rows else "{}")


def copy_db(src: Path, dst: Path) -> None:
    """An online copy (SQLite's backup, the WAL included) and the head file beside it."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    shutil.copy(head_file(src), head_file(dst))


def bad(result: VerifyResult, first_bad: int | None, *phrases: str) -> None:
    assert not result.ok, result
    assert result.first_bad == first_bad, result.problem
    for phrase in phrases:
        assert phrase in result.problem, result.problem
    assert "\n" not in result.problem and "Traceback" not in result.problem


# -- intact ----------------------------------------------------------------------------------------------
def test_an_intact_log_verifies_and_says_what_protects_it(db: Path, audit_key_dir: Path) -> None:
    result = verify(db)
    assert result == VerifyResult(True, N)
    assert str(result) == f"audit log intact: {N} entries verified"
    assert "signed checkpoints (Ed25519)" in result.protection and str(audit_key_dir) in result.protection
    assert str(witness_file(audit_key_dir, db)) in result.protection
    assert result.anchored.startswith("anchored since ") and "every entry is covered" in result.anchored
    with sqlite3.connect(db) as con:
        assert [r[0] for r in con.execute("select seq from audit_checkpoint order by seq")] == list(range(15, N + 1))


def test_appends_after_a_checkpoint_verify(db: Path, audit_key_dir: Path) -> None:
    """A witness behind the log (the writer stopped between its commit and the witness) and a
    log continued by another process: both are fine."""
    old = witness_file(audit_key_dir, db).read_text()
    append(db, [_entry(i) for i in range(N, N + 5)])
    witness_file(audit_key_dir, db).write_text(old)  # as if the witness write of the last group was lost
    result = verify(db)
    assert result.ok and result.checked == N + 5, result
    append(db, [_entry(N + 5)])  # another process goes on from there
    assert verify(db) == VerifyResult(True, N + 6)
    assert parse_witness(witness_file(audit_key_dir, db).read_text()).signed.checkpoint.seq == N + 6


def test_group_commits_verify_once_their_witnesses_are_written(tmp_path: Path) -> None:
    """The group committer leaves the witnesses to the publisher thread; ``flush`` waits for it."""
    import asyncio

    db = tmp_path / "audit.db"
    storage = Storage.open_path(db, durable=True)
    try:
        log = AuditLog(storage)
        committer = GroupCommitter(log)

        async def run() -> None:
            await asyncio.gather(*(committer.append(_entry(i)) for i in range(40)))

        asyncio.run(run())
        assert log.flush(timeout=30.0), "the witnesses were not written within 30 s"
        assert log.verify() == VerifyResult(True, 40)
    finally:
        storage.close()


# -- the cases of the issue: each one was "intact" before signed checkpoints ------------------------------
@pytest.mark.parametrize("head", ["deleted", "{}", "consistent"])
def test_deleting_the_last_entries_and_the_head_file(db: Path, head: str) -> None:
    sql(db, "delete from audit_entry where seq > 25", "delete from audit_checkpoint where seq > 25")
    if head == "deleted":
        head_file(db).unlink()
    elif head == "{}":
        head_file(db).write_text("{}")
    else:
        write_rows(db, read_rows(db))
    bad(verify(db), 26, "entries 26–30 were removed from the end of the log", "recorded entry 30",
        "rolled back or cut")


def test_deleting_every_entry_and_the_head_file(db: Path) -> None:
    sql(db, "delete from audit_entry", "delete from audit_checkpoint")
    head_file(db).unlink()
    result = verify(db)
    bad(result, 1, "entries 1–30 were removed from the end of the log")
    assert result.checked == 0


def test_deleting_every_entry_and_the_log_s_identity(db: Path) -> None:
    """The key store maps this path to the log: dropping the tables does not make it a new log."""
    sql(db, "delete from audit_entry", "drop table audit_checkpoint", "drop table audit_log_identity")
    head_file(db).unlink()
    bad(verify(db), 1, "entries 1–30 were removed from the end of the log")


def test_deleting_the_database_and_starting_a_new_log_in_its_place(db: Path) -> None:
    """The key store remembers the log at this path: a new log there carries what was lost."""
    for suffix in ("", "-wal", "-shm", ".head"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    append(db, [_entry(0)])
    bad(verify(db), 1, "entries 1–30 were removed from the end of the log", "found when entry 1 was appended")


def test_editing_an_entry_and_recomputing_every_later_hash_and_the_head(db: Path) -> None:
    rows = read_rows(db)
    rows[19]["reason"] = "nothing to see"
    write_rows(db, rows)
    bad(verify(db), 20, "entry 20 differs from its checkpoint signed on ", "altered, removed or replaced after it "
        "was signed")


def test_editing_the_last_entry_and_its_hash_and_the_head(db: Path) -> None:
    rows = read_rows(db)
    rows[-1]["operator"] = "mallory"
    write_rows(db, rows)
    bad(verify(db), N, f"entry {N} differs from", "after it was signed")


def test_a_rewrite_whose_checkpoints_were_deleted_too(db: Path) -> None:
    rows = read_rows(db)
    rows[19]["reason"] = "nothing to see"
    write_rows(db, rows)
    sql(db, "delete from audit_checkpoint where seq >= 20")
    bad(verify(db), 20, "entries 20–30 are not covered by a signed checkpoint")


def test_deleting_a_middle_entry_and_renumbering(db: Path) -> None:
    rows = read_rows(db)
    del rows[19]  # entry 20
    write_rows(db, rows)
    result = verify(db)
    bad(result, 20, "entry 20 differs from its checkpoint", "removed")
    assert result.checked == N - 1  # the chain itself is valid


def test_an_entry_removed_inside_a_group_is_named_within_its_group(db: Path) -> None:
    """Entries 1–15 were appended in one group, one checkpoint at 15: the first changed entry is
    named as one of them (the earliest, 1, as first bad)."""
    rows = read_rows(db)
    del rows[11]  # entry 12
    write_rows(db, rows)
    bad(verify(db), 1, "the log was rewritten after it was signed: its first changed entry is one of entries 1–15",
        f"entry {N - 1} differs from its checkpoint")


def test_appending_a_forged_entry_with_a_valid_hash(db: Path) -> None:
    rows = read_rows(db)
    rows.append({**rows[-1], "operator": "mallory", "action_id": "forged"})
    write_rows(db, rows)
    bad(verify(db), N + 1, f"entry {N + 1} is not covered by a signed checkpoint: it was added without the log's "
                           "signing key")


def test_appending_a_forged_entry_with_a_checkpoint_signed_by_another_key(db: Path) -> None:
    rows = read_rows(db)
    rows.append({**rows[-1], "operator": "mallory", "action_id": "forged"})
    write_rows(db, rows)
    with sqlite3.connect(db) as con:
        body, = con.execute("select body from audit_checkpoint where seq = ?", (N,)).fetchone()
    cp = json.loads(body)
    cp.update(seq=N + 1, hash=rows[-1]["hash"])
    text = json.dumps(cp, sort_keys=True, separators=(",", ":"))
    signature = b64(Ed25519PrivateKey.generate().sign(b"syncdesk-audit-checkpoint/1\n" + text.encode()))
    sql(db, "insert into audit_checkpoint values (?, ?, ?, ?)", params=(N + 1, rows[-1]["hash"], text, signature))
    bad(verify(db), N + 1, f"the checkpoint of entry {N + 1} has an invalid signature")


def test_restoring_an_older_copy_of_the_database_and_the_head_file(db: Path, tmp_path: Path) -> None:
    copy_db(db, tmp_path / "backup" / "audit.db")  # taken at 30 entries
    append(db, [_entry(i) for i in range(N, N + 10)], one_by_one=True)
    assert verify(db).ok
    (tmp_path / "backup" / "audit.db").replace(db)
    head_file(tmp_path / "backup" / "audit.db").replace(head_file(db))
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    bad(verify(db), N + 1, f"entries 31–{N + 10} were removed from the end of the log", "rolled back")


# -- the head file and the witness: wrong types, forged, missing -------------------------------------------
@pytest.mark.parametrize("text", ['{"seq": "18", "hash": "x"}', '{"seq": true, "hash": "x"}', '{"seq": -1}',
                                  '{"hash": 5}', "[1, 2]", "null", "\xff"])
def test_a_head_file_with_wrong_types_is_reported_not_raised(db: Path, text: str) -> None:
    head_file(db).write_text(text, encoding="latin-1")
    bad(verify(db), None, f"the head file {head_file(db)} is unreadable")


def test_a_head_file_with_wrong_types_and_a_cut_end_names_the_entry(db: Path) -> None:
    sql(db, "delete from audit_entry where seq > 18", "delete from audit_checkpoint where seq > 18")
    head_file(db).write_text('{"seq": "18"}')
    bad(verify(db), 19, "entries 19–30 were removed from the end of the log")


@pytest.mark.parametrize(("change", "reason"), [
    (lambda w: w["checkpoint"].update(seq="30"), "'seq' is not a whole number"),
    (lambda w: w["checkpoint"].update(hash=None), "'hash' is not a valid value"),
    (lambda w: w.update(checkpoint=[1, 2]), "the checkpoint is not a JSON object"),
    (lambda w: w.update(signature=12), "the signature is not a text"),
    (lambda w: w.update(format="v0"), "unknown witness format"),
    (lambda w: w["checkpoint"]["since"].update(late=1.5), "'late' is not a whole number"),
])
def test_a_witness_with_wrong_types_is_reported_not_raised(db: Path, audit_key_dir: Path, change: Any,
                                                           reason: str) -> None:
    path = witness_file(audit_key_dir, db)
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    bad(verify(db), None, f"the witness {path} is unreadable", reason)


@pytest.mark.parametrize("text", ["", "{not json", "[]", "null"])
def test_a_witness_that_is_not_a_json_object(db: Path, audit_key_dir: Path, text: str) -> None:
    path = witness_file(audit_key_dir, db)
    path.write_text(text)
    bad(verify(db), None, f"the witness {path} is unreadable")


def test_a_forged_signature_in_the_witness(db: Path, audit_key_dir: Path) -> None:
    """The witness moved ahead by the attacker (to hide nothing, or to frame): the signature fails."""
    path = witness_file(audit_key_dir, db)
    data = json.loads(path.read_text())
    data["checkpoint"]["seq"] = 12
    data["signature"] = b64(Ed25519PrivateKey.generate().sign(b"anything"))
    path.write_text(json.dumps(data))
    bad(verify(db), None, f"the witness {path} holds a checkpoint with an invalid signature")


def test_a_forged_signature_in_the_database(db: Path) -> None:
    with sqlite3.connect(db) as con:
        signature, = con.execute("select signature from audit_checkpoint where seq = ?", (N,)).fetchone()
    flipped = b64(bytes([signature.encode()[0] ^ 1]) + b"\0" * 63)
    sql(db, "update audit_checkpoint set signature = ? where seq = ?", params=(flipped, N))
    bad(verify(db), N, f"the checkpoint of entry {N} has an invalid signature: it was not made with this log's key")


def test_a_garbled_checkpoint_row(db: Path) -> None:
    sql(db, "update audit_checkpoint set body = '{\"v\": 1' where seq = ?", params=(N,))
    bad(verify(db), N, f"the checkpoint of entry {N} is unreadable (its body is not JSON)")


def test_a_deleted_witness_fails_while_the_key_is_present(db: Path, audit_key_dir: Path) -> None:
    """Decision: a missing witness is a failure (a rollback could not be ruled out), as long as
    the log's key is there; the next append writes it again (README)."""
    path = witness_file(audit_key_dir, db)
    path.unlink()
    assert (audit_key_dir / f"{log_id(db)}.key").exists()
    bad(verify(db), None, f"the witness {path} is missing: a rollback or a removal at the end of the log cannot be "
                          "ruled out")
    append(db, [_entry(N)])
    assert verify(db) == VerifyResult(True, N + 1)


def test_a_log_with_entries_and_no_checkpoint_at_all_fails(db: Path, audit_key_dir: Path) -> None:
    sql(db, "delete from audit_checkpoint")
    bad(verify(db), 1, "the checkpoints of entries 1–30 were removed from the database (the witness",
        "still vouches for entry 30)")
    witness_file(audit_key_dir, db).unlink()  # and nothing left to vouch for them
    bad(verify(db), 1, "entries 1–30 are not covered by a signed checkpoint: they were added without the log's "
                       "signing key, or the log's checkpoints were removed")


def test_the_last_checkpoint_removed_while_a_witness_holds_it(db: Path, audit_key_dir: Path) -> None:
    sql(db, "delete from audit_checkpoint where seq = ?", params=(N,))
    bad(verify(db), N, f"the checkpoint of entry {N} was removed from the database (the witness "
                       f"{witness_file(audit_key_dir, db)} still vouches for entry {N})")


def test_a_log_whose_key_is_gone_cannot_be_vouched_for(db: Path, audit_key_dir: Path) -> None:
    (audit_key_dir / f"{log_id(db)}.key").unlink()
    bad(verify(db), None, f"the signing key of audit log {log_id(db)} is not in", "verify-export")


def test_another_log_copied_over_this_one_is_named(db: Path, tmp_path: Path) -> None:
    other = tmp_path / "other" / "audit.db"
    append(other, [_entry(i) for i in range(N + 5)])
    copy_db(other, db)
    bad(verify(db), None, f"this database is audit log {log_id(other)}", "the log was replaced")


# -- a writer never signs over tampering ------------------------------------------------------------------
def test_a_later_append_does_not_cover_a_forged_entry(db: Path) -> None:
    rows = read_rows(db)
    rows.append({**rows[-1], "operator": "mallory", "action_id": "forged"})
    write_rows(db, rows)
    append(db, [_entry(N + 1)])  # the next legitimate append, by a new process
    result = verify(db)
    bad(result, N + 1, f"entry {N + 1} is not covered by a signed checkpoint", f"found when entry {N + 2} was appended")
    assert result.checked == N + 2


def test_a_later_append_does_not_cover_a_rollback(db: Path, tmp_path: Path) -> None:
    copy_db(db, tmp_path / "backup" / "audit.db")
    append(db, [_entry(i) for i in range(N, N + 3)])
    copy_db(tmp_path / "backup" / "audit.db", db)
    append(db, [_entry(i) for i in range(N, N + 10)])  # past the witness' entry: the witness moves on
    bad(verify(db), N + 1, f"entries 31–{N + 3} were removed from the end of the log", "found when entry 31 was")


# -- logs written before signed checkpoints ------------------------------------------------------------------
def test_a_log_written_before_signing_is_anchored_late_on_first_open(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    storage = Storage.open_path(db, durable=True)
    old = AuditLog(storage)
    old.anchor = None  # an earlier SyncDesk: the chain and the head file only
    old.append_many([_entry(i) for i in range(12)])
    storage.close()
    with sqlite3.connect(db) as con:
        assert not con.execute("select name from sqlite_master where name like 'audit_checkpoint'").fetchall()
    first = verify(db)
    assert first.ok and first.checked == 12 and first.late == 12, first
    assert str(first).startswith("audit log intact: 12 entries verified (anchored since ")
    assert "entries 1–12 were written before the log was signed and anchored late" in str(first)
    append(db, [_entry(12)])
    again = verify(db)
    assert again.ok and again.late == 12 and again.anchored == first.anchored
    rows = read_rows(db)  # what was anchored late is protected from then on
    rows[4]["reason"] = "changed"
    write_rows(db, rows)
    bad(verify(db), 1, "its first changed entry is one of entries 1–12")


# -- where the key is, and the witnesses -----------------------------------------------------------------------
def test_the_key_file_is_owner_only_and_outside_syncdesk_home(db: Path, audit_key_dir: Path,
                                                              syncdesk_home: Path) -> None:
    key = audit_key_dir / f"{log_id(db)}.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(witness_file(audit_key_dir, db).stat().st_mode) == 0o600
    secret = key.read_text().strip()
    for folder in (syncdesk_home, db.parent):
        for f in folder.rglob("*"):
            assert not f.is_file() or secret.encode() not in f.read_bytes(), f


def test_a_key_file_is_created_owner_only_from_the_first_byte(tmp_path: Path) -> None:
    """Written with O_EXCL and mode 0600: a permissive umask does not widen it, and an existing
    file (someone's trap) is never reused."""
    from services.store.audit_keys import KeyDirStore, KeyStoreError

    old = os.umask(0)
    try:
        store = KeyDirStore(tmp_path / "keys", "test")
        store.create_signing_key("a" * 32, "secret")
        assert stat.S_IMODE((tmp_path / "keys" / f"{'a' * 32}.key").stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
        with pytest.raises(KeyStoreError, match="already has a signing key"):
            store.create_signing_key("a" * 32, "other")
    finally:
        os.umask(old)


class MemoryKeyring(KeyringBackend):
    """A keyring backend in a dict: the OS keyring's interface, none of the user's secrets."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.items.pop((service, username), None)


@pytest.fixture
def memory_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryKeyring]:
    """The keyring in use, and no key directory: the key and the default witness go to the keyring."""
    monkeypatch.delenv("SYNCDESK_AUDIT_KEY_DIR")
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


def test_with_an_os_keyring_the_key_and_the_witness_are_in_it(tmp_path: Path, memory_keyring: MemoryKeyring,
                                                              audit_key_dir: Path) -> None:
    db = tmp_path / "audit.db"
    append(db, [_entry(i) for i in range(5)])
    service = f"SyncDesk audit log {log_id(db)}"
    assert set(memory_keyring.items) == {(service, "signing-key"), (service, "witness"),
                                         ("SyncDesk audit logs", str(db.resolve()))}
    assert list(audit_key_dir.iterdir()) == []
    result = verify(db)
    assert result.ok and "the OS keyring (tests.services.test_audit_anchor.MemoryKeyring)" in result.protection
    assert not result.warning
    del memory_keyring.items[(service, "witness")]
    bad(verify(db), None, f"the witness the OS keyring (service {service!r}, user 'witness') is missing")


def test_without_a_usable_keyring_a_key_file_is_used_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """No keyring backend (this CI machine's case): the fallback key folder, said by verify and
    logged once. The user's config folder is replaced by a temp one."""
    from keyring.backends import fail

    import services.store.audit_keys as audit_keys

    monkeypatch.delenv("SYNCDESK_AUDIT_KEY_DIR")
    fallback = tmp_path / "user-config" / "audit-keys"
    monkeypatch.setattr(audit_keys, "default_key_dir", lambda: fallback)
    monkeypatch.setattr(audit_keys, "_warned", set())
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        db = tmp_path / "audit.db"
        append(db, [_entry(i) for i in range(3)])
        result = verify(db)
    finally:
        keyring.set_keyring(previous)
    assert result.ok and str(fallback) in result.protection
    assert "no usable OS keyring" in result.warning and str(fallback) in result.warning
    assert [r.message for r in caplog.records].count(result.warning) == 1
    assert (fallback / f"{log_id(db)}.key").exists()


def test_a_witness_directory_from_config_toml(db: Path, tmp_path: Path, syncdesk_home: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    (syncdesk_home / "config.toml").write_text(f'[audit]\nwitness = "{share.as_posix()}"\n')
    assert verify(db).ok  # configured, never written to yet: nothing to require
    append(db, [_entry(N)])
    shared = share / f"{log_id(db)}.json"
    assert parse_witness(shared.read_text()).signed.checkpoint.seq == N + 1
    assert verify(db).ok
    shared.unlink()
    (syncdesk_home / "config.toml").write_text("")  # removing the line does not silence the witness
    bad(verify(db), None, f"the witness {shared} is missing")


def test_a_witness_directory_catches_a_rollback_the_key_store_cannot(db: Path, tmp_path: Path,
                                                                     audit_key_dir: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Someone who rolls back the database and the default witness (they hold the key store) is
    still caught by a witness directory they cannot write (a share, a WORM mount)."""
    share = tmp_path / "worm"
    share.mkdir()
    monkeypatch.setenv("SYNCDESK_AUDIT_WITNESS", str(share))
    copy_db(db, tmp_path / "backup" / "audit.db")
    old_witness = witness_file(audit_key_dir, db).read_text()
    append(db, [_entry(N)])
    copy_db(tmp_path / "backup" / "audit.db", db)
    witness_file(audit_key_dir, db).write_text(old_witness)
    bad(verify(db), N + 1, f"entry {N + 1} was removed from the end of the log", f"the witness {share}")


# -- export and offline verification ---------------------------------------------------------------------
def export(db: Path) -> dict[str, Any]:
    storage = Storage.open_path(db, durable=True)
    try:
        return signed_export(AuditLog(storage))
    finally:
        storage.close()


def test_a_signed_export_verifies_offline_and_tampering_with_it_does_not(db: Path) -> None:
    data = export(db)
    assert data["fingerprint"].startswith("SHA256:") and len(data["entries"]) == N
    text = json.dumps(data)
    result = verify_export(json.loads(text))
    assert result.ok and result.checked == N and "every entry is covered" in result.anchored
    assert verify_export(json.loads(text), public_key=data["public_key"]).ok
    other = b64(Ed25519PrivateKey.generate().public_key().public_bytes_raw())
    bad(verify_export(json.loads(text), public_key=other), None, "the export is signed with the key")
    rewritten = json.loads(text)  # an entry edited, every later hash recomputed
    rewritten["entries"][19]["reason"] = "nothing"
    prev = rewritten["entries"][18]["hash"]
    for e in rewritten["entries"][19:]:
        e["prev_hash"] = prev
        e["hash"] = prev = entry_hash(e)
    bad(verify_export(rewritten), 20, "entry 20 differs from its checkpoint signed on")
    cut = json.loads(text)  # the end cut, the checkpoints kept
    del cut["entries"][25:]
    bad(verify_export(cut), 26, "entries 26–30 were removed from the end of the log")
    forged = json.loads(text)
    forged["checkpoints"][-1]["signature"] = b64(bytes(64))
    bad(verify_export(forged), N, "invalid signature")
    bad(verify_export({"format": "syncdesk-audit-export/1", "public_key": 5}), None, "the export is unreadable")
    bad(verify_export([1, 2]), None, "the export is unreadable")


# -- CSV ----------------------------------------------------------------------------------------------------
def test_csv_export_cells_cannot_run_as_formulas(tmp_path: Path) -> None:
    import csv
    import io

    db = tmp_path / "audit.db"
    reasons = ['=HYPERLINK("http://evil","x")', "+1", "-2", "@SUM(A1)", "\tx", "ok"]
    append(db, [_entry(i, reason=r) for i, r in enumerate(reasons)])
    storage = Storage.open_path(db, durable=True)
    try:
        text = AuditLog(storage).export("csv")
    finally:
        storage.close()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["reason"] for r in rows] == ["'" + r for r in reasons[:-1]] + ["ok"]
    assert [r["seq"] for r in rows] == ["1", "2", "3", "4", "5", "6"]


# -- the command line -----------------------------------------------------------------------------------------
def cli(*args: str, home: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=COMMAND_BUDGET, env={**os.environ, "SYNCDESK_HOME": str(home), **(env or {})})


@pytest.mark.slow  # three commands in subprocesses
def test_cli_verify_names_the_cut_end_and_a_rolled_back_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             audit_key_dir: Path) -> None:
    home, share = tmp_path / "home", tmp_path / "share"
    share.mkdir()
    monkeypatch.setenv("SYNCDESK_AUDIT_WITNESS", str(share))
    db = home / "audit-acme.db"  # the log of the profile the commands default to (app.sources)
    append(db, [_entry(i) for i in range(20)], one_by_one=True)
    (home / "config.toml").write_text('[profiles.acme.billing]\nkind = "stripe"\nurl = "http://127.0.0.1:9"\n')
    intact = cli("audit", "verify", home=home)
    assert intact.returncode == 0, intact.stderr
    assert intact.stdout.startswith("audit log intact: 20 entries verified\n")
    assert f"protection: signed checkpoints (Ed25519), key in the key file in {audit_key_dir}" in intact.stdout
    assert str(share) in intact.stdout and "anchored since " in intact.stdout
    # a full restore of an older SYNCDESK_HOME: the witnesses outside it are ahead
    shutil.copytree(home, tmp_path / "older-home")
    append(db, [_entry(i) for i in range(20, 26)], one_by_one=True)
    shutil.rmtree(home)
    shutil.copytree(tmp_path / "older-home", home)
    restored = cli("audit", "verify", home=home)
    assert restored.returncode == 1 and restored.stdout == ""
    lines = restored.stderr.splitlines()
    assert len(lines) == 1, lines  # one sentence, no traceback
    assert lines[0].startswith("audit log NOT intact: entries 21–26 were removed from the end of the log"), lines
    assert "recorded entry 26" in lines[0] and "rolled back or cut" in lines[0]
    # the last entries and the head file deleted
    sql(db, "delete from audit_entry where seq > 17", "delete from audit_checkpoint where seq > 17")
    head_file(db).unlink()
    cut = cli("audit", "verify", home=home)
    assert cut.returncode == 1 and len(cut.stderr.splitlines()) == 1, cut.stderr
    assert cut.stderr.startswith("audit log NOT intact: entries 18–26 were removed from the end of the log"), cut.stderr


@pytest.mark.slow  # two commands in subprocesses
def test_cli_signed_export_is_verified_without_syncdesk_home_or_key(db: Path, tmp_path: Path) -> None:
    target = tmp_path / "export.json"
    done = cli("audit", "export", "--format", "signed", "--output", str(target), "--db", str(db), home=db.parent)
    assert done.returncode == 0, done.stderr
    public = json.loads(target.read_text())["public_key"]
    elsewhere = {"SYNCDESK_AUDIT_KEY_DIR": str(tmp_path / "no-keys")}
    ok = cli("audit", "verify-export", str(target), "--public-key", public, home=tmp_path / "empty-home", env=elsewhere)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"audit log intact: {N} entries verified\n") and "(the expected key)" in ok.stdout
    assert not (tmp_path / "no-keys").exists()
    data = json.loads(target.read_text())
    data["entries"][-1]["reason"] = "edited"
    target.write_text(json.dumps(data))
    broken = cli("audit", "verify-export", str(target), home=tmp_path / "empty-home", env=elsewhere)
    assert broken.returncode == 1 and broken.stderr.startswith(f"audit log NOT intact: entry {N} was altered")
