"""The alert a refresh raises: new critical exceptions, new SLA breaches — one desktop
notification per refresh, naming what is new.

:class:`AlertWatch` (plain Python) remembers what was critical and what was breached at the last
look; :class:`Notifier` shows an alert through the system tray (``QSystemTrayIcon``) where there
is one, and always in the status bar (the only place where there is no tray, e.g. offscreen).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QSystemTrayIcon

from services.core.domain import Severity, SyncException
from services.metrics.model import Figure, MetricsReport
from views.overview.format import target_text, value_text


@dataclass(frozen=True)
class Alert:
    """What a refresh found that was not there at the last look."""

    critical: tuple[SyncException, ...]
    breaches: tuple[Figure, ...]

    def text(self) -> str:
        """One plain sentence: ``"Refresh found 2 new critical exceptions (invoice.missing_in_erp
        ×2) and 1 new SLA breach: Posting latency p95 2 h 5 min (target ≤ 1 h)."``"""
        parts = []
        if self.critical:
            rules = Counter(e.rule for e in self.critical)
            listed = ", ".join(f"{rule} ×{n}" if n > 1 else rule for rule, n in sorted(rules.items()))
            n = len(self.critical)
            parts.append(f"{n} new critical exception{'s' if n != 1 else ''} ({listed})")
        if self.breaches:
            listed = "; ".join(f"{f.label} {value_text(f.value, f.unit)} ({target_text(f.target, f.unit)})"
                               for f in self.breaches)
            n = len(self.breaches)
            parts.append(f"{n} new SLA breach{'es' if n != 1 else ''}: {listed}")
        return "Refresh found " + " and ".join(parts) + "."


class AlertWatch:
    """What was critical and breached at the last look. The first complete state of a launch is
    the baseline for critical exceptions (they were found by an earlier session); a breach is
    new when the previous look did not have it."""

    def __init__(self) -> None:
        self.known_critical: set[str] | None = None
        self.known_breaches: set[str] = set()

    @staticmethod
    def critical_ids(exceptions: Sequence[SyncException]) -> dict[str, SyncException]:
        return {e.id: e for e in exceptions if e.is_open and e.severity is Severity.CRITICAL}

    def baseline(self, exceptions: Sequence[SyncException]) -> None:
        """The first time only: what is critical now is known, not new."""
        if self.known_critical is None:
            self.known_critical = set(self.critical_ids(exceptions))

    def look(self, exceptions: Sequence[SyncException], report: MetricsReport | None) -> Alert | None:
        """After a refresh: what is new since the last look (None: nothing)."""
        current = self.critical_ids(exceptions)
        known = self.known_critical or set()
        new_critical = tuple(e for i, e in sorted(current.items()) if i not in known)
        self.known_critical = set(current)
        new_breaches: tuple[Figure, ...] = ()
        if report is not None:
            breached = {f.key: f for f in report.breaches}
            new_breaches = tuple(f for k, f in breached.items() if k not in self.known_breaches)
            self.known_breaches = set(breached)
        if not new_critical and not new_breaches:
            return None
        return Alert(new_critical, new_breaches)


class Notifier(QObject):
    """Shows an :class:`Alert`: a tray message when the desktop has a system tray, and always
    the status bar (``status``: shows a plain line for a while)."""

    #: the tray message was clicked (the window shows the Overview)
    clicked = Signal()
    TITLE = "SyncDesk"
    SHOWN_MS = 15_000

    def __init__(self, status: Callable[[str], None], icon: QIcon, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.status = status
        self.tray: QSystemTrayIcon | None = None
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.use_tray(QSystemTrayIcon(icon, self))
        #: what was shown, and where ("tray" / "status bar"), oldest first
        self.sent: list[tuple[str, str]] = []

    def use_tray(self, tray: QSystemTrayIcon) -> None:
        """Show the alerts through ``tray``; a click on its message goes to :meth:`message_clicked`."""
        self.tray = tray
        tray.setToolTip(self.TITLE)
        tray.messageClicked.connect(self.message_clicked)

    @Slot()
    def message_clicked(self) -> None:
        """The tray message was clicked: say so (``clicked``; the window shows the Overview)."""
        self.clicked.emit()

    @property
    def channel(self) -> str:
        return "tray" if self.tray is not None and QSystemTrayIcon.supportsMessages() else "status bar"

    def notify(self, alert: Alert) -> None:
        text = alert.text()
        channel = self.channel
        if channel == "tray" and self.tray is not None:
            self.tray.show()
            self.tray.showMessage(self.TITLE, text, QSystemTrayIcon.MessageIcon.Warning, self.SHOWN_MS)
        self.status(text)
        self.sent.append((text, channel))


class RefreshAlerts:
    """One alert per refresh: the window tells it each state, each refresh's end and each set of
    figures (which follow the refresh's state, computed off the UI thread); the figures of a
    refresh that read at least one system raise its alert, if anything is new."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.watch = AlertWatch()
        self.pending = False

    def state(self, exceptions: Sequence[SyncException], complete: bool) -> None:
        if complete:
            self.watch.baseline(exceptions)

    def refresh_ended(self, report: object) -> None:
        outcomes = getattr(report, "outcomes", {})
        self.pending = any(getattr(o, "ok", False) for o in outcomes.values())

    def figures(self, exceptions: Sequence[SyncException] | None, report: MetricsReport | None) -> Alert | None:
        """The figures are in (``report``; None: they could not be computed)."""
        if not self.pending or exceptions is None:
            return None
        self.pending = False
        alert = self.watch.look(exceptions, report)
        if alert is not None:
            self.notifier.notify(alert)
        return alert
