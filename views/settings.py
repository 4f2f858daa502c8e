"""The console's preferences and its memory of the window, in one INI file (``QSettings``).

Preferences: the automatic refresh interval and the appearance (light, dark, or the system's).
Memory: the window's geometry and toolbar, every splitter, every table's columns (widths, order,
hidden ones, sort), and each page's filters — restored at the next launch. Saved filters: the
filter sets the operator named on a page (Exceptions, Customers), kept until deleted. The file lives in
the SyncDesk home folder by default (``console.ini``, next to the databases and the log: the
composition root passes its path); tests give a temporary one.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

ORGANIZATION = "SyncDesk"
APPLICATION = "SyncDesk"
#: bumped when what is stored changes shape: a memory from another version is not restored
MEMORY_VERSION = 1


class Appearance(enum.StrEnum):
    SYSTEM = "system"
    LIGHT = "light"
    DARK = "dark"


#: the automatic refresh's choices, in minutes (0: only on demand, F5)
REFRESH_CHOICES = (0, 5, 15, 30, 60)
DEFAULT_REFRESH_MINUTES = 15


class ConsoleSettings:
    """Typed access to the console's ``QSettings`` (INI format, so a tester or an admin can
    read it). ``path``: the INI file; without one, Qt's per-user location for
    :data:`ORGANIZATION` / :data:`APPLICATION`."""

    def __init__(self, path: Path | str | None = None) -> None:
        if path is None:
            self.qsettings = QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION,
                                       APPLICATION)
        else:
            self.qsettings = QSettings(str(path), QSettings.Format.IniFormat)

    @property
    def path(self) -> str:
        return self.qsettings.fileName()

    def sync(self) -> None:
        self.qsettings.sync()

    # -- preferences ------------------------------------------------------------------------
    @property
    def refresh_minutes(self) -> int:
        value = self._int("preferences/refresh_minutes", DEFAULT_REFRESH_MINUTES)
        return value if value in REFRESH_CHOICES else DEFAULT_REFRESH_MINUTES

    @refresh_minutes.setter
    def refresh_minutes(self, minutes: int) -> None:
        self.qsettings.setValue("preferences/refresh_minutes", int(minutes))

    @property
    def appearance(self) -> Appearance:
        raw = str(self.qsettings.value("preferences/appearance", Appearance.SYSTEM.value))
        try:
            return Appearance(raw)
        except ValueError:
            return Appearance.SYSTEM

    @appearance.setter
    def appearance(self, value: Appearance) -> None:
        self.qsettings.setValue("preferences/appearance", Appearance(value).value)

    @property
    def start_choice(self) -> str:
        """The first run's answer with no connection profile: ``"demo"`` (open the built-in demo)
        or ``"connect"`` (open the Connections dialog); ``""``: ask (views/connections/opener.py)."""
        raw = str(self.qsettings.value("preferences/start_choice", ""))
        return raw if raw in ("demo", "connect") else ""

    @start_choice.setter
    def start_choice(self, value: str) -> None:
        self.qsettings.setValue("preferences/start_choice", value)

    # -- memory -----------------------------------------------------------------------------
    def save_bytes(self, key: str, data: QByteArray) -> None:
        self.qsettings.setValue(f"memory/{key}", data)

    def load_bytes(self, key: str) -> QByteArray | None:
        if self._int("memory/version", 0) != MEMORY_VERSION:
            return None
        value = self.qsettings.value(f"memory/{key}")
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def save_value(self, key: str, value: str | int | bool) -> None:
        self.qsettings.setValue(f"memory/{key}", value)

    def load_str(self, key: str, default: str = "") -> str:
        if self._int("memory/version", 0) != MEMORY_VERSION:
            return default
        value = self.qsettings.value(f"memory/{key}", default)
        return str(value) if value is not None else default

    def load_bool(self, key: str, default: bool = False) -> bool:
        raw = self.load_str(key, "true" if default else "false")
        return raw.lower() in ("true", "1", "yes")

    # -- saved filters (the operator's, not the memory: kept whatever the memory's version) --
    def saved_filters(self, page: str) -> dict[str, dict[str, str]]:
        """The filter sets saved on ``page``: name -> {filter: value}, in the order saved. A
        value that is not such a mapping (edited by hand, another version) is left out."""
        raw = self.qsettings.value(f"saved_filters/{page}", "")
        try:
            data = json.loads(str(raw)) if raw else {}
        except ValueError:
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(name): {str(k): str(v) for k, v in values.items()}
                for name, values in data.items() if isinstance(values, dict)}

    def save_filter(self, page: str, name: str, values: Mapping[str, str]) -> None:
        """Save (or replace) the filter set ``name`` of ``page``."""
        saved = self.saved_filters(page)
        saved[name] = dict(values)
        self._store_filters(page, saved)

    def delete_filter(self, page: str, name: str) -> bool:
        saved = self.saved_filters(page)
        if saved.pop(name, None) is None:
            return False
        self._store_filters(page, saved)
        return True

    def _store_filters(self, page: str, saved: Mapping[str, Mapping[str, str]]) -> None:
        # one JSON text per page: a name may hold any character ("/" would make an INI group)
        self.qsettings.setValue(f"saved_filters/{page}", json.dumps(saved, ensure_ascii=False))
        self.qsettings.sync()

    def mark_saved(self) -> None:
        self.qsettings.setValue("memory/version", MEMORY_VERSION)

    def _int(self, key: str, default: int) -> int:
        value: Any = self.qsettings.value(key, default)
        try:
            return int(value)
        except (TypeError, ValueError):
            return default
