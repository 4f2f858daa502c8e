"""The application shell: composition root, CLI sub-commands, settings, start-up and shutdown."""

import os

# qasync picks its Qt binding from QT_API (else by trying bindings in turn): SyncDesk uses PySide6.
os.environ.setdefault("QT_API", "pyside6")
