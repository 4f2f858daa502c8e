from __future__ import annotations

from pathlib import Path

import pytest

from services.core.domain import System
from services.io.config import ConfigError, Profile, Secret, SystemConnection, load_profile, write_profile
from services.store import home


def _profile() -> Profile:
    return Profile("demo", {
        System.BILLING: SystemConnection(System.BILLING, "stripe", "http://127.0.0.1:1", {},
                                         {"api_key": Secret("sk_test_abc")}),
        System.ERP: SystemConnection(System.ERP, "tryton", "http://127.0.0.1:2",
                                     {"database": "db", "login": "admin"}, {"password": Secret("pw-1")}),
        System.SUPPORT: SystemConnection(System.SUPPORT, "zendesk", "http://127.0.0.1:3",
                                         {"email": "a@b.example"}, {"api_token": Secret("tok-1")}),
    })


def test_round_trip_and_one_key_per_line(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    write_profile(path, _profile())
    text = path.read_text()
    assert "[profiles.demo.billing]" in text and 'kind = "stripe"' in text
    assert (path.stat().st_mode & 0o777) == 0o600
    loaded = load_profile(path, "demo")
    assert loaded.connections[System.ERP].settings == {"database": "db", "login": "admin"}
    assert loaded.connections[System.ERP].secret("password") == "pw-1"
    assert sorted(loaded.all_secrets()) == ["pw-1", "sk_test_abc", "tok-1"]


def test_secret_never_shows_in_repr() -> None:
    conn = _profile().connections[System.BILLING]
    assert "sk_test_abc" not in repr(conn) and "sk_test_abc" not in str(conn.secrets)


def test_credentials_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[profiles.p.billing]\nkind = "stripe"\nurl = "https://api.example"\napi_key_env = "K"\n')
    assert load_profile(path, "p", {"K": "sk_live_x"}).connections[System.BILLING].secret("api_key") == "sk_live_x"
    with pytest.raises(ConfigError, match="'K'"):
        load_profile(path, "p", {})


@pytest.mark.parametrize(("text", "message"), [
    ("not toml [", "not valid TOML"),
    ("[x]\n", "no \\[profiles"),
    ('[profiles.p.billing]\nkind = "zendesk"\nurl = "http://x"\n', "kind must be 'stripe'"),
    ('[profiles.p.billing]\nkind = "stripe"\nurl = "ftp://x"\n', "url must start"),
    ('[profiles.p.erp]\nkind = "tryton"\nurl = "http://x"\n', "missing 'database'"),
    ('[profiles.p.nope]\nkind = "stripe"\n', "unknown system"),
])
def test_malformed_configuration_explains_itself(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_profile(path, "p")


def test_missing_file_and_profile(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_profile(tmp_path / "none.toml", "p")
    path = tmp_path / "c.toml"
    write_profile(path, _profile())
    with pytest.raises(ConfigError, match="no profile 'other'"):
        load_profile(path, "other")


def test_home_honours_env(syncdesk_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert home.syncdesk_home() == syncdesk_home.resolve()
    assert home.database_path().parent == syncdesk_home.resolve()
    target = tmp_path / "elsewhere" / "deep"
    monkeypatch.setenv("SYNCDESK_HOME", str(target))
    assert home.syncdesk_home() == target.resolve() and target.is_dir()
    assert home.logs_dir() == target.resolve() / "logs"


def test_home_defaults_to_user_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNCDESK_HOME")
    assert "SyncDesk" in str(home.syncdesk_home(create=False))
