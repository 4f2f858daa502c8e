"""Run in a subprocess by tests/gui/test_screens.py, on an offscreen screen of a given size and
scale (``QT_QPA_PLATFORM=offscreen:configfile=…``, ``QT_SCALE_FACTOR``): open the main window
on every page (with a customer whose name is 188 characters) and every dialog, and print one
JSON line per window — its size, the screen's available size, and whether the widgets that
matter (Confirm, the reason, Cancel) lie inside it.

    python -m tests.gui.screen_probe
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from PySide6.QtWidgets import QApplication, QWidget

from services.actions.model import ActionKind
from tests.gui.fake_actions import FakeActionService, amount_mismatch, master_drift, missing_in_erp, unmapped

LONG_NAME = ("Société Générale de Distribution Alimentaire et de Logistique Internationale des Produits Frais "
             "Surgelés et Conserves du Grand Sud-Ouest Atlantique — Division Export Europe du Nord SARL")


def settle() -> None:
    for _ in range(5):
        QApplication.processEvents()


def inside(window: QWidget, widget: QWidget) -> bool:
    """The widget is shown and wholly inside the window (not pushed past its edge)."""
    if not widget.isVisibleTo(window):
        return False
    top_left = widget.mapTo(window, widget.rect().topLeft())
    bottom_right = widget.mapTo(window, widget.rect().bottomRight())
    return window.rect().contains(top_left) and window.rect().contains(bottom_right)


def report(name: str, window: QWidget, **widgets: QWidget) -> dict[str, Any]:
    screen = window.screen()
    area = screen.availableGeometry()
    return {"name": name, "width": window.width(), "height": window.height(),
            "frame": [window.frameGeometry().width(), window.frameGeometry().height()],
            "min": [window.minimumSizeHint().width(), window.minimumSizeHint().height()],
            "screen": [area.width(), area.height()], "scale": screen.devicePixelRatio(),
            "inside": {key: inside(window, w) for key, w in widgets.items()}}


async def probe() -> list[dict[str, Any]]:
    from tests.gui.test_keyboard import console_state
    from views.action_adapter import ActionAdapter
    from views.main_window import MainWindow

    excs = [amount_mismatch(), unmapped(), master_drift(), *[missing_in_erp(n) for n in range(10, 20)]]
    service = FakeActionService(excs)
    window = MainWindow()
    adapter = ActionAdapter(service)  # type: ignore[arg-type]
    window.attach_actions(adapter)
    state = console_state(service, names={"cus_1": LONG_NAME})
    window.set_state(state)
    window.show()
    settle()
    out = []
    for row, page in enumerate(window.PAGES):
        window.go_to_page(row)
        settle()
        out.append(report(f"window:{page}", window))
    window.open_customer("cus_1")
    settle()
    out.append(report("window:customer", window, customer_name=window.customer_page.name_label))
    assert window.launcher is not None
    for exc, kind in ((amount_mismatch(), ActionKind.CORRECT), (master_drift(), ActionKind.CORRECT),
                      (unmapped(), ActionKind.LINK), (missing_in_erp(10), ActionKind.RETRY)):
        dialog = window.launcher.open_fix(service.exceptions[exc.id], kind)
        assert dialog is not None
        settle()
        out.append(report(f"fix:{kind.value}:{exc.rule}", dialog, confirm=dialog.confirm_button,
                          reason=dialog.reason_edit, cancel=dialog.cancel_button))
        dialog.close()
        settle()
    bulk = window.launcher.open_bulk([service.exceptions[e.id] for e in excs], ActionKind.RETRY)
    assert bulk is not None
    settle()
    out.append(report("bulk", bulk, start=bulk.start_button, reason=bulk.reason_edit, cancel=bulk.cancel_button))
    bulk.close()
    for name, dialog in (("about", window.show_about()), ("help", window.show_help()),
                         ("settings", window.show_settings())):
        settle()
        out.append(report(name, dialog))
        dialog.close()
    await adapter.aclose()
    window.close()
    return out


def main() -> int:
    app = QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)
    for line in asyncio.run(probe()):
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
