"""The Connections dialog's calls into the services, as coroutines the dialog's adapter runs on
the service thread (``runner.call``): reading the profiles (never a secret's value), saving
through :mod:`services.io.config_write`, and testing through :mod:`services.io.permissions`.
No Qt here; the file and the keyring are only touched by the services' functions, in worker
threads.
"""

from __future__ import annotations

import asyncio
import os
import tomllib
from pathlib import Path
from typing import Any

from services.core.domain import System
from services.io import config as config_io
from services.io.config import (
    ALTERNATIVE_SECRETS,
    KINDS,
    SECRET_KEYS,
    ConfigError,
    Profile,
    Secret,
    SystemConnection,
    load_profiles,
)
from services.io.config_write import (
    WriteResult,
    add_profile_async,
    delete_profile_async,
    duplicate_profile_async,
    edit_profile_async,
)
from services.io.permissions import ConnectionReport, check_profile
from views.connections.model import (
    IN_KEYRING,
    ProfileForm,
    StoredProfile,
    StoredSystem,
    form_url,
    removed_systems,
    system_inputs,
)


def _source(profile: str, system: System, table: dict[str, Any], key: str) -> str:
    if f"{key}_env" in table:
        return f"environment variable {table[f'{key}_env']}"
    if key in table:
        return "in the file"
    found = config_io._keyring_secret(profile, system, key)  # the loader's own lookup (never raises)
    return IN_KEYRING if found is not None else "missing"


def _stored_credential(profile: str, system: System, table: dict[str, Any]) -> tuple[str, str]:
    """The credential the profile uses for ``system`` and its :class:`StoredSystem` ``credential``
    (``""``: the kind's first). Of alternatives, the connector signs in with the last one given
    (Zendesk: an OAuth token before an API token)."""
    kind = KINDS[system]
    for key in reversed(ALTERNATIVE_SECRETS.get(kind, ())[1:]):
        if _source(profile, system, table, key) != "missing":
            return key, key
    return SECRET_KEYS[kind][0], ""


def read_stored(path: Path) -> list[StoredProfile]:
    """The profiles of ``path`` in file order (none when it does not exist); each credential by
    its source only."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    out: list[StoredProfile] = []
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: [profiles] must hold [profiles.NAME.SYSTEM] tables")
    for name, tables in profiles.items():
        if not isinstance(tables, dict):
            continue
        systems: dict[System, StoredSystem] = {}
        for system in System:
            table = tables.get(system.value)
            if not isinstance(table, dict):
                continue
            key, credential = _stored_credential(name, system, table)
            settings = {k: str(v) for k, v in table.items()
                        if k not in ("kind", "url", "tax_map") and k not in SECRET_KEYS[KINDS[system]]
                        and not k.endswith("_env")}
            systems[system] = StoredSystem(system, str(table.get("url", "")), settings,
                                           _source(name, system, table, key), credential)
        out.append(StoredProfile(name, bool(tables.get("read_only", False)), systems))
    return out


async def load(path: Path) -> list[StoredProfile]:
    return await asyncio.to_thread(read_stored, path)


async def save(path: Path, form: ProfileForm, stored: StoredProfile | None) -> WriteResult:
    """Add the profile (``stored`` None) or edit it in place (comments kept, secrets to the
    keyring, a secret left empty kept as it is)."""
    inputs = system_inputs(form)
    if stored is None:
        return await add_profile_async(path, form.name.strip(), inputs, read_only=form.read_only)
    return await edit_profile_async(path, stored.name, inputs, read_only=form.read_only,
                                    remove_systems=removed_systems(form, stored))


async def duplicate(path: Path, source: str, new_name: str) -> WriteResult:
    return await duplicate_profile_async(path, source, new_name)


async def delete(path: Path, name: str) -> WriteResult:
    return await delete_profile_async(path, name)


def _saved_profile(path: Path, name: str) -> Profile | None:
    """The stored profile with its credentials (keyring, environment), or None when the file
    has none of that name or cannot give it."""
    try:
        return load_profiles(path, dict(os.environ)).get(name)
    except ConfigError:
        return None


def testable(form: ProfileForm, saved: Profile | None) -> Profile:
    """The profile to test: the form's addresses and settings, its typed secrets, else the
    stored ones (a secret left empty in the form is the one the file or keyring holds)."""
    conns: dict[System, SystemConnection] = {}
    for sys_form in form.enabled():
        before = saved.connections.get(sys_form.system) if saved is not None else None
        settings = dict(before.settings) if before else {}
        settings.update({k: v.strip() for k, v in sys_form.settings.items() if v.strip()})
        secrets = dict(before.secrets) if before else {}
        for other in ALTERNATIVE_SECRETS.get(sys_form.kind, ()):
            if other != sys_form.secret_key:  # the credential not chosen is not the one tested
                secrets.pop(other, None)
        for setting in list(settings):
            if not sys_form.needs(setting):
                del settings[setting]
        if sys_form.secret.strip():
            secrets[sys_form.secret_key] = Secret(sys_form.secret.strip())
        conns[sys_form.system] = SystemConnection(sys_form.system, sys_form.kind, form_url(sys_form), settings,
                                                  secrets, dict(before.tax_map) if before else {})
    return Profile(form.name.strip() or "(unsaved)", conns, form.read_only)


async def test(path: Path, form: ProfileForm, stored_name: str | None, systems: list[System] | None,
               deadline: float) -> ConnectionReport:
    """Test the form's profile (``systems``: only those); cancelling the task stops every probe."""
    saved = await asyncio.to_thread(_saved_profile, path, stored_name) if stored_name else None
    return await check_profile(testable(form, saved), deadline=deadline, systems=systems)
