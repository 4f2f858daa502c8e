"""An exception's sides as the views list them: which value keys are shown, which differ, the
owner's side, and the link candidates a side carries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from services.core.domain import Side, SyncException, System
from services.core.ownership import owner_system
from views.widgets.text import format_value

#: value keys that carry data about the sides, not values of the record: never listed as values
HIDDEN_KEYS = frozenset({"owner", "candidates"})
#: value keys each system numbers on its own (billing INV-12 vs ERP E-12; a credit note's credited
#: invoice by each system's number): shown, never marked as differing
NOT_COMPARED = frozenset({"number", "invoice"})


def side_keys(exc: SyncException) -> list[str]:
    """The value keys of every side, in order of first appearance (without ``HIDDEN_KEYS``)."""
    keys: list[str] = []
    for side in exc.sides:
        for key in side.values:
            if key not in HIDDEN_KEYS and key not in keys:
                keys.append(key)
    return keys


def sides_currency(sides: Sequence[Side]) -> str | None:
    """The exception's currency, as the first side that names one says: its amounts are shown
    with it (:func:`views.widgets.text.money_value_text`)."""
    return next((str(s.values["currency"]) for s in sides if s.values.get("currency")), None)


def differing_keys(exc: SyncException) -> list[str]:
    """The keys whose values differ between the sides that hold them."""
    out = []
    for key in side_keys(exc):
        held = {format_value(s.values[key]) for s in exc.sides if key in s.values}
        if key not in NOT_COMPARED and len(held) > 1:
            out.append(key)
    return out


def owner_side(exc: SyncException, ownership: Mapping[str, System]) -> Side | None:
    """The side of the owning system (``services.core.ownership.owner_system``), else the first."""
    owner = owner_system(exc, ownership)
    return next((s for s in exc.sides if s.system is owner), exc.sides[0] if exc.sides else None)


def candidates_of(exc: SyncException) -> list[tuple[System, dict[str, Any]]]:
    """The link candidates the sides carry, with the system each one is in."""
    out: list[tuple[System, dict[str, Any]]] = []
    for side in exc.sides:
        raw = side.values.get("candidates")
        if isinstance(raw, list | tuple):
            out.extend((side.system, c) for c in raw if isinstance(c, dict))
    return out


def candidate_key(cand: dict[str, Any]) -> str:
    """What a LINK request names: the candidate's reference (``"erp:party.party:7"``)."""
    return str(cand.get("ref") or cand.get("id") or "")
