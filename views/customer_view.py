"""The Customer page: one customer's identity, lifecycle timeline and open exceptions.

- header: the customer's name (plain text, large), id, e-mail and open exceptions, and what
  the customer has now (:func:`state_text`: the current plan, quantity and subscription status,
  the support tier; "not loaded" for a system never read), as the CLI's ``timeline`` header;
- identity strip: the record each system holds (billing customer, ERP party + code, support
  organization), "not linked" in red when a system has none;
- timeline (top of a splitter): every event of all three systems on one axis, newest or oldest
  first; correlated entries share a coloured group marker and downstream ones are indented
  with "→"; selecting an entry tints its whole group; expected effects that never happened
  are italic with a red status;
- exceptions (bottom): each open exception as a card (``views/exception_card.py``) with the
  values of every system side by side (the owner's column marked "(owner)") and its fix buttons.

Everything from external systems is shown as plain text.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QIcon, QKeySequence, QPainter, QPalette, QPixmap, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from services.core.domain import EventKind, Severity, SyncException, System
from services.core.overview import SEVERITY_RANK, CustomerRow
from services.core.text_safety import bidi_isolated
from services.core.timeline import CustomerState, Timeline, TimelineEntry, human_duration
from views.coverage import Coverage, PageState, View, names, stale_banner
from views.exception_card import ExceptionCard, FixPolicy
from views.widgets.banner import Banner
from views.widgets.focus import tab_chain
from views.widgets.icons import (
    LATE_COLOR,
    MISSING_COLOR,
    OK_COLOR,
    PENDING_COLOR,
    SYSTEM_COLORS,
    dot_icon,
    system_icon,
    unlinked_icon,
)
from views.widgets.state import StatePanel
from views.widgets.table_menu import install_table_menu
from views.widgets.tables import RowsTableModel, fit_columns, setup_readonly_table
from views.widgets.text import (
    SYSTEM_TITLES,
    ElidedLabel,
    plain_label,
    plain_tooltip,
    set_muted,
    shown,
)

STATUS_COLORS: dict[str, str] = {"ok": OK_COLOR, "late": LATE_COLOR, "missing": MISSING_COLOR,
                                 "pending": PENDING_COLOR}
STATUS_TEXT: dict[str, str] = {"ok": "ok", "late": "late", "missing": "missing", "pending": "pending"}
EVENT_TEXT: dict[EventKind, str] = {
    EventKind.CUSTOMER_CREATED: "Customer created",
    EventKind.SUBSCRIPTION_CREATED: "Subscription created",
    EventKind.SUBSCRIPTION_UPDATED: "Subscription updated",
    EventKind.SUBSCRIPTION_CANCELED: "Subscription canceled",
    EventKind.INVOICE_FINALIZED: "Invoice finalized",
    EventKind.INVOICE_PAID: "Invoice paid",
    EventKind.INVOICE_PAYMENT_FAILED: "Payment failed",
    EventKind.INVOICE_VOIDED: "Invoice voided",
    EventKind.INVOICE_PRORATION: "Mid-cycle change (prorated)",
    EventKind.PARTY_CREATED: "Party created",
    EventKind.ERP_INVOICE_CREATED: "Invoice created",
    EventKind.ERP_INVOICE_POSTED: "Invoice posted",
    EventKind.ERP_INVOICE_PAID: "Invoice paid",
    EventKind.ERP_INVOICE_CANCELLED: "Invoice cancelled",
    EventKind.CREDIT_NOTE_ISSUED: "Credit note issued",
    EventKind.CREDIT_NOTE_VOIDED: "Credit note voided",
    EventKind.REFUND_CREATED: "Refund",
    EventKind.ERP_CREDIT_NOTE_CREATED: "Credit note created",
    EventKind.ERP_SUBSCRIPTION_CHANGED: "Subscription changed",
    EventKind.ORGANIZATION_CREATED: "Organization created",
    EventKind.TIER_CHANGED: "Tier changed",
    EventKind.TICKET_OPENED: "Ticket opened",
    EventKind.TICKET_SOLVED: "Ticket solved",
}
#: distinct hues for correlation-group markers (accents only)
#: (no red or amber: those mean "missing" and "late"; none too close to the system colours)
GROUP_COLORS = ("#4c78a8", "#54a24b", "#b279a2", "#9d755d", "#17becf", "#bcbd22", "#e377c2", "#7f7f7f")
TIMELINE_COLUMNS = ("When (UTC)", "System", "Event", "Status", "Lag", "Summary", "Exceptions")
(T_WHEN, T_SYSTEM, T_EVENT, T_STATUS, T_LAG, T_SUMMARY, T_EXC) = range(len(TIMELINE_COLUMNS))


def _square_icon(color: str | None, size: int = 10) -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(Qt.GlobalColor.transparent)
    if color is not None:
        p = QPainter(pix)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setBrush(QColor(color))
        p.setPen(Qt.PenStyle.NoPen)
        p.drawRoundedRect(1, 1, size - 2, size - 2, 2, 2)
        p.end()
    return QIcon(pix)


def _tint(color: str, alpha: int) -> QColor:
    c = QColor(color)
    c.setAlpha(alpha)
    return c


def _embolden(widget: QWidget, bold: bool) -> None:
    """The checked one of a pair of toggle buttons is bold (visible in every style and palette)."""
    font = widget.font()
    font.setBold(bold)
    widget.setFont(font)


def _object_key(group: str) -> str:
    """``"payment:in_X"`` -> ``"in_X"``: the object a correlation group is about."""
    return group.split(":", 1)[-1]


def _lag_text(lag: timedelta | None) -> str:
    if lag is None:
        return ""
    return ("−" if lag < timedelta(0) else "+") + human_duration(lag)


def state_text(state: CustomerState, coverage: Coverage | None = None) -> str:
    """What the customer has now, as the CLI's ``timeline`` header says it
    (:meth:`CustomerState.summary`: ``"plan Pro monthly (pro_monthly) × 5, active · support tier
    enterprise"``), except that a system never read says so ("plan not loaded", "support tier not
    loaded") instead of "no subscription" or "no support organization"."""
    unread = set(System) - set(coverage.with_data) if coverage is not None else set()
    if state.subscription_id is None and System.BILLING in unread:
        plan = "plan not loaded"
    elif state.subscription_id is None:
        plan = "no subscription"
    else:
        plan = f"plan {state.plan_text()}, {state.status.replace('_', ' ')}"
    if state.tier is None:
        tier = "support tier not loaded" if System.SUPPORT in unread else "no support organization"
    else:
        tier = f"support tier {state.tier}"
    return f"{plan} · {tier}"


class TimelineModel(RowsTableModel[TimelineEntry]):
    """One customer's timeline entries (real and synthetic) in the chosen order."""

    HEADERS = TIMELINE_COLUMNS

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._timeline: Timeline | None = None
        self._synthetic: set[int] = set()
        self._group_color: dict[str, str] = {}
        self._group_size: dict[str, int] = {}
        self._newest_first = True
        self._focus_group: str | None = None
        self._focus_color = "#4c78a8"

    # -- data in -------------------------------------------------------------------------
    def set_timeline(self, timeline: Timeline | None) -> None:
        self.beginResetModel()
        self._timeline = timeline
        self._focus_group = None
        self._synthetic = {id(e) for e in timeline.missing} if timeline else set()
        self._group_color, self._group_size = {}, {}
        if timeline is not None:
            # one colour per object: "invoice:in_X" and "payment:in_X" (or "subscription:sub_X" and the
            # "tier:sub_X" change it caused) share it; colours go by first appearance, so they stay put
            # when the order is toggled
            object_size: dict[str, int] = {}
            for entry in timeline.oldest_first():
                if entry.group:
                    self._group_size[entry.group] = self._group_size.get(entry.group, 0) + 1
                    key = _object_key(entry.group)
                    object_size[key] = object_size.get(key, 0) + 1
            object_color: dict[str, str] = {}
            for entry in timeline.oldest_first():
                if not entry.group:
                    continue
                key = _object_key(entry.group)
                if object_size[key] > 1 and key not in object_color:
                    object_color[key] = GROUP_COLORS[len(object_color) % len(GROUP_COLORS)]
                if key in object_color:
                    self._group_color[entry.group] = object_color[key]
        self._rows = self._ordered()
        self.endResetModel()

    def set_newest_first(self, newest_first: bool) -> None:
        if newest_first == self._newest_first:
            return
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        ids = [id(self._rows[i.row()]) if i.isValid() else None for i in old]
        self._newest_first = newest_first
        self._rows = self._ordered()
        pos = {id(e): r for r, e in enumerate(self._rows)}
        self.changePersistentIndexList(
            old, [self.index(pos[k], i.column()) if k is not None else QModelIndex() for i, k in zip(old, ids,
                                                                                                       strict=True)])
        self.layoutChanged.emit()

    def newest_first(self) -> bool:
        return self._newest_first

    def set_focus_group(self, group: str | None, color: str | None = None) -> None:
        """Tint every entry of this correlation group (the selected entry's), in ``color``
        (the palette's highlight colour)."""
        if color is not None:
            self._focus_color = color
        if group == self._focus_group:
            return
        self._focus_group = group
        if self._rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, len(TIMELINE_COLUMNS) - 1),
                                  [Qt.ItemDataRole.BackgroundRole])

    def _ordered(self) -> list[TimelineEntry]:
        if self._timeline is None:
            return []
        return self._timeline.newest_first() if self._newest_first else self._timeline.oldest_first()

    # -- lookups ---------------------------------------------------------------------------
    def entry(self, row: int) -> TimelineEntry:
        return self._rows[row]

    def entries(self) -> list[TimelineEntry]:
        return list(self._rows)

    def is_synthetic(self, entry: TimelineEntry) -> bool:
        return id(entry) in self._synthetic

    def is_downstream(self, entry: TimelineEntry) -> bool:
        return entry.lag is not None or self.is_synthetic(entry)

    def group_color(self, group: str | None) -> str | None:
        return self._group_color.get(group) if group else None

    # -- cells -----------------------------------------------------------------------------
    def decoration(self, e: TimelineEntry, col: int) -> Any:
        if col == T_SYSTEM:
            return system_icon(e.event.system)
        if col == T_STATUS:
            return dot_icon(STATUS_COLORS[e.status], hollow=e.status in ("missing", "pending"))
        if col == T_EVENT:
            return _square_icon(self.group_color(e.group))
        return None

    def role_data(self, e: TimelineEntry, col: int, role: int) -> Any:
        if role == Qt.ItemDataRole.FontRole:
            if self.is_synthetic(e) or (col == T_STATUS and e.status != "ok"):
                font = QFont()
                font.setItalic(self.is_synthetic(e))
                font.setBold(col == T_STATUS and e.status != "ok")
                return font
            return None
        if role == Qt.ItemDataRole.ForegroundRole:
            if col == T_STATUS and e.status != "ok":
                return QBrush(QColor(STATUS_COLORS[e.status]))
            if col == T_LAG and e.lag is not None and e.lag < timedelta(0):
                return QBrush(QColor(LATE_COLOR))
            return None
        if role == Qt.ItemDataRole.BackgroundRole:
            if self._focus_group and e.group == self._focus_group:
                return QBrush(_tint(self._focus_color, 70))
            if e.status == "missing":
                return QBrush(_tint(MISSING_COLOR, 36))
            if e.status == "late":
                return QBrush(_tint(LATE_COLOR, 30))
            return None
        if role == Qt.ItemDataRole.UserRole:
            return e.group
        return None

    def display(self, e: TimelineEntry, col: int) -> str:
        ev = e.event
        if col == T_WHEN:
            return f"{ev.at:%Y-%m-%d %H:%M}"
        if col == T_SYSTEM:
            return SYSTEM_TITLES[ev.system]
        if col == T_EVENT:
            text = EVENT_TEXT.get(ev.kind, ev.kind.value)
            if self.is_synthetic(e):
                text = f"{text} (expected)"
            return f"→ {text}" if self.is_downstream(e) else text
        if col == T_STATUS:
            return STATUS_TEXT[e.status]
        if col == T_LAG:
            return _lag_text(e.lag)
        if col == T_SUMMARY:
            return ev.summary
        if col == T_EXC:
            ids = ev.exception_ids
            if not ids:
                return ""
            return ids[0] if len(ids) == 1 else f"{ids[0]} +{len(ids) - 1}"
        return ""

    def tooltip(self, e: TimelineEntry, col: int) -> str | None:
        ev = e.event
        lines = [ev.summary]
        if col == T_WHEN:
            return f"{ev.at:%Y-%m-%d %H:%M:%S} UTC"
        if col == T_EXC:
            return "\n".join(ev.exception_ids) or "No open exception on this entry"
        if e.note:
            lines.append(e.note)
        if e.group:
            size = self._group_size.get(e.group, 1)
            others = f" with {size - 1} other entr{'y' if size == 2 else 'ies'}" if size > 1 else ""
            lines.append(f"Correlated{others}: {e.group}")
        if self.is_synthetic(e):
            lines.append("Expected effect that has not been seen" if e.status == "missing"
                         else "Expected effect, still inside its grace period")
        lines.append(f"{SYSTEM_TITLES[ev.system]} {ev.ref.kind} {ev.ref.id} · {ev.kind.value}")
        return "\n".join(lines)


