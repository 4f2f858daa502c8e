"""Saved filters: a page's current filter set kept under a name, picked again from a menu, deleted.

:class:`SavedFiltersButton` sits in a page's filter bar ("Saved", a drawn down arrow; its
accessible name and tooltip say "Saved filters"). Its menu lists the
saved sets (the one matching the current filters is checked), "Save the current filters…" (a
small window-modal name prompt, no nested loop) and a "Delete" submenu. Everything is reached by
the keyboard: Tab to the button, Space or Down opens the menu, the arrows and Enter pick.

The page says what its filters are (``capture() -> {filter: value}``) and how to set them
(``apply(values)``); the sets live in a :class:`FilterStore` — the console's settings
(:class:`views.settings.ConsoleSettings`, ``console.ini``) once the window hands them over, an
in-memory store until then.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QInputDialog, QLineEdit, QMenu, QToolButton, QWidget

#: how long a saved filter's name may be
NAME_LIMIT = 80


class FilterStore(Protocol):
    def saved_filters(self, page: str) -> dict[str, dict[str, str]]: ...

    def save_filter(self, page: str, name: str, values: Mapping[str, str]) -> None: ...

    def delete_filter(self, page: str, name: str) -> bool: ...


class MemoryFilterStore:
    """Saved filters for this session only (a window without settings, e.g. in a test)."""

    def __init__(self) -> None:
        self._pages: dict[str, dict[str, dict[str, str]]] = {}

    def saved_filters(self, page: str) -> dict[str, dict[str, str]]:
        return {name: dict(values) for name, values in self._pages.get(page, {}).items()}

    def save_filter(self, page: str, name: str, values: Mapping[str, str]) -> None:
        self._pages.setdefault(page, {})[name] = dict(values)

    def delete_filter(self, page: str, name: str) -> bool:
        return self._pages.get(page, {}).pop(name, None) is not None


def clean_name(text: str) -> str:
    """A name as saved: one line, trimmed, at most :data:`NAME_LIMIT` characters."""
    return " ".join(text.split())[:NAME_LIMIT]


class SavedFiltersButton(QToolButton):
    """"Saved filters" and its menu (see the module's docstring)."""

    applied = Signal(str)  # the name of the set put back
    saved = Signal(str)
    deleted = Signal(str)

    def __init__(self, page: str, capture: Callable[[], dict[str, str]],
                 apply: Callable[[Mapping[str, str]], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.page = page
        self.capture = capture
        self._apply = apply
        self.store: FilterStore = MemoryFilterStore()
        self.name_dialog: QInputDialog | None = None
        self.setObjectName("savedFilters")
        self.setText("Saved")  # short: the exceptions' filter bar fits a 1024-pixel window
        self.setAccessibleName("Saved filters")
        self.setToolTip("Save the current filters under a name, put a saved set back, delete one "
                        "(Space or Enter opens the menu)")
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.setArrowType(Qt.ArrowType.DownArrow)  # drawn by the style: no glyph a font may lack
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.filters_menu = QMenu(self)
        self.filters_menu.setObjectName("savedFiltersMenu")
        self.clicked.connect(self.open_menu)
        self._fill_menu()

    def set_store(self, store: FilterStore) -> None:
        self.store = store
        self._fill_menu()

    # -- the saved sets --------------------------------------------------------------------------
    def names(self) -> list[str]:
        return list(self.store.saved_filters(self.page))

    def current_name(self) -> str | None:
        """The saved set the current filters match (the first, if several do)."""
        now = self.capture()
        return next((n for n, v in self.store.saved_filters(self.page).items() if v == now), None)

    def apply_saved(self, name: str) -> bool:
        values = self.store.saved_filters(self.page).get(name)
        if values is None:
            return False
        self._apply(values)
        self.applied.emit(name)
        return True

    def save_current(self, name: str) -> str | None:
        """Save the current filters as ``name`` (replacing a set of that name); the name as saved,
        or ``None`` for a blank one."""
        name = clean_name(name)
        if not name:
            return None
        self.store.save_filter(self.page, name, self.capture())
        self.saved.emit(name)
        self._fill_menu()
        return name

    def delete(self, name: str) -> bool:
        done = self.store.delete_filter(self.page, name)
        if done:
            self.deleted.emit(name)
            self._fill_menu()
        return done

    def ask_name(self) -> QInputDialog:
        """Ask for the name (window-modal, ``open()``: no nested loop); Enter saves."""
        if self.name_dialog is not None:
            self.name_dialog.close()
        dialog = QInputDialog(self.window())
        dialog.setObjectName("saveFilterDialog")
        dialog.setWindowTitle("Save the current filters")
        dialog.setLabelText("Name (a saved set of that name is replaced):")
        dialog.setInputMode(QInputDialog.InputMode.TextInput)
        dialog.setTextValue(self.current_name() or "")
        dialog.setOkButtonText("Save")
        edit = dialog.findChild(QLineEdit)
        if edit is not None:
            edit.setMaxLength(NAME_LIMIT)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.textValueSelected.connect(self.save_current)
        dialog.finished.connect(lambda _result: self._take_keyboard_back())
        dialog.destroyed.connect(lambda *_: setattr(self, "name_dialog", None))
        self.name_dialog = dialog
        dialog.open()
        return dialog

    def _take_keyboard_back(self) -> None:
        """The name prompt closed: the keyboard comes back to this button (not every window
        manager gives the window back its activation)."""
        window = self.window()
        if window.isVisible():
            window.activateWindow()
            self.setFocus(Qt.FocusReason.OtherFocusReason)

    # -- the menu ------------------------------------------------------------------------------
    def open_menu(self) -> QMenu:
        """Pop the menu up below the button (shown, never ``exec()``-ed: no nested loop); it has
        the keyboard: the arrows move, Enter picks, Esc closes."""
        self._fill_menu()
        self.filters_menu.popup(self.mapToGlobal(QPoint(0, self.height())))
        return self.filters_menu

    def _fill_menu(self) -> None:
        menu = self.filters_menu
        menu.clear()
        saved = self.store.saved_filters(self.page)
        current = self.current_name() if saved else None
        if not saved:
            menu.addAction("No saved filters yet").setEnabled(False)
        for name in saved:
            action = menu.addAction(name)
            action.setCheckable(True)
            action.setChecked(name == current)
            action.setToolTip(_describe(saved[name]))
            action.triggered.connect(lambda _=False, n=name: self.apply_saved(n))
        menu.addSeparator()
        save = menu.addAction("Save the current filters…")
        save.setObjectName("saveFilters")
        save.triggered.connect(self.ask_name)
        delete_menu = menu.addMenu("Delete")
        delete_menu.setObjectName("deleteSavedFilter")
        delete_menu.setEnabled(bool(saved))
        for name in saved:
            delete_menu.addAction(name).triggered.connect(lambda _=False, n=name: self.delete(n))
        menu.setToolTipsVisible(True)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        # Down, Enter and Return open the menu too (Space clicks, as on any button)
        if event.key() in (Qt.Key.Key_Down, Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.open_menu()
            event.accept()
            return
        super().keyPressEvent(event)


def _describe(values: Mapping[str, str]) -> str:
    shown = [f"{key}: {value}" for key, value in values.items() if value not in ("", "false", "0")]
    return "; ".join(shown) if shown else "no filter (everything)"
