"""The demo ERP's models hold every field the real trytond 8.2 has: for each model the demo
serves, ``fields_get`` of a real server (the sandbox of ``tests/erp/conftest.py``, with the
modules SyncDesk needs) and of the demo server are compared: the demo's field names include the
real ones, with equal types and equal relations (many2one, one2many with its reverse field,
many2many). Every real field then answers ``read`` and ``search_read`` on the demo with a value
of its type, and ``default_get`` gives trytond's plain defaults."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.demo.dataset import DemoDataset
from services.demo.faults import FaultInjector
from services.demo.serving import ThreadedServers
from services.demo.store import ERP_MODELS
from services.demo.tryton.app import create_app
from services.demo.tryton_sandbox import TrytonSandbox
from tests.demo.tryton_rig import Tryton

pytestmark = [pytest.mark.erp, pytest.mark.slow, pytest.mark.timeout(600)]

#: the models the demo ERP serves (every one of them is compared)
SERVED = tuple(ERP_MODELS)
#: the tax and currency models (issue G1) among them
MONEY_MODELS = ("account.tax", "account.tax.group", "account.tax.rule", "account.tax.rule.line",
                "account.invoice.tax", "currency.currency.rate")
RELATIONAL = ("many2one", "one2many", "many2many")


@dataclass
class Pair:
    real: Tryton
    real_ctx: dict[str, Any]
    demo: Tryton
    demo_ctx: dict[str, Any]
    real_fields: dict[str, dict[str, Any]]
    demo_fields: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def pair(real_tryton: TrytonSandbox, erp_dataset: DemoDataset) -> Iterator[Pair]:
    """The real sandbox and a demo ERP serving the same dataset, both logged in, with the
    ``fields_get`` of every served model on each."""
    app = create_app(erp_dataset.erp, FaultInjector("erp"))
    creds = erp_dataset.credentials
    with ThreadedServers({"erp": app}) as servers, httpx.Client(timeout=60) as http:
        real = Tryton(real_tryton.url, http)
        real.login(real_tryton.login, real_tryton.password)
        demo = Tryton(servers.url("erp"), http)
        demo.login(creds.tryton_login, creds.tryton_password)
        real_ctx = real("model.res.user.get_preferences", True, {})
        demo_ctx = demo("model.res.user.get_preferences", True, {})
        real_fields = {m: real(f"model.{m}.fields_get", None, real_ctx) for m in SERVED}
        demo_fields = {m: demo(f"model.{m}.fields_get", None, demo_ctx) for m in SERVED}
        yield Pair(real, real_ctx, demo, demo_ctx, real_fields, demo_fields)


def test_the_real_server_serves_every_model_the_demo_does(pair: Pair) -> None:
    assert set(MONEY_MODELS) <= set(SERVED)
    for model in SERVED:
        assert len(pair.real_fields[model]) > 5, model  # fields_get answered with the model's fields


def test_the_money_models_hold_the_real_fields_and_records(pair: Pair) -> None:
    """The taxes, tax groups and rules, invoice taxes and currency rates: the same field names on both
    sides, and records to read on both (the sandbox is seeded with the demo's)."""
    for model in MONEY_MODELS:
        assert set(pair.demo_fields[model]) == set(pair.real_fields[model]), model
        assert pair.real(f"model.{model}.search_count", [], pair.real_ctx) > 0, model
        assert pair.demo(f"model.{model}.search_count", [], pair.demo_ctx) > 0, model
    line = pair.demo_fields["account.invoice.line"]["taxes"]
    assert (line["type"], line["relation"]) == ("many2many", "account.tax")


def test_demo_fields_include_the_real_ones_with_equal_types_and_relations(pair: Pair) -> None:
    problems: list[str] = []
    compared = 0
    for model in SERVED:
        real, demo = pair.real_fields[model], pair.demo_fields[model]
        for name, rdef in sorted(real.items()):
            ddef = demo.get(name)
            if ddef is None:
                problems.append(f"{model}.{name}: missing ({rdef['type']})")
                continue
            compared += 1
            if ddef["type"] != rdef["type"]:
                problems.append(f"{model}.{name}: type {ddef['type']!r}, trytond {rdef['type']!r}")
            elif rdef["type"] in RELATIONAL and ddef.get("relation") != rdef.get("relation"):
                problems.append(f"{model}.{name}: relation {ddef.get('relation')!r}, trytond {rdef.get('relation')!r}")
            elif rdef["type"] == "one2many" and ddef.get("relation_field") != rdef.get("relation_field"):
                problems.append(f"{model}.{name}: relation_field {ddef.get('relation_field')!r}, "
                                f"trytond {rdef.get('relation_field')!r}")
    assert not problems, f"{len(problems)} differences from trytond 8.2:\n" + "\n".join(problems)
    assert compared > 500  # the 22 served models have about 650 fields in trytond 8.2


def test_demo_static_selections_equal_the_real_ones(pair: Pair) -> None:
    problems: list[str] = []
    for model in SERVED:
        for name, rdef in pair.real_fields[model].items():
            options = rdef.get("selection")
            ddef = pair.demo_fields[model].get(name, {})
            if rdef["type"] != "selection" or not isinstance(options, list) or name == "timezone":
                continue
            real_keys = {o[0] for o in options}
            demo_keys = {o[0] for o in ddef.get("selection") or []}
            if real_keys != demo_keys:
                problems.append(f"{model}.{name}: {sorted(demo_keys, key=str)} != {sorted(real_keys, key=str)}")
    assert not problems, "\n".join(problems)


def _value_fits(kind: str, value: Any) -> bool:
    """Whether ``value`` is what trytond's JSON-RPC answers for a field of ``kind``."""
    if value is None:
        return kind not in ("one2many", "many2many", "multiselection")
    plain: dict[str, tuple[type, ...]] = {
        "char": (str,), "text": (str,), "selection": (str,), "reference": (str,),
        "integer": (int,), "many2one": (int,), "float": (float, int), "numeric": (Decimal,),
        "boolean": (bool, int), "date": (date,), "datetime": (datetime,), "timestamp": (datetime,),
        "timedelta": (timedelta,), "binary": (bytes,),
    }
    if kind in ("one2many", "many2many"):
        return isinstance(value, list) and all(isinstance(v, int) for v in value)
    if kind == "multiselection":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    types = plain.get(kind)
    if types is None:
        return False
    if kind == "date" and isinstance(value, datetime):
        return False
    if kind in ("integer", "many2one") and isinstance(value, bool):
        return False
    return isinstance(value, types)


def test_demo_reads_every_real_field_with_a_value_of_its_type(pair: Pair) -> None:
    problems: list[str] = []
    read = 0
    for model in SERVED:
        names = sorted(pair.real_fields[model])
        kinds = {n: pair.real_fields[model][n]["type"] for n in names}
        ids = pair.demo(f"model.{model}.search", [], 0, 3, None, pair.demo_ctx)
        rows = pair.demo(f"model.{model}.read", ids, names, pair.demo_ctx)
        # search_read with every field answers the same rows
        assert pair.demo(f"model.{model}.search_read", [["id", "in", ids]], 0, None, [["id", "ASC"]], names,
                         pair.demo_ctx) == rows, model
        for row in rows:
            read += 1
            assert set(row) == {*names, "id"} or set(row) == set(names), model
            for name in names:
                if not _value_fits(kinds[name], row[name]):
                    problems.append(f"{model}.{name} ({kinds[name]}): {row[name]!r}")
    assert not problems, "\n".join(problems)
    assert read >= 2 * len(SERVED) - 2  # every model but the seeded-empty ones read some records


def test_the_real_server_reads_values_the_value_check_accepts(pair: Pair) -> None:
    """The type check above holds for the real server too (so it checks what trytond answers)."""
    problems: list[str] = []
    for model in ("party.party", "account.invoice", "account.invoice.line", "product.product"):
        names = sorted(pair.real_fields[model])
        ids = pair.real(f"model.{model}.search", [], 0, 2, None, pair.real_ctx)
        for row in pair.real(f"model.{model}.read", ids, names, pair.real_ctx):
            for name in names:
                kind = pair.real_fields[model][name]["type"]
                if not _value_fits(kind, row[name]):
                    problems.append(f"{model}.{name} ({kind}): {row[name]!r}")
    assert not problems, "\n".join(problems)


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, str | bool | int | float | Decimal)


def test_demo_defaults_equal_trytond_plain_defaults(pair: Pair) -> None:
    """``default_get`` of every real field: where trytond's default is a plain value (not a
    record id, not a time), the demo gives the same."""
    problems: list[str] = []
    compared = 0
    for model in SERVED:
        fields = pair.real_fields[model]
        names = sorted(fields)
        real = pair.real(f"model.{model}.default_get", names, False, pair.real_ctx)
        demo = pair.demo(f"model.{model}.default_get", names, False, pair.demo_ctx)
        for name, value in real.items():
            if fields[name]["type"] in (*RELATIONAL, "timestamp", "datetime") or not _plain(value):
                continue
            compared += 1
            if demo.get(name) != value:
                problems.append(f"{model}.{name}: demo {demo.get(name)!r}, trytond {value!r}")
    assert not problems, "\n".join(problems)
    assert compared > 20
