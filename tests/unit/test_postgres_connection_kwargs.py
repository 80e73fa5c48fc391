"""What every PostgreSQL connection of the app is opened with: the statement timeout, the CA bundle
for verify-full, and in Azure a Microsoft Entra token as the password (fetched, then reused until
shortly before it expires)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from shared_code.adapters.postgres import ENTRA_POSTGRES_SCOPE, EntraPassword, connection_kwargs
from shared_code.settings import Settings
from tests.unit.test_settings import VALID


@dataclass
class AccessToken:
    token: str
    expires_on: int


class FakeCredential:
    def __init__(self, lifetime_seconds: float) -> None:
        self.lifetime = lifetime_seconds
        self.scopes: list[str] = []

    async def get_token(self, *scopes: str) -> AccessToken:
        self.scopes.extend(scopes)
        return AccessToken(f"token-{len(self.scopes)}", int(time.time() + self.lifetime))


def settings(**values: str) -> Settings:
    return Settings.model_validate({**VALID, **values})


async def test_every_connection_gets_the_statement_timeout_and_no_password_locally() -> None:
    kwargs = await connection_kwargs(settings(POSTGRES_STATEMENT_TIMEOUT_MS="2500"))()
    assert kwargs["options"] == "-c statement_timeout=2500"
    assert kwargs["autocommit"] is True
    assert "password" not in kwargs and "sslrootcert" not in kwargs


async def test_with_entra_each_new_connection_gets_a_current_token_as_password() -> None:
    credential = FakeCredential(lifetime_seconds=3600)
    resolve = connection_kwargs(
        settings(POSTGRES_ENTRA_AUTH="true", POSTGRES_SSL_ROOT_CERT="/etc/ssl/certs/ca-certificates.crt"),
        EntraPassword(credential),
    )
    first, second = await resolve(), await resolve()
    assert first["password"] == second["password"] == "token-1"  # reused while it is fresh
    assert credential.scopes == [ENTRA_POSTGRES_SCOPE]
    assert first["sslrootcert"] == "/etc/ssl/certs/ca-certificates.crt"


async def test_a_token_close_to_expiry_is_replaced() -> None:
    credential = FakeCredential(lifetime_seconds=60)  # inside the refresh margin at once
    password = EntraPassword(credential)
    assert await password() == "token-1"
    assert await password() == "token-2"
