"""azd predeploy hook: apply `sql/` migrations to the Azure database before new code goes live.

Runs `python -m shared_code.db migrate` as the schema owner, then
`python -m shared_code.db grant-app-role <login>` so the app's own login exists and is a member
of chorus_app (row-level security applies to it; the owner bypasses it).

With POSTGRES_APP_AUTHENTICATION=entra (the default profile) the app's login is its managed identity:
before the grant, `python -m shared_code.db entra-principal <role> <object id>` creates its role, as
the server's Microsoft Entra administrator (POSTGRES_ENTRA_ADMIN_NAME, signed in with azd or the Azure
CLI), and there is no app password at all.

Where the credentials come from, first match wins:
- POSTGRES_ADMIN_URL and POSTGRES_APP_PASSWORD in the environment (a pipeline can set them);
- otherwise the Key Vault named by the provisioning outputs (AZURE_KEY_VAULT_ENDPOINT):
  secrets `postgres-admin-url` and `postgres-app-password`, read with the deployer's Microsoft
  Entra credential (azd, Azure CLI or environment), which main.bicep grants Key Vault Secrets User.

The machine running it must reach PostgreSQL and Key Vault: from anywhere in the default network
mode (the server firewall admits the addresses in allowedIpAddresses), only from inside the
virtual network or from allowedIpAddresses with networkIsolation. SKIP_MIGRATIONS=true skips it
(for example when migrations run from a runner inside the network instead).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY_VAULT_SCOPE = "https://vault.azure.net/.default"
KEY_VAULT_API_VERSION = "7.4"
# Names of Key Vault secrets (infra/app/keyvault.bicep), not their values.
ADMIN_URL_SECRET = "postgres-admin-url"  # noqa: S105
APP_PASSWORD_SECRET = "postgres-app-password"  # noqa: S105

SecretReader = Callable[[str, str], str]


class HookError(RuntimeError):
    """The hook cannot go on; the message says what to do."""


def read_key_vault_secret(vault_endpoint: str, name: str) -> str:
    """The current value of secret `name`, read with the deployer's Microsoft Entra identity."""
    from azure.identity import DefaultAzureCredential

    credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
    token = credential.get_token(KEY_VAULT_SCOPE).token
    url = f"{vault_endpoint.rstrip('/')}/secrets/{name}?api-version={KEY_VAULT_API_VERSION}"
    if not url.startswith("https://"):
        raise HookError(f"AZURE_KEY_VAULT_ENDPOINT must be an https URL, not {vault_endpoint!r}")
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  # https only, checked above
            value: str = json.load(response)["value"]
    except urllib.error.HTTPError as exc:
        raise HookError(
            f"Key Vault answered {exc.code} for secret {name!r}: the deployer needs the Key Vault Secrets "
            "User role (main.bicep grants it to principalId) and network access to the vault "
            "(allowedIpAddresses with networkIsolation)"
        ) from None
    except urllib.error.URLError as exc:
        raise HookError(f"cannot reach Key Vault at {vault_endpoint}: {exc.reason}") from None
    return value


def uses_entra(env: Mapping[str, str]) -> bool:
    return env.get("POSTGRES_APP_AUTHENTICATION", "password") == "entra"