# -- the page ------------------------------------------------------------------------------
class IdentityChip(QFrame):
    """One system's record(s) for this customer, in the system's colour; red when not linked."""

    def __init__(self, system: System, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.system = system
        self.setObjectName("identityChip")
        self.icon = plain_label()
        self.title = plain_label(SYSTEM_TITLES[system])
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.value = ElidedLabel("")
        self.value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 10, 4)
        lay.addWidget(self.icon)
        lay.addWidget(self.title)
        lay.addWidget(self.value, 1)
        self.linked = False

    def set_not_loaded(self, why: str) -> None:
        """The system has not been read: whether the customer is linked there is unknown."""
        self.linked = False
        self.icon.setPixmap(dot_icon(PENDING_COLOR, hollow=True).pixmap(12, 12))
        self.value.setText("not loaded")
        self.value.setStyleSheet("")
        self.setStyleSheet(f"#identityChip {{ border: 1px dashed {PENDING_COLOR}; border-left: 4px solid"
                           f" {PENDING_COLOR}; border-radius: 3px; }}")
        self.setToolTip(plain_tooltip(f"{SYSTEM_TITLES[self.system]} has not been read ({why}): whether this "
                                      "customer is linked there is unknown"))

    def set_refs(self, text: str | None, tooltip: str = "") -> None:
        self.linked = text is not None
        color = SYSTEM_COLORS[self.system] if self.linked else MISSING_COLOR
        self.icon.setPixmap((system_icon(self.system) if self.linked else unlinked_icon()).pixmap(12, 12))
        self.value.setText(text if text is not None else "not linked")
        self.value.setStyleSheet("" if self.linked else f"color: {MISSING_COLOR}; font-weight: 600;")
        self.setStyleSheet(f"#identityChip {{ border: 1px solid {color}; border-left: 4px solid {color};"
                           f" border-radius: 3px; }}")
        self.setToolTip(tooltip)


