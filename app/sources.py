"""Where a source's local snapshot lives (shared by the console and the headless commands)."""

from __future__ import annotations

from pathlib import Path

from services.home import syncdesk_home
from services.storage import Storage


def fresh_sqlite(path: Path) -> Storage:
    """A new, empty database at ``path`` (the demo's data is regenerated at every start)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return Storage.open_path(path)


def open_storage(profile_name: str | None, db_url: str | None = None) -> Storage:
    """``db_url`` if given; else SYNCDESK_HOME/snapshot-<profile>.db, or a fresh demo.db for
    the built-in demo (``profile_name=None``)."""
    if db_url:
        return Storage(db_url)
    if profile_name is None:
        return fresh_sqlite(syncdesk_home() / "demo.db")
    return Storage.open_path(syncdesk_home() / f"snapshot-{profile_name}.db")
