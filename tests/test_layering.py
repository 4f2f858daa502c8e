"""Imports run one way (main -> app -> views -> services) and services know no Qt."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_linter_contracts_hold() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_services_import_with_qt_unavailable() -> None:
    """Every services module imports in a process where PySide6 and qasync cannot load."""
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('PySide6', 'qasync', 'shiboken6', 'views', 'app'):
                    raise ImportError('blocked for this test: ' + name)
        sys.meta_path.insert(0, Block())
        import services
        for mod in pkgutil.walk_packages(services.__path__, 'services.'):
            if not mod.name.startswith('services.store.migrations'):  # run by Alembic only
                importlib.import_module(mod.name)
        print('ok')
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


def test_no_upward_imports_by_grep() -> None:
    """A second, simpler net: textual imports that cross a boundary."""
    import re

    rules = {"services": r"^\s*(from|import)\s+(PySide6|qasync|views|app)\b",
             "views": r"^\s*(from|import)\s+(httpx|sqlmodel|sqlalchemy|sqlite3|app)\b"}
    bad = []
    for folder, pattern in rules.items():
        for path in (ROOT / folder).rglob("*.py"):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if re.match(pattern, line):
                    bad.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not bad, "\n".join(bad)
