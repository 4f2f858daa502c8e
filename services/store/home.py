"""Where SyncDesk keeps its local files: ``SYNCDESK_HOME`` or the platform's user data folder.

Layout inside the home folder::

    config.toml        connection profiles (see services.io.config)
    syncdesk.db        local snapshot and audit log (SQLite by default)
    audit.db           the audit log and the action outbox (durable commits; audit-demo.db for the demo)
    logs/syncdesk.log  rotating log file (never contains secrets)
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "SyncDesk"
ENV_VAR = "SYNCDESK_HOME"


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


def audit_path(demo: bool = False) -> Path:
    """The audit log and action outbox (durable SQLite): ``audit.db``, or ``audit-demo.db``
    for actions taken on the built-in demo."""
    return syncdesk_home() / ("audit-demo.db" if demo else "audit.db")


def logs_dir() -> Path:
    d = syncdesk_home() / "logs"
    d.mkdir(parents=True, exist_ok=True)
    return d
