"""The audit entries of who may act: a switch of the active role, and a change of the role
policy (the ``[roles]`` table of config.toml, :mod:`services.core.identity`).

Both are entries of the one hash chain (:class:`~services.store.audit.AuditLog`), written
through its public API, with ``phase = "policy"`` and ``outcome = "recorded"``:

- ``action_kind = "role_change"``: the login switched its active role; ``before`` / ``after``
  hold ``{"role": …}``, ``request`` the roles the policy grants it; ``role`` is the new role.
- ``action_kind = "role_policy"``: at start-up the policy differs from the one last seen for
  this log (the newest ``role_policy`` entry; a log without one has seen "no [roles] table", the
  single-user default, so an unchanged default adds nothing). ``before`` / ``after`` hold
  ``{"policy": [[login, [roles]], …] | None, "digest": sha256}``; ``reason`` says what changed
  in one line.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import uuid4

from services.actions.model import Operator
from services.core.identity import Identity, Role, RolePolicy, describe_policy, policy_digest
from services.store.audit import AuditEntry, AuditFilter, AuditLog

ROLE_CHANGE = "role_change"
ROLE_POLICY = "role_policy"
POLICY_PHASE = "policy"
RECORDED = "recorded"


def role_change_entry(identity: Identity, before: Operator, after: Operator, at: datetime) -> AuditEntry:
    """The entry for ``identity``'s switch from ``before.role`` to ``after.role``."""
    return AuditEntry(
        operator=identity.login, role=after.role.value, action_id=str(uuid4()), action_kind=ROLE_CHANGE,
        phase=POLICY_PHASE, outcome=RECORDED, request={"granted": [r.value for r in identity.roles]},
        before={"role": before.role.value}, after={"role": after.role.value},
        reason=f"{identity.login} switched role: {before.role.value} → {after.role.value}", at=at)


def _policy_state(policy: RolePolicy | None) -> dict[str, Any]:
    return {"policy": None if policy is None else policy.as_json(), "digest": policy_digest(policy)}


def last_seen_policy(audit: AuditLog) -> dict[str, Any] | None:
    """The policy state (``after``) of this log's newest ``role_policy`` entry, ``None`` if none."""
    newest = audit.entries(AuditFilter(action_kind=ROLE_POLICY), limit=1)
    return newest[0].after if newest else None


def policy_change_entry(audit: AuditLog, identity: Identity, role: Role, at: datetime) -> AuditEntry | None:
    """The entry recording that ``identity.policy`` differs from the one last seen for ``audit``
    (``None``: unchanged). Reads the log; writes nothing."""
    seen = last_seen_policy(audit)
    now = _policy_state(identity.policy)
    before = seen if seen is not None else _policy_state(None)
    if before.get("digest") == now["digest"]:
        return None
    was = before.get("policy")
    was_text = ("no [roles] table (the local login holds every role)" if was is None
                else "; ".join(f"{p[0]} = {', '.join(p[1])}" for p in was if isinstance(p, list) and len(p) == 2)
                or "an empty [roles] table (nobody may act)")
    return AuditEntry(
        operator=identity.login, role=role.value, action_id=str(uuid4()), action_kind=ROLE_POLICY,
        phase=POLICY_PHASE, outcome=RECORDED,
        request={"source": identity.policy.source if identity.policy is not None else None},
        before=before, after=now,
        reason=f"role policy changed: {describe_policy(identity.policy)} (was: {was_text})", at=at)


def record_policy_change(audit: AuditLog, identity: Identity, role: Role, at: datetime) -> AuditEntry | None:
    """Append the ``role_policy`` entry when the policy changed since this log last saw it;
    return it (``None``: unchanged, nothing written). Synchronous (SQLite): call it from a
    worker thread in an async program."""
    entry = policy_change_entry(audit, identity, role, at)
    return audit.append(entry) if entry is not None else None
