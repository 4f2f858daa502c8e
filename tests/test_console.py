"""The console window (pytest-qt, offscreen) and the full bootstrap through `screenshot`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot

from app.qt_prereqs import missing_qt_library
from services.core.domain import System
from services.io.config import Profile, Secret, SystemConnection
from services.io.health import Health, HealthResult
from views.main_window import MainWindow

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.gui


def _profile(name: str) -> Profile:
    return Profile(name, {System.BILLING: SystemConnection(System.BILLING, "stripe", "http://127.0.0.1:9",
                                                            {}, {"api_key": Secret("sk_test_x")})})


def test_health_lights_and_systems_table(qtbot: QtBot, tmp_path: Path) -> None:
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    window.set_profile(_profile("p"))
    window.on_health("billing", HealthResult(Health.OK, "answering (HTTP 200)", 12.0))
    window.on_health("erp", HealthResult(Health.DOWN, "unreachable: ConnectError"))
    assert window.lights[System.BILLING].state is Health.OK
    assert "unreachable" in window.lights[System.ERP].toolTip()
    table = window.systems_page.table
    assert table.item(0, 2).text() == "http://127.0.0.1:9"
    assert table.item(1, 3).text() == "down"
    assert table.item(2, 2).text() == "not configured"
    assert window.grab().save(str(tmp_path / "main.png"))


def test_external_text_is_plain(qtbot: QtBot) -> None:
    window = MainWindow()
    qtbot.addWidget(window)
    window.set_source("<b>x</b> & <i>y</i>")
    label: QLabel = window.source_label
    assert label.textFormat().name == "PlainText"
    assert label.text() == "<b>x</b> & <i>y</i>"


def test_keyboard_navigation_between_pages(qtbot: QtBot) -> None:
    """Real key presses: Down/Up on the navigation list, then the Ctrl+1..6 shortcuts of the window."""
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitActive(window)
    pages = [window.stack.widget(i) for i in range(window.stack.count())]
    assert len(pages) == len(window.PAGES) == 6
    assert window.stack.currentIndex() == 0
    window.nav.setFocus()
    qtbot.waitUntil(window.nav.hasFocus)
    for i in range(1, len(pages)):
        qtbot.keyClick(window.nav, Qt.Key.Key_Down)
        assert window.nav.currentRow() == i and window.stack.currentWidget() is pages[i]
    qtbot.keyClick(window.nav, Qt.Key.Key_Down)  # the last page stays
    assert window.stack.currentWidget() is pages[-1]
    for i in reversed(range(len(pages) - 1)):
        qtbot.keyClick(window.nav, Qt.Key.Key_Up)
        assert window.nav.currentRow() == i and window.stack.currentWidget() is pages[i]
    digits = [Qt.Key.Key_1, Qt.Key.Key_2, Qt.Key.Key_3, Qt.Key.Key_4, Qt.Key.Key_5, Qt.Key.Key_6]
    for row in (5, 2, 0, 4, 1, 3):  # each press moves away from the page shown before it
        assert window.stack.currentIndex() != row
        qtbot.keyClick(window, digits[row], Qt.KeyboardModifier.ControlModifier)
        assert window.stack.currentWidget() is pages[row] and window.nav.currentRow() == row


def test_screenshot_command_runs_the_real_console_on_the_demo(tmp_path: Path) -> None:
    out = tmp_path / "shots"
    user = tmp_path / "user"  # the default (platformdirs) location must stay untouched
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "SYNCDESK_HOME": str(tmp_path / "home"),
           "HOME": str(user), "XDG_DATA_HOME": str(user / ".local" / "share")}
    # 60 customers: from 50 on, the demo plants every rule (the money shots need a tax mismatch and
    # a credit-note exception)
    result = subprocess.run([sys.executable, "main.py", "screenshot", "--demo", "--customers", "60", "--out",
                             str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    pngs = sorted(p.name for p in out.glob("*.png"))
    # the README's gallery: every page, light and dark, at 1024×640 and 1920×1080
    pages = ["audit-log", "customer", "customers", "exceptions", "overview", "pending-actions", "systems"]
    # and the README's money cases, light and dark at 1920×1080: the queue with a tax mismatch
    # selected, a customer whose timeline shows a credit note and its exception
    money = ["customer-credit-note", "exceptions-tax-mismatch"]
    assert pngs == sorted([f"{page}-{look}-{size}.png" for page in pages for look in ("light", "dark")
                           for size in ("1024x640", "1920x1080")]
                          + [f"{case}-{look}-1920x1080.png" for case in money for look in ("light", "dark")])
    assert all((out / p).stat().st_size > 2000 for p in pngs)
    for name in ("customers-light-1024x640.png", "customers-dark-1920x1080.png"):
        image = QImage(str(out / name))
        assert (image.width(), image.height()) == tuple(int(n) for n in name[:-4].rsplit("-", 1)[1].split("x"))
    # dark is dark: the window's background (a corner pixel) is darker than the light one's
    light, dark = (QImage(str(out / f"systems-{look}-1024x640.png")) for look in ("light", "dark"))
    assert dark.pixelColor(5, dark.height() - 5).lightness() < light.pixelColor(5, light.height() - 5).lightness()
    log = (tmp_path / "home" / "logs" / "syncdesk.log").read_text()
    assert "sk_test" not in log and "demo-admin-password" not in log
    assert not (user / ".local" / "share" / "SyncDesk").exists()


# -- starting on a fresh Linux desktop ----------------------------------------------------------
def test_missing_libxcb_cursor_is_named_only_where_qt_would_use_xcb() -> None:
    missing = {"xcb-cursor": None}

    def find(name: str) -> str | None:
        return missing.get(name, f"lib{name}.so")

    problem = missing_qt_library({"DISPLAY": ":0"}, "linux", find)
    assert problem is not None and "\n" not in problem
    assert "libxcb-cursor0" in problem and "apt install libxcb-cursor0" in problem and "xcb-util-cursor" in problem
    assert missing_qt_library({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"}, "linux", find) == problem
    # not where Qt does not use xcb, or where the library is there
    assert missing_qt_library({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "linux", find) is None
    assert missing_qt_library({"DISPLAY": ":0", "QT_QPA_PLATFORM": "wayland"}, "linux", find) is None
    assert missing_qt_library({}, "linux", find) is None  # no X display
    assert missing_qt_library({"DISPLAY": ":0"}, "darwin", find) is None
    assert missing_qt_library({"DISPLAY": ":0"}, "win32", find) is None
    assert missing_qt_library({"DISPLAY": ":0"}, "linux", lambda name: f"lib{name}.so.0") is None


def test_console_without_libxcb_cursor_prints_one_line_before_qt_starts(tmp_path: Path) -> None:
    """``python main.py`` on an X display without libxcb-cursor0 (the library lookup answers "not
    found", as on a plain Debian): one line naming the package, exit 2, and Qt's GUI never loaded."""
    script = (
        "import ctypes.util, sys\n"
        "real = ctypes.util.find_library\n"
        "ctypes.util.find_library = lambda name: None if name == 'xcb-cursor' else real(name)\n"
        "from app.cli import main\n"
        "code = main([])\n"
        "assert 'PySide6.QtWidgets' not in sys.modules, 'Qt was started'\n"
        "sys.exit(code)\n")
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env |= {"DISPLAY": ":99", "SYNCDESK_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env=env)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "libxcb-cursor0" in lines[0], result.stderr
    assert "Could not load the Qt platform plugin" not in result.stderr
