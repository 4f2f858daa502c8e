"""The application shell: composition root, CLI sub-commands, settings, start-up and shutdown."""

import os
import sys

# qasync picks its Qt binding from QT_API (else by trying bindings in turn): SyncDesk uses PySide6.
os.environ.setdefault("QT_API", "pyside6")

# httpx imports its command-line client (click, pygments, rich: ~60 ms, a twentieth of the
# console's start-up) whenever those happen to be installed, and SyncDesk never uses it.
# httpx falls back by itself when that import fails (the try/except in httpx/__init__.py), so
# it is declined here, before anything imports httpx.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
