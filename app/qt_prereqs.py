"""The system libraries Qt needs before it starts: name the missing one in one line instead of
letting Qt abort with its plugin message.

Qt 6.5+ needs ``libxcb-cursor0`` for its X11 platform (xcb): a plain Debian or Ubuntu desktop
without it makes ``QApplication`` abort with "Could not load the Qt platform plugin "xcb"". The
check runs only where Qt would use xcb: Linux, ``QT_QPA_PLATFORM`` unset or ``xcb``, and an X
display (``DISPLAY``).
"""

from __future__ import annotations

import ctypes.util
import sys
from collections.abc import Callable, Mapping

#: what to install, per family of systems
INSTALL_HINT = ("install it: sudo apt install libxcb-cursor0 (Debian, Ubuntu) or sudo dnf install xcb-util-cursor "
                "(Fedora)")


def missing_qt_library(env: Mapping[str, str], system: str = sys.platform,
                       find_library: Callable[[str], str | None] = ctypes.util.find_library) -> str | None:
    """One line naming the missing package, or ``None`` when Qt can start (or does not use xcb)."""
    if not system.startswith("linux"):
        return None
    platform = env.get("QT_QPA_PLATFORM", "").strip().split(":", 1)[0].lower()
    if platform not in ("", "xcb") or not env.get("DISPLAY"):
        return None
    if find_library("xcb-cursor") is not None:
        return None
    return ("SyncDesk cannot open its window: Qt's X11 platform needs the system library libxcb-cursor0, "
            f"which is not installed — {INSTALL_HINT}.")
