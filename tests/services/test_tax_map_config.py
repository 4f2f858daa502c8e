"""The profile's billing tax rate -> ERP tax mapping (``[profiles.NAME.erp.tax_map]``): read and
validated with a clear error, written back with the profile, and the demo's profile carries the
demo company's own mapping (every billing rate to the ERP tax the demo made for it)."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.core.domain import System
from services.demo.dataset import generate
from services.demo.environment import demo_tax_map
from services.demo.generator.erp_taxes import tax_name
from services.io.config import ConfigError, load_profile, parse_profiles, profile_to_toml, write_profile

ERP = {"kind": "tryton", "url": "http://127.0.0.1:8002", "database": "db", "login": "admin", "password": "pw"}


def profile(erp: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"profiles": {"acme": {"erp": erp, **extra}}}


def test_the_tax_map_is_read_into_the_erp_connection_and_written_back(tmp_path: Path) -> None:
    [p] = parse_profiles(profile({**ERP, "tax_map": {"txr_DE19": 12, "txr_RC": 14}}), {}).values()
    conn = p.connections[System.ERP]
    assert conn.tax_map == {"txr_DE19": 12, "txr_RC": 14}
    assert "tax_map" not in conn.settings
    path = tmp_path / "p.toml"
    write_profile(path, p)
    assert tomllib.loads(path.read_text())["profiles"]["acme"]["erp"]["tax_map"] == {"txr_DE19": 12, "txr_RC": 14}
    assert load_profile(path, "acme", {}).connections[System.ERP].tax_map == conn.tax_map
    # no table: an empty mapping (every taxed posting is then refused, naming its rate)
    [plain] = parse_profiles(profile(ERP), {}).values()
    assert plain.connections[System.ERP].tax_map == {}
    assert "tax_map" not in profile_to_toml(plain)["profiles"]["acme"]["erp"]


@pytest.mark.parametrize(("tax_map", "message"), [
    ({"txr_DE19": "12"}, "billing tax rate 'txr_DE19' must map to an ERP tax id (a positive integer), got '12'"),
    ({"txr_DE19": 0}, "got 0"),
    ({"txr_DE19": True}, "got True"),
    ({"txr_DE19": 12.5}, "got 12.5"),
    ({" ": 3}, "an empty billing tax rate id"),
    ("txr_DE19=12", "tax_map must be a table"),
])
def test_a_bad_tax_map_is_a_clear_error(tax_map: Any, message: str) -> None:
    with pytest.raises(ConfigError, match="profile 'acme', erp: tax_map") as err:
        parse_profiles(profile({**ERP, "tax_map": tax_map}), {})
    assert message in str(err.value)


def test_a_tax_map_outside_the_erp_table_is_refused() -> None:
    billing = {"kind": "stripe", "url": "http://127.0.0.1:8001", "api_key": "sk", "tax_map": {"txr_1": 1}}
    with pytest.raises(ConfigError, match=r"tax_map belongs to the erp table"):
        parse_profiles(profile(ERP, billing=billing), {})


def test_the_demo_profile_maps_every_billing_rate_to_its_erp_tax() -> None:
    ds = generate(40, 1)
    mapping = demo_tax_map(ds)
    taxes = ds.erp.tables["account.tax"]
    assert set(mapping) == set(ds.billing.tax_rates) and len(mapping) >= 10
    for rate_id, tax_id in mapping.items():
        rate = ds.billing.tax_rates[rate_id]
        assert taxes[tax_id]["name"] == tax_name(rate)
        assert taxes[tax_id]["rate"] * 100 == Decimal(rate.percentage)
    assert len(set(mapping.values())) == len(mapping), "one ERP tax per rate"