class CustomerPage(QWidget):
    back = Signal()
    fix_requested = Signal(str, str)  # exception id, action
    evidence_requested = Signal(str)  # customer id: its evidence pack (views/evidence_export.py)
    #: the state panel's Retry / "Systems" buttons (a system could not be read)
    retry_requested = Signal()
    systems_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._timeline: Timeline | None = None
        self._row: CustomerRow | None = None  # the shown customer's row in the list, if listed
        self._loading_id: str | None = None  # shown while the console is still opening
        self._exceptions: list[SyncException] = []
        self.fix_policy: FixPolicy | None = None
        #: what the data shown rests on (the window sets it for each state; see views.coverage)
        self._coverage: Coverage | None = None
        self._now: datetime | None = None
        self.banner = Banner()
        self.banner.setObjectName("coverageBanner")
        self.banner.hide()

        self.back_button = QToolButton()
        self.back_button.setText("← Customers")
        self.back_button.setToolTip("Back to the customer list (Alt+Left)")
        self.back_button.setAutoRaise(True)
        self.back_button.clicked.connect(self.back)
        sequences = {k.toString(): k for k in QKeySequence.keyBindings(QKeySequence.StandardKey.Back)}
        for extra in ("Alt+Left", "Backspace"):  # one shortcut per key: duplicates would be ambiguous
            sequences.setdefault(QKeySequence(extra).toString(), QKeySequence(extra))
        self.back_shortcuts: list[QShortcut] = []
        for seq in sequences.values():
            shortcut = QShortcut(seq, self)
            self.back_shortcuts.append(shortcut)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(self.back)

        # a name of any length: elided on one line, whole in its tooltip, copyable (Tab, Ctrl+C,
        # right-click); never widens the window
        self.name_label = ElidedLabel("")
        self.name_label.setObjectName("customerName")
        self.name_label.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.name_label.setAccessibleName("Customer name")
        font = self.name_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.7)
        font.setBold(True)
        self.name_label.setFont(font)
        self.id_label = plain_label("")
        self.id_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.facts_label = ElidedLabel("")
        set_muted(self.facts_label)
        # what the customer has now (plan × quantity, status, support tier): one line, elided, the
        # whole text in its tooltip, copyable (Tab, Ctrl+C, right-click)
        self.state_label = ElidedLabel("")
        self.state_label.setObjectName("customerState")
        self.state_label.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.state_label.setAccessibleName("Plan and support tier")
        self.chips = {s: IdentityChip(s) for s in System}

        # timeline
        self.timeline_model = TimelineModel(self)
        self.timeline_view = QTableView()
        self.timeline_view.setModel(self.timeline_model)
        self._setup_timeline_view()
        self.timeline_title = plain_label("Timeline")
        tfont = self.timeline_title.font()
        tfont.setBold(True)
        tfont.setPointSizeF(tfont.pointSizeF() * 1.15)
        self.timeline_title.setFont(tfont)
        self.timeline_counts = plain_label("")
        self.newest_button = QToolButton()
        self.newest_button.setText("Newest first")
        self.oldest_button = QToolButton()
        self.oldest_button.setText("Oldest first")
        self.order_group = QButtonGroup(self)
        for b in (self.newest_button, self.oldest_button):
            b.setCheckable(True)
            self.order_group.addButton(b)
        self.newest_button.setChecked(True)
        self.newest_button.toggled.connect(lambda on: self.set_newest_first(on))
        self.order_group.buttonToggled.connect(lambda button, on: _embolden(button, on))
        _embolden(self.newest_button, True)

        tbar = QHBoxLayout()
        tbar.addWidget(self.timeline_title)
        tbar.addWidget(self.timeline_counts, 1)
        tbar.addWidget(self.newest_button)
        tbar.addWidget(self.oldest_button)
        timeline_box = QWidget()
        tlay = QVBoxLayout(timeline_box)
        tlay.setContentsMargins(0, 0, 0, 0)
        tlay.addLayout(tbar)
        tlay.addWidget(self.timeline_view, 1)

        # exceptions
        self.exceptions_title = plain_label("Open exceptions")
        self.exceptions_title.setFont(tfont)
        self.exceptions_body = QWidget()
        self.exceptions_layout = QVBoxLayout(self.exceptions_body)
        self.exceptions_layout.setContentsMargins(0, 0, 6, 0)
        self.exceptions_empty = plain_label("No open exceptions for this customer.")
        set_muted(self.exceptions_empty)
        self.exceptions_scroll = QScrollArea()
        self.exceptions_scroll.setWidgetResizable(True)
        self.exceptions_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.exceptions_scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.exceptions_scroll.setWidget(self.exceptions_body)
        self.cards: list[ExceptionCard] = []
        exc_box = QWidget()
        elay = QVBoxLayout(exc_box)
        elay.setContentsMargins(0, 0, 0, 0)
        elay.addWidget(self.exceptions_title)
        elay.addWidget(self.exceptions_scroll, 1)

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(timeline_box)
        self.splitter.addWidget(exc_box)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)

        header = QHBoxLayout()
        names = QVBoxLayout()
        names.addWidget(self.name_label)
        names.addWidget(self.state_label)
        ids = QHBoxLayout()
        ids.addWidget(self.id_label)
        ids.addWidget(self.facts_label, 1)
        names.addLayout(ids)
        header.addLayout(names, 1)
        strip = QHBoxLayout()
        for chip in self.chips.values():
            strip.addWidget(chip, 1)

        content = QWidget()
        clay = QVBoxLayout(content)
        clay.setContentsMargins(0, 0, 0, 0)
        clay.addLayout(header)
        clay.addLayout(strip)
        clay.addWidget(self.splitter, 1)

        self.empty = StatePanel("No customer selected", "Open a customer from the Customers list.")
        self.empty.show_state(PageState.EMPTY, "No customer selected", "Open a customer from the Customers list.")
        self.empty.retry_requested.connect(self.retry_requested)
        self.empty.systems_requested.connect(self.systems_requested)
        self.stack = QStackedWidget()
        self.stack.addWidget(content)
        self.stack.addWidget(self.empty)
        self.stack.setCurrentWidget(self.empty)

        # the evidence pack (PDF + JSON twin) of the shown customer: enabled once the window can write one
        self.evidence_button = QToolButton()
        self.evidence_button.setObjectName("evidencePack")
        self.evidence_button.setText("Evidence pack…")
        self.evidence_button.setToolTip("Write this customer's evidence pack for an auditor: identities, timeline, "
                                        "exceptions, audit entries with their hashes, audit verify (Ctrl+Shift+P)")
        self.evidence_button.setEnabled(False)
        self.evidence_button.clicked.connect(self._evidence_clicked)
        top = QHBoxLayout()
        top.addWidget(self.back_button)
        top.addStretch(1)
        top.addWidget(self.evidence_button)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.banner)
        lay.addWidget(self.stack, 1)

    def _setup_timeline_view(self) -> None:
        v = self.timeline_view
        # no alternating rows: the model tints the rows of a correlation group, late and missing ones
        widths = dict(zip(range(len(TIMELINE_COLUMNS)), (122, 82, 200, 78, 66, 300, 170), strict=True))
        setup_readonly_table(v, stretch=None, alternating=False, widths=widths,
                             selection=QAbstractItemView.SelectionMode.SingleSelection)
        fit_columns(v, widths)
        v.setShowGrid(False)
        v.setTabKeyNavigation(False)
        v.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        v.horizontalHeader().setHighlightSections(False)
        v.selectionModel().currentRowChanged.connect(self._on_current)
        install_table_menu(v)

    # -- public API --------------------------------------------------------------------------
    def show_customer(self, timeline: Timeline, exceptions: Sequence[SyncException],
                      row: CustomerRow | None) -> None:
        """Show one customer; ``exceptions`` may be all exceptions (only this customer's open
        ones are listed) and ``row`` adds the commercial state when the customer is listed."""
        self._timeline = timeline
        self._loading_id = None
        cid = timeline.customer_id
        ids = set(timeline.exception_ids)
        self._exceptions = sorted((x for x in exceptions if x.is_open and (x.customer_id == cid or x.id in ids)),
                                  key=lambda x: (-SEVERITY_RANK[x.severity], x.rule, x.id))
        if not timeline.known:
            cov = self._coverage
            unread = [s for s in System if cov is not None and s not in cov.with_data]
            if unread and cov is not None:
                view = View(PageState.LOADING if cov.refreshing or not cov.refreshed else PageState.NOT_LOADED,
                            "Customer not found yet",
                            f"{cid} is in none of the systems read so far; {names(set(unread))} "
                            f"{'is' if len(unread) == 1 else 'are'} not loaded.", retry=True)
            else:
                view = View(PageState.EMPTY, "Unknown customer", f"No system knows the customer {cid}.")
            self.empty.show_view(view)
            self.timeline_model.set_timeline(None)
            self._set_cards([])
            self.stack.setCurrentWidget(self.empty)
            return
        self.name_label.setText(bidi_isolated(timeline.name))  # whole: elided when painted
        self.id_label.setText(shown(cid, 100))
        self.facts_label.setText(self._facts(row))
        self._row = row
        self._set_state_and_identities()
        self.timeline_model.set_timeline(timeline)
        # the Exceptions column only when some entry carries one: the summary gets the room otherwise
        self.timeline_view.setColumnHidden(T_EXC, not any(e.event.exception_ids for e in timeline.oldest_first()))
        flagged = sum(1 for e in self.timeline_model.entries() if e.flagged)
        n = self.timeline_model.rowCount()
        counts = f"{n} event{'s' if n != 1 else ''}"
        if flagged:
            counts += f" · {flagged} need attention"
        self.timeline_counts.setText(counts)
        self._set_cards(self._exceptions)
        self.stack.setCurrentIndex(0)
        self._balance_splitter()

    @property
    def page_state(self) -> PageState:
        """loading / not loaded / empty / loaded: what the page says now."""
        return PageState.LOADED if self.stack.currentIndex() == 0 else self.empty.state

    def set_coverage(self, coverage: Coverage | None, now: datetime | None = None) -> None:
        """What the data rests on: systems never read show "not loaded" (never "not linked"),
        and a banner names the systems the latest refresh did not read."""
        self._coverage = coverage
        self._now = now
        banner = stale_banner(coverage, list(System), now or datetime.now(UTC)) if coverage is not None else None
        if banner is None:
            self.banner.hide()
        else:
            self.banner.show_message(*banner)
            self.banner.show()
        if self._timeline is not None and self._timeline.known:  # "not loaded" turns into what was read
            self._set_state_and_identities()

    def set_fix_policy(self, policy: FixPolicy | None) -> None:
        """Enable the fix buttons as ``policy`` allows (call again when the operator changes)."""
        self.fix_policy = policy
        if self.cards:
            self._set_cards(self._exceptions)

    def clear(self) -> None:
        self._timeline = None
        self.timeline_model.set_timeline(None)
        self._set_cards([])
        self.empty.show_state(PageState.EMPTY, "No customer selected", "Open a customer from the Customers list.")
        self.stack.setCurrentWidget(self.empty)

    def set_newest_first(self, newest_first: bool) -> None:
        self.timeline_model.set_newest_first(newest_first)
        (self.newest_button if newest_first else self.oldest_button).setChecked(True)
        current = self.timeline_view.currentIndex()
        if current.isValid():
            self.timeline_view.scrollTo(current)

    def show_loading(self, customer_id: str) -> None:
        """The console is still reading the snapshot: say so; the customer follows."""
        self._timeline = None
        self._loading_id = customer_id
        self._exceptions = []
        self.timeline_model.set_timeline(None)
        self._set_cards([])
        self.empty.show_state(PageState.LOADING, "Loading…",
                              f"Reading the history of {customer_id} from the local snapshot.")
        self.stack.setCurrentWidget(self.empty)

    def set_evidence_enabled(self, enabled: bool) -> None:
        """Offer the evidence pack (the window can write one; any role may, an auditor's too)."""
        self.evidence_button.setEnabled(enabled)

    def _evidence_clicked(self) -> None:
        if self._timeline is not None:
            self.evidence_requested.emit(self._timeline.customer_id)

    def customer_id(self) -> str | None:
        if self._timeline is not None:
            return self._timeline.customer_id
        return self._loading_id

    def exceptions(self) -> list[SyncException]:
        return list(self._exceptions)

    # -- internals ---------------------------------------------------------------------------
    @staticmethod
    def _facts(row: CustomerRow | None) -> str:
        if row is None:
            return ""
        parts = [row.email] if row.email else []  # the plan and the tier: the state line
        if row.open_exceptions:
            worst = row.worst.value if isinstance(row.worst, Severity) else ""
            parts.append(f"{row.open_exceptions} open exception{'s' if row.open_exceptions != 1 else ''}"
                         + (f" (worst {worst})" if worst else ""))
        return "  ·  ".join(parts)

    def _set_state_and_identities(self) -> None:
        """The header's state line and identity chips for the shown customer, on the coverage known now."""
        if self._timeline is None:
            return
        self.state_label.setText(bidi_isolated(state_text(self._timeline.state, self._coverage)))
        self._set_identities(self._timeline, self._row)

    def _set_identities(self, timeline: Timeline, row: CustomerRow | None) -> None:
        cov = self._coverage
        for system, chip in self.chips.items():
            refs = timeline.identities.get(system, [])
            if not refs and cov is not None and system not in cov.with_data:
                chip.set_not_loaded(cov.why(system) or "no data yet")
                continue
            if not refs:
                chip.set_refs(None, f"No {SYSTEM_TITLES[system]} record carries {timeline.customer_id}")
                continue
            if system is System.BILLING:
                text = ", ".join(r.id for r in refs)
            elif system is System.ERP:
                code = (row.erp_code if row is not None and row.erp_code else None) or timeline.customer_id
                text = ", ".join(f"party {r.id}" for r in refs) + f" · code {code}"
            else:
                text = ", ".join(f"org {r.id}" for r in refs)
            if len(refs) > 1:
                text += f"  ({len(refs)} records)"
            chip.set_refs(text, "\n".join(str(r) for r in refs))

    def _set_cards(self, exceptions: list[SyncException]) -> None:
        for card in self.cards:
            card.setParent(None)
            card.deleteLater()
        self.cards = []
        while self.exceptions_layout.count():
            self.exceptions_layout.takeAt(0)
        self.exceptions_title.setText(f"Open exceptions ({len(exceptions)})" if exceptions else "Open exceptions")
        if not exceptions:
            self.exceptions_layout.addWidget(self.exceptions_empty)
            self.exceptions_empty.show()
        else:
            self.exceptions_empty.hide()
            for exc in exceptions:
                card = ExceptionCard(exc, policy=self.fix_policy)
                card.fix_requested.connect(self.fix_requested)
                self.cards.append(card)
                self.exceptions_layout.addWidget(card)
        self.exceptions_layout.addStretch(1)
        tab_chain(self.focus_chain())

    def focus_chain(self) -> list[QWidget]:
        """Tab order: back, the timeline's order and entries, then each card's fix buttons."""
        return [self.back_button, self.evidence_button, self.name_label, self.state_label, self.newest_button,
                self.oldest_button,
                self.timeline_view, *(b for card in self.cards for b in card.fix_buttons), self.empty.retry_button,
                self.empty.systems_button]

    def _balance_splitter(self) -> None:
        """Give the timeline what its rows need (between 30 % and 60 % of the height), the rest
        to the exceptions."""
        total = sum(self.splitter.sizes())
        if total <= 0:
            return
        view = self.timeline_view
        wanted = (view.horizontalHeader().height() + view.verticalHeader().defaultSectionSize()
                  * self.timeline_model.rowCount() + 60)
        if not self.cards:
            wanted = max(wanted, int(total * 0.75))
        top = max(int(total * 0.3), min(wanted, int(total * (0.75 if not self.cards else 0.6))))
        self.splitter.setSizes([top, total - top])

    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        group = self.timeline_model.entry(current.row()).group if current.isValid() else None
        self.timeline_model.set_focus_group(group, self.palette().color(QPalette.ColorRole.Highlight).name())
