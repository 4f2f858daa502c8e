"""``syncdesk connect add|test|list|remove``: connection profiles for headless machines and scripts.

    syncdesk connect list [--config FILE] [--format table|json]
    syncdesk connect add NAME [--stripe-url URL] [--tryton-url URL --tryton-database DB --tryton-login LOGIN]
                         [--zendesk-url URL --zendesk-email EMAIL] [--set SYSTEM.KEY=VALUE ...] [--read-only]
                         [--stripe-key-env VAR | --stripe-key-from-env VAR] (likewise --tryton-password-…,
                         --zendesk-token-…; or --zendesk-oauth-token-… without --zendesk-email)
                         [--test] [--config FILE]
    syncdesk connect test [NAME] [--system SYS ...] [--timeout S] [--format table|json] [--config FILE]
    syncdesk connect remove NAME [--yes] [--config FILE]

``add`` writes the profile into config.toml in place (comments kept, atomic, previous version
as ``config.toml.bak``: :mod:`services.io.config_write`). A credential never comes from the
command line: it is asked for on the terminal (no echo), or read now from the environment
variable ``--…-from-env`` names and stored in the OS keyring, or referenced by ``--…-env`` (the
file then says ``<key>_env = "VAR"`` and the variable is read at each start). ``test`` prints
the checklist of :mod:`services.io.permissions` for each system. ``list`` shows where each
credential comes from (keyring, environment variable, file), never its value.

Exit status: 0 done (``test``: every system reachable, authenticated and with every permission
SyncDesk needs); 1 ``test`` found a system unreachable, refusing the credentials or lacking a
needed permission; 2 a usage or configuration error (no such profile, a refused change, no
keyring and no terminal to ask on); 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.core.domain import System
from services.core.text_safety import terminal_safe
from services.io.config import (
    KEYRING_SERVICE,
    KINDS,
    SECRET_KEYS,
    ConfigError,
    keyring_username,
    load_profile,
)
from services.io.config_write import (
    ConfigWriteError,
    SystemInput,
    add_profile,
    delete_profile,
    profile_names,
)
from services.store.home import config_path

EXIT_MISSING = 1
EXIT_USAGE = 2

#: per kind: (flag prefix, credential, what a person calls it)
_CREDENTIALS: dict[System, tuple[str, str, str]] = {
    System.BILLING: ("stripe-key", "api_key", "Stripe secret or restricted key"),
    System.ERP: ("tryton-password", "password", "Tryton password"),
    System.SUPPORT: ("zendesk-token", "api_token", "Zendesk API token"),
}
#: per system: the flags of its table's settings (flag -> key)
_SETTINGS: dict[System, dict[str, str]] = {
    System.BILLING: {},
    System.ERP: {"tryton_database": "database", "tryton_login": "login"},
    System.SUPPORT: {"zendesk_email": "email"},
}
_URL_FLAG: dict[System, str] = {System.BILLING: "stripe_url", System.ERP: "tryton_url",
                                System.SUPPORT: "zendesk_url"}


def add_connect_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "connect", help="add, test, list or remove connection profiles (credentials go to the OS keyring)")
    actions = p.add_subparsers(dest="connect_command", required=True, metavar="add|test|list|remove")

    listing = actions.add_parser("list", help="the profiles and where each credential comes from (never its value)")
    listing.add_argument("--format", choices=("table", "json"), default="table")

    add = actions.add_parser("add", help="add a profile; credentials are asked for or read from the environment",
                             allow_abbrev=False)
    add.add_argument("name", metavar="NAME", help="the profile's name (letters, digits, '.', '_', '-')")
    add.add_argument("--stripe-url", metavar="URL", help="billing: Stripe's API (https://api.stripe.com)")
    add.add_argument("--tryton-url", metavar="URL", help="ERP: trytond's address, no path")
    add.add_argument("--tryton-database", metavar="DB", help="ERP: the database name")
    add.add_argument("--tryton-login", metavar="LOGIN", help="ERP: the Tryton user SyncDesk logs in as")
    add.add_argument("--zendesk-url", metavar="URL", help="support: https://SUBDOMAIN.zendesk.com")
    add.add_argument("--zendesk-email", metavar="EMAIL", help="support: the agent's e-mail")
    for system, (flag, key, what) in _CREDENTIALS.items():
        group = add.add_mutually_exclusive_group()
        group.add_argument(f"--{flag}-env", metavar="VAR",
                           help=f"{system.value}: the profile reads the {what} from VAR at each start "
                                f"(written as {key}_env)")
        group.add_argument(f"--{flag}-from-env", metavar="VAR",
                           help=f"{system.value}: read the {what} from VAR now and store it in the OS keyring")
        if system is System.SUPPORT:  # or an OAuth token (Bearer), which needs no e-mail
            group.add_argument("--zendesk-oauth-token-env", metavar="VAR",
                               help="support: the profile reads a Zendesk OAuth token from VAR at each start "
                                    "(written as oauth_token_env)")
            group.add_argument("--zendesk-oauth-token-from-env", metavar="VAR",
                               help="support: read a Zendesk OAuth token from VAR now and store it in the OS keyring")
    add.add_argument("--set", action="append", default=[], metavar="SYSTEM.KEY=VALUE",
                     help="another setting of a system's table, e.g. billing.total_timeout=20 (repeatable)")
    add.add_argument("--read-only", action="store_true", help="SyncDesk never writes through this profile")
    add.add_argument("--test", action="store_true", help="test the connection once the profile is written")
    add.add_argument("--timeout", type=float, default=20.0, help="with --test: seconds per system (default 20)")

    test = actions.add_parser("test", help="test each system: reachable, authenticated, every permission needed")
    test.add_argument("name", nargs="?", metavar="NAME", help="the profile (default: 'default', or the only one)")
    test.add_argument("--system", action="append", choices=[s.value for s in System],
                      help="test only this system (repeatable)")
    test.add_argument("--timeout", type=float, default=20.0, help="seconds per system (default 20)")
    test.add_argument("--format", choices=("table", "json"), default="table")

    remove = actions.add_parser("remove", help="remove a profile and its credentials from the keyring")
    remove.add_argument("name", metavar="NAME")
    remove.add_argument("--yes", action="store_true", help="don't ask (required when not on a terminal)")

    for a in (listing, add, test, remove):
        a.add_argument("--config", type=Path, help="connection profiles (default: SYNCDESK_HOME/config.toml)")
    return p


def cmd_connect(args: argparse.Namespace) -> int:
    path: Path = args.config or config_path()
    command = {"list": _list, "add": _add, "test": _test, "remove": _remove}[args.connect_command]
    try:
        return command(args, path)
    except ConfigError as exc:
        print(f"connect {args.connect_command}: {terminal_safe(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"connect {args.connect_command}: interrupted", file=sys.stderr)
        return 130


# -- list ----------------------------------------------------------------------------------------------
def _credential_source(profile: str, system: System, table: dict[str, Any], key: str) -> str:
    if f"{key}_env" in table:
        var = str(table[f"{key}_env"])
        return f"environment variable {var}" + ("" if var in os.environ else " (not set)")
    if key in table:
        return "in the file"
    try:
        import keyring

        found = keyring.get_password(KEYRING_SERVICE, keyring_username(profile, system, key)) is not None
    except Exception:
        found = False
    return "OS keyring" if found else "missing"


def _list(args: argparse.Namespace, path: Path) -> int:
    if not path.exists():
        print(f"no profiles: {path} does not exist (add one with `connect add`)", file=sys.stderr)
        return 0 if args.format == "table" else _print_json([])
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    rows: list[dict[str, Any]] = []
    for name in profile_names(path):
        tables = data.get("profiles", {}).get(name, {})
        systems: dict[str, Any] = {}
        for sys_name, table in tables.items():
            if not isinstance(table, dict) or sys_name not in {s.value for s in System}:
                continue
            system = System(sys_name)
            kind = KINDS[system]
            info: dict[str, Any] = {"kind": kind, "url": str(table.get("url", ""))}
            info.update({k: str(table[k]) for k in ("database", "login", "email") if k in table})
            info["credentials"] = {k: _credential_source(name, system, table, k) for k in SECRET_KEYS[kind]}
            systems[sys_name] = info
        rows.append({"profile": name, "read_only": bool(tables.get("read_only", False)), "systems": systems})
    if args.format == "json":
        return _print_json(rows)
    for row in rows:
        print(terminal_safe(f"{row['profile']}{'  (read-only)' if row['read_only'] else ''}"))
        for sys_name, info in row["systems"].items():
            who = ", ".join(f"{k} {info[k]}" for k in ("database", "login", "email") if k in info)
            creds = "; ".join(f"{k}: {v}" for k, v in info["credentials"].items())
            print(terminal_safe(f"  {sys_name:8} {info['kind']:8} {info['url']}" + (f"  {who}" if who else "")
                                + f"  [{creds}]"))
    if not rows:
        print(f"no profiles in {path} (add one with `connect add`)", file=sys.stderr)
    return 0


def _print_json(value: Any) -> int:
    print(json.dumps(value, indent=2, ensure_ascii=True))
    return 0


# -- add -----------------------------------------------------------------------------------------------
def _setting_value(text: str) -> str | int | float | bool:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


def _extra_settings(items: Sequence[str]) -> dict[System, dict[str, str | int | float | bool]]:
    out: dict[System, dict[str, str | int | float | bool]] = {}
    for item in items:
        target, sep, value = item.partition("=")
        sys_name, dot, key = target.partition(".")
        try:
            system = System(sys_name)
        except ValueError:
            system = None
        if not sep or not dot or not key or system is None:
            raise ConfigWriteError(f"--set {item!r}: write SYSTEM.KEY=VALUE, SYSTEM one of billing, erp, support")
        out.setdefault(system, {})[key] = _setting_value(value)
    return out


def _ask_secret(profile: str, system: System) -> str:
    flag, _, what = _CREDENTIALS[system]
    if not sys.stdin.isatty():
        raise ConfigWriteError(f"{system.value}: no terminal to ask for the {what} on; give --{flag}-from-env VAR "
                               f"(read now, stored in the OS keyring) or --{flag}-env VAR")
    value = getpass.getpass(f"{what} for profile {profile!r} (not shown): ")
    if not value.strip():
        raise ConfigWriteError(f"{system.value}: an empty {what}; nothing written")
    return value.strip()


def _system_inputs(args: argparse.Namespace) -> list[SystemInput]:
    extra = _extra_settings(args.set)
    out: list[SystemInput] = []
    for system in System:
        url = getattr(args, _URL_FLAG[system])
        settings: dict[str, str | int | float | bool | None] = {
            key: getattr(args, flag) for flag, key in _SETTINGS[system].items() if getattr(args, flag)}
        if url is None:
            if settings or system in extra:
                raise ConfigWriteError(f"{system.value}: give --{_URL_FLAG[system].replace('_', '-')} with its "
                                       "other settings")
            continue
        settings.update(extra.get(system, {}))
        flag, key, what = _CREDENTIALS[system]
        env_ref = getattr(args, f"{flag.replace('-', '_')}_env")
        from_env = getattr(args, f"{flag.replace('-', '_')}_from_env")
        if system is System.SUPPORT and (args.zendesk_oauth_token_env or args.zendesk_oauth_token_from_env):
            key, what = "oauth_token", "Zendesk OAuth token"
            env_ref, from_env = args.zendesk_oauth_token_env, args.zendesk_oauth_token_from_env
        secrets: dict[str, str] = {}
        secret_env: dict[str, str] = {}
        if env_ref:
            secret_env[key] = env_ref
        elif from_env:
            value = os.environ.get(from_env, "")
            if not value.strip():
                raise ConfigWriteError(f"{system.value}: the environment variable {from_env} holding the {what} is "
                                       "not set or empty")
            secrets[key] = value.strip()
        else:
            secrets[key] = _ask_secret(args.name, system)
        out.append(SystemInput(system, url, settings, secrets, secret_env))
    if not out:
        raise ConfigWriteError("give at least one system: --stripe-url, --tryton-url or --zendesk-url")
    return out


def _add(args: argparse.Namespace, path: Path) -> int:
    result = add_profile(path, args.name, _system_inputs(args), read_only=args.read_only)
    kept = f"; the previous version is {result.backup}" if result.backup else ""
    stored = f"; {len(result.stored_secrets)} credential(s) stored in the OS keyring" if result.stored_secrets else ""
    print(terminal_safe(f"added profile {args.name!r} to {path}{stored}{kept}"))
    if args.test:
        args.system = None
        args.format = "table"
        return _test(args, path)
    return 0


# -- test ----------------------------------------------------------------------------------------------
def _default_profile(path: Path) -> str:
    names = profile_names(path)
    if "default" in names:
        return "default"
    if len(names) == 1:
        return names[0]
    if not names:
        raise ConfigError(f"no profiles in {path} (add one with `connect add`)")
    raise ConfigError(f"several profiles in {path}: name one ({', '.join(names)})")


def _test(args: argparse.Namespace, path: Path) -> int:
    from services.io.permissions import blocked_fixes, check_profile

    name = args.name or _default_profile(path)
    profile = load_profile(path, name)
    systems = [System(s) for s in args.system] if args.system else None
    report = asyncio.run(check_profile(profile, deadline=args.timeout, systems=systems))
    blocked = blocked_fixes(report)
    if args.format == "json":
        _print_json({
            "profile": report.profile, "ok": report.ok, "read_only": report.read_only,
            "systems": {s.value: {"kind": r.kind, "url": r.url, "reachable": r.reachable,
                                  "authenticated": r.authenticated, "problem": r.problem, "identity": r.identity,
                                  "ok": r.ok,
                                  "checks": [{"resource": c.resource, "access": c.access, "verdict": c.verdict.value,
                                              "needed": c.needed, "sentence": c.sentence} for c in r.checks]}
                        for s, r in report.systems.items()},
            "blocked_fixes": [{"rule": rule, "fix": kind, "reason": why} for (rule, kind), why in blocked.items()],
        })
    else:
        print(terminal_safe(f"profile {name}{' (read-only)' if profile.read_only else ''}"))
        for sys_report in report.systems.values():
            head, *checks = sys_report.lines()
            print(terminal_safe(f"{'ok  ' if sys_report.ok else 'FAIL'} {head}"))
            for check, line in zip(sys_report.checks, checks, strict=True):
                mark = "ok" if check.ok else ("--" if not check.needed else "NO" if check.verdict.value == "missing"
                                              else "??")
                print(terminal_safe(f"     {mark:2} {line}"))
        if blocked:
            kinds = sorted({f"{kind} ({rule})" for rule, kind in blocked})
            print(terminal_safe(f"fixes this profile cannot perform: {', '.join(kinds)}"))
        print("all checks passed" if report.ok else "some checks failed: see the lines marked FAIL, NO or ??")
    return 0 if report.ok else EXIT_MISSING


# -- remove --------------------------------------------------------------------------------------------
def _remove(args: argparse.Namespace, path: Path) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            print("connect remove: nothing done; confirm with --yes (standard input is not a terminal to ask on)",
                  file=sys.stderr)
            return EXIT_USAGE
        answer = input(f"Remove profile {args.name!r} from {path} and its credentials from the OS keyring? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing removed", file=sys.stderr)
            return 0
    result = delete_profile(path, args.name)
    kept = f"; the previous version is {result.backup}" if result.backup else ""
    print(terminal_safe(f"removed profile {args.name!r} from {path}{kept}"))
    return 0
