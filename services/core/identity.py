"""Who is at the keyboard, and which roles the role policy grants them. Pure; no Qt, no I/O
beyond asking the operating system for the login.

The actor SyncDesk records is the **login** (:func:`current_login`: the account the process
runs as — on POSIX the name of the real user id from the password database, on Windows the
account name ``GetUserNameW`` returns), never a name typed in a field or a flag. Environment
variables such as ``USER`` or ``LOGNAME`` are not consulted: anyone can set them.

The **role policy** is the ``[roles]`` table of ``config.toml`` (parsed by
:func:`services.io.config.parse_roles`)::

    [roles]
    alice = "finance"
    bob = "auditor"
    carol = ["finance", "support"]

- no ``[roles]`` table (``policy is None``): the one local login holds every role — the
  single-user default;
- a login listed in the table holds exactly its roles;
- a login not listed in a present table holds only ``auditor``: it reads, verifies and exports,
  and never acts (:attr:`Identity.listed` is ``False``, :meth:`Identity.read_only_reason` says why).

:func:`resolve_identity` turns (policy, login) into an :class:`Identity`; the shell (the ``fix``
command, the console) builds one at start-up and hands it to the action service, which refuses an
operator the identity does not vouch for (:meth:`Identity.check`).

Test seam: tests replace :func:`os_login` (``monkeypatch.setattr(identity, "os_login", ...)``);
:func:`current_login` looks it up at each call, so every caller sees the fake login.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
from dataclasses import dataclass

from services.core.errors import SyncDeskError


class Role(enum.StrEnum):
    FINANCE = "finance"
    SUPPORT = "support"
    AUDITOR = "auditor"


#: the roles that may act (change something in a system); ``auditor`` only reads
ACTING_ROLES: tuple[Role, ...] = (Role.FINANCE, Role.SUPPORT)
#: every role, in the order SyncDesk shows them
ALL_ROLES: tuple[Role, ...] = tuple(Role)


class RolePolicyError(SyncDeskError):
    """The role policy does not grant this login that role (or the operator is not the login)."""


def os_login() -> str:
    """The login of the account this process runs as (see the module docstring)."""
    if os.name == "nt":  # pragma: no cover - exercised on Windows only
        return os.getlogin()  # GetUserNameW: the process token's account, not %USERNAME%
    import pwd

    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid with no password entry (some containers): named by its number
        return f"uid{uid}"


def current_login() -> str:
    """The login SyncDesk records as the actor (:func:`os_login`, looked up at each call)."""
    return os_login()


@dataclass(frozen=True)
class RolePolicy:
    """A ``[roles]`` table: each login's roles, in the order the table lists them."""

    grants: tuple[tuple[str, tuple[Role, ...]], ...]
    #: where the table was read (shown in messages), e.g. the config file's path
    source: str = ""

    def roles_of(self, login: str) -> tuple[Role, ...] | None:
        """The login's roles, or ``None`` when the table does not list it."""
        for name, roles in self.grants:
            if name == login:
                return roles
        return None

    def as_json(self) -> list[list[str | list[str]]]:
        """The table as JSON-ready pairs ``[login, [roles]]`` (logins are values, not keys, so a
        login that looks like a credential name is never masked by the audit log's redaction)."""
        return [[login, [r.value for r in roles]] for login, roles in self.grants]

    def describe(self) -> str:
        """One line: ``alice = finance; carol = finance, support``."""
        if not self.grants:
            return "an empty [roles] table (nobody may act)"
        return "; ".join(f"{login} = {', '.join(r.value for r in roles)}" for login, roles in self.grants)


def policy_digest(policy: RolePolicy | None) -> str:
    """A stable fingerprint of ``policy`` (``None``: no table) — what the audit log compares to
    tell that the policy changed since it was last seen."""
    body = json.dumps(None if policy is None else policy.as_json(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def describe_policy(policy: RolePolicy | None) -> str:
    return "no [roles] table (the local login holds every role)" if policy is None else policy.describe()


@dataclass(frozen=True)
class Identity:
    """The login and the roles the policy grants it."""

    login: str
    roles: tuple[Role, ...]
    #: the policy it was resolved from (``None``: no ``[roles]`` table)
    policy: RolePolicy | None = None

    @property
    def listed(self) -> bool:
        """False for a login a present ``[roles]`` table does not list (read-only)."""
        return self.policy is None or self.policy.roles_of(self.login) is not None

    @property
    def acting_roles(self) -> tuple[Role, ...]:
        return tuple(r for r in self.roles if r in ACTING_ROLES)

    @property
    def can_act(self) -> bool:
        return bool(self.acting_roles)

    def holds(self, role: Role) -> bool:
        return role in self.roles

    def default_role(self) -> Role:
        """The role to start in: the only acting role, finance when it holds both, else auditor."""
        acting = self.acting_roles
        if len(acting) == 1:
            return acting[0]
        if Role.FINANCE in acting:
            return Role.FINANCE
        return Role.AUDITOR

    def where(self) -> str:
        source = self.policy.source if self.policy is not None else ""
        return f"the [roles] table of {source}" if source else "the [roles] table"

    def read_only_reason(self) -> str:
        """Why this login cannot act ("" when it can)."""
        if self.can_act:
            return ""
        if not self.listed:
            return f"{self.login} is not listed in {self.where()}: read-only (auditor)"
        return f"{self.login} holds only the auditor role in {self.where()}: read-only"

    def check(self, name: str, role: Role) -> None:
        """Raise :class:`RolePolicyError` unless ``name`` is this login and the policy grants
        it ``role``."""
        if name != self.login:
            raise RolePolicyError(f"the operator is the login {self.login!r}, not {name!r}: who acts is who is "
                                  "logged in")
        if role not in self.roles:
            held = ", ".join(r.value for r in self.roles)
            if not self.listed:
                raise RolePolicyError(f"{self.login} is not listed in {self.where()}, so it holds no role that can "
                                      f"act (read-only, as an auditor); the {role.value} role is not granted")
            raise RolePolicyError(f"{self.login} does not hold the {role.value} role (granted by {self.where()}: "
                                  f"{held})")


def resolve_identity(config_roles: RolePolicy | None, login: str) -> Identity:
    """The identity of ``login`` under ``config_roles`` (``None``: no ``[roles]`` table, so the
    login holds every role; a login the table does not list holds only ``auditor``)."""
    if config_roles is None:
        return Identity(login, ALL_ROLES, None)
    roles = config_roles.roles_of(login)
    if roles is None:
        return Identity(login, (Role.AUDITOR,), config_roles)
    return Identity(login, roles, config_roles)


__all__ = [
    "ACTING_ROLES",
    "ALL_ROLES",
    "Identity",
    "Role",
    "RolePolicy",
    "RolePolicyError",
    "current_login",
    "describe_policy",
    "os_login",
    "policy_digest",
    "resolve_identity",
]
