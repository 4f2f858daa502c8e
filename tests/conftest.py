"""Test-wide setup: headless Qt and a private SYNCDESK_HOME for every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")  # qasync binds to PySide6 whatever the import order


@pytest.fixture(autouse=True)
def syncdesk_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("syncdesk-home")
    monkeypatch.setenv("SYNCDESK_HOME", str(home))
    return home
