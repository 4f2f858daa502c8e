"""Where SyncDesk keeps its local files: ``SYNCDESK_HOME`` or the platform's user data folder.

Layout inside the home folder::

    config.toml              connection profiles (see services.io.config)
    snapshot-<profile>.db    a profile's local snapshot (SQLite by default)
    audit-<profile>.db       a profile's audit log and action outbox (durable commits)
    demo/                    the built-in demo, a profile of its own:
        world.json.gz          its three systems' state (services/demo/world.py)
        snapshot.db            its local snapshot
        audit.db               its audit log and action outbox
    logs/syncdesk.log        rotating log file (never contains secrets)

One audit log per profile, named by the profile: what was done on one set of systems is
never mixed with another's. ``audit.db`` (one log shared by every profile) and
``audit-demo.db`` (the demo's) are the names earlier versions used (:func:`legacy_audit_path`).
A profile name that is not a plain file name (``[A-Za-z0-9._-]``) is written with its unsafe
characters replaced and a short hash of the name, so two profiles never share a file.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import platformdirs

APP_NAME = "SyncDesk"
ENV_VAR = "SYNCDESK_HOME"
DEMO_FOLDER = "demo"
DEMO_SNAPSHOT = "snapshot.db"
DEMO_AUDIT = "audit.db"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def syncdesk_home(create: bool = True) -> Path:
    """The home folder: ``$SYNCDESK_HOME`` when set (``~`` expanded), else the user data dir."""
    raw = os.environ.get(ENV_VAR, "").strip()
    home = Path(raw).expanduser() if raw else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    if create:
        home.mkdir(parents=True, exist_ok=True)
    return home.resolve() if home.exists() else home


def config_path() -> Path:
    return syncdesk_home() / "config.toml"


def database_path() -> Path:
    return syncdesk_home() / "syncdesk.db"


def profile_file_name(profile: str) -> str:
    """``profile`` as the part of a file name (see the module docstring)."""
    if _PLAIN_NAME.fullmatch(profile):
        return profile
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", profile)[:40].lstrip(".")
    return f"{safe}~{hashlib.sha256(profile.encode('utf-8')).hexdigest()[:8]}"


def demo_dir(home: Path | None = None) -> Path:
    """The built-in demo's folder (its world, snapshot and audit log): HOME/demo; ``home``
    another home-like folder (a throwaway one, for screenshots)."""
    return (home if home is not None else syncdesk_home()) / DEMO_FOLDER


def snapshot_path(profile: str | None = None, *, demo: bool = False) -> Path:
    """A profile's local snapshot: ``snapshot-<profile>.db``, or ``demo/snapshot.db`` for the
    built-in demo."""
    if demo:
        return demo_dir() / DEMO_SNAPSHOT
    if profile is None:
        raise ValueError("snapshot_path: name a profile, or demo=True")
    return syncdesk_home() / f"snapshot-{profile_file_name(profile)}.db"


def audit_path(profile: str | None = None, *, demo: bool = False) -> Path:
    """A profile's audit log and action outbox (durable SQLite): ``audit-<profile>.db``, or
    ``demo/audit.db`` for the built-in demo."""
    if demo:
        return demo_dir() / DEMO_AUDIT
    if profile is None:
        raise ValueError("audit_path: name a profile, or demo=True")
    return syncdesk_home() / f"audit-{profile_file_name(profile)}.db"


def legacy_audit_path() -> Path:
    """``audit.db``: the one log every profile shared before logs were kept per profile."""
    return syncdesk_home() / "audit.db"


def logs_dir() -> Path:
    d = syncdesk_home() / "logs"
    d.mkdir(parents=True, exist_ok=True)
    return d
