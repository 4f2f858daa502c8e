"""The README's money cases, rendered by ``screenshot`` (app/console.py ``_save_screenshots``):

- ``exceptions-tax-mismatch``: the exception queue with an ``invoice.tax_mismatch`` selected, its
  detail pane showing both sides' tax per rate (a yen invoice when the demo has one, so the
  amounts read without decimals);
- ``customer-credit-note``: the page of a customer whose credit note the ERP booked for another
  amount (``credit_note.amount_mismatch``; else a credit note the ERP lacks), its timeline's
  credit note selected (the credit group highlighted) and the exception's card below.

A case the world does not hold (a demo too small to plant it) is left out, never faked with
another exception. The queue's selection is given back afterwards, so the other shots of the
gallery stay as they were."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from PySide6.QtWidgets import QAbstractItemView

from services.core.domain import EventKind, SyncException
from views.main_window import MainWindow
from views.settings import Appearance

#: the rules shown on the customer shot, in order of preference
CREDIT_RULES = ("credit_note.amount_mismatch", "credit_note.missing_in_erp")
_CREDIT_KINDS = frozenset({EventKind.CREDIT_NOTE_ISSUED, EventKind.ERP_CREDIT_NOTE_CREATED})

Shot = Callable[[str, Appearance, int, int], Awaitable[None]]


def tax_case(exceptions: list[SyncException]) -> SyncException | None:
    """The ``invoice.tax_mismatch`` to show: one in a currency without two decimals first (its
    summary names the amounts, e.g. "16,800 JPY"), then the first by id."""
    cases = sorted((x for x in exceptions if x.rule == "invoice.tax_mismatch" and x.customer_id), key=lambda x: x.id)
    odd = [x for x in cases if " JPY" in x.summary or " KWD" in x.summary]
    chosen = odd or cases
    return chosen[0] if chosen else None


def credit_case(exceptions: list[SyncException]) -> SyncException | None:
    """The credit-note exception whose customer to show (see :data:`CREDIT_RULES`)."""
    for rule in CREDIT_RULES:
        cases = sorted((x for x in exceptions if x.rule == rule and x.customer_id), key=lambda x: x.id)
        if cases:
            return cases[0]
    return None


async def money_shots(window: MainWindow, shot: Shot, appearance: Appearance, width: int, height: int) -> None:
    """Render the money cases the window's state holds (see the module docstring)."""
    state = window.state
    if state is None:
        return
    page = window.exceptions_page
    tax = tax_case(state.exceptions)
    if tax is not None:
        before = page.selected_id()
        window.nav.setCurrentRow(window.PAGES.index("Exceptions"))
        if page.select_exception(tax.id):
            page.table.scrollTo(page.table.currentIndex(), QAbstractItemView.ScrollHint.PositionAtCenter)
            await shot("exceptions-tax-mismatch", appearance, width, height)
        if before is not None:
            page.select_exception(before)
    credit = credit_case(state.exceptions)
    if credit is not None and credit.customer_id is not None:
        window.open_customer(credit.customer_id)
        customer = window.customer_page
        entries = customer.timeline_model.entries()
        notes = [i for i, e in enumerate(entries) if e.event.kind in _CREDIT_KINDS]
        rows = [i for i in notes if credit.id in entries[i].event.exception_ids] or notes
        if rows:
            index = customer.timeline_model.index(rows[0], 0)
            customer.timeline_view.setCurrentIndex(index)  # highlights the credit note's group
            customer.timeline_view.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)
            await shot("customer-credit-note", appearance, width, height)
        window.show_customer_list()
