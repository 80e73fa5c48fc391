"""The azd predeploy hook (infra/scripts/migrate.py), without Azure: where the credentials come
from, what it runs, and that secrets never reach a command line."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

HOOK = Path(__file__).resolve().parents[2] / "infra" / "scripts" / "migrate.py"
ADMIN_URL = (
    "postgresql://chorus_owner:owner-secret@psql-x.postgres.database.azure.com:5432/chorus?sslmode=require"
)


@pytest.fixture(scope="module")
def hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chorus_migrate_hook", HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def no_key_vault(vault: str, name: str) -> str:
    raise AssertionError(f"Key Vault should not be read ({vault}, {name})")


def test_environment_values_win_over_key_vault(hook: ModuleType) -> None:
    env = {"POSTGRES_APP_LOGIN": "chorus_api", "POSTGRES_ADMIN_URL": ADMIN_URL, "POSTGRES_APP_PASSWORD": "pw"}
    assert hook.resolve_credentials(env, no_key_vault) == (ADMIN_URL, "chorus_api", "pw")


def test_missing_values_are_read_from_the_provisioned_key_vault(hook: ModuleType) -> None:
    reads: list[tuple[str, str]] = []

    def fake_vault(vault: str, name: str) -> str:
        reads.append((vault, name))
        return {"postgres-admin-url": ADMIN_URL, "postgres-app-password": "app-secret"}[name]

    env = {"POSTGRES_APP_LOGIN": "chorus_api", "AZURE_KEY_VAULT_ENDPOINT": "https://kv-x.vault.azure.net/"}
    assert hook.resolve_credentials(env, fake_vault) == (ADMIN_URL, "chorus_api", "app-secret")
    assert reads == [
        ("https://kv-x.vault.azure.net/", "postgres-admin-url"),
        ("https://kv-x.vault.azure.net/", "postgres-app-password"),
    ]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "POSTGRES_APP_LOGIN"),
        ({"POSTGRES_APP_LOGIN": "chorus_api"}, "AZURE_KEY_VAULT_ENDPOINT"),
    ],
)
def test_says_what_is_missing(hook: ModuleType, env: dict[str, str], message: str) -> None:
    with pytest.raises(hook.HookError, match=message):
        hook.resolve_credentials(env, no_key_vault)


def test_migrates_then_grants_the_app_role_with_secrets_only_in_the_environment(
    hook: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[list[str], dict[str, str]]] = []

    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append((command, kwargs["env"]))
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(hook.subprocess, "run", fake_run)
    env = {"POSTGRES_APP_LOGIN": "chorus_api", "POSTGRES_ADMIN_URL": ADMIN_URL, "POSTGRES_APP_PASSWORD": "pw"}
    assert hook.run(env, no_key_vault) == 0

    assert [command[1:] for command, _ in calls] == [
        ["-m", "shared_code.db", "migrate"],
        ["-m", "shared_code.db", "grant-app-role", "chorus_api", "--password-env", "POSTGRES_APP_PASSWORD"],
    ]
    for command, child_env in calls:
        assert command[0] == sys.executable
        assert not any("secret" in part or part == "pw" for part in command), (
            "a secret reached the command line"
        )
        assert child_env["POSTGRES_URL"] == ADMIN_URL  # migrate runs as the schema owner
        assert child_env["POSTGRES_ADMIN_URL"] == ADMIN_URL
        assert child_env["POSTGRES_APP_PASSWORD"] == "pw"


def test_stops_at_the_first_failing_step(hook: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def failing_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, 1)

    monkeypatch.setattr(hook.subprocess, "run", failing_run)
    env = {"POSTGRES_APP_LOGIN": "chorus_api", "POSTGRES_ADMIN_URL": ADMIN_URL, "POSTGRES_APP_PASSWORD": "pw"}
    assert hook.run(env, no_key_vault) == 1
    assert len(calls) == 1


def test_skip_migrations(hook: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert hook.run({"SKIP_MIGRATIONS": "true"}, no_key_vault) == 0
    assert "SKIP_MIGRATIONS" in capsys.readouterr().out


def test_missing_configuration_is_a_clear_error(hook: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert hook.run({}, no_key_vault) == 2
    assert "POSTGRES_APP_LOGIN" in capsys.readouterr().err


def test_the_shared_code_commands_it_calls_exist() -> None:
    """The hook depends on these subcommands of `python -m shared_code.db`."""
    source = (HOOK.parents[2] / "shared_code" / "db" / "__main__.py").read_text()
    for subcommand in ('"migrate"', '"grant-app-role"', '"--password-env"', '"entra-principal"'):
        assert subcommand in source, f"shared_code.db no longer offers {subcommand}"


ENTRA_ENV = {
    "POSTGRES_APP_AUTHENTICATION": "entra",
    "POSTGRES_APP_LOGIN": "id-api-x",
    "POSTGRES_ADMIN_URL": ADMIN_URL,
    "POSTGRES_ENTRA_ADMIN_NAME": "chorus_deployer",
    "POSTGRES_HOST": "psql-x.postgres.database.azure.com",
    "AZURE_MANAGED_IDENTITY_PRINCIPAL_ID": "00000000-0000-0000-0000-0000000000aa",
}


def test_with_entra_the_app_role_is_the_identity_created_by_the_entra_admin_and_has_no_password(
    hook: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[list[str], dict[str, str]]] = []

    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append((command, kwargs["env"]))
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(hook.subprocess, "run", fake_run)
    assert hook.run(ENTRA_ENV, no_key_vault) == 0
    assert [command[1:] for command, _ in calls] == [
        ["-m", "shared_code.db", "migrate"],
        ["-m", "shared_code.db", "entra-principal", "id-api-x", "00000000-0000-0000-0000-0000000000aa"],
        ["-m", "shared_code.db", "grant-app-role", "id-api-x"],
    ]
    for _, child_env in calls:
        assert "POSTGRES_APP_PASSWORD" not in child_env
        assert child_env["POSTGRES_ENTRA_ADMIN_URL"] == (
            "postgresql://chorus_deployer@psql-x.postgres.database.azure.com:5432/postgres"
            "?sslmode=verify-full&sslrootcert=system"
        )


def test_with_entra_missing_outputs_are_named(hook: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    env = {k: v for k, v in ENTRA_ENV.items() if k != "POSTGRES_ENTRA_ADMIN_NAME"}
    assert hook.run(env, no_key_vault) == 2
    assert "POSTGRES_ENTRA_ADMIN_NAME" in capsys.readouterr().err
