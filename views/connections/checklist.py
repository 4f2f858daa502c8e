"""Test connection's result as a checklist a user understands: per system one line (reachable,
authenticated as whom — or the plain reason it is not), then one line per permission with a
drawn mark (granted / missing and needed / not needed / not known), and the fixes the profile
cannot perform. While a test runs: a busy bar, what is being tested, and a Cancel button.
Every text is plain (tree items and labels never interpret markup).
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QListView,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from services.io.permissions import ConnectionReport, PermissionCheck, SystemReport, Verdict, blocked_fixes
from views.actions.wording import kind_title
from views.widgets.icons import tone_icon
from views.widgets.text import SYSTEM_TITLES, bold_font, plain_label, plain_tooltip, set_muted, wrapping_label

#: a check's mark is drawn this far right of its system's (the list shows the checks under it)
INDENT = 20
MARK = 16
#: an item's role holding whether it is a granted check (hidden unless asked for)
GRANTED_ROLE = Qt.ItemDataRole.UserRole + 1


def check_tone(check: PermissionCheck) -> str:
    """ok: granted; bad: needed and missing; warn: needed and not known; info: not needed."""
    if check.ok:
        return "ok"
    if not check.needed:
        return "info"
    return "bad" if check.verdict is Verdict.MISSING else "warn"


def system_line(report: SystemReport) -> str:
    head = report.lines()[0]
    title = SYSTEM_TITLES[report.system]
    return f"{title}: {head.split(': ', 1)[1] if ': ' in head else head}"


def summary(report: ConnectionReport) -> str:
    if report.ok:
        return (f"Every check passed: SyncDesk can read and fix what it needs through profile {report.profile}."
                if not report.read_only else
                f"Every check passed. Profile {report.profile} is read-only: SyncDesk never writes through it.")
    failed = [SYSTEM_TITLES[s] for s, r in report.systems.items() if not r.ok]
    return f"Some checks failed ({', '.join(failed)}): the lines marked with a cross say what is missing."


def mark(tone: str, indented: bool) -> QIcon:
    """The tone's drawn mark, shifted right for a check under its system."""
    pix = QPixmap(INDENT + MARK if indented else MARK, MARK)
    pix.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pix)
    painter.drawPixmap(QPoint(INDENT if indented else 0, 0), tone_icon(tone, MARK).pixmap(MARK, MARK))
    painter.end()
    return QIcon(pix)


