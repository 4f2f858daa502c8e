"""History no record keeps: what a record *was* before it changed, kept as timeline facts.

A system's records say what is true now; a support organization's tier that was
``enterprise`` and is ``standard`` after a push says only ``standard``. Whoever sees both
versions — an incremental refresh (the stored record and the one just read), an action's
verification (the record before and the one read back after the write), a full refresh over
an earlier snapshot — records the change as a :class:`~services.core.domain.LifecycleEvent`
in the system's ``events`` table, stored with the snapshot like any record:

- ``tier-changed:<organization id>:<unix time>`` (support): "support tier enterprise ->
  standard" at the organization's update time (the same fact the Zendesk connector records
  when its incremental refresh sees the change: same key, same text, so whoever records it
  first, it is one fact);

- an ERP invoice's posting time: Tryton keeps no time per state (services.io.connectors.
  tryton_payloads.state_times: only the state it is in now has a time), so once a posted
  invoice is paid or cancelled its posting time is gone from the record. Whoever saw it posted
  keeps that time on the new version (:func:`carry_state_times`, called by
  :func:`record_changes`): the timeline shows "posted" at the time it was seen, not "unknown".

A full refresh replaces a system's records with what the system holds now, and a system does
not list its past: :func:`carry_history` keeps these facts across it. The timeline
(services.core.timeline) shows a change as "Support tier changed enterprise → standard".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from services.core.domain import Entitlement, EventKind, InvoiceStatus, LifecycleEvent, System, Tier
from services.core.sysdata import SystemData

#: event keys of the facts this module records (never listed by a system: kept across full refreshes)
HISTORY_PREFIXES = ("tier-changed:",)
_TIER_CHANGE = re.compile(r"^support tier (\w+) -> (\w+)$")
#: the states an invoice reaches after its posting (whose record then forgets when it was posted)
_AFTER_POSTING = frozenset({InvoiceStatus.PAID, InvoiceStatus.CANCELLED})


def _tier_name(tier: Tier | None) -> str:
    return tier.value if tier is not None else "none"


def tier_change_key(org_id: str, at: datetime) -> str:
    return f"tier-changed:{org_id}:{int(at.timestamp())}"


def tier_change_event(entitlement: Entitlement, before: Tier | None, at: datetime) -> LifecycleEvent:
    """The fact "support tier ``before`` -> ``entitlement.tier``" at ``at``."""
    return LifecycleEvent(at, System.SUPPORT, EventKind.TIER_CHANGED, entitlement.customer_id, entitlement.ref,
                          f"support tier {_tier_name(before)} -> {_tier_name(entitlement.tier)}")


def parse_tier_change(event: LifecycleEvent) -> tuple[str, str] | None:
    """``(before, after)`` tier names of a recorded tier change, else None (any other event,
    e.g. a vendor's own "tier changed" without the values)."""
    if event.system is not System.SUPPORT or event.kind is not EventKind.TIER_CHANGED:
        return None
    found = _TIER_CHANGE.match(event.summary)
    return (found.group(1), found.group(2)) if found else None


def record_changes(before: SystemData | None, after: Mapping[str, Entitlement], into: SystemData,
                   fallback: datetime) -> int:
    """Add to ``into.events`` a fact for every entitlement of ``after`` whose tier differs from
    the one ``before`` holds under the same key (a record ``before`` does not hold is new, not a
    change). The fact is dated at the new version's update time (``fallback`` when it has
    none). A fact already in ``into`` or ``before`` under the same key is kept as it is.
    Answers how many were added."""
    if before is None:
        return 0
    carry_state_times(before, into)
    if not before.entitlements:
        return 0
    added = 0
    for key, new in after.items():
        old = before.entitlements.get(key)
        if old is None or old.tier == new.tier:
            continue
        at = new.updated or fallback
        event_key = tier_change_key(key, at)
        if event_key in into.events or event_key in before.events:
            continue
        into.events[event_key] = tier_change_event(new, old.tier, at)
        added += 1
    return added


def carry_state_times(before: SystemData, into: SystemData) -> int:
    """Give every paid or cancelled invoice of ``into`` (new versions) that has no posting time
    the one its version in ``before`` had (same key, same record): a posted invoice since paid or
    cancelled keeps the time it was posted. Answers how many."""
    if not before.invoices:
        return 0
    carried = 0
    for key, new in into.invoices.items():
        old = before.invoices.get(key)
        if (new.posted_at is None and new.status in _AFTER_POSTING and old is not None
                and old.posted_at is not None and old.ref == new.ref):
            new.posted_at = old.posted_at
            carried += 1
    return carried


def carry_history(before: SystemData | None, after: SystemData) -> int:
    """Put into ``after`` (a full refresh's data) every recorded fact ``before`` holds that it
    lacks; answers how many."""
    if before is None:
        return 0
    carried = 0
    for key, event in before.events.items():
        if key.startswith(HISTORY_PREFIXES) and key not in after.events:
            after.events[key] = event
            carried += 1
    return carried
