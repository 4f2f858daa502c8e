"""The DEMO labelling of the main window: when the console runs on the built-in demo (or on a
profile named ``demo…`` or pointing at the demo company), the title says "SyncDesk — DEMO …"
and the status bar carries a distinct DEMO badge, so nobody mistakes it for production."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QMainWindow

from services.io.config import Profile
from views.connections.model import is_demo

BADGE_STYLE = ("QLabel { background: #c2410c; color: white; font-weight: 700; border-radius: 3px; "
               "padding: 1px 8px; letter-spacing: 1px; }")


def profile_is_demo(profile: Profile) -> bool:
    return is_demo(profile.name, {s: dict(c.settings) for s, c in profile.connections.items()})


def window_title(profile: Profile) -> str:
    if profile_is_demo(profile):
        return f"SyncDesk — DEMO — profile {profile.name} (demo data, not production)"
    return f"SyncDesk — profile {profile.name}" + (" (read-only)" if profile.read_only else "")


def label_window(window: QMainWindow, profile: Profile) -> QLabel:
    """Title and status-bar badge for ``profile`` (the badge is made once, shown only on the demo)."""
    window.setWindowTitle(window_title(profile))
    badge = window.findChild(QLabel, "demoBadge")
    if not isinstance(badge, QLabel):
        badge = QLabel("DEMO")
        badge.setObjectName("demoBadge")
        badge.setStyleSheet(BADGE_STYLE)
        badge.setToolTip("The built-in demo environment: made-up data on this computer, not production")
        badge.setAccessibleName("Demo environment")
        window.statusBar().insertPermanentWidget(0, badge)
    badge.setVisible(profile_is_demo(profile))
    return badge
