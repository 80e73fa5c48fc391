import pytest

from shared_code.settings import SettingsError, load_settings

VALID = {
    "POSTGRES_URL": "postgresql://app@db/chorus",
    "CosmosDB": "AccountEndpoint=https://localhost:8081/;AccountKey=a2V5;",
    "MediaStorage": "UseDevelopmentStorage=true",
    "AUTH_ISSUER": "https://issuer.example",
    "AUTH_AUDIENCE": "chorus-api",
    "AUTH_JWKS_URL": "https://issuer.example/keys",
    "CURSOR_SIGNING_KEY": "x" * 32,
}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in VALID:
        monkeypatch.delenv(name, raising=False)
    for name, value in VALID.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_valid_settings_load(environment: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.cosmos_database == "chorus"
    assert not settings.eventhubs_enabled


def test_a_missing_setting_is_named(environment: pytest.MonkeyPatch) -> None:
    environment.delenv("POSTGRES_URL")
    with pytest.raises(SettingsError, match="POSTGRES_URL"):
        load_settings()


def test_a_malformed_setting_is_named(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("POSTGRES_POOL_MAX", "many")
    with pytest.raises(SettingsError, match="POSTGRES_POOL_MAX"):
        load_settings()


def test_an_account_needs_a_connection_or_an_endpoint(environment: pytest.MonkeyPatch) -> None:
    environment.delenv("CosmosDB")
    with pytest.raises(SettingsError, match="CosmosDB__accountEndpoint"):
        load_settings()
    environment.setenv("CosmosDB__accountEndpoint", "https://acct.documents.azure.com:443/")
    assert load_settings().cosmos_account_endpoint == "https://acct.documents.azure.com:443/"


def test_secrets_do_not_show_in_repr(environment: pytest.MonkeyPatch) -> None:
    assert "a2V5" not in repr(load_settings())
