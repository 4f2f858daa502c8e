"""The toolbar's profile chooser: the config's connection profiles and the built-in demo; picking
one asks the shell to switch the console to it live (``app.console.switch_profile``), no restart.

The chooser only asks: ``chosen`` carries the profile's name (``None``: the built-in demo), and
the shell answers with :meth:`ProfileChooser.set_busy` while it switches and
:meth:`ProfileChooser.set_current` once the other profile is shown (or the switch failed and the
old one stays).
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QWidget

#: the entry of the built-in demo (its ``data``; a config profile's is its name)
BUILT_IN_DEMO = ""
BUILT_IN_DEMO_TEXT = "Built-in demo (DEMO)"
_TOOLTIP_ROLE = Qt.ItemDataRole.ToolTipRole


class ProfileChooser(QWidget):
    """"Profile: [name ▾]" in the toolbar."""

    chosen = Signal(object)  # str: a config profile's name; None: the built-in demo

    def __init__(self, names: Sequence[str] = (), current: str | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("profileChooser")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 0)
        label = QLabel("Profile:")
        self.combo = QComboBox()
        self.combo.setObjectName("profileCombo")
        self.combo.setAccessibleName("Connection profile")
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        label.setBuddy(self.combo)
        layout.addWidget(label)
        layout.addWidget(self.combo)
        self._current: str | None = current
        self.set_profiles(names, current)
        self.combo.activated.connect(self._activated)

    # -- what the shell tells it ------------------------------------------------------------------
    def set_profiles(self, names: Sequence[str], current: str | None) -> None:
        """The config's profiles (file order) and the built-in demo; ``current`` selected."""
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItem(BUILT_IN_DEMO_TEXT, BUILT_IN_DEMO)
        self.combo.setItemData(0, "The demo company's three systems, served on this machine", _TOOLTIP_ROLE)
        for name in names:
            self.combo.addItem(name, name)
            self.combo.setItemData(self.combo.count() - 1, f"The connection profile “{name}” of config.toml",
                                   _TOOLTIP_ROLE)
        self.combo.blockSignals(False)
        self.set_current(current)

    def set_current(self, name: str | None) -> None:
        """Show ``name`` (None: the built-in demo) as the active profile, without asking for a switch."""
        self._current = name
        index = self.combo.findData(BUILT_IN_DEMO if name is None else name)
        if index < 0 and name is not None:  # a profile given on the command line, not in the file
            self.combo.blockSignals(True)
            self.combo.addItem(name, name)
            self.combo.blockSignals(False)
            index = self.combo.count() - 1
        self.combo.blockSignals(True)
        self.combo.setCurrentIndex(max(index, 0))
        self.combo.blockSignals(False)
        self.combo.setToolTip(f"Active profile: {self.current_text()} — choose another to switch to it")

    def set_busy(self, busy: bool) -> None:
        """Disabled while a switch runs (one at a time)."""
        self.combo.setEnabled(not busy)

    # -- what it says -----------------------------------------------------------------------------
    @property
    def current(self) -> str | None:
        return self._current

    def current_text(self) -> str:
        return BUILT_IN_DEMO_TEXT if self._current is None else self._current

    def names(self) -> list[str | None]:
        """Every entry, in order (None: the built-in demo)."""
        out: list[str | None] = []
        for i in range(self.combo.count()):
            data = self.combo.itemData(i)
            out.append(None if data == BUILT_IN_DEMO else str(data))
        return out

    def choose(self, name: str | None) -> None:
        """Select ``name`` as a person would (emits ``chosen`` unless it is already active)."""
        index = self.combo.findData(BUILT_IN_DEMO if name is None else name)
        if index < 0:
            raise KeyError(name)
        self.combo.setCurrentIndex(index)
        self._activated(index)

    def _activated(self, index: int) -> None:
        data = self.combo.itemData(index)
        name = None if data == BUILT_IN_DEMO else str(data)
        if name != self._current:
            self.chosen.emit(name)