def resolve_credentials(env: Mapping[str, str], read_secret: SecretReader) -> tuple[str, str, str]:
    """(admin URL, app login, app password) from the environment or Key Vault; with Entra, no password."""
    login = env.get("POSTGRES_APP_LOGIN", "")
    if not login:
        raise HookError(
            "POSTGRES_APP_LOGIN is not set: run `azd provision` first (it is an output of main.bicep)"
        )
    admin_url = env.get("POSTGRES_ADMIN_URL", "")
    app_password = env.get("POSTGRES_APP_PASSWORD", "")
    if uses_entra(env):
        if not admin_url:
            vault = env.get("AZURE_KEY_VAULT_ENDPOINT", "")
            if not vault:
                raise HookError(
                    "set POSTGRES_ADMIN_URL, or AZURE_KEY_VAULT_ENDPOINT (an output of main.bicep) so it "
                    "can be read from Key Vault"
                )
            admin_url = read_secret(vault, ADMIN_URL_SECRET)
        return admin_url, login, ""
    if not admin_url or not app_password:
        vault = env.get("AZURE_KEY_VAULT_ENDPOINT", "")
        if not vault:
            raise HookError(
                "set POSTGRES_ADMIN_URL and POSTGRES_APP_PASSWORD, or AZURE_KEY_VAULT_ENDPOINT "
                "(an output of main.bicep) so they can be read from Key Vault"
            )
        admin_url = admin_url or read_secret(vault, ADMIN_URL_SECRET)
        app_password = app_password or read_secret(vault, APP_PASSWORD_SECRET)
    return admin_url, login, app_password


def entra_admin_url(env: Mapping[str, str]) -> str:
    """The Entra administrator's connection to the `postgres` database (where pgaadauth lives)."""
    missing = [
        name
        for name in ("POSTGRES_ENTRA_ADMIN_NAME", "POSTGRES_HOST", "AZURE_MANAGED_IDENTITY_PRINCIPAL_ID")
        if not env.get(name)
    ]
    if missing:
        raise HookError(f"{', '.join(missing)} not set: run `azd provision` first (outputs of main.bicep)")
    user = urllib.parse.quote(env["POSTGRES_ENTRA_ADMIN_NAME"], safe="")
    return f"postgresql://{user}@{env['POSTGRES_HOST']}:5432/postgres?sslmode=verify-full&sslrootcert=system"


def commands(python: str, login: str, env: Mapping[str, str] | None = None) -> list[list[str]]:
    """The steps, in order. Credentials travel in the environment, never on the command line."""
    if env is not None and uses_entra(env):
        return [
            [python, "-m", "shared_code.db", "migrate"],
            [
                python,
                "-m",
                "shared_code.db",
                "entra-principal",
                login,
                env["AZURE_MANAGED_IDENTITY_PRINCIPAL_ID"],
            ],
            [python, "-m", "shared_code.db", "grant-app-role", login],
        ]
    return [
        [python, "-m", "shared_code.db", "migrate"],
        [python, "-m", "shared_code.db", "grant-app-role", login, "--password-env", "POSTGRES_APP_PASSWORD"],
    ]


def child_environment(env: Mapping[str, str], admin_url: str, app_password: str) -> dict[str, str]:
    child = dict(env)
    # `migrate` reads POSTGRES_URL, `grant-app-role` reads POSTGRES_ADMIN_URL: both are the owner here.
    child["POSTGRES_URL"] = admin_url
    child["POSTGRES_ADMIN_URL"] = admin_url
    if app_password:
        child["POSTGRES_APP_PASSWORD"] = app_password
    if uses_entra(env):
        child["POSTGRES_ENTRA_ADMIN_URL"] = entra_admin_url(env)
    return child


def run(env: Mapping[str, str], read_secret: SecretReader = read_key_vault_secret) -> int:
    if env.get("SKIP_MIGRATIONS", "").lower() in {"1", "true", "yes"}:
        print("SKIP_MIGRATIONS is set: not migrating the database")
        return 0
    try:
        admin_url, login, app_password = resolve_credentials(env, read_secret)
        child = child_environment(env, admin_url, app_password)
    except HookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for command in commands(sys.executable, login, env):
        print("running: " + " ".join(command[1:]))
        result = subprocess.run(command, cwd=REPO_ROOT, env=child, check=False)  # noqa: S603
        if result.returncode != 0:
            print(
                "error: the database step failed. If it could not connect: with networkIsolation=false add "
                "this machine's IPv4 address to allowedIpAddresses (azd env set ALLOWED_IP_ADDRESSES ...); "
                "with networkIsolation=true run the hook from inside the virtual network.",
                file=sys.stderr,
            )
            return result.returncode
    return 0


if __name__ == "__main__":
    sys.exit(run(os.environ))
