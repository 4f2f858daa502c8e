"""Where a source's local files live (shared by the console and the headless commands): its
snapshot database (:func:`open_storage`), its audit log (:func:`choose_audit_log`) and which
profile a command means when it names none (:func:`default_profile_name`)."""

from __future__ import annotations

import argparse
import tomllib
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from services.io.config import ConfigError
from services.store.home import DEMO_SNAPSHOT, audit_path, config_path, legacy_audit_path, snapshot_path
from services.store.storage import Storage, StorageError


def open_storage(profile_name: str | None, db_url: str | None = None, *, demo_folder: Path | None = None) -> Storage:
    """``db_url`` if given; else SYNCDESK_HOME/snapshot-<profile>.db, or the built-in demo's
    snapshot (``profile_name=None``: SYNCDESK_HOME/demo/snapshot.db, or ``demo_folder``'s), kept
    between runs like any profile's (a new demo world deletes it: ``app.demo.start_demo``). A
    database that cannot be opened (bad URL, no driver, a folder that cannot be created, a file
    that is not a database) is a :class:`StorageError` naming it (never its password)."""
    if profile_name is not None:
        path = snapshot_path(profile_name)
    elif demo_folder is not None:
        path = demo_folder / DEMO_SNAPSHOT
    else:
        path = snapshot_path(demo=True)
    where = _shown(db_url) if db_url else str(path)
    try:
        if db_url:
            return Storage(db_url)
        return Storage.open_path(path)
    except StorageError:
        raise
    except (SQLAlchemyError, OSError, ImportError) as exc:
        reason = getattr(exc, "orig", None) or exc
        first = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
        raise StorageError(f"cannot open the snapshot database {where}: {first}") from None


def default_profile_name(config: Path | None = None) -> str | None:
    """The profile the console opens when none is named: ``default``, else the first one of the
    configuration file (``config``, else SYNCDESK_HOME/config.toml); ``None`` (the built-in
    demo) when there is no such file or it has no profile. Reads only the table names: a
    profile that would not load is still the one meant. A file that is not TOML is a
    :class:`ConfigError`."""
    path = config or config_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    profiles = data.get("profiles")
    if not isinstance(profiles, dict) or not profiles:
        return None
    return "default" if "default" in profiles else str(next(iter(profiles)))


@dataclass(frozen=True)
class AuditLogChoice:
    """The audit log a command reads, and whose it is (for its messages)."""

    path: Path
    whose: str  # "profile 'x'", "the built-in demo", or "" (a file given with --db)

    def missing(self) -> str:
        """Why there is nothing to read: no log yet (nothing was done on that profile), and,
        when there is one, where the log earlier versions shared between profiles is."""
        owner = f" of {self.whose}" if self.whose else ""
        text = f"no audit log{owner} at {self.path}"
        if self.whose:
            text += " (no action was taken on it yet)"
            legacy = legacy_audit_path()
            if legacy.exists() and legacy != self.path:
                text += (f"; actions taken before SyncDesk kept one log per profile are in {legacy} "
                         f"(audit verify --db {legacy})")
        return text


def add_audit_log_options(p: argparse.ArgumentParser) -> None:
    """``--demo | --profile NAME | --db FILE``: which audit log (see :func:`choose_audit_log`)."""
    which = p.add_mutually_exclusive_group()
    which.add_argument("--demo", action="store_true", help="the built-in demo's log (SYNCDESK_HOME/demo/audit.db)")
    which.add_argument("--profile", help="this profile's log (SYNCDESK_HOME/audit-PROFILE.db)")
    which.add_argument("--db", type=Path, help="an audit database file")


def choose_audit_log(args: argparse.Namespace) -> AuditLogChoice:
    """The log of ``--db``, the demo (``--demo``) or ``--profile NAME``; with none of them, the
    log of the profile the console opens (:func:`default_profile_name`: ``default`` or the
    first of SYNCDESK_HOME/config.toml; the built-in demo when none is configured).
    :class:`ConfigError` when the configuration file is not TOML."""
    if getattr(args, "db", None):
        return AuditLogChoice(args.db, "")
    if getattr(args, "demo", False):
        return AuditLogChoice(audit_path(demo=True), "the built-in demo")
    profile = getattr(args, "profile", None) or default_profile_name()
    if profile is None:
        return AuditLogChoice(audit_path(demo=True), "the built-in demo")
    return AuditLogChoice(audit_path(profile), f"profile {profile!r}")


def _shown(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError):
        return "given with --db (not a valid database URL)"