class Checklist(QWidget):
    """The checklist, its busy indicator and its Cancel."""

    cancel_clicked = Signal()

    def __init__(self) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        busy_row = QHBoxLayout()
        self.bar = QProgressBar()
        self.bar.setObjectName("testBusy")
        self.bar.setRange(0, 0)  # busy: a test's length is not known
        self.bar.setMaximumHeight(14)
        self.bar.setFixedWidth(120)
        self.bar.setTextVisible(False)
        self.busy_label = plain_label("")
        self.cancel = QPushButton("Cancel the test")
        self.cancel.setObjectName("cancelTest")
        self.cancel.setToolTip("Stop the test now (every request is stopped)")
        self.cancel.clicked.connect(self.cancel_clicked)
        busy_row.addWidget(self.bar)
        busy_row.addWidget(self.busy_label, 1)
        busy_row.addWidget(self.cancel)
        self.busy = QWidget()
        self.busy.setLayout(busy_row)
        busy_row.setContentsMargins(0, 0, 0, 0)
        self.busy.setVisible(False)
        self.headline = wrapping_label("")
        self.headline.setObjectName("testSummary")
        self.tree = QListWidget()  # one line per system, its checks under it; long sentences wrap
        self.tree.setObjectName("checklist")
        self.tree.setWordWrap(True)
        self.tree.setResizeMode(QListView.ResizeMode.Adjust)
        self.tree.setUniformItemSizes(False)
        self.tree.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.tree.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.tree.setIconSize(QSize(INDENT + MARK, MARK))
        self.tree.setAccessibleName("Test connection checklist")
        self.show_granted = QCheckBox("Show the granted permissions too")
        self.show_granted.setObjectName("showGranted")
        self.show_granted.setToolTip("When a check fails, only what is missing is listed; tick to see every check")
        self.show_granted.toggled.connect(self._apply_filter)
        self.blocked = set_muted(wrapping_label(""))
        self.blocked.setObjectName("blockedFixes")
        lay.addWidget(self.busy)
        lay.addWidget(self.headline)
        lay.addWidget(self.show_granted)
        lay.addWidget(self.tree, 1)
        lay.addWidget(self.blocked)
        self.report: ConnectionReport | None = None
        self.show_idle()

    def show_idle(self, text: str = "Test connection checks that SyncDesk can reach each system, log in, and "
                                     "read and write what it needs.") -> None:
        self.busy.setVisible(False)
        self.headline.setText(text)

    def show_busy(self, what: str) -> None:
        self.report = None
        self.tree.clear()
        self.blocked.setText("")
        self.headline.setText("")
        self.busy_label.setText(what)
        self.busy.setVisible(True)
        self.cancel.setEnabled(True)

    def show_cancelled(self) -> None:
        self.show_idle("Test cancelled: nothing more is being asked.")

    def show_failed(self, text: str) -> None:
        self.show_idle(f"The test could not run: {text}")

    def lines(self, *, shown_only: bool = False) -> list[tuple[str, str]]:
        """(tone, sentence) of every line of the checklist (``shown_only``: those not hidden by
        "Show the granted permissions too"), in order."""
        out: list[tuple[str, str]] = []
        for i in range(self.tree.count()):
            item = self.tree.item(i)
            assert item is not None
            if not (shown_only and item.isHidden()):
                out.append((str(item.data(Qt.ItemDataRole.UserRole)), item.text()))
        return out

    def _apply_filter(self) -> None:
        """Granted checks are hidden unless asked for (a passing test shows them all)."""
        show = self.show_granted.isChecked()
        for i in range(self.tree.count()):
            item = self.tree.item(i)
            assert item is not None
            item.setHidden(bool(item.data(GRANTED_ROLE)) and not show)

    def _item(self, tone: str, text: str, *, check: bool) -> QListWidgetItem:
        item = QListWidgetItem(text, self.tree)
        item.setIcon(mark(tone, check))
        item.setData(Qt.ItemDataRole.UserRole, tone)
        item.setData(GRANTED_ROLE, check and tone == "ok")
        item.setToolTip(plain_tooltip(text))
        if not check:
            item.setFont(bold_font(self.tree.font()))
        return item

    def show_report(self, report: ConnectionReport) -> None:
        self.report = report
        self.busy.setVisible(False)
        self.tree.clear()
        self.headline.setText(summary(report))
        for sys_report in report.systems.values():
            granted = sum(c.ok for c in sys_report.checks)
            head = system_line(sys_report) + (f" — {granted} of {len(sys_report.checks)} permissions granted"
                                              if sys_report.checks else "")
            self._item("ok" if sys_report.ok else "bad", head, check=False)
            # what is missing first: the gap is the news
            for check in sorted(sys_report.checks, key=lambda c: (not c.blocking, c.ok)):
                self._item(check_tone(check), check.sentence[:1].upper() + check.sentence[1:], check=True)
        self.show_granted.blockSignals(True)
        self.show_granted.setChecked(report.ok)
        self.show_granted.blockSignals(False)
        self._apply_filter()
        blocked = blocked_fixes(report)
        if blocked:
            kinds = sorted({kind_title(kind) for _rule, kind in blocked})
            self.blocked.setText(f"Fixes this profile cannot perform ({len(blocked)}): {', '.join(kinds)}: they "
                                 "would be refused.")
        else:
            self.blocked.setText("")
