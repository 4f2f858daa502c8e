"""Schema migrations of the local database (Alembic), and the fast path that skips Alembic."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from services.store.storage import MIGRATIONS, SCHEMA_HEAD, Storage, StorageError

ROOT = Path(__file__).resolve().parents[2]


def revision(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("SELECT version_num FROM alembic_version").fetchone()[0])


def test_schema_head_constant_is_the_migrations_head() -> None:
    assert ScriptDirectory(str(MIGRATIONS)).get_current_head() == SCHEMA_HEAD


def test_a_new_database_is_created_at_head(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    Storage.open_path(db).close()
    assert revision(db) == SCHEMA_HEAD
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"snapshot_record", "system_state", "alembic_version"} <= tables


def test_an_up_to_date_database_opens_without_importing_alembic(tmp_path: Path) -> None:
    db = tmp_path / "current.db"
    Storage.open_path(db).close()
    code = ("import sys; from pathlib import Path; from services.store.storage import Storage; "
            f"Storage.open_path(Path({str(db)!r})).close(); print('alembic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_a_database_from_a_newer_syncdesk_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "newer.db"
    Storage.open_path(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StorageError, match="newer SyncDesk"):
        Storage.open_path(db)
    assert revision(db) == "9999"  # untouched


def test_an_older_database_is_backed_up_then_migrated(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    Storage.open_path(db).close()
    with sqlite3.connect(db) as conn:  # back to 0001: drop what 0002 added
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
        added = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
                 if r[0] not in ("snapshot_record", "system_state", "exception_row", "alembic_version")]
        for table in added:
            conn.execute(f'DROP TABLE "{table}"')
    Storage.open_path(db).close()
    assert revision(db) == SCHEMA_HEAD
    assert (tmp_path / "old.db.bak-0001").exists()
    assert revision(tmp_path / "old.db.bak-0001") == "0001"
