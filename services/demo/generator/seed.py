"""The demo company's seed parameters (plans, prices, countries, rates, name parts), read from
``demo_seed.toml`` of the ``resources`` package — the one place they are written down.

The file is read through :mod:`importlib.resources`, so a checkout and an installed build read
the same bytes. It must be complete: there are no defaults in code, a missing file raises
:class:`FileNotFoundError` and an invalid or incomplete one :class:`SeedParamsError` naming the
table and key.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.demo.generator.ground_truth import RULES, TIER_RANK

#: the seed file inside the ``resources`` package
SEED_PACKAGE = "resources"
SEED_FILE = "demo_seed.toml"


@dataclass(frozen=True, slots=True)
class PlanSpec:
    key: str  # "pro"; price lookup keys are f"{key}_{monthly|yearly}_{currency}"
    name: str
    tier: str
    sla_policy: str
    weight: float
    quantity: tuple[int, int]
    yearly_share: float
    monthly: tuple[tuple[str, int], ...]  # (currency, unit amount in minor units)
    yearly: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class CountrySpec:
    code: str
    name: str
    currency: str
    weight: float
    tax_type: str
    tax_format: str
    tld: str
    suffixes: tuple[str, ...]
    cities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CompanySpec:
    name: str
    party_code: str
    country: str
    currency: str
    erp_invoice_prefix: str
    erp_subscription_prefix: str
    agent_domain: str
    agents: int


@dataclass(frozen=True, slots=True)
class Rates:
    lead: float
    trial: float
    trial_days: int
    cancel_in_trial: float
    churn_per_period: float
    cancel_immediately: float
    upgrade_per_period: float
    downgrade_per_period: float
    quantity_change_per_period: float
    mid_period_upgrade: float
    second_subscription: float
    send_invoice: float
    payment_failure: float
    retry_success: float
    void: float
    no_tax_id: float
    messy_master_data: float
    odd_name: float
    erp_recent_draft: float
    erp_cancelled_duplicate: float
    erp_manual_invoice: float
    in_flight: float
    tickets_max: int
    users_max: int


@dataclass(frozen=True, slots=True)
class NameParts:
    first: tuple[str, ...]
    second: tuple[str, ...]
    odd: tuple[str, ...]
    person_first: tuple[str, ...]
    person_last: tuple[str, ...]
    ticket_subjects: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SeedParams:
    """Everything that shapes the demo company; loaded from ``resources/demo_seed.toml``."""

    company: CompanySpec
    rates: Rates
    mismatch: tuple[tuple[str, float], ...]  # (rule id, share of customers)
    plans: tuple[PlanSpec, ...]  # ascending tier
    countries: tuple[CountrySpec, ...]
    names: NameParts

    def mismatch_rate(self, rule: str) -> float:
        for r, v in self.mismatch:
            if r == rule:
                return v
        return 0.0


class SeedParamsError(ValueError):
    """The seed parameters are not valid TOML, or a table or key is missing, unknown or of the
    wrong type (the message names the file, the table and the key)."""


def load_seed_params(path: Path | None = None) -> SeedParams:
    """Seed parameters from ``path`` (default: ``demo_seed.toml`` of the ``resources``
    package). Every table and key must be there: nothing falls back to a default."""
    if path is None:
        where = f"{SEED_PACKAGE}/{SEED_FILE}"
        try:
            data = importlib.resources.files(SEED_PACKAGE).joinpath(SEED_FILE).read_bytes()
        except (ModuleNotFoundError, FileNotFoundError) as exc:
            raise FileNotFoundError(f"the demo seed parameters {where} are not installed ({exc}); reinstall "
                                    "SyncDesk (a checkout: pip install -e .)") from None
    else:
        where = str(path)
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"demo seed parameters not found: {path}") from None
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SeedParamsError(f"{where}: not valid TOML: {exc}") from None
    return _params_from_dict(raw, where)


def _params_from_dict(raw: dict[str, Any], where: str) -> SeedParams:
    _keys(raw, ("company", "rates", "mismatch", "plans", "countries", "names"), where)
    company = CompanySpec(**_flat(CompanySpec, _table(raw, "company", where), f"{where} [company]"))
    rates = Rates(**_flat(Rates, _table(raw, "rates", where), f"{where} [rates]"))
    mismatch_raw = _table(raw, "mismatch", where)
    _keys(mismatch_raw, RULES, f"{where} [mismatch]")
    mismatch = tuple((r, _scalar(mismatch_raw, r, "float", f"{where} [mismatch]")) for r in RULES)
    plans: list[PlanSpec] = []
    for n, p in enumerate(_tables(raw, "plans", where), 1):
        at = f"{where} [[plans]] #{n}"
        _keys(p, [f.name for f in dataclasses.fields(PlanSpec)], at)
        quantity = _list(p, "quantity", int, at)
        if len(quantity) != 2:
            raise SeedParamsError(f"{at}: quantity must be [lowest, highest]")
        plan = PlanSpec(key=_scalar(p, "key", "str", at), name=_scalar(p, "name", "str", at),
                        tier=_scalar(p, "tier", "str", at), sla_policy=_scalar(p, "sla_policy", "str", at),
                        weight=_scalar(p, "weight", "float", at), quantity=(quantity[0], quantity[1]),
                        yearly_share=_scalar(p, "yearly_share", "float", at), monthly=_prices(p, "monthly", at),
                        yearly=_prices(p, "yearly", at))
        if plan.tier not in TIER_RANK:
            raise SeedParamsError(f"{at}: tier {plan.tier!r} is not one of {', '.join(TIER_RANK)}")
        plans.append(plan)
    plans.sort(key=lambda p: TIER_RANK.get(p.tier, 0))
    countries: list[CountrySpec] = []
    for n, c in enumerate(_tables(raw, "countries", where), 1):
        at = f"{where} [[countries]] #{n}"
        _keys(c, [f.name for f in dataclasses.fields(CountrySpec)], at)
        country = CountrySpec(code=_scalar(c, "code", "str", at).upper(), name=_scalar(c, "name", "str", at),
                              currency=_scalar(c, "currency", "str", at).lower(),
                              weight=_scalar(c, "weight", "float", at), tax_type=_scalar(c, "tax_type", "str", at),
                              tax_format=_scalar(c, "tax_format", "str", at), tld=_scalar(c, "tld", "str", at),
                              suffixes=tuple(_list(c, "suffixes", str, at)), cities=tuple(_list(c, "cities", str, at)))
        for plan in plans:
            if country.currency not in dict(plan.monthly) or country.currency not in dict(plan.yearly):
                raise SeedParamsError(f"{at}: plan {plan.key!r} has no monthly and yearly price in "
                                      f"{country.currency!r}, the currency of {country.code}")
        countries.append(country)
    n_raw = _table(raw, "names", where)
    _keys(n_raw, [f.name for f in dataclasses.fields(NameParts)], f"{where} [names]")
    names = NameParts(**{f.name: tuple(_list(n_raw, f.name, str, f"{where} [names]"))
                         for f in dataclasses.fields(NameParts)})
    return SeedParams(company=company, rates=rates, mismatch=mismatch, plans=tuple(plans),
                      countries=tuple(countries), names=names)


# -- checks of the raw TOML (each names the file, the table and the key) -------------------------
_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float)}


def _keys(table: dict[str, Any], expected: tuple[str, ...] | list[str], at: str) -> None:
    missing = [k for k in expected if k not in table]
    unknown = sorted(k for k in table if k not in expected)
    problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
        [f"unknown {', '.join(unknown)}"] if unknown else [])
    if problems:
        raise SeedParamsError(f"{at}: {'; '.join(problems)}")


def _table(raw: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    value = raw[name]
    if not isinstance(value, dict):
        raise SeedParamsError(f"{where}: {name} must be a table ([{name}])")
    return value


def _tables(raw: dict[str, Any], name: str, where: str) -> list[dict[str, Any]]:
    value = raw[name]
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        raise SeedParamsError(f"{where}: {name} must be one or more [[{name}]] tables")
    return value


def _scalar(table: dict[str, Any], key: str, kind: str, at: str) -> Any:
    value = table[key]
    valid = isinstance(value, _TYPES[kind]) and not isinstance(value, bool)
    if not valid:
        raise SeedParamsError(f"{at}: {key} must be {'an' if kind == 'int' else 'a'} {kind}, not {value!r}")
    return float(value) if kind == "float" else value


def _list(table: dict[str, Any], key: str, kind: type, at: str) -> list[Any]:
    value = table[key]
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, kind) and not isinstance(v, bool) for v in value)):
        raise SeedParamsError(f"{at}: {key} must be a non-empty list of {kind.__name__}")
    return value


def _prices(table: dict[str, Any], key: str, at: str) -> tuple[tuple[str, int], ...]:
    value = table[key]
    if (not isinstance(value, dict) or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value.values())):
        raise SeedParamsError(f"{at}: {key} must be a table of currency = amount in minor units")
    return tuple((str(k).lower(), int(v)) for k, v in value.items())


def _flat(cls: type, table: dict[str, Any], at: str) -> dict[str, Any]:
    """Keyword arguments for the flat dataclass ``cls`` (str, int and float fields) from ``table``."""
    fields = dataclasses.fields(cls)
    _keys(table, [f.name for f in fields], at)
    return {f.name: _scalar(table, f.name, str(f.type), at) for f in fields}
