"""Where a source's local snapshot lives (shared by the console and the headless commands)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from services.store.home import syncdesk_home
from services.store.storage import Storage, StorageError


def fresh_sqlite(path: Path) -> Storage:
    """A new, empty database at ``path`` (the demo's data is regenerated at every start)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return Storage.open_path(path)


def open_storage(profile_name: str | None, db_url: str | None = None) -> Storage:
    """``db_url`` if given; else SYNCDESK_HOME/snapshot-<profile>.db, or a fresh demo.db for
    the built-in demo (``profile_name=None``). A database that cannot be opened (bad URL, no
    driver, a folder that cannot be created, a file that is not a database) is a
    :class:`StorageError` naming it (never its password)."""
    path = syncdesk_home() / ("demo.db" if profile_name is None else f"snapshot-{profile_name}.db")
    where = _shown(db_url) if db_url else str(path)
    try:
        if db_url:
            return Storage(db_url)
        if profile_name is None:
            return fresh_sqlite(path)
        return Storage.open_path(path)
    except StorageError:
        raise
    except (SQLAlchemyError, OSError, ImportError) as exc:
        reason = getattr(exc, "orig", None) or exc
        first = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
        raise StorageError(f"cannot open the snapshot database {where}: {first}") from None


def _shown(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError):
        return "given with --db (not a valid database URL)"
